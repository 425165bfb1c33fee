package policy_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"text/template"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/conformance"
)

// The network-policy-api v0.3.0 conformance suite's egress-to-CIDR tests, rewritten as verdict
// tests. The suite pokes server pods from client pods in a real cluster; here the servers' pod
// IPs are addresses (the evaluator's destinations are addresses, and a networks peer matches
// any address, in the cluster or not), and each poke becomes a verdict for the client pod's
// template. The manifests are the suite's own, read from the module
// (sigs.k8s.io/network-policy-api/conformance, embedded base/*):
//
//	conformance/tests/admin-network-policy-standard-egress-inline-cidr-rules.go
//	  (CNPAdminTierEgressInlineCIDRPeers), base/admin_tier/standard-egress-inline-cidr-rules.yaml
//	conformance/tests/baseline-admin-network-policy-standard-egress-inline-cidr-rules.go
//	  (CNPBaselineTierEgressInlineCIDRPeers), base/baseline_tier/standard-egress-inline-cidr-rules.yaml
//	conformance/base/manifests.yaml (namespaces and the StatefulSets of the client and servers)
//
// The suite's pokes to slytherin pods (allowed by the "allow-egress-to-slytherin" pods peer) and
// the namespace relabelling around them test a pods peer, which never matches an address outside
// the cluster; they are not rewritten.

// conformanceServers are made-up pod IPs of the suite's server pods, IPv4 and IPv6 (the suite
// runs in either family).
var conformanceServers = map[string][]string{
	"luna-lovegood-0":  {"10.244.1.10", "fd00:10:244:1::10"},
	"luna-lovegood-1":  {"10.244.1.11", "fd00:10:244:1::11"},
	"cedric-diggory-0": {"10.244.2.10", "fd00:10:244:2::10"},
	"cedric-diggory-1": {"10.244.2.11", "fd00:10:244:2::11"},
}

// conformanceHostNetworkPorts is how many host network ports the base manifests' template
// indexes (hostNetworkPortsAmount in the suite's utils/suite/suite.go).
const conformanceHostNetworkPorts = 8

// conformancePokes are the suite's pokes to one server: TCP 80, UDP 53, SCTP 9003.
func conformancePokes(t *testing.T, server string) []endpoint.Endpoint {
	t.Helper()
	var out []endpoint.Endpoint
	for _, ip := range conformanceServers[server] {
		host := ip
		if netip.MustParseAddr(ip).Is6() {
			host = "[" + ip + "]"
		}
		for _, p := range []string{"80/TCP", "53/UDP", "9003/SCTP"} {
			ep, err := endpoint.ParseCustom(host + ":" + p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ep)
		}
	}
	return out
}

// conformanceInventory loads the suite's base manifests and one policy file through the real
// loader.
func conformanceInventory(t *testing.T, policyFile string) *inventory.Inventory {
	t.Helper()
	raw, err := conformance.Manifests.ReadFile("base/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The base manifests are a text/template over the host network ports (the suite's
	// utils/kubernetes/apply.go applyTemplate; default ports from 34345, utils/suite/suite.go).
	tmpl, err := template.New("manifests.yaml").Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	var base bytes.Buffer
	ports := struct{ HostNetworkPorts []int }{}
	for p := 34345; p < 34345+conformanceHostNetworkPorts; p++ {
		ports.HostNetworkPorts = append(ports.HostNetworkPorts, p)
	}
	if err := tmpl.Execute(&base, ports); err != nil {
		t.Fatal(err)
	}
	cnp, err := conformance.Manifests.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	return load(t, base.String()+"\n---\n"+string(cnp))
}

// conformanceClient is the template of a client StatefulSet of the suite.
func conformanceClient(t *testing.T, inv *inventory.Inventory, namespace, name string) policy.Subject {
	t.Helper()
	for _, w := range inv.Workloads {
		if w.Namespace == namespace && w.Name == name {
			return policy.Subject{Namespace: namespace, Labels: w.Template.Labels}
		}
	}
	t.Fatalf("no workload %s/%s in the conformance manifests", namespace, name)
	return policy.Subject{}
}

// allowSpecificPodIPs is the rule the suite's "allow-egress" subtest inserts at index 0:
// "allow-egress-to-specific-podIPs", Accept to luna-lovegood-0 and cedric-diggory-0 (/32 or
// /128).
func allowSpecificPodIPs(family int) cnpv1beta1.ClusterNetworkPolicyEgressRule {
	mask := map[int]string{0: "/32", 1: "/128"}[family]
	return cnpv1beta1.ClusterNetworkPolicyEgressRule{
		Name: "allow-egress-to-specific-podIPs", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionAccept,
		To: []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1beta1.CIDR{
			cnpv1beta1.CIDR(conformanceServers["luna-lovegood-0"][family] + mask),
			cnpv1beta1.CIDR(conformanceServers["cedric-diggory-0"][family] + mask),
		}}},
	}
}

