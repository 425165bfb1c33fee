package inventory

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// cnpDoc renders a ClusterNetworkPolicy manifest at an apiVersion.
func cnpDoc(apiVersion, name, tier string, priority int) string {
	return fmt.Sprintf(`apiVersion: %s
kind: ClusterNetworkPolicy
metadata: {name: %s, namespace: ignored}
spec:
  tier: %s
  priority: %d
  subject: {namespaces: {}}
  egress:
  - name: deny-metadata
    action: Deny
    to: [{networks: [169.254.169.254/32, "fd00:ec2::254/128"]}]
    protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 1000, end: 2000}}}}]
status: {conditions: [{type: Ready, status: "True", reason: x, message: y, lastTransitionTime: "2026-01-01T00:00:00Z"}]}
`, apiVersion, name, tier, priority)
}

// TestLoadClusterNetworkPolicies: ClusterNetworkPolicies of both served versions (network-policy-api
// v0.3.0 serves v1alpha2 and v1beta1 with identical schemas) decode into the v1beta1 type and
// remember their apiVersion; they are cluster-scoped; a type error names file, document and
// field; another version is skipped with the versions to use.
func TestLoadClusterNetworkPolicies(t *testing.T) {
	cases := []loadCase{
		{
			name: "v1alpha2 and v1beta1 ClusterNetworkPolicies load as the v1beta1 type with their apiVersion, without a namespace",
			files: map[string]string{"cnp.yaml": cnpDoc("policy.networking.k8s.io/v1alpha2", "old", "Admin", 10) + "---\n" +
				cnpDoc("policy.networking.k8s.io/v1beta1", "new", "Baseline", 20)},
			want: loadWant{files: 1, docs: 2},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.ClusterNetworkPolicies) != 2 {
					t.Fatalf("%d ClusterNetworkPolicies, want 2", len(inv.ClusterNetworkPolicies))
				}
				if inv.Objects() != 2 {
					t.Errorf("Objects() = %d, want 2", inv.Objects())
				}
				want := []struct {
					name, apiVersion, tier string
					priority               int32
					doc                    int
				}{
					{"old", ClusterNetworkPolicyV1Alpha2, "Admin", 10, 1},
					{"new", ClusterNetworkPolicyV1Beta1, "Baseline", 20, 2},
				}
				for i, w := range want {
					c := inv.ClusterNetworkPolicies[i]
					p := c.Policy
					if p.Name != w.name || c.APIVersion != w.apiVersion || string(p.Spec.Tier) != w.tier || p.Spec.Priority != w.priority || c.Source.Document != w.doc {
						t.Errorf("policy %d: %s at %s, tier %s, priority %d, document %d; want %s at %s, tier %s, priority %d, document %d",
							i, p.Name, c.APIVersion, p.Spec.Tier, p.Spec.Priority, c.Source.Document, w.name, w.apiVersion, w.tier, w.priority, w.doc)
					}
					if p.Namespace != "" {
						t.Errorf("policy %s has namespace %q; ClusterNetworkPolicy is cluster-scoped", p.Name, p.Namespace)
					}
					if len(p.Status.Conditions) != 0 {
						t.Errorf("policy %s: status decoded; the audit never reads it", p.Name)
					}
					e := p.Spec.Egress
					if len(e) != 1 || e[0].Name != "deny-metadata" || string(e[0].Action) != "Deny" || len(e[0].To) != 1 || len(e[0].To[0].Networks) != 2 ||
						len(e[0].Protocols) != 2 || e[0].Protocols[0].TCP.DestinationPort.Number != 80 || e[0].Protocols[1].UDP.DestinationPort.Range.End != 2000 {
						t.Errorf("policy %s: egress decoded as %+v", p.Name, e)
					}
				}
			},
		},
		{
			name: "a ClusterNetworkPolicy with a type error is a problem naming file, document and field; the same name read twice keeps the later one",
			files: map[string]string{"bad.yaml": `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: bad}
spec: {tier: Admin, priority: "high", subject: {namespaces: {}}}
---
` + cnpDoc("policy.networking.k8s.io/v1beta1", "twice", "Admin", 1) + "---\n" + cnpDoc("policy.networking.k8s.io/v1alpha2", "twice", "Admin", 2)},
			want: loadWant{files: 1, docs: 3,
				problems: []wantProblem{{src: "bad.yaml#1@1", field: "spec.priority", msg: "cannot decode ClusterNetworkPolicy"}},
				warnings: []string{"ClusterNetworkPolicy/twice read twice"}},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.ClusterNetworkPolicies) != 1 || inv.ClusterNetworkPolicies[0].Policy.Spec.Priority != 2 || inv.ClusterNetworkPolicies[0].APIVersion != ClusterNetworkPolicyV1Alpha2 {
					t.Errorf("want the later copy of twice (priority 2, v1alpha2), got %d policies", len(inv.ClusterNetworkPolicies))
				}
			},
		},
		{
			name:  "a ClusterNetworkPolicy at another version is skipped, naming the versions to use",
			files: map[string]string{"v1.yaml": cnpDoc("policy.networking.k8s.io/v1", "future", "Admin", 1)},
			want: loadWant{files: 1, docs: 1,
				skipped: []wantSkipped{{src: "v1.yaml#1@1", kind: "ClusterNetworkPolicy", reason: "use policy.networking.k8s.io/v1beta1 or policy.networking.k8s.io/v1alpha2"}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}

// TestLoadAWSClusterNetworkPolicies: the AWS VPC CNI's networking.k8s.aws/v1alpha1
// ClusterNetworkPolicy decodes into its own type, cluster-scoped, named apart from
// network-policy-api's kind of the same name; another version is skipped naming v1alpha1.
func TestLoadAWSClusterNetworkPolicies(t *testing.T) {
	cases := []loadCase{
		{
			name: "an AWS ClusterNetworkPolicy and a network-policy-api one of the same name are two objects",
			files: map[string]string{"aws.yaml": `apiVersion: networking.k8s.aws/v1alpha1
kind: ClusterNetworkPolicy
metadata: {name: same, namespace: ignored}
spec:
  tier: Admin
  priority: 3
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  egress:
  - name: deny-imds
    action: Deny
    to: [{networks: [169.254.169.254/32]}]
    ports: [{portNumber: {protocol: TCP, port: 80}}, {portRange: {start: 1000, end: 2000}}, {namedPort: http}]
---
` + cnpDoc("policy.networking.k8s.io/v1beta1", "same", "Admin", 3)},
			want: loadWant{files: 1, docs: 2},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.AWSClusterNetworkPolicies) != 1 || len(inv.ClusterNetworkPolicies) != 1 || len(inv.Warnings) != 0 {
					t.Fatalf("%d AWS and %d upstream ClusterNetworkPolicies, warnings %q; want 1, 1 and none", len(inv.AWSClusterNetworkPolicies), len(inv.ClusterNetworkPolicies), inv.Warnings)
				}
				p := inv.AWSClusterNetworkPolicies[0].Policy
				if p.Namespace != "" || p.Spec.Tier != "Admin" || p.Spec.Priority != 3 || p.Spec.Subject.Pods == nil || len(p.Spec.Egress) != 1 {
					t.Fatalf("decoded %+v", p)
				}
				ports := *p.Spec.Egress[0].Ports
				if len(ports) != 3 || ports[0].PortNumber.Port != 80 || ports[1].PortRange.End != 2000 || *ports[2].NamedPort != "http" {
					t.Errorf("ports decoded as %+v", ports)
				}
			},
		},
		{
			name:  "an AWS ClusterNetworkPolicy at another version is skipped, naming v1alpha1",
			files: map[string]string{"v1.yaml": "apiVersion: networking.k8s.aws/v1\nkind: ClusterNetworkPolicy\nmetadata: {name: future}\n"},
			want: loadWant{files: 1, docs: 1,
				skipped: []wantSkipped{{src: "v1.yaml#1@1", kind: "ClusterNetworkPolicy", reason: "use networking.k8s.aws/v1alpha1"}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}

// TestDecodingClusterNetworkPolicyMatchesKubernetes: every field of a ClusterNetworkPolicy, at
// both versions, decodes as the API server's decoder (k8s.io/apimachinery/pkg/util/json)
// decodes it; only the status, which the audit never reads, is skipped.
func TestDecodingClusterNetworkPolicyMatchesKubernetes(t *testing.T) {
	const spec = `
metadata: {name: every-field, labels: {team: platform}, annotations: {note: x}}
spec:
  tier: Admin
  priority: 42
  subject: {pods: {namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}, podSelector: {matchLabels: {app: web}}}}
  ingress:
  - name: from-ns
    action: Pass
    from: [{namespaces: {}}, {pods: {namespaceSelector: {}, podSelector: {}}}]
    protocols: [{destinationNamedPort: http}]
  egress:
  - name: accept-fqdn
    action: Accept
    to: [{domainNames: ['*.google.internal', metadata.google.internal.]}]
  - name: deny
    action: Deny
    to: [{networks: [169.254.169.254/32, 'fd00:ec2::254/128']}, {nodes: {matchLabels: {role: worker}}}, {namespaces: {}}]
    protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 1, end: 2}}}}, {sctp: {destinationPort: {number: 9}}}]
status: {conditions: [{type: Ready, status: "True", reason: r, message: m, lastTransitionTime: "2026-01-01T00:00:00Z"}]}
`
	for _, apiVersion := range []string{ClusterNetworkPolicyV1Alpha2, ClusterNetworkPolicyV1Beta1} {
		js, err := yaml.YAMLToJSON([]byte("apiVersion: " + apiVersion + "\nkind: ClusterNetworkPolicy\n" + spec))
		if err != nil {
			t.Fatal(err)
		}
		ours := newObject[kindKey{apiVersion, "ClusterNetworkPolicy"}]().(*cnpv1beta1.ClusterNetworkPolicy)
		if err := unmarshal(js, ours); err != nil {
			t.Fatalf("%s: %v", apiVersion, err)
		}
		var theirs cnpv1beta1.ClusterNetworkPolicy
		if err := utiljson.Unmarshal(js, &theirs); err != nil {
			t.Fatalf("%s: Kubernetes' decoder: %v", apiVersion, err)
		}
		if len(theirs.Status.Conditions) != 1 || len(theirs.Spec.Egress) != 2 {
			t.Fatalf("%s: the reference decode lost fields: %+v", apiVersion, theirs)
		}
		theirs.Status = cnpv1beta1.ClusterNetworkPolicyStatus{}
		if diff := cmp.Diff(&theirs, ours); diff != "" {
			t.Errorf("%s decodes differently (-kubernetes +imdsguard):\n%s", apiVersion, diff)
		}
	}
}

// TestFromObjectsClusterNetworkPolicies: an informer cache's typed ClusterNetworkPolicies, at
// v1beta1 or v1alpha2, land in the inventory as the v1beta1 type with their version.
func TestFromObjectsClusterNetworkPolicies(t *testing.T) {
	beta := &cnpv1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "beta"},
		Spec: cnpv1beta1.ClusterNetworkPolicySpec{Tier: cnpv1beta1.AdminTier, Priority: 1}}
	alpha := &cnpv1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "alpha"},
		Spec: cnpv1alpha2.ClusterNetworkPolicySpec{Tier: cnpv1alpha2.BaselineTier, Priority: 2,
			Egress: []cnpv1alpha2.ClusterNetworkPolicyEgressRule{{Action: cnpv1alpha2.ClusterNetworkPolicyRuleActionDeny,
				To: []cnpv1alpha2.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1alpha2.CIDR{"169.254.169.254/32"}}}}}}}
	inv, err := FromObjects([]runtime.Object{beta, alpha})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.ClusterNetworkPolicies) != 2 {
		t.Fatalf("%d ClusterNetworkPolicies, want 2", len(inv.ClusterNetworkPolicies))
	}
	b, a := inv.ClusterNetworkPolicies[0], inv.ClusterNetworkPolicies[1]
	if b.Policy.Name != "beta" || b.APIVersion != ClusterNetworkPolicyV1Beta1 {
		t.Errorf("first: %s at %s, want beta at %s", b.Policy.Name, b.APIVersion, ClusterNetworkPolicyV1Beta1)
	}
	if a.Policy.Name != "alpha" || a.APIVersion != ClusterNetworkPolicyV1Alpha2 || a.Policy.Spec.Tier != cnpv1beta1.BaselineTier ||
		len(a.Policy.Spec.Egress) != 1 || a.Policy.Spec.Egress[0].To[0].Networks[0] != "169.254.169.254/32" {
		t.Errorf("second: %s at %s, spec %+v; want alpha at %s with its rule", a.Policy.Name, a.APIVersion, a.Policy.Spec, ClusterNetworkPolicyV1Alpha2)
	}
}
