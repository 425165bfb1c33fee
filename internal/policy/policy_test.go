package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// load builds an inventory from YAML through the real loader.
func load(t *testing.T, manifests string) *inventory.Inventory {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("test manifests have problems: %v", inv.Problems)
	}
	return inv
}

func endpointNamed(t *testing.T, name string) endpoint.Endpoint {
	t.Helper()
	for _, cloud := range append(endpoint.Clouds, endpoint.ECS) {
		for _, ep := range endpoint.Select([]endpoint.Cloud{cloud}) {
			if ep.Name == name {
				return ep
			}
		}
	}
	ep, err := endpoint.ParseCustom(name)
	if err != nil {
		t.Fatalf("no endpoint %q: %v", name, err)
	}
	return ep
}

const namespaces = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: storefront, env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab, labels: {team: research}}
---
`

// row is one sentence of the specification.
type row struct {
	name     string
	policies string
	// pod
	namespace   string
	labels      map[string]string
	hostNetwork bool
	endpoint    string
	// serviceAccount is the pod's service account ("" is "default").
	serviceAccount string
	// expected
	allowed bool
	tier    policy.Tier
	policy  string
	rule    int
	// kind and calicoTier, when set, are checked against the reason too.
	kind, calicoTier string
}

func (r row) run(t *testing.T) {
	t.Helper()
	inv := load(t, namespaces+r.policies)
	m := policy.Compile(inv)
	if len(m.Rejected) > 0 {
		t.Fatalf("unexpected rejections: %v", m.Rejected)
	}
	ns := r.namespace
	if ns == "" {
		ns = "shop"
	}
	ep := endpointNamed(t, r.endpoint)
	out := make([]policy.Verdict, 1)
	subject := policy.Subject{Namespace: ns, Labels: r.labels, HostNetwork: r.hostNetwork, ServiceAccount: r.serviceAccount}
	m.Evaluate(subject, []endpoint.Endpoint{ep}, out)
	v := out[0]
	if v.Allowed != r.allowed || v.DecidedBy.Tier != r.tier || v.DecidedBy.Policy != r.policy || v.DecidedBy.Rule != r.rule ||
		(r.kind != "" && v.DecidedBy.Kind != r.kind) || (r.calicoTier != "" && v.DecidedBy.CalicoTier != r.calicoTier) {
		_, traces := m.Explain(subject, []endpoint.Endpoint{ep})
		var trace []string
		for _, s := range traces[0] {
			trace = append(trace, "  "+s.String())
		}
		t.Errorf("%s\n got: allowed=%t by %s %q rule %d (%s %s)\nwant: allowed=%t by %s %q rule %d (%s %s)\nreason: %s\ntrace:\n%s",
			r.name, v.Allowed, v.DecidedBy.Tier, v.DecidedBy.Policy, v.DecidedBy.Rule, v.DecidedBy.Kind, v.DecidedBy.CalicoTier,
			r.allowed, r.tier, r.policy, r.rule, r.kind, r.calicoTier, v.DecidedBy, strings.Join(trace, "\n"))
	}
}

const seedsPolicy = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-egress-except-metadata-api, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [169.254.169.254/32]
`