func TestConformanceEgressInlineCIDRPeers(t *testing.T) {
	for _, tc := range []struct {
		suiteTest, file, policyName string
		tier                        policy.Tier
	}{
		{"CNPAdminTierEgressInlineCIDRPeers", "base/admin_tier/standard-egress-inline-cidr-rules.yaml", "inline-cidr-as-peers-example", policy.TierClusterAdmin},
		{"CNPBaselineTierEgressInlineCIDRPeers", "base/baseline_tier/standard-egress-inline-cidr-rules.yaml", "default", policy.TierClusterBaseline},
	} {
		t.Run(tc.suiteTest, func(t *testing.T) {
			// expect checks one client against one server's pokes.
			expect := func(t *testing.T, m *policy.Model, client policy.Subject, server string, allowed bool, tier policy.Tier, policyName string, rule int) {
				t.Helper()
				eps := conformancePokes(t, server)
				out := make([]policy.Verdict, len(eps))
				m.Evaluate(client, eps, out)
				for i, v := range out {
					r := v.DecidedBy
					if v.Allowed != allowed || r.Tier != tier || r.Policy != policyName || r.Rule != rule {
						t.Errorf("%s/%v → %s (%s): %s; want allowed=%v by %s %q rule %d", client.Namespace, client.Labels, server, eps[i], v, allowed, tier, policyName, rule)
					}
				}
			}

			t.Run("Should support a 'deny-egress' rule policy for egress-cidr-peer", func(t *testing.T) {
				inv := conformanceInventory(t, tc.file)
				m := policy.Compile(inv)
				if len(m.Rejected) != 0 {
					t.Fatalf("the suite's policy is rejected: %v", m.Rejected)
				}
				harry := conformanceClient(t, inv, "network-policy-conformance-gryffindor", "harry-potter")
				// "ensure egress is DENIED to 0.0.0.0/0 from gryffindor; egressRule at index1
				// should take effect"
				for _, server := range []string{"luna-lovegood-0", "cedric-diggory-0"} {
					expect(t, m, harry, server, false, tc.tier, tc.policyName, 1)
				}
				// Not in the suite, but what its subject implies: a client in another namespace
				// is not selected.
				draco := conformanceClient(t, inv, "network-policy-conformance-slytherin", "draco-malfoy")
				expect(t, m, draco, "luna-lovegood-0", true, policy.TierDefault, "", policy.NoRule)
			})

			t.Run("Should support an 'allow-egress' rule policy for egress-cidr-peer", func(t *testing.T) {
				for family, name := range []string{"IPv4", "IPv6"} {
					t.Run(name, func(t *testing.T) {
						inv := conformanceInventory(t, tc.file)
						// "insert new rule at index0; append the rest of the rules"
						var patched bool
						for _, c := range inv.ClusterNetworkPolicies {
							if c.Policy.Name == tc.policyName {
								c.Policy.Spec.Egress = append([]cnpv1beta1.ClusterNetworkPolicyEgressRule{allowSpecificPodIPs(family)}, c.Policy.Spec.Egress...)
								patched = true
							}
						}
						if !patched {
							t.Fatalf("no ClusterNetworkPolicy %s in %s", tc.policyName, tc.file)
						}
						m := policy.Compile(inv)
						if len(m.Rejected) != 0 {
							t.Fatalf("the patched policy is rejected: %v", m.Rejected)
						}
						harry := conformanceClient(t, inv, "network-policy-conformance-gryffindor", "harry-potter")
						// "ensure egress is ALLOWED to luna-lovegood-0.IP and cedric-diggory-0.IP;
						// new egressRule at index0 should take effect" (in the family the rule
						// lists; the other family's address is denied by the internet rule)
						for _, server := range []string{"luna-lovegood-0", "cedric-diggory-0"} {
							eps := conformancePokes(t, server)
							out := make([]policy.Verdict, len(eps))
							m.Evaluate(harry, eps, out)
							for i, v := range out {
								inFamily := eps[i].Address.Is6() == (family == 1)
								wantRule := map[bool]int{true: 0, false: 2}[inFamily]
								if v.Allowed != inFamily || v.DecidedBy.Tier != tc.tier || v.DecidedBy.Policy != tc.policyName || v.DecidedBy.Rule != wantRule {
									t.Errorf("%s (%s): %s; want allowed=%v by rule %d", server, eps[i], v, inFamily, wantRule)
								}
							}
						}
						// "ensure other pods are still unreachable: luna-lovegood-1.IP and
						// cedric-diggory-1.IP; deny at egress rule index2 should kick in"
						for _, server := range []string{"luna-lovegood-1", "cedric-diggory-1"} {
							expect(t, m, harry, server, false, tc.tier, tc.policyName, 2)
						}
					})
				}
			})
		})
	}
}

// TestConformanceManifestsAreCurrent guards the rewrite: the suite's policies still say what the
// tests above assume (a Deny to 0.0.0.0/0 and ::/0 at index 1 of an Accept-first policy).
func TestConformanceManifestsAreCurrent(t *testing.T) {
	for _, file := range []string{"base/admin_tier/standard-egress-inline-cidr-rules.yaml", "base/baseline_tier/standard-egress-inline-cidr-rules.yaml"} {
		inv := conformanceInventory(t, file)
		if len(inv.ClusterNetworkPolicies) != 1 {
			t.Fatalf("%s: %d ClusterNetworkPolicies, want 1", file, len(inv.ClusterNetworkPolicies))
		}
		e := inv.ClusterNetworkPolicies[0].Policy.Spec.Egress
		if len(e) != 2 || len(e[1].To) == 0 {
			t.Fatalf("%s: %d egress rules, want 2, the second with a peer", file, len(e))
		}
		if got := fmt.Sprintf("%d %s %s %v", len(e), e[0].Action, e[1].Action, e[1].To[0].Networks); got != "2 Accept Deny [0.0.0.0/0 ::/0]" {
			t.Errorf("%s: egress is %s, want 2 rules: Accept, then Deny to [0.0.0.0/0 ::/0]", file, got)
		}
	}
}
