package generate

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	networkingv1 "k8s.io/api/networking/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const exampleDir = "../../examples/cluster"

var mixedDir = filepath.Join("testdata", "mixed")

// load reads manifests through the real loader, failing on any problem.
func load(t *testing.T, paths ...string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(paths, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("input problems: %v", inv.Problems)
	}
	return inv
}

// loadYAML loads one YAML document stream.
func loadYAML(t *testing.T, doc string) *inventory.Inventory {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return load(t, path)
}

func eps(clouds ...endpoint.Cloud) []endpoint.Endpoint { return endpoint.Select(clouds) }

// options returns the defaults for the clouds, with the layers and inventory given.
func options(inv *inventory.Inventory, layers []Layer, clouds ...endpoint.Cloud) Options {
	o := DefaultOptions(eps(clouds...))
	o.Layers = layers
	o.Inventory = inv
	return o
}

func mustGenerate(t *testing.T, o Options) *Output {
	t.Helper()
	out, err := Generate(o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return out
}

// goldenDir compares files with testdata/golden/name, or rewrites that directory with -update.
func goldenDir(t *testing.T, name string, files []File) {
	t.Helper()
	dir := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			path := filepath.Join(dir, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.Content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := map[string]bool{}
	for _, f := range files {
		want[filepath.ToSlash(f.Path)] = true
		golden, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Errorf("%v (run go test ./internal/generate -run Golden -update to create it)", err)
			continue
		}
		if diff := cmp.Diff(string(golden), string(f.Content)); diff != "" {
			t.Errorf("%s/%s differs from the golden file (-want +got); rerun with -update if the change is intended:\n%s", name, f.Path, diff)
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !want[filepath.ToSlash(rel)] {
			t.Errorf("golden file %s/%s is no longer generated (rerun with -update)", name, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  string
		clouds []endpoint.Cloud
		layers []Layer
		format Format
	}{
		// Every layer that applies to AWS, on the quick start's cluster.
		{"example-aws", exampleDir, []endpoint.Cloud{endpoint.AWS}, nil, YAML},
		// Every cloud: shared IMDS address, Azure WireServer next to Azure DNS, Alibaba.
		{"example-all", exampleDir, []endpoint.Cloud{endpoint.All}, nil, YAML},
		// Where the NetworkPolicy layer does generate, and every reason it refuses.
		{"mixed-networkpolicy", mixedDir, []endpoint.Cloud{endpoint.All}, []Layer{NetworkPolicy}, YAML},
		// JSON Lists.
		{"example-aws-json", exampleDir, []endpoint.Cloud{endpoint.AWS}, []Layer{AdminNetworkPolicy, Admission}, JSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustGenerate(t, options(load(t, tc.input), tc.layers, tc.clouds...))
			files, err := out.OutputFiles(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			goldenDir(t, tc.name, files)
		})
	}
}

func TestDefaultLayers(t *testing.T) {
	if got := DefaultLayers(eps(endpoint.AWS)); !slices.Equal(got, Layers) {
		t.Errorf("AWS: got %v, want every layer", got)
	}
	if got := DefaultLayers(eps(endpoint.GCP)); slices.Contains(got, EC2) || len(got) != len(Layers)-1 {
		t.Errorf("GCP: got %v, want every layer but ec2", got)
	}
	got, err := ParseLayers([]string{"ec2,node", "calico", "node"})
	if err != nil || !slices.Equal(got, []Layer{Calico, Node, EC2}) {
		t.Errorf("ParseLayers: got %v, %v; want [calico node ec2] (generation order, no duplicates)", got, err)
	}
	if _, err := ParseLayers([]string{"networkpolicy,firewall"}); err == nil || !strings.Contains(err.Error(), `unknown layer "firewall"`) {
		t.Errorf("ParseLayers of an unknown layer: got %v", err)
	}
}

// namespace with a deployment "app" of label app=app, and optional extra documents.
func namespace(name string, extra ...string) string {
	doc := `apiVersion: v1
kind: Namespace
metadata: {name: ` + name + `}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ` + name + `}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: app}]}
`
	for _, e := range extra {
		doc += "---\n" + e
	}
	return doc
}

const defaultDenyEgress = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: ns}
spec:
  podSelector: {}
  policyTypes: [Egress]
`

func TestNetworkPolicySafety(t *testing.T) {
	for _, tc := range []struct {
		sentence string
		cluster  string
		opts     func(*Options)
		// generated and refused are the namespaces expected to get a policy, and to be refused.
		generated, refused []string
		reason             string // substring of the refusal
	}{
		{sentence: "a namespace without egress policies gets the policy",
			cluster: namespace("ns"), generated: []string{"ns"}},
		{sentence: "a namespace with a default-deny egress policy is refused, naming the policy and the isolated workload",
			cluster: namespace("ns", defaultDenyEgress), refused: []string{"ns"},
			reason: "egress policies govern this namespace (ns/default-deny-egress), isolating Deployment/app"},
		{sentence: "an egress policy that selects no pod yet still refuses the namespace",
			cluster: namespace("ns", strings.Replace(defaultDenyEgress, "podSelector: {}", "podSelector: {matchLabels: {app: future}}", 1)),
			refused: []string{"ns"}, reason: "isolating no pod or workload in the input yet"},
		{sentence: "an ingress-only policy does not refuse the namespace",
			cluster:   namespace("ns", strings.Replace(defaultDenyEgress, "[Egress]", "[Ingress]", 1)),
			generated: []string{"ns"}},
		{sentence: "a BaselineAdminNetworkPolicy restricting the namespace refuses it",
			cluster: namespace("ns", `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress: [{name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}]
`), refused: []string{"ns"}, reason: "BaselineAdminNetworkPolicy default restricts egress here"},
		{sentence: "a Baseline tier ClusterNetworkPolicy restricting the namespace refuses it: a NetworkPolicy would override its denials",
			cluster: namespace("ns", `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: baseline-deny}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {}}
  egress: [{name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}]
`), refused: []string{"ns"}, reason: "Baseline tier ClusterNetworkPolicy baseline-deny restricts egress here"},
		{sentence: "an Admin tier ClusterNetworkPolicy does not refuse the namespace: a NetworkPolicy cannot override it",
			cluster: namespace("ns", `apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: admin-deny}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  egress: [{name: deny-internal, action: Deny, to: [{networks: [10.0.0.0/8]}]}]
