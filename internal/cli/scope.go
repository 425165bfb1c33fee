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
	f.StringVarP(&o.namespace, "namespace", "n", "", "report only the pods, workloads and findings of this namespace (and cluster-wide findings); the whole input is still read: cluster-scoped policies, nodes and the policy engine decide its verdicts")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "audit every namespace (the default; accepted for kubectl's habit)")
}

// check rejects contradictory scope flags.
func (o *scopeOptions) check() error {
	if o.namespace != "" && o.allNamespaces {
		return usageError("--namespace and --all-namespaces: give one, not both")
	}
	return nil
}

// apply checks that the namespace of --namespace is in the input; the audit then reports only
// its pods, workloads and findings, plus the cluster-wide findings (audit.Options.Namespace).
// The whole input is still read and informs the verdicts: the policy engine and the clouds are
// detected from add-ons in kube-system and from nodes, and cluster-scoped policies apply to
// every namespace. A namespaced policy of another namespace selects no pod of this one.
func (o *scopeOptions) apply(inv *inventory.Inventory) (*inventory.Inventory, error) {
	ns := o.namespace
	if ns == "" {
		return inv, nil
	}
	if _, ok := inv.Namespaces[ns]; ok {
		return inv, nil
	}
	for _, p := range inv.Pods {
		if p.Pod.Namespace == ns {
			return inv, nil
		}
	}
	for _, w := range inv.Workloads {
		if w.Namespace == ns {
			return inv, nil
		}
	}
	return nil, usageError("--namespace %q: no such namespace in the input", ns)
}