const defaultDeny = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
`

func np(name, spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: shop}\nspec:\n" + spec + "\n---\n"
}

func anp(name, spec string) string {
	return "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

func banp(spec string) string {
	return "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n" + spec + "\n---\n"
}

var web = map[string]string{"app": "web", "tier": "frontend"}

func TestNetworkPolicySemantics(t *testing.T) {
	rows := []row{
		{name: "with no policy at all, egress is allowed by default",
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a policy selecting the pod with policyTypes [Egress] and no rules isolates it: everything is denied",
			policies: defaultDeny, endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/default-deny", rule: policy.NoRule},
		{name: "policyTypes omitted and no egress rules: the policy is ingress-only and does not isolate egress",
			policies: np("ingress-only", "  podSelector: {}\n  ingress: [{}]"), endpoint: "aws-imds", labels: web,
			allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "policyTypes omitted with egress rules: the policy isolates egress and only its rules allow",
			policies: np("implicit", "  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]"), endpoint: "aws-imds", labels: web,
			tier: policy.TierNetworkPolicy, policy: "shop/implicit", rule: policy.NoRule},
		{name: "policyTypes [Ingress] with egress rules listed: egress is not isolated",
			policies: np("ingress-typed", "  podSelector: {}\n  policyTypes: [Ingress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]"), endpoint: "aws-imds", labels: web,
			allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "the seeds' policy denies 169.254.169.254 through its except entry",
			policies: seedsPolicy, endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: "the seeds' policy allows other IPv4 destinations such as Azure WireServer",
			policies: seedsPolicy, endpoint: "azure-wireserver", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: "0.0.0.0/0 says nothing of IPv6: the isolated pod is denied fd00:ec2::254",
			policies: seedsPolicy, endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: policy.NoRule},
		{name: "::/0 allows fd00:ec2::254 without an except entry",
			policies: np("v6", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}, {ipBlock: {cidr: '::/0'}}]"),
			endpoint: "aws-imds-ipv6", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/v6", rule: 0},
		{name: "::/0 with fd00:ec2::254/128 excepted denies it",
			policies: np("v6", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: '::/0', except: ['fd00:ec2::254/128']}}]"),
			endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/v6", rule: 0},
		{name: "rules of all selecting policies are a union: a second policy's allowance wins over the first's isolation",
			policies: defaultDeny + "\n---\n" + np("link-local", "  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 169.254.0.0/16}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/link-local", rule: 0},
		{name: "an except entry inside a policy does not take away another policy's allowance (union)",
			policies: seedsPolicy + "\n---\n" + np("allow-all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/allow-all", rule: 0},
		{name: "a policy whose podSelector does not match the pod does not isolate it",
			policies: np("db-only", "  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Egress]"), endpoint: "aws-imds", labels: web,
			allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "matchExpressions In selects the pod",
			policies: np("expr", "  podSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}\n  policyTypes: [Egress]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/expr", rule: policy.NoRule},
		{name: "matchExpressions NotIn excludes the pod",
			policies: np("expr", "  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}\n  policyTypes: [Egress]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "matchExpressions DoesNotExist on a label the pod has excludes it",
			policies: np("expr", "  podSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}\n  policyTypes: [Egress]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "matchExpressions Exists selects the pod",
			policies: np("expr", "  podSelector: {matchExpressions: [{key: tier, operator: Exists}]}\n  policyTypes: [Egress]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/expr", rule: policy.NoRule},
		{name: "a NetworkPolicy in another namespace never selects the pod",
			policies: defaultDeny, namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a port rule on TCP 80 allows the TCP 80 endpoint",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{protocol: TCP, port: 80}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "the protocol defaults to TCP",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 80}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "a UDP 80 rule does not match TCP 80",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{protocol: UDP, port: 80}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: policy.NoRule},
		{name: "a port entry without a port matches every port of its protocol",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{protocol: UDP}]"),
			endpoint: "azure-dns", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "endPort makes a range that includes 80",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 1, endPort: 1024}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "a range 81-1024 excludes 80",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 81, endPort: 1024}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: policy.NoRule},
		{name: "a named port never matches an address outside the cluster",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: http}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: policy.NoRule},
		{name: "SCTP rules match only SCTP endpoints",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{protocol: SCTP, port: 80}]"),
			endpoint: "169.254.169.254:80/SCTP", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "a podSelector peer never matches an address outside the cluster",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{podSelector: {}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: policy.NoRule},
		{name: "a namespaceSelector: {} peer never matches an address outside the cluster",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: policy.NoRule},
		{name: "a rule with ports but no 'to' allows every destination on those ports",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 80}, {port: 443}]"),
			endpoint: "aws-imds-ipv6", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "egress: [{}] allows everything",
			policies: np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
			endpoint: "alibaba-metadata", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: "an except entry narrower than the address block still removes the address",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 169.254.0.0/16, except: [169.254.169.0/24]}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 0},
		{name: "the rule that matches is named, not an earlier rule that did not",
			policies: np("p", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]\n  - to: [{ipBlock: {cidr: 169.254.169.254/32}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/p", rule: 1},
		{name: "hostNetwork pods are not governed by NetworkPolicy: reachable with the reason hostNetwork",
			policies: defaultDeny, endpoint: "aws-imds", labels: web, hostNetwork: true, allowed: true, tier: policy.TierHostNetwork, rule: policy.NoRule},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

func TestAdminNetworkPolicySemantics(t *testing.T) {
	denyIMDS := anp("deny-imds", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - name: deny-metadata\n    action: Deny\n    to: [{networks: [169.254.169.254/32, 'fd00:ec2::254/128']}]")
	rows := []row{
		{name: "an AdminNetworkPolicy Deny wins over a NetworkPolicy that allows everything",
			policies: denyIMDS + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierAdmin, policy: "deny-imds", rule: 0},
		{name: "an AdminNetworkPolicy Deny covers IPv6 when it lists the IPv6 address",
			policies: denyIMDS, endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierAdmin, policy: "deny-imds", rule: 0},
		{name: "an AdminNetworkPolicy Deny for the metadata address leaves other destinations to lower tiers",
			policies: denyIMDS, endpoint: "aws-pod-identity", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "an AdminNetworkPolicy Allow overrides a NetworkPolicy default deny",
			policies: defaultDeny + "\n---\n" + anp("allow-imds", "  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierAdmin, policy: "allow-imds", rule: 0},
		{name: "the lower priority number is consulted first",
			policies: anp("allow-late", "  priority: 20\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [0.0.0.0/0]}]") +
				anp("deny-early", "  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierAdmin, policy: "deny-early", rule: 0},
		{name: "within a policy the first matching rule decides",
			policies: anp("ordered", "  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.0.0/16]}]\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierAdmin, policy: "ordered", rule: 0},
		{name: "Pass skips the remaining AdminNetworkPolicies and hands over to NetworkPolicy",
			policies: anp("pass", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [169.254.169.254/32]}]") +
				anp("deny", "  priority: 2\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [0.0.0.0/0]}]") + seedsPolicy,
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: "Pass with no NetworkPolicy falls through to the BaselineAdminNetworkPolicy",
			policies: anp("pass", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [169.254.169.254/32]}]") +
				banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierBaseline, policy: "default", rule: 0},
		{name: "a subject selecting namespaces by label leaves other namespaces alone",
			policies:  anp("prod", "  priority: 1\n  subject: {namespaces: {matchLabels: {env: prod}}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a pods subject needs both the namespace and the pod selector to match",
			policies: anp("pods", "  priority: 1\n  subject:\n    pods:\n      namespaceSelector: {matchLabels: {team: storefront}}\n      podSelector: {matchLabels: {app: db}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a pods subject selects a pod matching both selectors",
			policies: anp("pods", "  priority: 1\n  subject:\n    pods:\n      namespaceSelector: {matchLabels: {team: storefront}}\n      podSelector: {matchLabels: {app: web}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierAdmin, policy: "pods", rule: 0},
		{name: "a portRange rule includes the port",
			policies: anp("range", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [0.0.0.0/0]}]\n    ports: [{portRange: {start: 1, end: 100}}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierAdmin, policy: "range", rule: 0},
		{name: "a portNumber rule on UDP does not match TCP",
			policies: anp("udp", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [0.0.0.0/0]}]\n    ports: [{portNumber: {protocol: UDP, port: 80}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "networks ::/0 does not match an IPv4 address",
			policies: anp("v6", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: ['::/0']}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "namespaces, pods and nodes peers never match an address outside the cluster",
			policies: anp("cluster", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{namespaces: {}}, {pods: {namespaceSelector: {}, podSelector: {}}}, {nodes: {}}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a domainNames Allow matches the endpoint's hostname (GCP metadata.google.internal)",
			policies: defaultDeny + "\n---\n" + anp("fqdn", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{domainNames: ['*.google.internal']}]"),
			endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierAdmin, policy: "fqdn", rule: 0},
		{name: "an AdminNetworkPolicy does not govern hostNetwork pods",
			policies: denyIMDS, endpoint: "aws-imds", labels: web, hostNetwork: true, allowed: true, tier: policy.TierHostNetwork, rule: policy.NoRule},
		{name: "the BaselineAdminNetworkPolicy denies when no NetworkPolicy isolates the pod",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierBaseline, policy: "default", rule: 0},
		{name: "the BaselineAdminNetworkPolicy is not consulted when a NetworkPolicy isolates the pod",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: "a BaselineAdminNetworkPolicy Allow earlier in its rules wins over a later Deny",
			policies: banp("  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]\n  - action: Deny\n    to: [{networks: [0.0.0.0/0]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierBaseline, policy: "default", rule: 0},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

// TestRejectedPolicies: policies the API server would refuse are reported with their field and
// take no part in evaluation.
func TestRejectedPolicies(t *testing.T) {
	cases := []struct {
		name, manifest, field, message string
	}{
		{"an invalid CIDR", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 169.254.169.254/33}}]"), "spec.egress[0].to[0].ipBlock.cidr", "invalid CIDR"},
		{"an except outside its cidr", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [169.254.169.254/32]}}]"), "spec.egress[0].to[0].ipBlock.except[0]", "strict subset"},
		{"an except equal to its cidr (Kubernetes wants a strict subset)", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 169.254.169.254/32, except: [169.254.169.254/32]}}]"), "spec.egress[0].to[0].ipBlock.except[0]", "strict subset"},
		{"an IPv6 except in an IPv4 block", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: ['fd00:ec2::254/128']}}]"), "spec.egress[0].to[0].ipBlock.except[0]", "strict subset"},
		{"an unknown selector operator", np("bad", "  podSelector: {matchExpressions: [{key: app, operator: Like, values: [web]}]}\n  policyTypes: [Egress]"), "spec.podSelector", "invalid selector"},
		{"endPort below port", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 90, endPort: 80}]"), "spec.egress[0].ports[0].endPort", "endPort 80"},
		{"an unknown protocol", np("bad", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{protocol: ICMP}]"), "spec.egress[0].ports[0].protocol", "unsupported protocol"},
		{"an unknown policy type", np("bad", "  podSelector: {}\n  policyTypes: [Outbound]"), "spec.policyTypes[0]", "unknown policy type"},
		{"an ANP priority out of range", anp("bad", "  priority: 1001\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]"), "spec.priority", "out of range"},
		{"an ANP network without a prefix length", anp("bad", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254]}]"), "spec.egress[0].to[0].networks[0]", "prefix length"},
		{"an ANP action that does not exist", anp("bad", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Drop\n    to: [{networks: [169.254.169.254/32]}]"), "spec.egress[0].action", "unknown action"},
		{"a BANP not named default", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: baseline}\nspec:\n  subject: {namespaces: {}}\n", "metadata.name", "must be named \"default\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := load(t, namespaces+c.manifest)
			m := policy.Compile(inv)
			if len(m.Rejected) == 0 {
				t.Fatalf("policy with %s was accepted", c.name)
			}
			p := m.Rejected[0]
			if p.Field != c.field || !strings.Contains(p.Message, c.message) {
				t.Errorf("rejection = %s %q, want field %s and a message containing %q", p.Field, p.Message, c.field, c.message)
			}
			if p.Source.File == "" || p.Source.Document == 0 {
				t.Errorf("rejection does not point at a file and document: %+v", p.Source)
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if out[0].DecidedBy.Tier != policy.TierDefault {
				t.Errorf("a rejected policy took part in evaluation: %v", out[0])
			}
		})
	}
}

func TestPriorityTiesAreReported(t *testing.T) {
	inv := load(t, namespaces+anp("b", "  priority: 7\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]")+
		anp("a", "  priority: 7\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [169.254.169.254/32]}]"))
	m := policy.Compile(inv)
	if len(m.PriorityTies) != 1 || m.PriorityTies[0].Policies != [2]string{"a", "b"} {
		t.Fatalf("ties = %+v, want a and b at priority 7", m.PriorityTies)
	}
}

func TestExplainAgreesWithEvaluate(t *testing.T) {
	inv := load(t, namespaces+seedsPolicy+"\n---\n"+anp("pass", "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Pass\n    to: [{networks: [169.254.169.254/32]}]"))
	m := policy.Compile(inv)
	eps := endpoint.Select([]endpoint.Cloud{endpoint.All})
	s := policy.Subject{Namespace: "shop", Labels: web}
	want := make([]policy.Verdict, len(eps))
	m.Evaluate(s, eps, want)
	got, traces := m.Explain(s, eps)
	for i := range eps {
		if got[i] != want[i] {
			t.Errorf("%s: Explain says %v, Evaluate says %v", eps[i].Name, got[i], want[i])
		}
		if len(traces[i]) < 3 {
			t.Errorf("%s: trace too short to explain anything: %v", eps[i].Name, traces[i])
		}
	}
	traceContains(t, traces[0], "Pass via networks 169.254.169.254/32", "selects the pod for egress", "excludes 169.254.169.254")
}

// traceContains checks that an evaluation trace has a step containing each of want.
func traceContains(t *testing.T, steps []policy.Step, want ...string) {
	t.Helper()
	var text []string
	for _, s := range steps {
		text = append(text, s.String())
	}
	joined := strings.Join(text, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("trace lacks %q:\n%s", w, joined)
		}
	}
}
