package policy_test

import (
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Where Cilium documents (or, for what the documentation leaves open, implements) what the rows
// below check.
const (
	ciliumEnforcementDoc = "docs.cilium.io/en/stable/security/policy/intro (Policy Enforcement Modes: default)"
	ciliumL3Doc          = "docs.cilium.io/en/stable/security/policy/language (Layer 3: Entities Based, IP/CIDR based, DNS based)"
	ciliumL4Doc          = "docs.cilium.io/en/stable/security/policy/language (Layer 4: ports, endPort, protocol)"
	ciliumDenyDoc        = "docs.cilium.io/en/stable/security/policy/language (Deny Policies: deny takes precedence over allow)"
	ciliumDefaultDenyDoc = "cilium.io/v2 CRD schema, enableDefaultDeny (api.Rule.Sanitize: unset = the rule has egress or egressDeny rules)"
	ciliumK8sDoc         = "docs.cilium.io/en/stable/network/kubernetes/policy (NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy at the same time)"
	ciliumLabelsDoc      = "docs.cilium.io/en/stable/security/policy/kubernetes (Namespaces, ServiceAccounts, namespace labels io.cilium.k8s.namespace.labels)"
	ciliumEntityCode     = "pkg/policy/api/entity.go EntitySelectorMapping (world, all; cluster and host select cluster identities)"
	ciliumSanitizeCode   = "pkg/policy/api/rule_validation.go (EgressRule.sanitize)"
	ciliumMergeCode      = "pkg/policy/utils/parserules.go mergeEndpointSelectors and types.PolicyEntry.L3"
	ciliumFQDNCode       = "pkg/fqdn/matchpattern (matchPattern: * within one label)"
	ciliumLabelFilter    = "pkg/labelsfilter defaultLabelPrefixCfg (pod-template-hash is not an identity label)"
)

// seedsCiliumPolicy is the Cilium counterpart of the seeds' GlobalNetworkPolicy: a cluster-wide
// deny of the metadata addresses for every pod.
const seedsCiliumPolicy = `
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: deny-instance-metadata}
spec:
  endpointSelector: {}
  egressDeny:
  - toCIDR: [169.254.169.254/32, 'fd00:ec2::254/128']
`

func ciliumNP(name, spec string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + name + ", namespace: shop}\nspec:\n" + spec + "\n---\n"
}

func ciliumCCNP(name, spec string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

const (
	cnpKind  = "CiliumNetworkPolicy"
	ccnpKind = "CiliumClusterwideNetworkPolicy"
)

// TestCiliumSemantics is a truth table of Cilium's documented semantics; each row names the
// documentation (or the Cilium source, where the documentation is silent) it checks.
func TestCiliumSemantics(t *testing.T) {
	allowWorld := func(name, extra string) string {
		return ciliumNP(name, "  endpointSelector: {}\n"+extra+"  egress:\n  - toEntities: [world]")
	}
	only := func(name, egress string) string {
		return ciliumNP(name, "  endpointSelector: {}\n  egress:\n"+egress)
	}
	rows := []row{
		// The seeds' counterpart.
		{name: "[seed] a CiliumClusterwideNetworkPolicy egressDeny toCIDR 169.254.169.254/32 denies the metadata address (" + ciliumDenyDoc + ")",
			policies: seedsCiliumPolicy, endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "deny-instance-metadata", rule: 0, kind: ccnpKind},
		{name: "[seed] its fd00:ec2::254/128 entry denies IPv6 metadata (" + ciliumDenyDoc + ")",
			policies: seedsCiliumPolicy, endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierCilium, policy: "deny-instance-metadata", rule: 0},
		{name: "[seed] deny wins over an allow of every outside address in another policy (" + ciliumDenyDoc + ")",
			policies: seedsCiliumPolicy + "---\n" + allowWorld("open", ""), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "deny-instance-metadata", rule: 0},
		{name: "[seed] deny wins over a Kubernetes NetworkPolicy allowing everything (" + ciliumK8sDoc + "; " + ciliumDenyDoc + ")",
			policies: seedsCiliumPolicy + "---\n" + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "deny-instance-metadata", rule: 0},
		{name: "[seed] a deny-only policy puts the pod into egress default-deny: other destinations are denied too (" + ciliumDefaultDenyDoc + ")",
			policies: seedsCiliumPolicy, endpoint: "azure-wireserver", labels: web, tier: policy.TierCilium, policy: "deny-instance-metadata", rule: policy.NoRule},
		{name: "[seed] with enableDefaultDeny.egress false the deny-only policy subtracts the metadata address and isolates nothing (" + ciliumDefaultDenyDoc + ")",
			policies: strings.Replace(seedsCiliumPolicy, "  endpointSelector: {}", "  endpointSelector: {}\n  enableDefaultDeny: {egress: false}", 1), endpoint: "azure-wireserver", labels: web, allowed: true,
			tier: policy.TierCilium, policy: "deny-instance-metadata", rule: policy.NoRule},

		// Selecting the pod.
		{name: "no Cilium policy selects the pod: allowed by default (" + ciliumEnforcementDoc + ")",
			policies: ciliumNP("db", "  endpointSelector: {matchLabels: {app: db}}\n  egressDeny:\n  - toEntities: [all]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a CiliumNetworkPolicy selects pods of its own namespace only (" + ciliumK8sDoc + ")",
			policies: ciliumNP("all", "  endpointSelector: {}\n  egressDeny:\n  - toEntities: [world]"), namespace: "lab", endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "a CiliumNetworkPolicy is named namespace/name (" + ciliumK8sDoc + ")",
			policies: ciliumNP("all", "  endpointSelector: {}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/all", rule: 0, kind: cnpKind},
		{name: "the k8s: source prefix selects pod labels (" + ciliumLabelsDoc + ")",
			policies: ciliumNP("k8s", "  endpointSelector: {matchLabels: {'k8s:app': web}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/k8s", rule: 0},
		{name: "the any: source prefix selects pod labels (" + ciliumLabelsDoc + ")",
			policies: ciliumNP("any", "  endpointSelector: {matchLabels: {'any:app': web}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/any", rule: 0},
		{name: "reserved: labels never select a pod (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("host", "  endpointSelector: {matchLabels: {'reserved:host': ''}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "io.kubernetes.pod.namespace selects by namespace in a clusterwide policy (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("shop", "  endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': shop}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop", rule: 0},
		{name: "io.kubernetes.pod.namespace NotIn leaves the listed namespaces alone (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("not-shop", "  endpointSelector: {matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [shop]}]}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "io.cilium.k8s.namespace.labels.<key> selects by namespace label (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("prod", "  endpointSelector: {matchLabels: {'io.cilium.k8s.namespace.labels.env': prod}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "prod", rule: 0},
		{name: "io.cilium.k8s.policy.serviceaccount selects by service account (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("builder", "  endpointSelector: {matchLabels: {'io.cilium.k8s.policy.serviceaccount': builder}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, serviceAccount: "builder", tier: policy.TierCilium, policy: "builder", rule: 0},
		{name: "io.cilium.k8s.policy.serviceaccount: a pod without one is the default service account (" + ciliumLabelsDoc + ")",
			policies: ciliumCCNP("builder", "  endpointSelector: {matchLabels: {'io.cilium.k8s.policy.serviceaccount': builder}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "labels outside the identity do not select (" + ciliumLabelFilter + ")",
			policies: ciliumNP("hash", "  endpointSelector: {matchLabels: {pod-template-hash: abc}}\n  egressDeny:\n  - toEntities: [world]"), endpoint: "aws-imds", labels: map[string]string{"app": "web", "pod-template-hash": "abc"},
			allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "hostNetwork pods are not Cilium endpoints: no pod policy applies (" + ciliumK8sDoc + ")",
			policies: seedsCiliumPolicy, endpoint: "aws-imds", labels: web, hostNetwork: true, allowed: true, tier: policy.TierHostNetwork, rule: policy.NoRule},

		// Default deny.
		{name: "an egress rule puts the pod into default deny: destinations no rule allows are denied (" + ciliumEnforcementDoc + ")",
			policies: only("dns", "  - toPorts: [{ports: [{port: '53', protocol: UDP}]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/dns", rule: policy.NoRule},
		{name: "enableDefaultDeny.egress false: egress rules do not isolate (" + ciliumDefaultDenyDoc + ")",
			policies: ciliumNP("dns", "  endpointSelector: {}\n  enableDefaultDeny: {egress: false}\n  egress:\n  - toPorts: [{ports: [{port: '53', protocol: UDP}]}]"), endpoint: "aws-imds", labels: web, allowed: true,
			tier: policy.TierCilium, policy: "shop/dns", rule: policy.NoRule},
		{name: "enableDefaultDeny.egress false in one policy does not undo another's default deny (" + ciliumDefaultDenyDoc + ")",
			policies: ciliumNP("a-open", "  endpointSelector: {}\n  enableDefaultDeny: {egress: false}\n  egress:\n  - toPorts: [{ports: [{port: '53', protocol: UDP}]}]") +
				only("b-dns", "  - toPorts: [{ports: [{port: '53', protocol: UDP}]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/b-dns", rule: policy.NoRule},
		{name: "ingress rules only: egress is not isolated (" + ciliumEnforcementDoc + ")",
			policies: ciliumNP("in", "  endpointSelector: {}\n  ingress:\n  - fromEntities: [cluster]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierDefault, rule: policy.NoRule},
		{name: "an empty egress rule allows nothing but isolates (" + ciliumMergeCode + ")",
			policies: only("empty", "  - {}"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/empty", rule: policy.NoRule},

		// Combining with Kubernetes NetworkPolicy.
		{name: "a Kubernetes NetworkPolicy's allow joins the union of allows (" + ciliumK8sDoc + ")",
			policies: only("dns", "  - toPorts: [{ports: [{port: '53', protocol: UDP}]}]") + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierNetworkPolicy, policy: "shop/all", rule: 0},
		{name: "a Cilium allow lets a pod out that a Kubernetes NetworkPolicy isolates (" + ciliumK8sDoc + ")",
			policies: allowWorld("open", "") + defaultDeny, endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/open", rule: 0},
		{name: "a Kubernetes NetworkPolicy alone isolates as without Cilium, naming its except entry (" + ciliumK8sDoc + ")",
			policies: seedsPolicy + "---\n" + ciliumNP("other", "  endpointSelector: {matchLabels: {app: db}}\n  egressDeny:\n  - toEntities: [world]"),
			endpoint: "aws-imds", labels: web, tier: policy.TierNetworkPolicy, policy: "shop/allow-all-egress-except-metadata-api", rule: 0},
		{name: "AdminNetworkPolicies are not enforced by Cilium (" + ciliumK8sDoc + ")",
			policies: anp("deny-imds", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]") + allowWorld("open", ""),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/open", rule: 0},

		// Peers.
		{name: "toEntities world contains the metadata address, which is no node's address (" + ciliumEntityCode + ")",
			policies: allowWorld("open", ""), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/open", rule: 0},
		{name: "toEntities all contains every destination (" + ciliumEntityCode + ")",
			policies: only("all", "  - toEntities: [all]"), endpoint: "aws-imds-ipv6", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/all", rule: 0},
		{name: "toEntities world-ipv4 does not contain IPv6 addresses (" + ciliumEntityCode + ")",
			policies: only("v4", "  - toEntities: [world-ipv4]"), endpoint: "aws-imds-ipv6", labels: web, tier: policy.TierCilium, policy: "shop/v4", rule: policy.NoRule},
		{name: "toEntities world-ipv4 contains IPv4 outside addresses (" + ciliumEntityCode + ")",
			policies: only("v4", "  - toEntities: [world-ipv4]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/v4", rule: 0},
		{name: "toEntities cluster and host do not contain the metadata address (" + ciliumEntityCode + ")",
			policies: only("in", "  - toEntities: [cluster, host, remote-node, kube-apiserver]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/in", rule: policy.NoRule},
		{name: "toCIDR accepts a bare address (" + ciliumL3Doc + ")",
			policies: only("ip", "  - toCIDR: [169.254.169.254]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/ip", rule: 0},
		{name: "toCIDRSet except removes the metadata address; the reason names the rule (" + ciliumL3Doc + ")",
			policies: only("except", "  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [169.254.169.254/32]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/except", rule: 0},
		{name: "toCIDRSet except leaves other addresses allowed (" + ciliumL3Doc + ")",
			policies: only("except", "  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [169.254.169.254/32]}]"), endpoint: "azure-wireserver", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/except", rule: 0},
		{name: "toEndpoints selects pods, never an address outside the cluster (" + ciliumL3Doc + ")",
			policies: only("pods", "  - toEndpoints: [{}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/pods", rule: policy.NoRule},
		{name: "toEndpoints reserved:world selects the world identity (" + ciliumL3Doc + ")",
			policies: only("world", "  - toEndpoints: [{matchLabels: {'reserved:world': ''}}]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/world", rule: 0},
		{name: "toFQDNs matchName matches the endpoint's name (" + ciliumL3Doc + ")",
			policies: only("fqdn", "  - toFQDNs: [{matchName: metadata.google.internal}]"), endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/fqdn", rule: 0},
		{name: "toFQDNs matchPattern *.google.internal matches one label (" + ciliumFQDNCode + ")",
			policies: only("fqdn", "  - toFQDNs: [{matchPattern: '*.google.internal'}]"), endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/fqdn", rule: 0},
		{name: "toFQDNs matchPattern *.internal does not cross a dot (" + ciliumFQDNCode + ")",
			policies: only("fqdn", "  - toFQDNs: [{matchPattern: '*.internal'}]"), endpoint: "gcp-metadata", labels: web, tier: policy.TierCilium, policy: "shop/fqdn", rule: policy.NoRule},
		{name: "toFQDNs matchPattern * matches every name (" + ciliumFQDNCode + ")",
			policies: only("fqdn", "  - toFQDNs: [{matchPattern: '*'}]"), endpoint: "gcp-metadata", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/fqdn", rule: 0},
		{name: "a peer list given empty selects nothing (" + ciliumMergeCode + ")",
			policies: only("none", "  - toCIDR: []\n    toPorts: [{ports: [{port: '80'}]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/none", rule: policy.NoRule},

		// Ports.
		{name: "toPorts without peers: every destination on those ports (" + ciliumL4Doc + ")",
			policies: only("web", "  - toPorts: [{ports: [{port: '80', protocol: TCP}]}]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/web", rule: 0},
		{name: "protocol omitted is ANY: UDP matches (" + ciliumL4Doc + ")",
			policies: only("any", "  - toEntities: [world]\n    toPorts: [{ports: [{port: '53'}]}]"), endpoint: "169.254.169.254:53/UDP", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/any", rule: 0},
		{name: "port 0 is every port (" + ciliumL4Doc + ")",
			policies: only("zero", "  - toEntities: [world]\n    toPorts: [{ports: [{port: '0', protocol: TCP}]}]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/zero", rule: 0},
		{name: "endPort makes a range that includes its ends (" + ciliumL4Doc + ")",
			policies: only("range", "  - toEntities: [world]\n    toPorts: [{ports: [{port: '1', endPort: 80, protocol: TCP}]}]"), endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/range", rule: 0},
		{name: "a port outside the rule's ports does not match (" + ciliumL4Doc + ")",
			policies: only("tls", "  - toEntities: [world]\n    toPorts: [{ports: [{port: '443', protocol: TCP}]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/tls", rule: policy.NoRule},
		{name: "a named port never matches an address outside the cluster (" + ciliumL4Doc + ")",
			policies: only("named", "  - toEntities: [world]\n    toPorts: [{ports: [{port: http, protocol: TCP}]}]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/named", rule: policy.NoRule},
		{name: "a DNS L7 rule allows the connection at L4 (" + ciliumL4Doc + ")",
			policies: only("dns", "  - toEntities: [world]\n    toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]"), endpoint: "169.254.169.254:53/UDP", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/dns", rule: 0},
		{name: "egressDeny toPorts narrows the deny to its ports (" + ciliumDenyDoc + ")",
			policies: ciliumNP("deny-tls", "  endpointSelector: {}\n  enableDefaultDeny: {egress: false}\n  egressDeny:\n  - toEntities: [world]\n    toPorts: [{ports: [{port: '443', protocol: TCP}]}]"),
			endpoint: "aws-imds", labels: web, allowed: true, tier: policy.TierCilium, policy: "shop/deny-tls", rule: policy.NoRule},
		{name: "the second egressDeny rule is named by its index (" + ciliumDenyDoc + ")",
			policies: ciliumNP("two", "  endpointSelector: {}\n  egressDeny:\n  - toCIDR: [10.0.0.0/8]\n  - toCIDR: [169.254.0.0/16]"), endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/two", rule: 1},
		{name: "specs: each rule of a policy selects on its own (" + ciliumK8sDoc + ")",
			policies: "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: multi, namespace: shop}\nspecs:\n- endpointSelector: {matchLabels: {app: db}}\n  egressDeny: [{toEntities: [world]}]\n- endpointSelector: {matchLabels: {app: web}}\n  egressDeny: [{toCIDR: [169.254.169.254/32]}]\n---\n",
			endpoint: "aws-imds", labels: web, tier: policy.TierCilium, policy: "shop/multi", rule: 0},
	}
	for _, r := range rows {
		t.Run(r.name, r.run)
	}
}

// TestCiliumSeedsDenyEveryPod: the seeds-equivalent CiliumClusterwideNetworkPolicy denies both
// metadata addresses to every pod of every namespace, whatever its labels, service account and
// the other policies that allow its egress.
func TestCiliumSeedsDenyEveryPod(t *testing.T) {
	open := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: open, namespace: lab}\nspec:\n  endpointSelector: {}\n  egress: [{toEntities: [all]}]\n---\n"
	inputs := map[string]string{
		"alone":                          seedsCiliumPolicy,
		"with enableDefaultDeny false":   strings.Replace(seedsCiliumPolicy, "  endpointSelector: {}", "  endpointSelector: {}\n  enableDefaultDeny: {egress: false}", 1),
		"beside allow-all policies":      seedsCiliumPolicy + "---\n" + open + np("all", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]"),
		"beside the seeds NetworkPolicy": seedsCiliumPolicy + "---\n" + seedsPolicy,
	}
	pods := []policy.Subject{
		{Namespace: "shop", Labels: web},
		{Namespace: "shop"},
		{Namespace: "lab", Labels: map[string]string{"app": "notebook"}, ServiceAccount: "builder"},
		{Namespace: "other", Labels: map[string]string{"io.kubernetes.pod.namespace": "kube-system"}},
	}
	eps := []endpoint.Endpoint{endpointNamed(t, "aws-imds"), endpointNamed(t, "aws-imds-ipv6"), endpointNamed(t, "gcp-metadata"), endpointNamed(t, "azure-imds")}
	for name, in := range inputs {
		m := policy.Compile(load(t, namespaces+in))
		if len(m.Rejected) > 0 {
			t.Fatalf("%s: rejected %v", name, m.Rejected)
		}
		out := make([]policy.Verdict, len(eps))
		for _, p := range pods {
			m.Evaluate(p, eps, out)
			for i, v := range out {
				if v.Allowed || v.DecidedBy.Policy != "deny-instance-metadata" {
					t.Errorf("%s: %s/%v, %s: %s, want denied by deny-instance-metadata", name, p.Namespace, p.Labels, eps[i].Name, v)
				}
			}
		}
	}
}

// TestRejectedCiliumPolicies: Cilium policies its agent refuses, and those using what imdsguard
// cannot evaluate, are reported with their field and take no part in evaluation.
func TestRejectedCiliumPolicies(t *testing.T) {
	cases := []struct {
		name, manifest, field, message string
	}{
		{"no direction", ciliumNP("bad", "  endpointSelector: {}"), "spec", "at least one of ingress"},
		{"no selector", ciliumNP("bad", "  egressDeny: [{toEntities: [world]}]"), "spec", "one of endpointSelector or nodeSelector"},
		{"both selectors", ciliumCCNP("bad", "  endpointSelector: {}\n  nodeSelector: {}\n  egressDeny: [{toEntities: [world]}]"), "spec", "cannot have both"},
		{"two kinds of peer in one rule", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toCIDR: [10.0.0.0/8], toEntities: [world]}]"), "spec.egress[0]", "combining toCIDR and toEntities"},
		{"toFQDNs beside toCIDR", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toCIDR: [10.0.0.0/8], toFQDNs: [{matchName: a.b}]}]"), "spec.egress[0]", "combining toCIDR and toFQDNs"},
		{"an invalid CIDR", ciliumNP("bad", "  endpointSelector: {}\n  egressDeny: [{toCIDR: [169.254.169.254/33]}]"), "spec.egressDeny[0].toCIDR[0]", "unable to parse"},
		{"a toCIDRSet cidr without prefix", ciliumNP("bad", "  endpointSelector: {}\n  egressDeny: [{toCIDRSet: [{cidr: 169.254.169.254}]}]"), "spec.egressDeny[0].toCIDRSet[0].cidr", "unable to parse"},
		{"an except outside its cidr", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [169.254.169.254/32]}]}]"), "spec.egress[0].toCIDRSet[0].except[0]", "does not contain"},
		{"an unknown entity", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toEntities: [internet]}]"), "spec.egress[0].toEntities[0]", "unsupported entity"},
		{"a port without number", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{protocol: TCP}]}]}]"), "spec.egress[0].toPorts[0].ports[0].port", "port must be specified"},
		{"an unknown protocol", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{port: '80', protocol: QUIC}]}]}]"), "spec.egress[0].toPorts[0].ports[0].protocol", "unsupported protocol"},
		{"endPort below port", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{port: '80', endPort: 79}]}]}]"), "spec.egress[0].toPorts[0].ports[0].endPort", "must be between"},
		{"icmps with toPorts", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{icmps: [{fields: [{type: 8}]}], toPorts: [{ports: [{port: '80'}]}]}]"), "spec.egress[0].icmps", "without toPorts"},
		{"an unknown selector operator", ciliumNP("bad", "  endpointSelector: {matchExpressions: [{key: app, operator: Equals, values: [web]}]}\n  egressDeny: [{toEntities: [world]}]"), "spec.endpointSelector.matchExpressions[0].operator", "unknown operator"},
		{"matchName and matchPattern together", ciliumNP("bad", "  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: a.b, matchPattern: '*.b'}]}]"), "spec.egress[0].toFQDNs[0]", "only one of"},
		// What imdsguard cannot evaluate.
		{"toServices", ciliumNP("svc", "  endpointSelector: {}\n  egress: [{toServices: [{k8sService: {serviceName: s, namespace: shop}}]}]"), "spec.egress[0].toServices", "does not read"},
		{"a cidrGroupRef", ciliumNP("grp", "  endpointSelector: {}\n  egressDeny: [{toCIDRSet: [{cidrGroupRef: metadata}]}]"), "spec.egressDeny[0].toCIDRSet[0]", "CiliumCIDRGroups"},
		{"an HTTP rule", ciliumNP("http", "  endpointSelector: {}\n  egress: [{toEntities: [world], toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET}]}}]}]"), "spec.egress[0].toPorts[0].rules", "Cilium's proxy"},
		{"a world-ipv4 deny", ciliumNP("v4", "  endpointSelector: {}\n  egressDeny: [{toEntities: [world-ipv4]}]"), "spec.egressDeny[0].toEntities[0]", "dual-stack"},
		{"Cilium and Calico policies together", seedsCiliumPolicy + "---\n" + seedsGlobalNetworkPolicy, "spec", "imdsguard evaluates Calico's"},
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
			if p.Source.File == "" || p.Object == nil {
				t.Errorf("rejection does not point at a file and object: %+v", p)
			}
			if strings.Contains(c.manifest, "kind: GlobalNetworkPolicy") {
				return
			}
			out := make([]policy.Verdict, 1)
			m.Evaluate(policy.Subject{Namespace: "shop", Labels: web}, []endpoint.Endpoint{endpointNamed(t, "aws-imds")}, out)
			if out[0].DecidedBy.Tier != policy.TierDefault {
				t.Errorf("a rejected policy took part in evaluation: %v", out[0])
			}
		})
	}
}

// TestCiliumNotesExplainAndControl: host policies and unenforced admin policies are noted, the
// reason and the trace name the deciding rule, and EgressControl lists the Cilium policies.
func TestCiliumNotesExplainAndControl(t *testing.T) {
	in := seedsCiliumPolicy + "---\n" +
		ciliumCCNP("nodes", "  nodeSelector: {}\n  egressDeny: [{toEntities: [world]}]") +
		ciliumNP("web-out", "  endpointSelector: {matchLabels: {app: web}}\n  egress:\n  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [169.254.169.254/32]}]") +
		ciliumCCNP("lab-only", "  endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': lab}}\n  egressDeny: [{toEntities: [world]}]") +
		anp("deny-imds", "  priority: 10\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [169.254.169.254/32]}]")
	m := policy.Compile(load(t, namespaces+in))
	if len(m.Rejected) > 0 {
		t.Fatalf("rejected: %v", m.Rejected)
	}
	if len(m.HostEndpointPolicies) != 1 || m.HostEndpointPolicies[0].Object.Name != "nodes" || !strings.Contains(m.HostEndpointPolicies[0].String(), "host policy") {
		t.Errorf("host policies = %v", m.HostEndpointPolicies)
	}
	if len(m.NotEnforced) != 1 || m.NotEnforced[0].Object.Name != "deny-imds" || !strings.Contains(m.NotEnforced[0].String(), "Cilium does not implement AdminNetworkPolicy") {
		t.Errorf("not enforced = %v", m.NotEnforced)
	}
	if c := m.EgressControl("shop"); strings.Join(c.Cilium, ",") != "deny-instance-metadata,shop/web-out" || len(c.Admin) != 0 || !c.Any() {
		t.Errorf("EgressControl(shop) = %+v", c)
	}
	if c := m.EgressControl("lab"); strings.Join(c.Cilium, ",") != "deny-instance-metadata,lab-only" {
		t.Errorf("EgressControl(lab).Cilium = %v", c.Cilium)
	}
	web := policy.Subject{Namespace: "shop", Labels: web}
	if !m.Isolated(web) {
		t.Errorf("a pod under Cilium default deny is not reported isolated")
	}
	v, traces := m.Explain(web, []endpoint.Endpoint{endpointNamed(t, "aws-imds"), endpointNamed(t, "azure-wireserver"), endpointNamed(t, "aws-imds-ipv6")})
	want := []string{
		"CiliumClusterwideNetworkPolicy deny-instance-metadata egressDeny[0]: Deny (toCIDR 169.254.169.254/32)",
		"CiliumNetworkPolicy shop/web-out egress[0]: Allow (toCIDRSet 0.0.0.0/0 except 169.254.169.254/32)",
		"CiliumClusterwideNetworkPolicy deny-instance-metadata egressDeny[0]: Deny (toCIDR fd00:ec2::254/128)",
	}
	for i := range want {
		if got := v[i].DecidedBy.String(); got != want[i] {
			t.Errorf("reason %d = %q, want %q", i, got, want[i])
		}
	}
	traceContains(t, traces[1],
		"CiliumClusterwideNetworkPolicy spec selects the pod: egress default-deny",
		"egressDeny[0] does not match",
		"egress[0] allows 168.63.129.16")
}