`), generated: []string{"ns"}},
		{sentence: "a foreign policy with the generated policy's name refuses the namespace",
			cluster: namespace("ns", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: imdsguard-deny-metadata, namespace: ns}
spec: {podSelector: {}, policyTypes: [Ingress]}
`), refused: []string{"ns"}, reason: "that imdsguard did not generate"},
		{sentence: "a policy generated earlier is replaced, not a reason to refuse",
			cluster: namespace("ns", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: imdsguard-deny-metadata, namespace: ns, labels: {app.kubernetes.io/managed-by: imdsguard}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]
`), generated: []string{"ns"}},
		{sentence: "a refused namespace still holding a policy generated earlier is told to delete it",
			cluster: namespace("ns", defaultDenyEgress, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: imdsguard-deny-metadata, namespace: ns, labels: {app.kubernetes.io/managed-by: imdsguard}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]
`), refused: []string{"ns"}, reason: "kubectl delete networkpolicy -n ns imdsguard-deny-metadata"},
		{sentence: "a Calico GlobalNetworkPolicy isolating every pod refuses every namespace, as the Calico engine says",
			cluster: namespace("ns", `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: default-deny}
spec: {selector: all(), types: [Egress]}
`), refused: []string{"ns"}, reason: "egress policies govern this namespace (default-deny), isolating Deployment/app"},
		{sentence: "a Calico NetworkPolicy isolating one workload refuses its namespace: an allow-all NetworkPolicy would open it to the internet",
			cluster: namespace("ns", `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: internal-only, namespace: ns}
spec:
  selector: app == 'app'
  types: [Egress]
  egress: [{action: Allow, destination: {nets: [10.0.0.0/8]}}]
`), refused: []string{"ns"}, reason: "egress policies govern this namespace (ns/internal-only), isolating Deployment/app"},
		{sentence: "a Calico deny in a tier that passes the rest, before the default tier, does not refuse: it isolates nothing",
			cluster: namespace("ns", `apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.deny-smtp}
spec: {tier: security, selector: all(), types: [Egress], egress: [{action: Deny, protocol: TCP, destination: {ports: [25]}}]}
`), generated: []string{"ns"}},
		{sentence: "a namespaced Cilium policy refuses its own namespace only",
			cluster: namespace("ns") + "---\n" + namespace("other", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lock-down, namespace: other}
spec:
  endpointSelector: {}
  egress: [{toEntities: [cluster]}]
`), generated: []string{"ns"}, refused: []string{"other"}, reason: "egress policies govern this namespace (other/lock-down)"},
		{sentence: "an extensions/v1beta1 NetworkPolicy, no longer served, is not silently ignored",
			cluster: namespace("ns", strings.Replace(defaultDenyEgress, "networking.k8s.io/v1", "extensions/v1beta1", 1)),
			refused: []string{"ns"}, reason: "extensions/v1beta1 NetworkPolicy at "},
		{sentence: "the Calico and Cilium policies generate wrote are not a reason to refuse",
			cluster: namespace("ns", `apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: imdsguard, labels: {app.kubernetes.io/managed-by: imdsguard}}
