package policy

import (
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"k8s.io/apimachinery/pkg/labels"
)

// engine evaluates the policies a cluster's policy engine enforces, combined the way that
// engine combines them. There is one type per way of combining (Semantics): kubernetesEngine,
// calicoEngine and ciliumEngine. Every question about the cluster-policy layer goes to the
// model's engine, so audit, generate and the controller cannot derive a different answer.
type engine interface {
	// semantics names the way the engine combines policies.
	semantics() Semantics
	// bind selects, once per subject, the policies that select it; the bound engine then
	// decides per endpoint (next means no policy decided: allowed by default).
	bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier
	// control lists the policies that can restrict egress of pods in a namespace.
	control(ns *namespaceIndex) EgressControl
	// isolated reports whether the engine restricts the subject's egress in a way that a
	// namespaced NetworkPolicy allowing all egress could widen: such a pod must not get one.
	isolated(ns *namespaceIndex, s Subject) bool
}

var (
	_ engine = kubernetesEngine{}
	_ engine = calicoEngine{}
	_ engine = ciliumEngine{}
)

// kubernetesEngine is the order the Kubernetes network policy APIs define, which every engine
// without a policy model of its own follows: the admin tier, NetworkPolicy, the baseline tier,
// default allow. Each tier binds on first use, so a tier after the deciding one costs nothing
// and a trace lists each tier's selection just before its rules.
type kubernetesEngine struct{ tiers []tier }

func (kubernetesEngine) semantics() Semantics { return SemanticsKubernetes }

type kubernetesBound struct {
	tiers []tier
	bound [6]boundTier // more than the engine has tiers
	ns    *namespaceIndex
	s     Subject
}

func (e kubernetesEngine) bind(ns *namespaceIndex, s Subject, _ *tracer) boundTier {
	return &kubernetesBound{tiers: e.tiers, ns: ns, s: s}
}

func (b *kubernetesBound) decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	for k, t := range b.tiers {
		if b.bound[k] == nil {
			b.bound[k] = t.bind(b.ns, b.s, tr)
		}
		if o, r := b.bound[k].decide(ep, tr); o != next {
			return o, r
		}
	}
	return next, Reason{}
}

func (kubernetesEngine) control(ns *namespaceIndex) EgressControl {
	c := EgressControl{NetworkPolicies: netpolNames(ns), Isolating: netpolNames(ns)}
	for _, a := range ns.anps {
		if len(a.policy.rules) > 0 {
			c.Admin = append(c.Admin, a.policy.name)
		}
	}
	for _, a := range ns.banps {
		if len(a.policy.rules) > 0 {
			c.Baseline = append(c.Baseline, a.policy.name)
		}
	}
	c.ClusterAdmin, c.ClusterBaseline = clusterControl(ns)
	return c
}

// isolated: a pod selected by an egress NetworkPolicy is isolated; the admin tiers never
// isolate (what they do not match goes on to the next tier).
func (kubernetesEngine) isolated(ns *namespaceIndex, s Subject) bool {
	set := labels.Set(s.Labels)
	for _, p := range ns.netpols {
		if p.selector.Matches(set) {
			return true
		}
	}
	return false
}

func netpolNames(ns *namespaceIndex) []string {
	var out []string
	for _, p := range ns.netpols {
		out = append(out, p.name)
	}
	return out
}
