package policy

import (
	"fmt"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"slices"
	"strings"
)

// Kind is a kind of policy object. Whether an object of a kind protects anything depends on
// the cluster's policy engine: the API server stores objects that nothing enforces.
type Kind string

// The policy kinds the evaluator reads.
const (
	// KindNetworkPolicy is networking.k8s.io/v1 NetworkPolicy.
	KindNetworkPolicy Kind = "NetworkPolicy"
	// KindAdminNetworkPolicy is policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy.
	KindAdminNetworkPolicy Kind = "AdminNetworkPolicy"
	// KindBaselineAdminNetworkPolicy is policy.networking.k8s.io/v1alpha1
	// BaselineAdminNetworkPolicy.
	KindBaselineAdminNetworkPolicy Kind = "BaselineAdminNetworkPolicy"
	// KindClusterNetworkPolicy is policy.networking.k8s.io ClusterNetworkPolicy (v1alpha2 in
	// network-policy-api v0.2.x, v1beta1 from v0.3.0).
	KindClusterNetworkPolicy Kind = "ClusterNetworkPolicy"
	// KindAWSClusterNetworkPolicy is networking.k8s.aws/v1alpha1 ClusterNetworkPolicy, the AWS
	// VPC CNI network policy agent's own cluster-wide kind.
	KindAWSClusterNetworkPolicy Kind = "ClusterNetworkPolicy.networking.k8s.aws"
	// KindCalico is Calico's GlobalNetworkPolicy and NetworkPolicy (projectcalico.org/v3,
	// crd.projectcalico.org/v1), with their tiers and network sets.
	KindCalico Kind = "Calico"
	// KindCilium is cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.
	KindCilium Kind = "Cilium"
)

// Kinds lists every policy kind, in a fixed order.
var Kinds = []Kind{KindNetworkPolicy, KindAdminNetworkPolicy, KindBaselineAdminNetworkPolicy,
	KindClusterNetworkPolicy, KindAWSClusterNetworkPolicy, KindCalico, KindCilium}

// Semantics is how an engine combines the policies it enforces into one verdict.
type Semantics string

// The evaluation semantics; each has its own engine type in the evaluator.
const (
	// SemanticsKubernetes is the order the Kubernetes APIs define: the admin tier
	// (AdminNetworkPolicy, ClusterNetworkPolicy Admin), NetworkPolicy, the baseline tier
	// (ClusterNetworkPolicy Baseline, BaselineAdminNetworkPolicy), default allow.
	SemanticsKubernetes Semantics = "kubernetes"
	// SemanticsCalico is Calico's ordered tiers, with the Kubernetes kinds as members of
	// kube-admin, default and kube-baseline.
	SemanticsCalico Semantics = "calico"
	// SemanticsCilium is Cilium's per-endpoint policy: deny wins, allows are a union.
	SemanticsCilium Semantics = "cilium"
)

// Enforcement says which policy engine enforces pod egress in a cluster and which kinds it
// enforces. The evaluator takes part only the kinds enforced; objects of other kinds are listed
// in Model.NotEnforced.
type Enforcement struct {
	// Engine names the engine and its version for reports ("Calico v3.32.1"); empty when the
	// input identifies none.
	Engine string
	// Semantics is how the engine combines policies.
	Semantics Semantics
	// Kinds says, per kind, whether the engine enforces it and why. A kind missing from the map
	// is not enforced unless Assumed is set.
	Kinds map[Kind]KindEnforcement
	// Assumed is set when nothing in the input identifies the engine: every kind the input
	// holds is assumed enforced, which can overstate protection, and reports say so.
	Assumed bool
}

// KindEnforcement is whether an engine enforces a kind, and the evidence for it.
type KindEnforcement struct {
	Enforced bool
	// Reason says why, naming the evidence (a workload's argument, a ConfigMap key, a version
	// boundary and its source): "the aws-node DaemonSet's aws-eks-nodeagent container runs
	// with --enable-network-policy=false".
	Reason string
}

// Enforces reports whether kind k takes part in evaluation, and why not when it does not.
func (e *Enforcement) Enforces(k Kind) (bool, string) {
	if e == nil || e.Assumed {
		return true, ""
	}
	ke, ok := e.Kinds[k]
	switch {
	case !ok:
		return false, fmt.Sprintf("%s does not enforce %s", e.engineName(), k)
	case !ke.Enforced:
		return false, ke.Reason
	}
	return true, ""
}

func (e *Enforcement) engineName() string {
	if e.Engine == "" {
		return "the cluster's policy engine"
	}
	return e.Engine
}

