package policy_test

import (
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Where Calico documents what the rows below check.
const (
	calicoTierDoc       = "docs.tigera.io/calico/latest/reference/resources/tier (How policy is evaluated)"
	calicoTiersDoc      = "docs.tigera.io/calico/latest/network-policy/policy-tiers/tiered-policy (default tier, kube-admin, kube-baseline)"
	calicoGNPDoc        = "docs.tigera.io/calico/latest/reference/resources/globalnetworkpolicy (Spec)"
	calicoNPDoc         = "docs.tigera.io/calico/latest/reference/resources/networkpolicy (Spec)"
	calicoRuleDoc       = "docs.tigera.io/calico/latest/reference/resources/networkpolicy (Rule, EntityRule)"
	calicoLabelsDoc     = "docs.tigera.io/calico/latest/network-policy/get-started/calico-policy/calico-labels"
	calicoTypesDoc      = "docs.tigera.io/calico/latest/reference/resources/globalnetworkpolicy (types: default)"
	calicoNetworkSetDoc = "docs.tigera.io/calico/latest/reference/resources/globalnetworkset (a selector in a policy rule matches the nets of the network sets it selects)"
	calicoRulesGo       = "libcalico-go updateprocessors/rules.go GetEntityRuleSelector: a namespaced policy's destination selector, notSelector or serviceAccounts select within its namespace unless namespaceSelector; global() selects non-namespaced resources, all() namespaced ones"
	felixIPVersion      = "Felix rules renderer, FilterRuleToIPVersion: a rule is dropped for an IP version when a nets or notNets list holds none of it"
)

// seedsGlobalNetworkPolicy is the Rancher hardening guide's GlobalNetworkPolicy, exactly as the
// seed document gives it.
const seedsGlobalNetworkPolicy = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-all-egress-except-metadata-api
spec:
  selector: all()
  egress:
  - action: Deny
    protocol: TCP
    destination:
      nets:
      - 169.254.169.254/32
  - action: Allow
    destination:
      nets:
      - 0.0.0.0/0
`

func gnp(name, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

func cnp(name, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: shop}\nspec:\n" + spec + "\n---\n"
}

func tier(name, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: " + name + "}\nspec: " + spec + "\n---\n"
}

// gns is a GlobalNetworkSet; cns a NetworkSet. labels is a YAML flow mapping's content.
func gns(name, labels, nets string) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: " + name + ", labels: {" + labels + "}}\nspec: {nets: " + nets + "}\n---\n"
}

func cns(name, namespace, labels, nets string) string {
	return "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: " + name + ", namespace: " + namespace + ", labels: {" + labels + "}}\nspec: {nets: " + nets + "}\n---\n"
}

const serviceAccounts = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: shop, labels: {role: ci}}
---
`

const gnpKind = "GlobalNetworkPolicy"

// TestCalicoSemantics is a truth table of Calico's documented semantics; each row names the
// documentation it checks.
func TestCalicoSemantics(t *testing.T) {
	denyIMDS := func(name, extra string) string {
		return gnp(name, "  selector: all()\n"+extra+"  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254/32]}")
	}
	allowAll := func(name, extra string) string {
		return gnp(name, "  selector: all()\n"+extra+"  egress:\n  - action: Allow")
	}
	rows := []row{
		// The seeds.
		{name: "[seed] the Rancher GlobalNetworkPolicy denies TCP to 169.254.169.254 by its first rule",
			policies: seedsGlobalNetworkPolicy, endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "allow-all-egress-except-metadata-api", rule: 0, kind: gnpKind, calicoTier: "default"},
		{name: "[seed] the Rancher GlobalNetworkPolicy allows other IPv4 destinations by its second rule",
			policies: seedsGlobalNetworkPolicy, endpoint: "azure-wireserver", labels: web, allowed: true,
			tier: policy.TierCalico, policy: "allow-all-egress-except-metadata-api", rule: 1},
		{name: "[seed] UDP to 169.254.169.254 is not TCP: the Deny rule does not match, the Allow rule does (" + calicoRuleDoc + ": protocol)",
			policies: seedsGlobalNetworkPolicy, endpoint: "169.254.169.254:80/UDP", labels: web, allowed: true,
			tier: policy.TierCalico, policy: "allow-all-egress-except-metadata-api", rule: 1},
		{name: "[seed] IPv6 metadata: no rule matches (0.0.0.0/0 is IPv4), so the default tier's default action denies it (" + calicoTierDoc + ")",
			policies: seedsGlobalNetworkPolicy, endpoint: "aws-imds-ipv6", labels: web,
			tier: policy.TierCalico, policy: "allow-all-egress-except-metadata-api", rule: policy.NoRule, calicoTier: "default"},
		{name: "[seed] the seeds' Kubernetes NetworkPolicy in Calico's default tier at order 1000 comes before the GlobalNetworkPolicy without order; its except entry leaves 169.254.169.254 to the GlobalNetworkPolicy's Deny (" + calicoTiersDoc + ")",
			policies: seedsGlobalNetworkPolicy + "---\n" + seedsPolicy, endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "allow-all-egress-except-metadata-api", rule: 0},
		{name: "[seed] with both seeds, other IPv4 destinations are allowed by the Kubernetes NetworkPolicy first (" + calicoTiersDoc + ")",
			policies: seedsGlobalNetworkPolicy + "---\n" + seedsPolicy, endpoint: "azure-wireserver", labels: web, allowed: true,
			tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: "a tier whose only selecting policies are Kubernetes NetworkPolicies denies as Kubernetes does, naming the except entry (" + calicoTiersDoc + ")",
			policies: tier("unused", "{order: 5}") + seedsPolicy, endpoint: "aws-imds", labels: web,
			tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},

		// Tiers and order.
		{name: "a policy without tier is in the default tier (" + calicoGNPDoc + ": tier, default 'default')",
			policies: denyIMDS("deny-imds", ""), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "deny-imds", rule: 0, calicoTier: "default"},
		{name: "the lower order is applied first within a tier (" + calicoGNPDoc + ": order)",
			policies: allowAll("a-allow", "  order: 20\n") + denyIMDS("z-deny", "  order: 10\n"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "z-deny", rule: 0},
		{name: "a policy without order is applied after every policy with one (" + calicoGNPDoc + ": order, 'infinite')",
			policies: allowAll("a-allow", "") + denyIMDS("z-deny", "  order: 5000\n"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "z-deny", rule: 0},
		{name: "policies of equal order are applied by name (" + calicoGNPDoc + ": order)",
			policies: allowAll("b-allow", "  order: 10\n") + denyIMDS("a-deny", "  order: 10\n"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "a-deny", rule: 0},
		{name: "the first rule that matches decides: an Allow before a Deny wins (" + calicoRuleDoc + ": action)",
			policies: gnp("ordered", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {nets: [169.254.0.0/16]}\n  - action: Deny"), endpoint: "aws-imds", labels: web, allowed: true,
			tier: policy.TierCalico, policy: "ordered", rule: 0},
		{name: "Log records and goes on to the next rule (" + calicoRuleDoc + ": action Log)",
			policies: gnp("log", "  selector: all()\n  egress:\n  - action: Log\n  - action: Deny\n    destination: {nets: [169.254.169.254/32]}"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "log", rule: 1},
		{name: "a tier with a lower order is applied first, whatever the policies' orders (" + calicoTierDoc + ")",
			policies: tier("security", "{order: 100}") + denyIMDS("deny-imds", "  tier: security\n  order: 900\n") + allowAll("allow-all", "  order: 1\n"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "deny-imds", rule: 0, calicoTier: "security"},
		{name: "a tier whose policies select the pod but do not decide denies by default (" + calicoTierDoc + ": defaultAction Deny)",
			policies: tier("security", "{order: 100}") + gnp("only-dns", "  tier: security\n  selector: all()\n  egress:\n  - action: Allow\n    protocol: UDP\n    destination: {ports: [53]}") + allowAll("allow-all", ""),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "only-dns", rule: policy.NoRule, calicoTier: "security"},
		{name: "a tier with defaultAction Pass hands undecided traffic to the next tier (" + calicoTierDoc + ": defaultAction Pass)",
			policies: tier("security", "{order: 100, defaultAction: Pass}") + gnp("only-dns", "  tier: security\n  selector: all()\n  egress:\n  - action: Allow\n    protocol: UDP\n    destination: {ports: [53]}") + allowAll("allow-all", ""),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-all", rule: 0, calicoTier: "default"},
		{name: "Pass skips the rest of the tier and goes to the next tier that selects the pod (" + calicoTierDoc + ")",
			policies: tier("security", "{order: 100}") + gnp("pass", "  tier: security\n  order: 1\n  selector: all()\n  egress:\n  - action: Pass\n    destination: {nets: [169.254.169.254/32]}") +
				denyIMDS("deny-later", "  tier: security\n  order: 2\n") + allowAll("allow-all", ""),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-all", rule: 0},
		{name: "a tier none of whose policies selects the pod is skipped: no default deny (" + calicoTierDoc + ": each tier that contains a policy that applies to the endpoint)",
			policies: tier("security", "{order: 100}") + gnp("db-only", "  tier: security\n  selector: app == 'db'\n  egress:\n  - action: Allow\n    protocol: UDP"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "Pass out of the last tier that selects the pod: the namespace profile allows (" + calicoTierDoc + ")",
			policies: gnp("pass-all", "  selector: all()\n  egress:\n  - action: Pass"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a Pass in the default tier before order 1000 skips the Kubernetes NetworkPolicies of the tier (" + calicoTiersDoc + ")",
			policies: gnp("pass-first", "  order: 1\n  selector: all()\n  egress:\n  - action: Pass") + defaultDeny, endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a Calico Deny in the default tier before order 1000 wins over a Kubernetes NetworkPolicy allowing everything (" + calicoTiersDoc + ")",
			policies: denyIMDS("deny-imds", "  order: 999\n") + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "deny-imds", rule: 0},
		{name: "a Kubernetes NetworkPolicy at order 1000 wins over a Calico Deny ordered after it (" + calicoTiersDoc + ")",
			policies: denyIMDS("deny-imds", "  order: 1001\n") + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"), endpoint: "aws-imds", labels: web, allowed: true,
			tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: "an isolating Kubernetes NetworkPolicy with no matching rule falls to a later Calico policy of the default tier, not straight to deny (" + calicoTiersDoc + ")",
			policies: defaultDeny + "\n---\n" + allowAll("allow-all", ""), endpoint: "aws-imds", labels: web, allowed: true,
			tier: policy.TierCalico, policy: "allow-all", rule: 0},
		{name: "AdminNetworkPolicies live in kube-admin (order 1000), before the default tier (" + calicoTiersDoc + ")",
			policies: anp("deny-imds", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + allowAll("allow-all", ""),
			endpoint: "aws-imds", labels: web, tier: policy.TierAdmin, policy: "deny-imds", rule: 0},
		{name: "a tier ordered before kube-admin comes before AdminNetworkPolicies (" + calicoTierDoc + ")",
			policies: tier("platform", "{order: 10}") + gnp("allow-imds", "  tier: platform\n  selector: all()\n  egress:\n  - action: Allow\n    destination: {nets: [169.254.169.254/32]}") +
				anp("deny-imds", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-imds", rule: 0, calicoTier: "platform"},
		{name: "the BaselineAdminNetworkPolicy lives in kube-baseline, after the default tier (" + calicoTiersDoc + ")",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + allowAll("allow-all", ""),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-all", rule: 0},
		{name: "a tier without order comes after every ordered tier, even kube-baseline (" + calicoTierDoc + ": order)",
			policies: tier("last", "{}") + gnp("deny-last", "  tier: last\n  selector: all()\n  egress:\n  - action: Deny") +
				banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierBaseline, policy: "default", rule: 0},

		// types.
		{name: "types omitted with egress rules: the policy applies to egress (" + calicoTypesDoc + ")",
			policies: denyIMDS("deny-imds", ""), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "deny-imds", rule: 0},
		{name: "types omitted and no egress rules: ingress only, no default deny for egress (" + calicoTypesDoc + ")",
			policies: gnp("ingress-only", "  selector: all()\n  ingress:\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "types [Egress] without rules selects the pod and the tier's default action denies (" + calicoTypesDoc + ")",
			policies: gnp("deny-egress", "  selector: all()\n  types: [Egress]"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "deny-egress", rule: policy.NoRule},
		{name: "types [Ingress] with egress rules: egress rules are ignored (" + calicoGNPDoc + ": types)",
			policies: gnp("ingress-typed", "  selector: all()\n  types: [Ingress]\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},

		// Selecting the pod.
		{name: "selector selects pods by label (" + calicoGNPDoc + ": selector)",
			policies: gnp("db-only", "  selector: app == 'db'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "an empty selector selects every pod (" + calicoGNPDoc + ": selector, default all())",
			policies: gnp("everything", "  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "everything", rule: 0},
		{name: "a GlobalNetworkPolicy's namespaceSelector matches namespace labels (" + calicoGNPDoc + ": namespaceSelector)",
			policies: gnp("prod", "  namespaceSelector: env == 'prod'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "prod", rule: 0},
		{name: "a namespaceSelector that does not match the pod's namespace leaves the pod alone (" + calicoGNPDoc + ": namespaceSelector)",
			policies: gnp("prod", "  namespaceSelector: env == 'prod'\n  egress:\n  - action: Deny"), namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "projectcalico.org/name matches a namespace by name (" + calicoLabelsDoc + ")",
			policies: gnp("lab", "  namespaceSelector: projectcalico.org/name == 'lab'\n  egress:\n  - action: Deny"), namespace: "lab", endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "lab", rule: 0},
		{name: "projectcalico.org/namespace in a selector selects pods by namespace (" + calicoGNPDoc + ")",
			policies: gnp("shop", "  selector: projectcalico.org/namespace == 'shop'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "shop", rule: 0},
		{name: "a namespaced Calico NetworkPolicy selects only pods of its namespace (" + calicoNPDoc + ")",
			policies: cnp("deny", "  selector: all()\n  egress:\n  - action: Deny"), namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a namespaced Calico NetworkPolicy is named namespace/name (" + calicoNPDoc + ")",
			policies: cnp("deny", "  selector: all()\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "shop/deny", rule: 0, kind: "NetworkPolicy.projectcalico.org"},
		{name: "serviceAccountSelector matches the pod's service account labels (" + calicoNPDoc + ": serviceAccountSelector)",
			policies: serviceAccounts + cnp("ci", "  serviceAccountSelector: role == 'ci'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web, serviceAccount: "builder",
			tier: policy.TierCalico, policy: "shop/ci", rule: 0},
		{name: "serviceAccountSelector leaves pods of other service accounts alone (" + calicoNPDoc + ": serviceAccountSelector)",
			policies: serviceAccounts + cnp("ci", "  serviceAccountSelector: role == 'ci'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web,
			allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "projectcalico.org/name in serviceAccountSelector matches a service account by name (" + calicoLabelsDoc + ")",
			policies: cnp("default-sa", "  serviceAccountSelector: projectcalico.org/name == 'default'\n  egress:\n  - action: Deny"), endpoint: "aws-imds", labels: web,
			tier: policy.TierCalico, policy: "shop/default-sa", rule: 0},
		{name: "hostNetwork pods are not workload endpoints: no Calico policy applies",
			policies: seedsGlobalNetworkPolicy, endpoint: "aws-imds", labels: web, hostNetwork: true, allowed: true, tier: policy.TierHostNetwork, rule: policy.NoRule},

		// Rules.
		{name: "protocol TCP does not match UDP (" + calicoRuleDoc + ": protocol)",
			policies: gnp("tcp", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n  - action: Allow"), endpoint: "169.254.169.254:53/UDP", labels: web, allowed: true, tier: policy.TierCalico, policy: "tcp", rule: 1},
		{name: "protocol as a number: 6 is TCP (" + calicoRuleDoc + ": protocol 1-255)",
			policies: gnp("six", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: 6"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "six", rule: 0},
		{name: "notProtocol excludes a protocol (" + calicoRuleDoc + ": notProtocol)",
			policies: gnp("not-udp", "  selector: all()\n  egress:\n  - action: Deny\n    notProtocol: UDP\n  - action: Allow"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "not-udp", rule: 0},
		{name: "ipVersion 6 does not match IPv4 (" + calicoRuleDoc + ": ipVersion)",
			policies: gnp("v6", "  selector: all()\n  egress:\n  - action: Deny\n    ipVersion: 6\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "v6", rule: 1},
		{name: "ipVersion 6 matches IPv6 (" + calicoRuleDoc + ": ipVersion)",
			policies: gnp("v6", "  selector: all()\n  egress:\n  - action: Deny\n    ipVersion: 6\n  - action: Allow"), endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierCalico, policy: "v6", rule: 0},
		{name: "destination nets: the address must be in one of them (" + calicoRuleDoc + ": nets)",
			policies: gnp("nets", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {nets: [10.0.0.0/8, 169.254.0.0/16]}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "nets", rule: 0},
		{name: "destination nets accept a single address (" + calicoRuleDoc + ": nets)",
			policies: gnp("nets", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254]}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "nets", rule: 0},
		{name: "destination notNets: an address in them does not match (" + calicoRuleDoc + ": notNets)",
			policies: gnp("except", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {notNets: [169.254.169.254/32]}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "except", rule: policy.NoRule},
		{name: "destination notNets: another address matches (" + calicoRuleDoc + ": notNets)",
			policies: gnp("except", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {notNets: [169.254.169.254/32]}"), endpoint: "azure-wireserver", labels: web, allowed: true, tier: policy.TierCalico, policy: "except", rule: 0},
		{name: "IPv4-only notNets: the rule does not apply to IPv6 at all (" + felixIPVersion + ")",
			policies: gnp("except", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {notNets: [169.254.169.254/32]}"), endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierCalico, policy: "except", rule: policy.NoRule},
		{name: "mixed-family nets: the IPv6 entry applies to IPv6 (" + felixIPVersion + ")",
			policies: gnp("both", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254/32, 'fd00:ec2::254/128']}"), endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierCalico, policy: "both", rule: 0},
		{name: "destination ports include the port (" + calicoRuleDoc + ": ports)",
			policies: gnp("p", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [443, 80]}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "p", rule: 0},
		{name: "a port range first:last includes its ends (" + calicoRuleDoc + ": ports)",
			policies: gnp("p", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: ['1:80']}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "p", rule: 0},
		{name: "destination ports without the port do not match (" + calicoRuleDoc + ": ports)",
			policies: gnp("p", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: ['81:90']}\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "p", rule: 1},
		{name: "a named port never matches an address outside the cluster (" + calicoRuleDoc + ": ports)",
			policies: gnp("p", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [http]}\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "p", rule: 1},
		{name: "destination notPorts exclude the port (" + calicoRuleDoc + ": notPorts)",
			policies: gnp("p", "  selector: all()\n  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {notPorts: [80]}\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "p", rule: 1},
		{name: "a destination selector selects endpoints and network sets; with no network set in the input it never matches an address outside the cluster (" + calicoRuleDoc + ": selector)",
			policies: gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: all()}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "sel", rule: policy.NoRule},
		{name: "a destination notSelector matches an address outside the cluster, which no selector selects (" + calicoRuleDoc + ": notSelector)",
			policies: gnp("notsel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {notSelector: app == 'db'}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "notsel", rule: 0},
		{name: "a namespaced NetworkPolicy's destination notSelector selects within the policy's namespace only, so it does not match an address outside the cluster (" + calicoRulesGo + ")",
			policies: cnp("notsel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {notSelector: app == 'db'}\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "shop/notsel", rule: 1},

		// Network sets.
		{name: "a GlobalNetworkPolicy's destination selector matches an address in a GlobalNetworkSet it selects (" + calicoNetworkSetDoc + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "sel", rule: 0},
		{name: "an address in no selected network set does not match (" + calicoNetworkSetDoc + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "169.254.170.2:80/TCP", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 1},
		{name: "a network set whose labels the selector does not match is not selected (" + calicoNetworkSetDoc + ")",
			policies: gns("metadata", "role: other", "[169.254.0.0/16]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 1},
		{name: "an Allow rule to a selected GlobalNetworkSet allows the metadata address it holds, ahead of a later Deny (" + calicoNetworkSetDoc + ")",
			policies: gns("link-local", "kind: link-local", "['169.254.0.0/16', 'fd00:ec2::/64']") + gnp("sel", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {selector: kind == 'link-local'}\n  - action: Deny"),
			endpoint: "aws-imds-ipv6", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 0},
		{name: "a namespaced NetworkPolicy's destination selector selects NetworkSets of its own namespace (" + calicoRulesGo + ")",
			policies: cns("metadata", "shop", "role: imds", "[169.254.169.254]") + cnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "shop/sel", rule: 0},
		{name: "a namespaced NetworkPolicy's destination selector does not select NetworkSets of another namespace (" + calicoRulesGo + ")",
			policies: cns("metadata", "lab", "role: imds", "[169.254.169.254]") + cnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "shop/sel", rule: 1},
		{name: "a namespaced NetworkPolicy's destination selector does not select GlobalNetworkSets without namespaceSelector: global() (" + calicoRulesGo + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + cnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "shop/sel", rule: 1},
		{name: "namespaceSelector: global() makes a namespaced policy's selector select GlobalNetworkSets (" + calicoRulesGo + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + cnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds', namespaceSelector: global()}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "shop/sel", rule: 0},
		{name: "namespaceSelector: all() selects namespaced network sets, not GlobalNetworkSets (" + calicoRulesGo + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds', namespaceSelector: all()}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 1},
		{name: "a GlobalNetworkPolicy's destination namespaceSelector selects NetworkSets by their namespace's labels (" + calicoRulesGo + ")",
			policies: cns("metadata", "lab", "", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {namespaceSelector: team == 'research'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "sel", rule: 0},
		{name: "a GlobalNetworkPolicy's destination selector without namespaceSelector selects NetworkSets of every namespace, which carry projectcalico.org/namespace (" + calicoLabelsDoc + ")",
			policies: cns("metadata", "lab", "", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: projectcalico.org/namespace == 'lab'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "sel", rule: 0},
		{name: "destination serviceAccounts select endpoints by service account, never a network set (" + calicoRulesGo + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds', serviceAccounts: {names: [default]}}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 1},
		{name: "a destination serviceAccounts selector alone is evaluated over a network set's labels, which hold no service account's: 'role != ci' selects it (" + calicoRulesGo + ")",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {serviceAccounts: {selector: role != 'ci'}}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "sel", rule: 0},
		{name: "a destination notSelector that selects a network set holding the address excludes it (" + calicoRuleDoc + ": notSelector)",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("notsel", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {notSelector: role == 'imds'}\n  - action: Deny"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "notsel", rule: 1},
		{name: "a namespaced policy's notSelector rule matches an address in a NetworkSet of its namespace that notSelector does not select (" + calicoRulesGo + ")",
			policies: cns("metadata", "shop", "role: imds", "[169.254.169.254/32]") + cnp("notsel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {notSelector: role == 'db'}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "shop/notsel", rule: 0},
		{name: "a rule's nets and its selected network sets must both hold the address (" + calicoRuleDoc + ": EntityRule)",
			policies: gns("metadata", "role: imds", "[169.254.169.254/32]") + gnp("sel", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds', nets: [169.254.170.0/24]}\n  - action: Allow"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "sel", rule: 1},
		{name: "a source selector on an egress rule is checked against the pod itself (" + calicoRuleDoc + ": source)",
			policies: gnp("src", "  selector: all()\n  egress:\n  - action: Deny\n    source: {selector: app == 'db'}\n  - action: Allow"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "src", rule: 1},
		{name: "a source serviceAccounts name is checked against the pod's service account (" + calicoRuleDoc + ": serviceAccounts)",
			policies: gnp("src", "  selector: all()\n  egress:\n  - action: Deny\n    source: {serviceAccounts: {names: [default]}}"), endpoint: "aws-imds", labels: web, tier: policy.TierCalico, policy: "src", rule: 0},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

// TestSeedsDenyEveryPod: the seeds' GlobalNetworkPolicy and NetworkPolicy, alone or together,
// deny 169.254.169.254 to every pod of every namespace, whatever its labels and service account.
func TestSeedsDenyEveryPod(t *testing.T) {
	seedNP := func(ns string) string {
		return strings.Replace(seedsPolicy, "namespace: shop", "namespace: "+ns, 1)
	}
	inputs := map[string]string{
		"GlobalNetworkPolicy":             seedsGlobalNetworkPolicy,
		"NetworkPolicy in each namespace": seedNP("shop") + "---\n" + seedNP("lab"),
		"both":                            seedsGlobalNetworkPolicy + "---\n" + seedNP("shop") + "---\n" + seedNP("lab"),
		"GlobalNetworkPolicy, crd.projectcalico.org/v1": strings.Replace(seedsGlobalNetworkPolicy, "projectcalico.org/v3", "crd.projectcalico.org/v1", 1),
	}
	pods := []policy.Subject{
		{Namespace: "shop", Labels: web},
		{Namespace: "shop"},
		{Namespace: "lab", Labels: map[string]string{"app": "notebook"}, ServiceAccount: "builder"},
		{Namespace: "shop", Labels: map[string]string{"projectcalico.org/namespace": "other"}},
	}
	eps := []endpoint.Endpoint{endpointNamed(t, "aws-imds"), endpointNamed(t, "gcp-metadata"), endpointNamed(t, "azure-imds")}
	for name, in := range inputs {
		m := policy.Compile(load(t, namespaces+serviceAccounts+in))
		if len(m.Rejected) > 0 {
			t.Fatalf("%s: rejected %v", name, m.Rejected)
		}
		out := make([]policy.Verdict, len(eps))
		for _, p := range pods {
			m.Evaluate(p, eps, out)
			for i, v := range out {
				if v.Allowed {
					t.Errorf("%s: %s/%v may reach %s: %s", name, p.Namespace, p.Labels, eps[i].Name, v.DecidedBy)
				}
			}
		}
	}
}

// TestRejectedCalicoPolicies: Calico policies and tiers that Calico's API would refuse are
// reported with their file, document and field, and take no part in evaluation; so are those
// using what imdsguard cannot evaluate.
func TestRejectedCalicoPolicies(t *testing.T) {
	cases := []struct {
		name, manifest, field, message string
	}{
		{"a selector that does not parse", gnp("bad", "  selector: app = 'web'\n  egress:\n  - action: Deny"), "spec.selector", "column 5: expected '=='"},
		{"a namespaceSelector that does not parse", gnp("bad", "  namespaceSelector: has(team\n  egress:\n  - action: Deny"), "spec.namespaceSelector", "expected ')'"},
		{"a serviceAccountSelector that does not parse", cnp("bad", "  serviceAccountSelector: role in ci\n  egress:\n  - action: Deny"), "spec.serviceAccountSelector", "expected '{'"},
		{"a destination selector that does not parse", gnp("bad", "  egress:\n  - action: Deny\n    destination: {selector: 'a =='}"), "spec.egress[0].destination.selector", "invalid selector"},
		{"an invalid net", gnp("bad", "  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254/33]}"), "spec.egress[0].destination.nets[0]", "invalid CIDR"},
		{"an invalid notNet", gnp("bad", "  egress:\n  - action: Allow\n    destination: {notNets: [metadata]}"), "spec.egress[0].destination.notNets[0]", "invalid net"},
		{"a net of the other family than ipVersion", gnp("bad", "  egress:\n  - action: Deny\n    ipVersion: 4\n    destination: {nets: ['fd00:ec2::254/128']}"), "spec.egress[0].destination.nets[0]", "not an IPv4 net"},
		{"a port out of range", gnp("bad", "  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [70000]}"), "spec.egress[0].destination.ports[0]", "out of range"},
		{"a reversed port range", gnp("bad", "  egress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: ['90:80']}"), "spec.egress[0].destination.ports[0]", "invalid port range"},
		{"ports without a protocol", gnp("bad", "  egress:\n  - action: Deny\n    destination: {ports: [80]}"), "spec.egress[0].protocol", "ports may only be given"},
		{"ports with ICMP", gnp("bad", "  egress:\n  - action: Deny\n    protocol: ICMP\n    destination: {notPorts: [80]}"), "spec.egress[0].protocol", "ports may only be given"},
		{"an unknown protocol", gnp("bad", "  egress:\n  - action: Deny\n    protocol: QUIC"), "spec.egress[0].protocol", "unknown protocol"},
		{"an unknown action", gnp("bad", "  egress:\n  - action: Drop"), "spec.egress[0].action", "unknown action"},
		{"an unknown type", gnp("bad", "  types: [Outbound]"), "spec.types[0]", "unknown type"},
		{"an ipVersion that is not 4 or 6", gnp("bad", "  egress:\n  - action: Deny\n    ipVersion: 5"), "spec.egress[0].ipVersion", "not 4 or 6"},
		{"preDNAT with doNotTrack", gnp("bad", "  preDNAT: true\n  doNotTrack: true\n  applyOnForward: true"), "spec", "cannot both be true"},
		{"preDNAT with egress rules", gnp("bad", "  preDNAT: true\n  applyOnForward: true\n  egress:\n  - action: Deny"), "spec.egress", "preDNAT policy cannot have any egress rules"},
		{"doNotTrack without applyOnForward", gnp("bad", "  doNotTrack: true\n  egress:\n  - action: Deny"), "spec.applyOnForward", "applyOnForward must be true"},
		{"HTTP match on a Deny rule", gnp("bad", "  egress:\n  - action: Deny\n    http: {methods: [GET]}"), "spec.egress[0].http", "only valid on Allow rules"},
		{"a tier that is not in the input", gnp("bad", "  tier: security\n  egress:\n  - action: Deny"), "spec.tier", "tier \"security\" is not in the input"},
		{"a tier with an unknown default action", tier("security", "{order: 1, defaultAction: Allow}"), "spec.defaultAction", "unknown default action"},
		{"the default tier with default action Pass", tier("default", "{order: 1000000, defaultAction: Pass}"), "spec.defaultAction", "must have default action 'Deny'"},
		// What imdsguard cannot evaluate.
		{"source nets on an egress rule", gnp("src", "  egress:\n  - action: Deny\n    source: {nets: [10.0.0.0/8]}"), "spec.egress[0].source.nets", "cannot evaluate"},
		{"an HTTP match", gnp("http", "  egress:\n  - action: Allow\n    http: {methods: [GET]}"), "spec.egress[0].http", "application layer policy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := policy.Compile(load(t, namespaces+c.manifest))
			if len(m.Rejected) == 0 {
				t.Fatalf("%s was accepted", c.name)
			}
			p := m.Rejected[0]
			if p.Field != c.field || !strings.Contains(p.Message, c.message) {
				t.Errorf("rejection = %s %q, want field %s and a message containing %q", p.Field, p.Message, c.field, c.message)
			}
			if p.Source.File == "" || p.Source.Document == 0 || p.Object == nil {
				t.Errorf("rejection does not point at a file, document and object: %+v", p)
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if out[0].DecidedBy.Tier != policy.TierDefault {
				t.Errorf("a rejected policy took part in evaluation: %v", out[0])
			}
		})
	}
}

// TestCalicoHostEndpointPolicies: doNotTrack and preDNAT policies govern host endpoints, not pod
// egress, and are reported as such; applyOnForward policies still apply to pods, with a note.
func TestCalicoHostEndpointPolicies(t *testing.T) {
	in := gnp("untracked", "  selector: all()\n  doNotTrack: true\n  applyOnForward: true\n  egress:\n  - action: Deny") +
		gnp("forward", "  selector: all()\n  applyOnForward: true\n  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254/32]}")
	m := policy.Compile(load(t, namespaces+in))
	if len(m.Rejected) > 0 {
		t.Fatalf("rejected: %v", m.Rejected)
	}
	if len(m.HostEndpointPolicies) != 2 || m.HostEndpointPolicies[0].Object.Name != "untracked" || !strings.Contains(m.HostEndpointPolicies[0].String(), "host endpoints only") {
		t.Fatalf("host endpoint policies = %v", m.HostEndpointPolicies)
	}
	out := make([]policy.Verdict, 2)
	m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds"), endpointNamed(t, "azure-wireserver")}, out)
	if out[0].Allowed || out[0].DecidedBy.Policy != "forward" {
		t.Errorf("the applyOnForward policy should deny IMDS to pods: %v", out[0])
	}
	// The untracked Deny-all would deny WireServer if it applied to pods; the applyOnForward
	// policy selects the pod, so the default tier's default action denies instead.
	if out[1].Allowed || out[1].DecidedBy.Policy != "forward" || out[1].DecidedBy.Rule != policy.NoRule {
		t.Errorf("the doNotTrack policy took part in pod evaluation: %v", out[1])
	}
}

func TestCalicoEgressControlAndExplain(t *testing.T) {
	inv := load(t, namespaces+seedsGlobalNetworkPolicy+"---\n"+cnp("local", "  selector: all()\n  egress:\n  - action: Allow\n    destination: {nets: [10.0.0.0/8]}"))
	m := policy.Compile(inv)
	if c := m.EgressControl("shop"); len(c.Calico) != 2 || !c.Any() {
		t.Errorf("EgressControl(shop).Calico = %v, want the GlobalNetworkPolicy and shop/local", c.Calico)
	}
	if c := m.EgressControl("lab"); len(c.Calico) != 1 {
		t.Errorf("EgressControl(lab).Calico = %v, want the GlobalNetworkPolicy only", c.Calico)
	}
	_, traces := m.Explain(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds-ipv6")})
	traceContains(t, traces[0],
		"GlobalNetworkPolicy in tier default, order none (last): selects the pod",
		"rule 1: Allow does not match: nets [0.0.0.0/0] hold no IPv6 net",
		"end of tier default: 2 policies select the pod and none allowed")
	v, _ := m.Explain(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")})
	if got := v[0].DecidedBy.String(); got != "Calico tier default GlobalNetworkPolicy allow-all-egress-except-metadata-api rule 0: Deny (protocol TCP, nets 169.254.169.254/32)" {
		t.Errorf("reason = %q", got)
	}
}

// TestCalicoNetworkSetProblems: a network set with an invalid net is reported with its field and
// left out of every rule that selects it; one with domain names (a Calico Enterprise field) is
// reported and evaluated by its nets.
func TestCalicoNetworkSetProblems(t *testing.T) {
	denySets := gnp("deny-sets", "  selector: all()\n  egress:\n  - action: Deny\n    destination: {selector: role == 'imds'}")
	cases := []struct {
		name, manifest, kind, field, message string
		denied                               bool
	}{
		{"an invalid net", gns("bad", "role: imds", "[169.254.169.254/32, 169.254.169.254/33]") + denySets,
			"GlobalNetworkSet", "spec.nets[1]", "invalid CIDR", false},
		{"a net that is no address", cns("bad", "shop", "role: imds", "[metadata]") + denySets,
			"NetworkSet", "spec.nets[0]", "invalid net", false},
		{"domain names", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: domains, labels: {role: imds}}\nspec: {nets: [169.254.169.254/32], allowedEgressDomains: [metadata.google.internal]}\n---\n" + denySets,
			"GlobalNetworkSet", "spec.allowedEgressDomains", "Calico Enterprise", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := policy.Compile(load(t, namespaces+c.manifest))
			if len(m.Rejected) != 1 {
				t.Fatalf("problems = %v, want one", m.Rejected)
			}
			p := m.Rejected[0]
			if p.Object == nil || p.Object.Kind != c.kind || p.Field != c.field || !strings.Contains(p.Message, c.message) {
				t.Errorf("problem = %+v %s %q, want %s, field %s and a message containing %q", p.Object, p.Field, p.Message, c.kind, c.field, c.message)
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if got := !out[0].Allowed && out[0].DecidedBy.Rule == 0; got != c.denied {
				t.Errorf("denied by the set's rule = %v, want %v (%v)", got, c.denied, out[0])
			}
		})
	}
}
