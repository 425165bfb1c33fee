package synth

import (
	"fmt"
	"math/rand/v2"

	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ciliumPolicies returns CiliumPolicies Cilium policies: about one in fifty a
// CiliumClusterwideNetworkPolicy selecting namespaces by team through their labels, the others
// CiliumNetworkPolicies spread over the namespaces and selecting one of their workloads or all of
// their pods. They draw from their own random source, so the rest of the cluster is the same
// with or without them.
func (g *generator) ciliumPolicies() []any {
	if g.cfg.CiliumPolicies == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0xc111))
	noDefaultDeny := false
	rule := func(sel *ciliumv2.EndpointSelector) ciliumv2.Rule {
		r := ciliumv2.Rule{EndpointSelector: sel}
		switch rng.IntN(4) {
		case 0: // the seeds' deny, subtracting only the metadata addresses
			r.EgressDeny = []ciliumv2.EgressDenyRule{{ToCIDR: []string{"169.254.169.254/32", "fd00:ec2::254/128"}}}
			r.EnableDefaultDeny = &ciliumv2.DefaultDenyConfig{Egress: &noDefaultDeny}
		case 1: // DNS only
			r.Egress = []ciliumv2.EgressRule{{ToPorts: []ciliumv2.PortRule{{Ports: []ciliumv2.PortProtocol{{Port: "53", Protocol: "ANY"}}}}}}
		case 2: // everything outside the cluster but the metadata addresses
			r.Egress = []ciliumv2.EgressRule{{ToCIDRSet: []ciliumv2.CIDRRule{{CIDR: "0.0.0.0/0", Except: []string{"169.254.169.254/32", "169.254.170.2/32"}}}}}
		default: // web traffic to the world
			r.Egress = []ciliumv2.EgressRule{{ToEntities: []string{"world"},
				ToPorts: []ciliumv2.PortRule{{Ports: []ciliumv2.PortProtocol{{Port: "443", Protocol: "TCP"}, {Port: "8000", EndPort: 8100, Protocol: "TCP"}}}}}}
		}
		return r
	}
	var out []any
	for i := range g.cfg.CiliumPolicies {
		if i%50 == 49 {
			ns := &g.nss[rng.IntN(len(g.nss))]
			r := rule(&ciliumv2.EndpointSelector{MatchLabels: map[string]string{"io.cilium.k8s.namespace.labels.team": ns.team}})
			out = append(out, &ciliumv2.CiliumClusterwideNetworkPolicy{
				TypeMeta:   metav1.TypeMeta{APIVersion: ciliumv2.GroupVersion, Kind: "CiliumClusterwideNetworkPolicy"},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cilium-global-%d", i)},
				Spec:       &r,
			})
			continue
		}
		ns := &g.nss[i%len(g.nss)]
		sel := &ciliumv2.EndpointSelector{}
		if len(ns.workloads) > 0 && rng.IntN(3) > 0 {
			w := &ns.workloads[rng.IntN(len(ns.workloads))]
			sel.MatchLabels = map[string]string{w.labelKey: w.app}
		}
		r := rule(sel)
		out = append(out, &ciliumv2.CiliumNetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: ciliumv2.GroupVersion, Kind: "CiliumNetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cilium-%d", i), Namespace: ns.name},
			Spec:       &r,
		})
	}
	return out
}
