package cli

import (
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/spf13/pflag"
)

// scopeOptions are kubectl's scope flags: -n/--namespace and -A/--all-namespaces.
type scopeOptions struct {
	namespace     string
	allNamespaces bool
}

// addFlags registers the scope flags with kubectl's spelling and shorthands.
func (o *scopeOptions) addFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.namespace, "namespace", "n", "", "audit only the pods and workloads of this namespace (and the namespaced policies that can select them); cluster-scoped policies, nodes and the policy engine are still read and evaluated")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "audit every namespace (the default; accepted for kubectl's habit)")
}

// check rejects contradictory scope flags.
func (o *scopeOptions) check() error {
	if o.namespace != "" && o.allNamespaces {
		return usageError("--namespace and --all-namespaces: give one, not both")
	}
	return nil
}

// apply narrows the inventory to the namespace of --namespace; without it the inventory is
// returned as it is. It runs after the policy engine and the clouds were detected, which read
// add-ons in kube-system and nodes whatever the scope.
//
// Kept whole: cluster-scoped policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy, Calico global policies and sets, Cilium clusterwide policies), nodes,
// service accounts and the engine's configuration, since they decide the scoped pods' verdicts
// too. Dropped: pods, workloads and namespaces of other namespaces, and namespaced policies of
// other namespaces (NetworkPolicy, Calico and Cilium namespaced policies select only pods of
// their own namespace, so they cannot change a scoped verdict). Findings are then those of the
// scoped namespace plus cluster-wide ones (unreadable resources, AdminNetworkPolicy priority
// ties, instance settings), never another namespace's.
func (o *scopeOptions) apply(inv *inventory.Inventory) (*inventory.Inventory, error) {
	ns := o.namespace
	if ns == "" {
		return inv, nil
	}
	scoped := *inv
	scoped.Namespaces = map[string]*inventory.Namespace{}
	if n, ok := inv.Namespaces[ns]; ok {
		scoped.Namespaces[ns] = n
	}
	scoped.Pods = nil
	for _, p := range inv.Pods {
		if p.Pod.Namespace == ns {
			scoped.Pods = append(scoped.Pods, p)
		}
	}
	scoped.Workloads = nil
	for _, w := range inv.Workloads {
		if w.Namespace == ns {
			scoped.Workloads = append(scoped.Workloads, w)
		}
	}
	scoped.NetworkPolicies = nil
	for _, p := range inv.NetworkPolicies {
		if p.Policy.Namespace == ns {
			scoped.NetworkPolicies = append(scoped.NetworkPolicies, p)
		}
	}
	scoped.CalicoNetworkPolicies = nil
	for _, p := range inv.CalicoNetworkPolicies {
		if p.Policy.Namespace == ns {
			scoped.CalicoNetworkPolicies = append(scoped.CalicoNetworkPolicies, p)
		}
	}
	scoped.CiliumNetworkPolicies = nil
	for _, p := range inv.CiliumNetworkPolicies {
		if p.Policy.Namespace == ns {
			scoped.CiliumNetworkPolicies = append(scoped.CiliumNetworkPolicies, p)
		}
	}
	if len(scoped.Namespaces) == 0 && len(scoped.Pods)+len(scoped.Workloads) == 0 {
		return nil, usageError("--namespace %q: no such namespace in the input", ns)
	}
	return &scoped, nil
}
