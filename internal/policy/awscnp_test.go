package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// awsCNP renders the AWS VPC CNI's networking.k8s.aws/v1alpha1 ClusterNetworkPolicy (schema:
// internal/inventory/awsv1alpha1, with its source).
func awsCNP(name, spec string) string {
	return "apiVersion: networking.k8s.aws/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

func awsRule(name, tier, priority, action, to string) string {
	return awsCNP(name, "  tier: "+tier+"\n  priority: "+priority+"\n  subject: {namespaces: {}}\n  egress:\n  - name: r\n    action: "+action+"\n    to: "+to)
}

// TestAWSClusterNetworkPolicySemantics: the AWS kind has network-policy-api's tiers, priorities
// and actions (Admin before NetworkPolicy, Baseline after; Accept and Deny final; Pass to the next
// tier) and v1alpha1-style ports; reasons name its kind.
func TestAWSClusterNetworkPolicySemantics(t *testing.T) {
	const kind = "ClusterNetworkPolicy.networking.k8s.aws"
	allowAllNP := np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]")
	rows := []row{
		{name: "an Admin Deny wins over a NetworkPolicy that allows everything",
			policies: awsRule("deny-imds", "Admin", "10", "Deny", imdsNets) + allowAllNP,
			endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierClusterAdmin, policy: "deny-imds", rule: 0, kind: kind},
		{name: "a Baseline Deny is overridden by a NetworkPolicy",
			policies: awsRule("deny-imds", "Baseline", "10", "Deny", imdsNets) + allowAllNP,
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: "a Baseline Deny decides for a pod no NetworkPolicy isolates",
			policies: awsRule("deny-imds", "Baseline", "10", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterBaseline, policy: "deny-imds", rule: 0, kind: kind},
		{name: "a Pass with a domainNames peer (allowed in Pass rules, unlike upstream) skips the Admin tier",
			policies: awsRule("pass-gcp", "Admin", "1", "Pass", "[{domainNames: ['*.google.internal']}]") + awsRule("deny-all", "Admin", "2", "Deny", "[{networks: [0.0.0.0/0]}]"),
			endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a portNumber without a protocol is TCP (the CRD's default)",
			policies: awsCNP("tcp-80", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets+"\n    ports: [{portNumber: {port: 80}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "tcp-80", rule: 0, kind: kind},
		{name: "a UDP portRange does not match TCP",
			policies: awsCNP("udp", "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: "+imdsNets+"\n    ports: [{portRange: {protocol: UDP, start: 1, end: 1000}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "AWS and network-policy-api ClusterNetworkPolicies share the tiers, by priority",
			policies: awsRule("aws-accept", "Admin", "20", "Accept", imdsNets) + cnpRule("cnp-deny", "Admin", "10", "Deny", imdsNets),
			endpoint: "aws-imds", labels: web, tier: policy.TierClusterAdmin, policy: "cnp-deny", rule: 0, kind: "ClusterNetworkPolicy"},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}

	inv := load(t, namespaces+awsRule("deny-imds", "Admin", "10", "Deny", "[{networks: [169.254.169.254/32]}]"))
	m := policy.Compile(inv)
	out := make([]policy.Verdict, 1)
	m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
	if got, want := out[0].DecidedBy.String(), "ClusterNetworkPolicy.networking.k8s.aws deny-imds (Admin tier) rule 0 (r): Deny (networks 169.254.169.254/32)"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	_, traces := m.Explain(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")})
	traceContains(t, traces[0], "ClusterNetworkPolicy (Admin tier) deny-imds: ClusterNetworkPolicy.networking.k8s.aws, priority 10: subject selects the pod",
		"ClusterNetworkPolicy (Admin tier) deny-imds rule 0: Deny via networks 169.254.169.254/32: final")
	if c := m.EgressControl("shop"); !slices.Equal(c.ClusterAdmin, []string{"deny-imds"}) {
		t.Errorf("egress control %+v, want the AWS policy in ClusterAdmin", c)
	}
}

// TestAWSClusterNetworkPolicyValidation: what the AWS CRD refuses is rejected; what it accepts but
// the agent's handling of is not documented is reported as not evaluated; with Calico policies
// in the input the AWS kind is not evaluated either.
func TestAWSClusterNetworkPolicyValidation(t *testing.T) {
	deny := func(to, extra string) string {
		return "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: " + to + extra
	}
	cases := []struct {
		name, manifest, field, message string
	}{
		{"priority above 1000", awsCNP("bad", strings.Replace(deny(imdsNets, ""), "priority: 1", "priority: 1001", 1)), "spec.priority", "the API server would reject"},
		{"an unknown tier", awsCNP("bad", strings.Replace(deny(imdsNets, ""), "tier: Admin", "tier: Platform", 1)), "spec.tier", "unknown tier"},
		{"domainNames in a Deny rule (CEL)", awsCNP("bad", deny("[{domainNames: [metadata.google.internal]}]", "")), "spec.egress[0].to[0].domainNames", "cannot be used with Deny"},
		{"a peer with two fields", awsCNP("bad", deny("[{networks: [10.0.0.0/8], namespaces: {}}]", "")), "spec.egress[0].to[0]", "exactly one"},
		{"a range with start = end (CEL start < end)", awsCNP("bad", deny(imdsNets, "\n    ports: [{portRange: {start: 80, end: 80}}]")), "spec.egress[0].ports[0].portRange", "start < end"},
		{"a network that is not a CIDR (the CRD has no rule for it)", awsCNP("bad", deny("[{networks: [metadata]}]", "")), "spec.egress[0].to[0].networks[0]", "not evaluated"},
		{"a port entry with two fields (the CRD allows it)", awsCNP("bad", deny(imdsNets, "\n    ports: [{portNumber: {port: 80}, namedPort: http}]")), "spec.egress[0].ports[0]", "not evaluated"},
		{"an unknown selector operator (a CRD schema does not check selectors)", awsCNP("bad", strings.Replace(deny(imdsNets, ""), "subject: {namespaces: {}}", "subject: {namespaces: {matchExpressions: [{key: a, operator: Like}]}}", 1)), "spec.subject.namespaces", "not evaluated"},
		{"Calico policies in the input", awsRule("bad", "Admin", "1", "Deny", imdsNets) + gnp("allow-all", "  selector: all()\n  egress:\n  - action: Allow"), "spec", "Calico does not implement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := policy.Compile(load(t, namespaces+c.manifest))
			if !slices.ContainsFunc(m.Rejected, func(p inventoryProblem) bool {
				return p.Field == c.field && strings.Contains(p.Message, c.message) && p.Object != nil && p.Object.Kind == "ClusterNetworkPolicy.networking.k8s.aws"
			}) {
				t.Errorf("rejections %v, want one of ClusterNetworkPolicy.networking.k8s.aws at %s containing %q", m.Rejected, c.field, c.message)
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if out[0].DecidedBy.Kind == "ClusterNetworkPolicy.networking.k8s.aws" {
				t.Errorf("a policy left out took part in evaluation: %v", out[0])
			}
		})
	}
}