spec: {order: 500, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: imdsguard.deny-metadata, labels: {app.kubernetes.io/managed-by: imdsguard}}
spec: {tier: imdsguard, selector: has(projectcalico.org/namespace), types: [Egress], egress: [{action: Pass}]}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: imdsguard-deny-metadata, labels: {app.kubernetes.io/managed-by: imdsguard}}
spec:
  endpointSelector: {}
  enableDefaultDeny: {egress: false, ingress: false}
  egressDeny: [{toCIDR: [169.254.169.254/32]}]
`), generated: []string{"ns"}},
		{sentence: "exempt namespaces are neither protected nor refused",
			cluster:   namespace("ns") + "---\n" + namespace("kube-system", strings.Replace(defaultDenyEgress, "namespace: ns", "namespace: kube-system", 1)),
			generated: []string{"ns"}},
		{sentence: "--namespace limits the layer to the namespaces named",
			cluster: namespace("ns") + "---\n" + namespace("other", strings.Replace(defaultDenyEgress, "namespace: ns", "namespace: other", 1)),
			opts:    func(o *Options) { o.Namespaces = []string{"ns"} }, generated: []string{"ns"}},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			o := options(loadYAML(t, tc.cluster), []Layer{NetworkPolicy}, endpoint.AWS)
			if tc.opts != nil {
				tc.opts(&o)
			}
			out := mustGenerate(t, o)
			var generated, refused []string
			for _, m := range out.Manifests {
				generated = append(generated, m.Object.(*networkingv1.NetworkPolicy).Namespace)
			}
			for _, r := range out.Refusals {
				refused = append(refused, r.Namespace)
				if !strings.Contains(r.String(), tc.reason) {
					t.Errorf("refusal of %s: %q does not say %q", r.Namespace, r, tc.reason)
				}
				if !slices.Equal(r.Instead, []Layer{ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium, Node}) {
					t.Errorf("refusal of %s points to %v, want the deny-capable layers", r.Namespace, r.Instead)
				}
			}
			if !slices.Equal(generated, tc.generated) || !slices.Equal(refused, tc.refused) {
				t.Errorf("generated %v and refused %v; want %v and %v", generated, refused, tc.generated, tc.refused)
			}
		})
	}
}

func TestGeneratedPolicyShape(t *testing.T) {
	np := buildNetworkPolicy("ns", eps(endpoint.All), DefaultExemptionLabel)
	egress := np.Spec.Egress
	if len(egress) != 3 {
		t.Fatalf("got %d egress rules, want 3 (outside, in-cluster, DNS)", len(egress))
	}
	v4, v6 := egress[0].To[0].IPBlock, egress[0].To[1].IPBlock
	if v4.CIDR != "0.0.0.0/0" || !slices.Equal(v4.Except, []string{"169.254.169.254/32", "168.63.129.16/32", "100.100.100.200/32"}) {
		t.Errorf("IPv4 block: %+v", v4)
	}
	if v6.CIDR != "::/0" || !slices.Equal(v6.Except, []string{"fd00:ec2::254/128"}) {
		t.Errorf("IPv6 block: %+v", v6)
	}
	if ns := egress[1].To[0].NamespaceSelector; ns == nil || len(ns.MatchLabels)+len(ns.MatchExpressions) != 0 || egress[1].To[0].PodSelector != nil {
		t.Errorf("in-cluster rule: want an empty namespaceSelector peer, got %+v", egress[1].To)
	}
	if len(egress[2].To) != 0 || len(egress[2].Ports) != 2 || egress[2].Ports[0].Port.IntVal != 53 {
		t.Errorf("DNS rule: want UDP and TCP 53 to every destination, got %+v", egress[2])
	}
	sel := np.Spec.PodSelector.MatchExpressions
	if len(sel) != 1 || sel[0].Key != DefaultExemptionLabel || sel[0].Operator != "NotIn" || !slices.Equal(sel[0].Values, []string{"allow"}) {
		t.Errorf("podSelector: %+v", np.Spec.PodSelector)
	}
	if np.Labels[ManagedByLabel] != ManagedBy {
		t.Errorf("labels: %v", np.Labels)
	}
	if got := buildNetworkPolicy("ns", eps(endpoint.AWS), "").Spec.PodSelector; len(got.MatchExpressions)+len(got.MatchLabels) != 0 {
		t.Errorf("without an exemption label the policy must select every pod, got %+v", got)
	}
}

func TestOptionErrors(t *testing.T) {
	mixed := load(t, mixedDir)
	for _, tc := range []struct {
		sentence string
		opts     func(*Options)
		want     string
	}{
		{"the networkpolicy layer without manifests says why it needs them",
			func(o *Options) { o.Inventory = nil; o.Layers = []Layer{NetworkPolicy} }, "only adds allowances"},
		{"the default layers include networkpolicy, so they need manifests too",
			func(o *Options) { o.Inventory = nil; o.Layers = nil }, "needs the cluster's manifests"},
		{"ec2 needs an AWS endpoint",
			func(o *Options) { o.Endpoints = eps(endpoint.GCP); o.Layers = []Layer{EC2} }, "AWS only"},
		{"a namespace both requested and exempt",
			func(o *Options) { o.Namespaces = []string{"kube-system"} }, "both requested"},
		{"a namespace not in the input",
			func(o *Options) { o.Namespaces = []string{"nowhere"} }, "not in the input"},
		{"--namespace without the networkpolicy layer",
			func(o *Options) { o.Namespaces = []string{"web"}; o.Layers = []Layer{Calico} }, "not selected"},
		{"an exemption label that is not a label key",
			func(o *Options) { o.ExemptionLabel = "not a key!" }, "not a label key"},
		{"a priority out of range",
			func(o *Options) { o.AdminPriority = 1001 }, "out of range 0-1000"},
		{"a namespace name that is not one",
			func(o *Options) { o.ExemptNamespaces = []string{"Kube_System"} }, "not a namespace name"},
		{"no credential endpoint",
			func(o *Options) { o.Endpoints = keepReachable(eps(endpoint.AWS)) }, "nothing to deny"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			o := options(mixed, []Layer{NetworkPolicy, AdminNetworkPolicy}, endpoint.AWS)
			tc.opts(&o)
			_, err := Generate(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	o := options(nil, []Layer{NetworkPolicy}, endpoint.AWS)
	if _, err := Generate(o); !errors.Is(err, ErrNeedsInventory) {
		t.Errorf("got %v, want ErrNeedsInventory", err)
	}
}

func TestInputErrors(t *testing.T) {
	for _, tc := range []struct {
		sentence string
		doc      string
		want     string
	}{
		{"a document that cannot be read", "apiVersion: v1\nkind: Pod\nmetadata: {name: [broken}\n", "invalid YAML"},
		{"a policy the API server would reject, with its field", namespace("ns", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: ns}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]}]
`), "spec.egress[0].to[0].ipBlock.except[0]"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			inv, err := inventory.Load([]string{path}, inventory.Options{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := Generate(options(inv, []Layer{AdminNetworkPolicy}, endpoint.AWS))
			var input *InputError
			if !errors.As(err, &input) || out != nil {
				t.Fatalf("got %v, %v; want an *InputError and no output", out, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cluster.yaml") {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
}

func TestNotes(t *testing.T) {
	out := mustGenerate(t, options(load(t, mixedDir), []Layer{NetworkPolicy, AdminNetworkPolicy, Admission}, endpoint.AWS))
	for _, want := range []string{
		"DaemonSet web/node-exporter uses hostNetwork: no NetworkPolicy",
		"admission layer: DaemonSet web/node-exporter uses hostNetwork outside the allowed namespaces",
		"Deployment web/legacy-agent carries imdsguard.io/metadata-access=allow",
	} {
		if !slices.ContainsFunc(out.Notes, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("no note says %q; notes: %q", want, out.Notes)
		}
	}
}

// TestVerifyUsesEachPodsServiceAccount: a Calico policy allowing the metadata endpoint to one
// service account keeps that pod reachable whatever an AdminNetworkPolicy says later (Calico's
// tier security comes before kube-admin); verification must see it with the pod's own service
// account, not "default", and refuse to call the AdminNetworkPolicy verified.
func TestVerifyUsesEachPodsServiceAccount(t *testing.T) {
	inv := loadYAML(t, `apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: metrics, namespace: monitoring}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: exporter, namespace: monitoring}
spec:
  selector: {matchLabels: {app: exporter}}
  template:
    metadata: {labels: {app: exporter}}
    spec: {serviceAccountName: metrics, containers: [{name: exporter, image: exporter}]}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.metrics-imds}
spec:
  tier: security
  order: 10
  serviceAccountSelector: projectcalico.org/name == 'metrics'
  types: [Egress]
  egress: [{action: Allow, destination: {nets: [169.254.169.254/32]}}]
`)
	_, err := Generate(options(inv, []Layer{AdminNetworkPolicy}, endpoint.AWS))
	var verr *VerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("Generate: %v, want a verification error", err)
	}
	if msg := verr.Error(); !strings.Contains(msg, "Deployment monitoring/exporter") || !strings.Contains(msg, "security.metrics-imds") {
		t.Errorf("verification error %q does not name the exporter and the Calico policy that keeps it reachable", msg)
	}
}

// TestLayersFollowEnforcement: a policy layer of a kind the cluster's engine does not enforce
// is refused with the engine's reason, pointing to the deny-capable layers it does enforce;
// the other layers are generated and verified with the kinds it enforces.
func TestLayersFollowEnforcement(t *testing.T) {
	calico := policy.Enforcement{Engine: "Calico v3.32.1", Semantics: policy.SemanticsCalico, Kinds: map[policy.Kind]policy.KindEnforcement{
		policy.KindNetworkPolicy:              {Enforced: true},
		policy.KindCalico:                     {Enforced: true},
		policy.KindClusterNetworkPolicy:       {Enforced: true},
		policy.KindAdminNetworkPolicy:         {Reason: "Calico v3.32 removed AdminNetworkPolicy v1alpha1 support"},
		policy.KindBaselineAdminNetworkPolicy: {Reason: "Calico v3.32 removed BaselineAdminNetworkPolicy v1alpha1 support"},
	}}
	o := options(loadYAML(t, namespace("ns")), []Layer{ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium}, endpoint.AWS)
	o.Enforcement = &calico
	out := mustGenerate(t, o)
	var refused []Layer
	for _, r := range out.Refusals {
		refused = append(refused, r.Layer)
		if r.Namespace != "" {
			t.Errorf("a layer refusal names namespace %q", r.Namespace)
		}
		if !slices.Equal(r.Instead, []Layer{ClusterNetworkPolicy, Calico, Node}) {
			t.Errorf("refusal of %s points to %v, want the layers Calico v3.32 enforces and node", r.Layer, r.Instead)
		}
	}
	if !slices.Equal(refused, []Layer{AdminNetworkPolicy, Cilium}) {
		t.Fatalf("refused %v, want adminnetworkpolicy and cilium", refused)
	}
	if msg := out.Refusals[0].String(); !strings.Contains(msg, "Calico v3.32 removed AdminNetworkPolicy v1alpha1 support") {
		t.Errorf("refusal %q does not give the engine's reason", msg)
	}
	if msg := out.Refusals[1].String(); !strings.Contains(msg, "Calico v3.32.1 does not enforce Cilium") {
		t.Errorf("refusal %q does not name the engine", msg)
	}
	var layers []Layer
	for _, m := range out.Manifests {
		layers = append(layers, m.Layer)
	}
	if !slices.Equal(layers, []Layer{ClusterNetworkPolicy, Calico, Calico}) {
		t.Errorf("generated layers %v, want the ClusterNetworkPolicy and Calico's tier and policy", layers)
	}
}

// TestClusterNetworkPolicyLayerIsVerified: the generated ClusterNetworkPolicy is checked with the
// evaluator like every policy layer: an Admin-tier ClusterNetworkPolicy with a lower priority
// number that accepts the metadata address wins over it ("Policies with lower priority values
// have higher precedence", network-policy-api v1beta1), so generate refuses to call it verified,
// and one with the same priority is a tie.
func TestClusterNetworkPolicyLayerIsVerified(t *testing.T) {
	accept := func(priority int) string {
		return fmt.Sprintf(`apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: allow-imds-for-ops}
spec:
  tier: Admin
  priority: %d
  subject: {namespaces: {}}
  egress: [{name: accept-imds, action: Accept, to: [{networks: [169.254.169.254/32]}]}]
`, priority)
	}
	for _, c := range []struct {
		priority int
		want     string
	}{
		{5, "ClusterNetworkPolicy allow-imds-for-ops"},
		{int(DefaultAdminPriority), "share priority 10"},
	} {
		inv := loadYAML(t, namespace("ns", accept(c.priority)))
		_, err := Generate(options(inv, []Layer{ClusterNetworkPolicy}, endpoint.AWS))
		var verr *VerificationError
		if !errors.As(err, &verr) || !strings.Contains(verr.Error(), c.want) {
			t.Errorf("priority %d: %v, want a verification error saying %q", c.priority, err, c.want)
		}
	}
	out := mustGenerate(t, options(loadYAML(t, namespace("ns", accept(50))), []Layer{ClusterNetworkPolicy}, endpoint.AWS))
	if len(out.Manifests) != 1 {
		t.Errorf("with the Accept at priority 50 (after ours) the layer must verify: %d manifests", len(out.Manifests))
	}
}
