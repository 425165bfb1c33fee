package synth

import (
	"fmt"
	"math/rand/v2"

	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// calicoPolicies returns the Calico objects of the cluster: a "security" tier that passes
// undecided traffic on, and CalicoPolicies policies, about one in fifty a GlobalNetworkPolicy
// selecting namespaces by team, the others NetworkPolicies spread over the namespaces and
// selecting one of their workloads or all of their pods. They draw from their own random
// source, so the rest of the cluster is the same with or without them.
func (g *generator) calicoPolicies() []any {
	if g.cfg.CalicoPolicies == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0xca11c0))
	order := func() *float64 {
		if rng.IntN(4) == 0 {
			return nil
		}
		o := float64(rng.IntN(2000) + 1)
		return &o
	}
	out := []any{&calicov3.Tier{
		TypeMeta:   metav1.TypeMeta{APIVersion: calicov3.GroupVersion, Kind: "Tier"},
		ObjectMeta: metav1.ObjectMeta{Name: "security"},
		Spec:       calicov3.TierSpec{Order: ptrTo(100.0), DefaultAction: "Pass"},
	}}
	tcp, udp := intstr.FromString("TCP"), intstr.FromString("UDP")
	rules := func() []calicov3.Rule {
		switch rng.IntN(4) {
		case 0: // the seeds' policy
			return []calicov3.Rule{
				{Action: "Deny", Protocol: &tcp, Destination: calicov3.EntityRule{Nets: []string{"169.254.169.254/32"}}},
				{Action: "Allow", Destination: calicov3.EntityRule{Nets: []string{"0.0.0.0/0"}}},
			}
		case 1: // DNS only
			return []calicov3.Rule{{Action: "Allow", Protocol: &udp, Destination: calicov3.EntityRule{Ports: []intstr.IntOrString{intstr.FromInt32(53)}}}}
		case 2: // everything but the metadata addresses
			return []calicov3.Rule{{Action: "Allow", Destination: calicov3.EntityRule{NotNets: []string{"169.254.169.254/32", "169.254.170.2/32"}}}}
		default: // log, then pass web traffic on
			return []calicov3.Rule{{Action: "Log"}, {Action: "Pass", Protocol: &tcp, Destination: calicov3.EntityRule{Ports: []intstr.IntOrString{intstr.FromInt32(443), intstr.FromString("8000:8100")}}}}
		}
	}
	for i := range g.cfg.CalicoPolicies {
		if i%50 == 49 {
			ns := &g.nss[rng.IntN(len(g.nss))]
			p := &calicov3.GlobalNetworkPolicy{
				TypeMeta:   metav1.TypeMeta{APIVersion: calicov3.GroupVersion, Kind: "GlobalNetworkPolicy"},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("global-%d", i)},
			}
			p.Spec.Order, p.Spec.Egress = order(), rules()
			p.Spec.NamespaceSelector = fmt.Sprintf("team == '%s'", ns.team)
			if rng.IntN(2) == 0 {
				p.Spec.Tier = "security"
			}
			out = append(out, p)
			continue
		}
		ns := &g.nss[i%len(g.nss)]
		p := &calicov3.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: calicov3.GroupVersion, Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("calico-%d", i), Namespace: ns.name},
		}
		p.Spec.Order, p.Spec.Egress = order(), rules()
		if len(ns.workloads) > 0 && rng.IntN(3) > 0 {
			w := &ns.workloads[rng.IntN(len(ns.workloads))]
			p.Spec.Selector = fmt.Sprintf("%s == '%s'", w.labelKey, w.app)
		}
		out = append(out, p)
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
