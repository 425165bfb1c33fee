package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Sentences of the ClusterNetworkPolicy API (network-policy-api v0.3.0,
// apis/v1beta1/clusternetworkpolicy_types.go) that the rows below check.
const (
	cnpDocTierOrder   = "Tier: Policy tiers are evaluated in the following order: Admin tier, NetworkPolicy tier, Baseline tier"
	cnpDocAdminFinal  = "Tier: If Admin tier has made a final decision (Accept or Deny) on a connection, then no further evaluation is done"
	cnpDocNPFinal     = "Tier: v1.NetworkPolicy always makes a final decision for selected pods. Further evaluation only happens for Pods not selected by a v1.NetworkPolicy"
	cnpDocBaseline    = "Tier: Baseline tier is a cluster-wide policy that can be overridden by the v1.NetworkPolicy"
	cnpDocDefault     = "Tier: If a given connection wasn't allowed or denied by any of the tiers, the default kubernetes policy is applied"
	cnpDocPriority    = "Priority: Policies with lower priority values have higher precedence, and are checked before policies with higher priority values in the same tier"
	cnpDocAllAdmin    = "Priority: All Admin tier rules have higher precedence than NetworkPolicy or Baseline tier rules"
	cnpDocRuleOrder   = "Egress: a rule that appears at the top of the egress rules would take the highest precedence"
	cnpDocAccept      = "Action: Accept: Accepts the selected traffic ... No further egress ClusterNetworkPolicy or NetworkPolicy rules will be processed"
	cnpDocDeny        = "Action: Deny: Drops the selected traffic. No further ClusterNetworkPolicy or NetworkPolicy rules will be processed"
	cnpDocPass        = "Action: Pass: Skips all further ClusterNetworkPolicy rules in the current tier for the selected traffic, and passes evaluation to the next tier"
	cnpDocSubjectNS   = "ClusterNetworkPolicySubject: Namespaces is used to select pods via namespace selectors"
	cnpDocSubjectPods = "ClusterNetworkPolicySubject: Pods is used to select pods via namespace AND pod selectors"
	cnpDocHostNetwork = "ClusterNetworkPolicySubject: Note that host-networked pods are not included in subject selection"
	cnpDocNetworks    = "Networks: a Networks entry of \"0.0.0.0/0\" will match both IPv4 and ICMP traffic, while \"::/0\" will match both IPv6 and ICMPv6 traffic"
	cnpDocClusterPeer = "Namespaces/Pods: select pods; Nodes: selects the nodeIPs ... present in the node.Status.Addresses field (a metadata address is none of these)"
	cnpDocDomainNames = "DomainName: `*.kubernetes.io` matches subdomains of kubernetes.io"
	cnpDocProtocols   = "Protocols: If unspecified, protocol-specific attributes will not be used to match traffic"
	cnpDocPortRange   = "PortRange defines an inclusive range of ports from the assigned Start value to End value"
	cnpDocNamedPort   = "DestinationNamedPort selects a destination port on a pod based on the ContainerPort name"
)

// clusterNP renders a ClusterNetworkPolicy at v1beta1; clusterNPAt at any apiVersion.
func clusterNP(name, spec string) string {
	return clusterNPAt("policy.networking.k8s.io/v1beta1", name, spec)
}

func clusterNPAt(apiVersion, name, spec string) string {
	return "apiVersion: " + apiVersion + "\nkind: ClusterNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

// cnpRule renders a CNP with one egress rule for every namespace.
func cnpRule(name, tier string, priority, action, to string) string {
	return clusterNP(name, "  tier: "+tier+"\n  priority: "+priority+"\n  subject: {namespaces: {}}\n  egress:\n  - name: r\n    action: "+action+"\n    to: "+to)
}

const imdsNets = "[{networks: [169.254.169.254/32, 'fd00:ec2::254/128']}]"

// TestClusterNetworkPolicySemantics is the truth table of ClusterNetworkPolicy for destinations
// outside the cluster; each row names the API sentence it checks.
func TestClusterNetworkPolicySemantics(t *testing.T) {
	const kind = "ClusterNetworkPolicy"
	allowAllNP := np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]")
	rows := []row{
		{name: cnpDocAdminFinal + ": an Admin Deny wins over a NetworkPolicy that allows everything",
			policies: cnpRule("deny-imds", "Admin", "10", "Deny", imdsNets) + allowAllNP,
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "deny-imds", rule: 0, kind: kind},
		{name: cnpDocAccept + ": an Admin Accept overrides a NetworkPolicy default deny",
			policies: cnpRule("accept-imds", "Admin", "10", "Accept", imdsNets) + defaultDeny + "\n---\n",
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierClusterAdmin, policy: "accept-imds", rule: 0, kind: kind},
		{name: cnpDocAccept + ": an Admin Accept is final: a Baseline Deny is not consulted",
			policies: cnpRule("accept-imds", "Admin", "10", "Accept", imdsNets) + cnpRule("deny-all", "Baseline", "0", "Deny", "[{networks: [0.0.0.0/0]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierClusterAdmin, policy: "accept-imds", rule: 0, kind: kind},
		{name: cnpDocTierOrder + ": a Baseline Deny applies when nothing before it decides",
			policies: cnpRule("deny-imds", "Baseline", "10", "Deny", imdsNets),
			endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierClusterBaseline, policy: "deny-imds", rule: 0, kind: kind},
		{name: cnpDocNPFinal + ": a NetworkPolicy that isolates the pod decides before the Baseline tier",
			policies: cnpRule("deny-imds", "Baseline", "10", "Deny", imdsNets) + allowAllNP,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: cnpDocBaseline + ": a NetworkPolicy denial by isolation is final too",
			policies: cnpRule("accept-imds", "Baseline", "10", "Accept", imdsNets) + defaultDeny + "\n---\n",
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/default-deny", rule: policy.NoRule},
		{name: cnpDocAllAdmin + ": an Admin Deny at priority 1000 wins over a Baseline Accept at priority 0",
			policies: cnpRule("deny-late", "Admin", "1000", "Deny", imdsNets) + cnpRule("accept-early", "Baseline", "0", "Accept", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "deny-late", rule: 0, kind: kind},
		{name: cnpDocPriority + ": the lower priority number is consulted first",
			policies: cnpRule("accept-late", "Admin", "20", "Accept", "[{networks: [0.0.0.0/0]}]") + cnpRule("deny-early", "Admin", "5", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "deny-early", rule: 0, kind: kind},
		{name: cnpDocRuleOrder + ": within a policy the first matching rule decides",
			policies: clusterNP("ordered", "  tier: Admin\n  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Accept\n    to: [{networks: [169.254.0.0/16]}]\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierClusterAdmin, policy: "ordered", rule: 0, kind: kind},
		{name: cnpDocPass + ": an Admin Pass skips later Admin policies and hands over to NetworkPolicy",
			policies: cnpRule("pass", "Admin", "1", "Pass", imdsNets) + cnpRule("deny", "Admin", "2", "Deny", "[{networks: [0.0.0.0/0]}]") + seedsPolicy,
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: cnpDocPass + ": an Admin Pass without a NetworkPolicy reaches the Baseline tier",
			policies: cnpRule("pass", "Admin", "1", "Pass", imdsNets) + cnpRule("deny", "Baseline", "2", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterBaseline, policy: "deny", rule: 0, kind: kind},
		{name: cnpDocPass + ": a Baseline Pass skips later Baseline policies and reaches the default",
			policies: cnpRule("pass", "Baseline", "1", "Pass", imdsNets) + cnpRule("deny", "Baseline", "2", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocPass + ": a Pass skips the remaining rules of its own policy too",
			policies: clusterNP("pass-then-deny", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [169.254.169.254/32]}]\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocDefault + ": a policy whose rules do not match leaves the connection to the default",
			policies: cnpRule("other", "Admin", "1", "Deny", "[{networks: [10.0.0.0/8]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocSubjectNS + ": a subject selecting other namespaces leaves this one alone",
			policies:  clusterNP("prod", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {matchLabels: {env: prod}}}\n  egress:\n  - action: Deny\n    to: "+imdsNets),
			namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocSubjectPods + ": a pods subject needs the pod selector to match too",
			policies: clusterNP("db", "  tier: Admin\n  priority: 1\n  subject: {pods: {namespaceSelector: {matchLabels: {team: storefront}}, podSelector: {matchLabels: {app: db}}}}\n  egress:\n  - action: Deny\n    to: "+imdsNets),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocSubjectPods + ": a pod matching both selectors is selected",
			policies: clusterNP("web", "  tier: Admin\n  priority: 1\n  subject: {pods: {namespaceSelector: {matchLabels: {team: storefront}}, podSelector: {matchLabels: {app: web}}}}\n  egress:\n  - action: Deny\n    to: "+imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "web", rule: 0, kind: kind},
		{name: cnpDocHostNetwork,
			policies: cnpRule("deny-imds", "Admin", "10", "Deny", imdsNets), hostNetwork: true,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierHostNetwork, rule: policy.NoRule},
		{name: cnpDocNetworks + ": ::/0 does not match an IPv4 address",
			policies: cnpRule("v6", "Admin", "1", "Deny", "[{networks: ['::/0']}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocNetworks + ": 0.0.0.0/0 matches every IPv4 address",
			policies: cnpRule("v4", "Admin", "1", "Deny", "[{networks: [0.0.0.0/0]}]"),
			endpoint: "azure-wireserver", labels: web, tier: policy.TierClusterAdmin, policy: "v4", rule: 0, kind: kind},
		{name: cnpDocNetworks + ": 0.0.0.0/0 says nothing of IPv6",
			policies: cnpRule("v4", "Admin", "1", "Deny", "[{networks: [0.0.0.0/0]}]"),
			endpoint: "aws-imds-ipv6", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocClusterPeer + ": namespaces, pods and nodes peers never match a metadata address",
			policies: cnpRule("cluster", "Admin", "1", "Deny", "[{namespaces: {}}, {pods: {namespaceSelector: {}, podSelector: {}}}, {nodes: {}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocDomainNames + ": a domainNames Accept matches the endpoint's hostname (metadata.google.internal)",
			policies: cnpRule("fqdn", "Admin", "1", "Accept", "[{domainNames: ['*.google.internal']}]") + defaultDeny + "\n---\n",
			endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierClusterAdmin, policy: "fqdn", rule: 0, kind: kind},
		{name: cnpDocDomainNames + ": an exact name does not match a subdomain, nor a wildcard the bare name",
			policies: cnpRule("fqdn", "Admin", "1", "Accept", "[{domainNames: ['google.internal', '*.metadata.google.internal']}]") + defaultDeny + "\n---\n",
			endpoint: "gcp-metadata", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/default-deny", rule: policy.NoRule},
		{name: cnpDocProtocols + ": a rule without protocols matches every port",
			policies: cnpRule("all-ports", "Admin", "1", "Deny", "[{networks: [168.63.129.16/32]}]"),
			endpoint: "168.63.129.16:32526/TCP", labels: web, tier: policy.TierClusterAdmin, policy: "all-ports", rule: 0, kind: kind},
		{name: cnpDocProtocols + ": a tcp destinationPort number matches that port only",
			policies: clusterNP("tcp-443", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets+"\n    protocols: [{tcp: {destinationPort: {number: 443}}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocProtocols + ": a udp destinationPort does not match TCP",
			policies: clusterNP("udp-80", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets+"\n    protocols: [{udp: {destinationPort: {number: 80}}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: cnpDocPortRange + ": the range includes its end",
			policies: clusterNP("range", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets+"\n    protocols: [{tcp: {destinationPort: {range: {start: 1, end: 80}}}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "range", rule: 0, kind: kind},
		{name: cnpDocNamedPort + ": a named port never matches an address outside the cluster",
			policies: clusterNP("named", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{namespaces: {}}]\n    protocols: [{destinationNamedPort: http}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "v1alpha2 objects evaluate as v1beta1 ones (network-policy-api v0.3.0 CHANGELOG: the v1beta1 and v1alpha2 schemas are identical)",
			policies: clusterNPAt("policy.networking.k8s.io/v1alpha2", "old", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "old", rule: 0, kind: kind},

		// The v1alpha1 kinds beside ClusterNetworkPolicy: ANP, CNP Admin, NetworkPolicy, CNP
		// Baseline, BANP (docs/design/evaluator.md).
		{name: "an AdminNetworkPolicy comes before the CNP Admin tier",
			policies: anp("anp-accept", "  priority: 50\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]") + cnpRule("cnp-deny", "Admin", "0", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierAdmin, policy: "anp-accept", rule: 0},
		{name: "an AdminNetworkPolicy Pass ends its tier; the CNP Admin tier is still consulted",
			policies: anp("anp-pass", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [169.254.169.254/32]}]") + cnpRule("cnp-deny", "Admin", "0", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "cnp-deny", rule: 0, kind: kind},
		{name: "the CNP Baseline tier comes before the BaselineAdminNetworkPolicy",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + cnpRule("cnp-accept", "Baseline", "500", "Accept", imdsNets),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierClusterBaseline, policy: "cnp-accept", rule: 0, kind: kind},
		{name: "a CNP Baseline Pass reaches the BaselineAdminNetworkPolicy",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + cnpRule("cnp-pass", "Baseline", "500", "Pass", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierBaseline, policy: "default", rule: 0},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

// TestClusterNetworkPolicyWithCalico: Calico v3.32 and later places ClusterNetworkPolicies in
// its kube-admin tier (Admin, order = priority) and kube-baseline tier (Baseline), so they
// interleave with AdminNetworkPolicies by priority and come before or after Calico's own tiers by
// the tiers' order.
func TestClusterNetworkPolicyWithCalico(t *testing.T) {
	const kind = "ClusterNetworkPolicy"
	allowAllGNP := gnp("allow-all", "  selector: all()\n  egress:\n  - action: Allow")
	rows := []row{
		{name: "a CNP Admin Deny in kube-admin comes before the default tier's Allow",
			policies: cnpRule("deny-imds", "Admin", "10", "Deny", imdsNets) + allowAllGNP,
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "deny-imds", rule: 0, kind: kind},
		{name: "within kube-admin an ANP and a CNP go by priority: the CNP at 5 before the ANP at 10",
			policies: anp("anp-allow", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]") +
				cnpRule("cnp-deny", "Admin", "5", "Deny", imdsNets) + allowAllGNP,
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "cnp-deny", rule: 0, kind: kind},
		{name: "within kube-admin an ANP and a CNP go by priority: the ANP at 5 before the CNP at 10",
			policies: anp("anp-allow", "  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]") +
				cnpRule("cnp-deny", "Admin", "10", "Deny", imdsNets) + allowAllGNP,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierAdmin, policy: "anp-allow", rule: 0},
		{name: "a CNP Baseline Deny in kube-baseline comes after the default tier's Allow",
			policies: cnpRule("deny-imds", "Baseline", "10", "Deny", imdsNets) + allowAllGNP,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-all", rule: 0},
		{name: "a CNP Baseline Deny decides when the default tier holds no policy for the pod",
			policies: cnpRule("deny-imds", "Baseline", "10", "Deny", imdsNets) + tier("platform", "{order: 10}"),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterBaseline, policy: "deny-imds", rule: 0, kind: kind},
		{name: "a CNP Admin Pass skips the rest of kube-admin and goes on to the default tier",
			policies: cnpRule("pass", "Admin", "1", "Pass", imdsNets) + cnpRule("deny", "Admin", "2", "Deny", imdsNets) + allowAllGNP,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCalico, policy: "allow-all", rule: 0},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

// TestClusterNetworkPolicyTiesWithCalico: in Calico's kube-admin tier an AdminNetworkPolicy and
// an Admin tier ClusterNetworkPolicy of equal priority are ordered together, so they are a tie;
// without Calico the AdminNetworkPolicy tier comes first and they are not.
func TestClusterNetworkPolicyTiesWithCalico(t *testing.T) {
	policies := anp("anp-7", "  priority: 7\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]") +
		cnpRule("cnp-7", "Admin", "7", "Deny", imdsNets)
	plain := policy.Compile(load(t, namespaces+policies))
	if len(plain.PriorityTies) != 0 {
		t.Errorf("without Calico: ties %+v, want none", plain.PriorityTies)
	}
	calico := policy.Compile(load(t, namespaces+policies+tier("platform", "{order: 10}")))
	want := policy.PriorityTie{Kind: policy.TieAdminAndClusterAdmin, Priority: 7, Policies: [2]string{"anp-7", "cnp-7"}}
	if len(calico.PriorityTies) != 1 || calico.PriorityTies[0] != want {
		t.Errorf("with Calico: ties %+v, want %+v", calico.PriorityTies, want)
	}
}

// cnpValidationCase is a ClusterNetworkPolicy spec the evaluator leaves out, with the field and
// message it reports. apiServerRefuses says whether the API server (the v0.3.0 experimental
// CRD) refuses it too; when it does not, the policy can exist and is reported as not evaluated.
type cnpValidationCase struct {
	name, spec, field, message string
	apiServerRefuses           bool
}

// cnpSpec renders a CNP spec with the given egress rules for every namespace.
func cnpSpec(tier, priority, egress string) string {
	return "  tier: " + tier + "\n  priority: " + priority + "\n  subject: {namespaces: {}}\n  egress:\n" + egress
}

// cnpValidationCases are the CRD's schema and CEL rules (network-policy-api v0.3.0), one
// violation each.
func cnpValidationCases() []cnpValidationCase {
	spec := cnpSpec
	deny := func(to, extra string) string {
		return spec("Admin", "1", "  - action: Deny\n    to: "+to+extra)
	}
	var manyRules, manyNets strings.Builder
	for range 26 {
		manyRules.WriteString("  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]\n")
	}
	manyNets.WriteString("[{networks: [")
	for i := range 26 {
		if i > 0 {
			manyNets.WriteString(", ")
		}
		manyNets.WriteString("10.0." + string(rune('0'+i/10)) + string(rune('0'+i%10)) + ".0/24")
	}
	manyNets.WriteString("]}]")
	return []cnpValidationCase{
		{"priority above 1000 (Maximum=1000)", spec("Admin", "1001", "  - action: Deny\n    to: "+imdsNets), "spec.priority", "out of range", true},
		{"a negative priority (Minimum=0)", spec("Admin", "-1", "  - action: Deny\n    to: "+imdsNets), "spec.priority", "out of range", true},
		{"an unknown tier (Enum Admin, Baseline)", spec("Platform", "1", "  - action: Deny\n    to: "+imdsNets), "spec.tier", "unknown tier", true},
		{"a subject with both namespaces and pods (MaxProperties=1)", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}\n", "spec.subject", "exactly one", true},
		{"a subject with neither (MinProperties=1)", "  tier: Admin\n  priority: 1\n  subject: {}\n", "spec.subject", "exactly one", true},
		{"the Allow action of v1alpha1 (Enum Accept, Deny, Pass)", spec("Admin", "1", "  - action: Allow\n    to: "+imdsNets), "spec.egress[0].action", "unknown action", true},
		{"a rule without peers (MinItems=1)", spec("Admin", "1", "  - action: Deny\n    to: []"), "spec.egress[0].to", "at least one peer", true},
		{"a peer with two fields (MaxProperties=1)", deny("[{networks: [169.254.169.254/32], namespaces: {}}]", ""), "spec.egress[0].to[0]", "exactly one", true},
		{"an empty peer (MinProperties=1)", deny("[{}]", ""), "spec.egress[0].to[0]", "exactly one", true},
		{"a network with host bits set (v0.2.1: canonical CIDRs)", deny("[{networks: [169.254.169.254/16]}]", ""), "spec.egress[0].to[0].networks[0]", "host bits", true},
		{"a network without a prefix length (isCIDR)", deny("[{networks: [169.254.169.254]}]", ""), "spec.egress[0].to[0].networks[0]", "invalid CIDR", true},
		{"an IPv4-mapped IPv6 network (the CEL cidr library refuses it)", deny("[{networks: ['::ffff:169.254.169.254/128']}]", ""), "spec.egress[0].to[0].networks[0]", "IPv4-mapped", true},
		{"a network listed twice (listType=set)", deny("[{networks: [169.254.169.254/32, 169.254.169.254/32]}]", ""), "spec.egress[0].to[0].networks[1]", "duplicate", true},
		{"26 networks (MaxItems=25)", deny(manyNets.String(), ""), "spec.egress[0].to[0].networks", "at most 25", true},
		{"domainNames in a Deny rule (only supported for Accept rules)", deny("[{domainNames: [metadata.google.internal]}]", ""), "spec.egress[0].to[0].domainNames", "only supported for Accept rules", false},
		{"a domain name with a wildcard in the middle (DomainName pattern)", spec("Admin", "1", "  - action: Accept\n    to: [{domainNames: ['metadata.*.internal']}]"), "spec.egress[0].to[0].domainNames[0]", "not a domain name", true},
		{"a protocol entry with tcp and udp (MaxProperties=1)", deny(imdsNets, "\n    protocols: [{tcp: {destinationPort: {number: 80}}, udp: {destinationPort: {number: 80}}}]"), "spec.egress[0].protocols[0]", "exactly one", true},
		{"an empty protocols list (MinItems=1)", deny(imdsNets, "\n    protocols: []"), "spec.egress[0].protocols", "must not be empty", true},
		{"tcp without destinationPort (MinProperties=1)", deny(imdsNets, "\n    protocols: [{tcp: {}}]"), "spec.egress[0].protocols[0].tcp", "destinationPort is required", true},
		{"a port with number and range (MaxProperties=1)", deny(imdsNets, "\n    protocols: [{tcp: {destinationPort: {number: 80, range: {start: 1, end: 2}}}}]"), "spec.egress[0].protocols[0].tcp.destinationPort", "exactly one of number or range", true},
		{"port 65536 (Maximum=65535)", deny(imdsNets, "\n    protocols: [{udp: {destinationPort: {number: 65536}}}]"), "spec.egress[0].protocols[0].udp.destinationPort.number", "out of range", true},
		{"a range with start = end (self.start < self.end)", deny(imdsNets, "\n    protocols: [{sctp: {destinationPort: {range: {start: 80, end: 80}}}}]"), "spec.egress[0].protocols[0].sctp.destinationPort.range", "start < end", true},
		{"a named port with a networks peer (CEL: no namedPorts for networks/nodes/domainNames)", deny(imdsNets, "\n    protocols: [{destinationNamedPort: http}]"), "spec.egress[0]", "cannot be set with namedPorts", true},
		{"a rule name of 101 characters (MaxLength=100)", spec("Admin", "1", "  - name: "+strings.Repeat("n", 101)+"\n    action: Deny\n    to: "+imdsNets), "spec.egress[0].name", "at most 100", true},
		{"26 egress rules (MaxItems=25)", spec("Admin", "1", manyRules.String()), "spec.egress", "at most 25", true},
		{"an unknown selector operator in the subject (the CRD does not check selectors)", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {matchExpressions: [{key: env, operator: Like, values: [prod]}]}}\n", "spec.subject.namespaces", "invalid selector", false},
		{"an unknown selector operator in a peer", deny("[{namespaces: {matchExpressions: [{key: env, operator: Like, values: [prod]}]}}]", ""), "spec.egress[0].to[0].namespaces", "invalid selector", false},
		{"an ingress peer with no field (MinProperties=1)", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{}]\n", "spec.ingress[0].from[0]", "exactly one", true},
	}
}

// TestClusterNetworkPolicyValidation: a ClusterNetworkPolicy the API server would refuse (the
// CRD's schema and CEL rules, network-policy-api v0.3.0) is rejected with the field and takes no
// part in evaluation; one the API server stores but the API leaves undefined is reported as not
// evaluated. TestClusterNetworkPolicyValidationAgreesWithAPIServer checks the API server.
func TestClusterNetworkPolicyValidation(t *testing.T) {
	cases := cnpValidationCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := load(t, namespaces+clusterNP("bad", c.spec))
			m := policy.Compile(inv)
			if len(m.Rejected) == 0 {
				t.Fatalf("ClusterNetworkPolicy with %s was accepted", c.name)
			}
			if !slices.ContainsFunc(m.Rejected, func(p inventoryProblem) bool { return p.Field == c.field && strings.Contains(p.Message, c.message) }) {
				t.Errorf("rejections %v, want one at %s containing %q", m.Rejected, c.field, c.message)
			}
			why := map[bool]string{true: "the API server would reject", false: "cannot evaluate this policy faithfully"}[c.apiServerRefuses]
			if !slices.ContainsFunc(m.Rejected, func(p inventoryProblem) bool { return strings.Contains(p.Message, why) }) {
				t.Errorf("rejections %v, want them to say %q", m.Rejected, why)
			}
			for _, p := range m.Rejected {
				if p.Object == nil || p.Object.Kind != "ClusterNetworkPolicy" || p.Object.Name != "bad" || p.Source.File == "" || p.Source.Document == 0 {
					t.Errorf("rejection does not name the object, file and document: %+v", p)
				}
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if out[0].DecidedBy.Tier != policy.TierDefault {
				t.Errorf("a rejected policy took part in evaluation: %v", out[0])
			}
		})
	}
	t.Run("the limits themselves are accepted", func(t *testing.T) {
		inv := load(t, namespaces+cnpAtTheLimits())
		if m := policy.Compile(inv); len(m.Rejected) != 0 {
			t.Errorf("valid policies rejected: %v", m.Rejected)
		}
	})
}

// cnpAtTheLimits are two valid ClusterNetworkPolicies at the CRD's limits: 25 rules with
// 100-character names and the widest port range at priority 1000, and domainNames with a
// wildcard and a trailing dot at priority 0.
func cnpAtTheLimits() string {
	var rules strings.Builder
	for range 25 {
		rules.WriteString("  - name: " + strings.Repeat("n", 100) + "\n    action: Deny\n    to: [{networks: [169.254.169.254/32]}]\n    protocols: [{tcp: {destinationPort: {range: {start: 1, end: 65535}}}}]\n")
	}
	return clusterNP("edge", cnpSpec("Baseline", "1000", rules.String())) +
		clusterNP("zero", cnpSpec("Admin", "0", "  - action: Accept\n    to: [{domainNames: ['*.google.internal', metadata.google.internal.]}]"))
}

// TestClusterNetworkPolicyReasonAndTrace: reasons name the kind, the tier and the rule, and say
// Accept where the object does; traces show each CNP step; ties and egress control list CNPs.
func TestClusterNetworkPolicyReasonAndTrace(t *testing.T) {
	inv := load(t, namespaces+
		clusterNP("deny-imds", "  tier: Admin\n  priority: 10\n  subject: {namespaces: {matchLabels: {team: storefront}}}\n  egress:\n  - name: deny-metadata\n    action: Deny\n    to: [{networks: [169.254.169.254/32]}]")+
		clusterNP("pass-other", "  tier: Admin\n  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [10.0.0.0/8]}]")+
		clusterNP("accept-wireserver", "  tier: Baseline\n  priority: 3\n  subject: {namespaces: {}}\n  egress:\n  - name: azure-dns\n    action: Accept\n    to: [{networks: [168.63.129.16/32]}]"))
	m := policy.Compile(inv)
	if len(m.Rejected) != 0 {
		t.Fatal(m.Rejected)
	}
	eps := []endpoint.Endpoint{endpointNamed(t, "aws-imds"), endpointNamed(t, "azure-wireserver")}
	verdicts, traces := m.Explain(policy.Subject{Namespace: "shop", Labels: web}, eps)
	if got, want := verdicts[0].DecidedBy.String(), "ClusterNetworkPolicy deny-imds (Admin tier) rule 0 (deny-metadata): Deny (networks 169.254.169.254/32)"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if got, want := verdicts[1].DecidedBy.String(), "ClusterNetworkPolicy accept-wireserver (Baseline tier) rule 0 (azure-dns): Accept (networks 168.63.129.16/32)"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if verdicts[1].DecidedBy.Action != policy.ActionAllow || verdicts[1].DecidedBy.Kind != "ClusterNetworkPolicy" {
		t.Errorf("an Accept is Action %q kind %q, want Allow, ClusterNetworkPolicy", verdicts[1].DecidedBy.Action, verdicts[1].DecidedBy.Kind)
	}
	traceContains(t, traces[0],
		"ClusterNetworkPolicy (Admin tier) deny-imds: priority 10: subject selects the pod",
		"ClusterNetworkPolicy (Admin tier) deny-imds rule 0: Deny via networks 169.254.169.254/32: final")
	traceContains(t, traces[1],
		"ClusterNetworkPolicy (Admin tier) pass-other rule 0: Pass does not match: networks 10.0.0.0/8",
		"NetworkPolicy: no egress NetworkPolicy",
		"ClusterNetworkPolicy (Baseline tier) accept-wireserver rule 0: Accept via networks 168.63.129.16/32: final")

	if len(m.PriorityTies) != 1 || m.PriorityTies[0].Policies != [2]string{"deny-imds", "pass-other"} || m.PriorityTies[0].Kind != "ClusterNetworkPolicy (Admin tier)" {
		t.Errorf("ties %+v, want deny-imds and pass-other in the Admin tier", m.PriorityTies)
	}
	shop, lab := m.EgressControl("shop"), m.EgressControl("lab")
	if !slices.Equal(shop.ClusterAdmin, []string{"deny-imds", "pass-other"}) || !slices.Equal(shop.ClusterBaseline, []string{"accept-wireserver"}) || !shop.Any() {
		t.Errorf("shop egress control %+v, want Admin deny-imds, pass-other and Baseline accept-wireserver", shop)
	}
	if !slices.Equal(lab.ClusterAdmin, []string{"pass-other"}) {
		t.Errorf("lab egress control %+v, want Admin pass-other only (deny-imds selects team=storefront)", lab)
	}
}

// TestClusterNetworkPolicyBesideCilium: with Cilium policies in the input, CNPs are reported as
// not evaluated rather than guessed (Cilium enforces them, in an order the Cilium engine does not
// model yet).
func TestClusterNetworkPolicyBesideCilium(t *testing.T) {
	inv := load(t, namespaces+cnpRule("deny-imds", "Admin", "1", "Deny", imdsNets)+
		"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: shop}\nspec:\n  endpointSelector: {}\n  egress:\n  - toCIDR: [0.0.0.0/0]\n")
	m := policy.Compile(inv)
	if !slices.ContainsFunc(m.Rejected, func(p inventoryProblem) bool {
		return p.Object != nil && p.Object.Kind == "ClusterNetworkPolicy" && strings.Contains(p.Message, "Cilium")
	}) {
		t.Errorf("rejections %v, want the ClusterNetworkPolicy reported beside Cilium", m.Rejected)
	}
}

// inventoryProblem is a rejection.
type inventoryProblem = inventory.Problem