// String renders the enforcement for a report header: "Calico v3.32.1 (calico semantics):
// enforces NetworkPolicy, ClusterNetworkPolicy, Calico".
func (e *Enforcement) String() string {
	if e == nil || e.Assumed {
		return "no policy engine identified: every policy kind in the input is assumed enforced"
	}
	var kinds []string
	for _, k := range Kinds {
		if e.Kinds[k].Enforced {
			kinds = append(kinds, string(k))
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"no policy kind"}
	}
	return fmt.Sprintf("%s (%s semantics): enforces %s", e.engineName(), e.Semantics, strings.Join(kinds, ", "))
}

// EnforcedKinds returns the kinds enforced, in the order of Kinds.
func (e *Enforcement) EnforcedKinds() []Kind {
	var out []Kind
	for _, k := range Kinds {
		if ok, _ := e.Enforces(k); ok {
			out = append(out, k)
		}
	}
	return slices.Clip(out)
}

// enforcedOnly returns inv without the policies of kinds enf does not enforce (a shallow copy;
// inv is not modified), and a note for each policy left out.
func enforcedOnly(inv *inventory.Inventory, enf *Enforcement) (*inventory.Inventory, []Note) {
	if enf.Assumed {
		return inv, nil
	}
	out := *inv
	var notes []Note
	leaveOut := func(k Kind, refs []inventory.ObjectRef, clear func()) {
		if len(refs) == 0 {
			return
		}
		ok, why := enf.Enforces(k)
		if ok {
			return
		}
		for _, r := range refs {
			notes = append(notes, Note{Object: r, Reason: "not enforced: " + why})
		}
		clear()
	}
	leaveOut(KindNetworkPolicy, refsOf(inv.NetworkPolicies, func(p *inventory.NetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: "NetworkPolicy", Namespace: p.Policy.Namespace, Name: p.Policy.Name, Source: p.Source}
	}), func() { out.NetworkPolicies = nil })
	leaveOut(KindAdminNetworkPolicy, refsOf(inv.AdminNetworkPolicies, func(p *inventory.AdminNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: "AdminNetworkPolicy", Name: p.Policy.Name, Source: p.Source}
	}), func() { out.AdminNetworkPolicies = nil })
	leaveOut(KindBaselineAdminNetworkPolicy, refsOf(inv.BaselineAdminNetworkPolicies, func(p *inventory.BaselineAdminNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: "BaselineAdminNetworkPolicy", Name: p.Policy.Name, Source: p.Source}
	}), func() { out.BaselineAdminNetworkPolicies = nil })
	leaveOut(KindClusterNetworkPolicy, refsOf(inv.ClusterNetworkPolicies, func(p *inventory.ClusterNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: kindCNP, Name: p.Policy.Name, Source: p.Source}
	}), func() { out.ClusterNetworkPolicies = nil })
	leaveOut(KindAWSClusterNetworkPolicy, refsOf(inv.AWSClusterNetworkPolicies, func(p *inventory.AWSClusterNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: kindAWSCNP, Name: p.Policy.Name, Source: p.Source}
	}), func() { out.AWSClusterNetworkPolicies = nil })
	calico := append(refsOf(inv.CalicoGlobalNetworkPolicies, func(p *inventory.CalicoGlobalNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: "GlobalNetworkPolicy", Name: p.Policy.Name, Source: p.Source}
	}), refsOf(inv.CalicoNetworkPolicies, func(p *inventory.CalicoNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: inventory.CalicoNetworkPolicyKind, Namespace: p.Policy.Namespace, Name: p.Policy.Name, Source: p.Source}
	})...)
	leaveOut(KindCalico, calico, func() { out.CalicoGlobalNetworkPolicies, out.CalicoNetworkPolicies = nil, nil })
	cilium := append(refsOf(inv.CiliumNetworkPolicies, func(p *inventory.CiliumNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: kindCiliumNetworkPolicy, Namespace: p.Policy.Namespace, Name: p.Policy.Name, Source: p.Source}
	}), refsOf(inv.CiliumClusterwideNetworkPolicies, func(p *inventory.CiliumClusterwideNetworkPolicy) inventory.ObjectRef {
		return inventory.ObjectRef{Kind: kindCiliumClusterwideNetworkPolicy, Name: p.Policy.Name, Source: p.Source}
	})...)
	leaveOut(KindCilium, cilium, func() { out.CiliumNetworkPolicies, out.CiliumClusterwideNetworkPolicies = nil, nil })
	return &out, notes
}

func refsOf[T any](objs []T, ref func(T) inventory.ObjectRef) []inventory.ObjectRef {
	out := make([]inventory.ObjectRef, 0, len(objs))
	for _, o := range objs {
		out = append(out, ref(o))
	}
	return out
}
