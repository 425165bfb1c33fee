package cli

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

const exampleCluster = "../../examples/cluster"

// unprotected is a namespace without any egress policy: the networkpolicy layer protects it.
const unprotected = `apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: web}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec: {containers: [{name: web, image: nginx}]}
`

// loadStream loads generated YAML through the real loader.
func loadStream(t *testing.T, stream string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load([]string{writeFile(t, "generated.yaml", stream)}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("generated output has problems: %v", inv.Problems)
	}
	return inv
}

func TestGenerateToStandardOutput(t *testing.T) {
	code, stdout, stderr := run(t, "", "generate", "--cloud", "aws", "--layer", "adminnetworkpolicy,admission")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	inv := loadStream(t, stdout)
	if len(inv.AdminNetworkPolicies) != 1 {
		t.Errorf("want one AdminNetworkPolicy on standard output, got %d", len(inv.AdminNetworkPolicies))
	}
	if !strings.HasPrefix(stdout, "# imdsguard generate\n") || strings.Count(stdout, "\n---\n") != 7 {
		t.Errorf("want a commented header and 7 documents, got:\n%s", stdout)
	}
}

func TestGenerateNetworkPolicyFromStandardInput(t *testing.T) {
	code, stdout, stderr := run(t, unprotected, "generate", "--cloud", "aws", "--layer", "networkpolicy", "-")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	inv := loadStream(t, stdout)
	if len(inv.NetworkPolicies) != 1 || inv.NetworkPolicies[0].Policy.Namespace != "web" {
		t.Errorf("want one NetworkPolicy in web, got %d", len(inv.NetworkPolicies))
	}
}

func TestGenerateJSON(t *testing.T) {
	code, stdout, stderr := run(t, "", "generate", "--cloud", "gcp", "--layer", "calico,cilium", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var list struct {
		Kind  string
		Items []struct{ Kind string }
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	var kinds []string
	for _, it := range list.Items {
		kinds = append(kinds, it.Kind)
	}
	if list.Kind != "List" || !slices.Equal(kinds, []string{"Tier", "GlobalNetworkPolicy", "CiliumClusterwideNetworkPolicy"}) {
		t.Errorf("got a %s of %v", list.Kind, kinds)
	}
}

func TestGenerateRefusalIsVisible(t *testing.T) {
	// The example's VPC CNI enforces NetworkPolicy only: state an engine that enforces
	// AdminNetworkPolicy too (Calico v3.29 to v3.31, docs/engines.md).
	code, stdout, stderr := run(t, "", "generate", "--cloud", "aws", "--layer", "networkpolicy,adminnetworkpolicy", "--policy-engine", "calico@3.31.2", exampleCluster)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d when a namespace is refused\n%s", code, ExitFindings, stderr)
	}
	for _, ns := range []string{"analytics", "marketing", "payments", "shop"} {
		if !strings.Contains(stderr, "namespace refused") || !strings.Contains(stderr, "namespace="+ns) {
			t.Errorf("standard error does not report the refusal of %s:\n%s", ns, stderr)
		}
		if !strings.Contains(stdout, "#   networkpolicy layer refused namespace "+ns) {
			t.Errorf("the output's header does not report the refusal of %s", ns)
		}
	}
	if !strings.Contains(stderr, "4 namespaces refused: protect analytics, marketing, payments, shop with a deny-capable layer") {
		t.Errorf("no summary on standard error:\n%s", stderr)
	}
	if inv := loadStream(t, stdout); len(inv.NetworkPolicies) != 0 || len(inv.AdminNetworkPolicies) != 1 {
		t.Errorf("want no NetworkPolicy and the AdminNetworkPolicy, got %d and %d", len(inv.NetworkPolicies), len(inv.AdminNetworkPolicies))
	}
	code, _, _ = run(t, "", "generate", "--cloud", "aws", "--layer", "networkpolicy", "--fail-on-refusal=false", exampleCluster)
	if code != ExitOK {
		t.Errorf("--fail-on-refusal=false: exit %d, want 0", code)
	}
	// As detected, the example's engine does not enforce AdminNetworkPolicy: the layer is
	// refused, naming the engine, and nothing is written for it.
	code, stdout, stderr = run(t, "", "generate", "--cloud", "aws", "--layer", "adminnetworkpolicy", exampleCluster)
	if code != ExitFindings || !strings.Contains(stderr, "1 layer refused, the cluster's policy engine would not enforce them: adminnetworkpolicy (use node)") ||
		!strings.Contains(stderr, "AWS VPC CNI v1.19.0-eksbuild.1 does not enforce AdminNetworkPolicy") {
		t.Errorf("adminnetworkpolicy on the VPC CNI: exit %d\n%s", code, stderr)
	}
	if inv := loadStream(t, stdout); len(inv.AdminNetworkPolicies) != 0 {
		t.Errorf("an AdminNetworkPolicy was written although nothing would enforce it")
	}
}

func TestGenerateErrors(t *testing.T) {
	broken := writeFile(t, "broken.yaml", brokenDoc)
	badPolicy := writeFile(t, "bad.yaml", unprotected+`---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]
`)
	for _, tc := range []struct {
		sentence string
		args     []string
		want     string
	}{
		{"the networkpolicy layer without manifests says why it needs them",
			[]string{"generate", "--layer", "networkpolicy"}, "the networkpolicy layer needs the cluster's manifests"},
		{"the default layers need manifests for the networkpolicy layer",
			[]string{"generate"}, "or choose deny-capable layers with --layer"},
		{"an unreadable manifest stops everything",
			[]string{"generate", "--layer", "adminnetworkpolicy", broken}, "nothing generated: the input has 1 problem"},
		{"an invalid policy in the input is named with its field",
			[]string{"generate", "--layer", "networkpolicy", badPolicy}, "spec.egress[0].to[0].ipBlock.cidr"},
		{"an unknown layer",
			[]string{"generate", "--layer", "firewall"}, `--layer: unknown layer "firewall"`},
		{"ec2 outside AWS",
			[]string{"generate", "--cloud", "gcp", "--layer", "ec2"}, "the ec2 layer applies to AWS only"},
		{"files without an output directory",
			[]string{"generate", "--layer", "node,ec2", "--cloud", "aws"}, "give --output-dir DIR"},
		{"an unknown format",
			[]string{"generate", "--layer", "calico", "--format", "xml"}, `--format: unknown format "xml"`},
		{"a missing path",
			[]string{"generate", "--layer", "calico", "/nonexistent/cluster"}, "/nonexistent/cluster: no such file or directory"},
		{"a priority out of range",
			[]string{"generate", "--layer", "adminnetworkpolicy", "--priority", "2000"}, "--priority 2000 is out of range"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if stdout != "" {
				t.Errorf("an error must leave standard output empty, got:\n%s", stdout)
			}
			if line := errorLine(t, stderr); !strings.Contains(line, tc.want) {
				t.Errorf("error %q does not say %q", line, tc.want)
			}
		})
	}
}

func TestGenerateOutputDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fixes")
	code, stdout, stderr := run(t, "", "generate", "--cloud", "aws", "-d", dir, "--fail-on-refusal=false", exampleCluster)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	want := []string{
		"SUMMARY.txt", "admission.yaml",
		"ec2/eksctl-nodegroup.yaml", "ec2/karpenter-ec2nodeclass-patch.yaml", "ec2/launch-template-data.json",
		"ec2/metadata-options.tf", "ec2/modify-instance-metadata-options.sh",
		"node/bootstrap.sh", "node/imdsguard.nft", "node/ip6tables.rules", "node/iptables.rules",
	}
	got := listFiles(t, dir)
	if !slices.Equal(got, want) {
		t.Errorf("files:\n got %v\nwant %v", got, want)
	}
	for _, f := range want {
		if !strings.Contains(stdout, "wrote "+filepath.Join(dir, f)+": ") {
			t.Errorf("standard output does not list %s:\n%s", f, stdout)
		}
	}
	for path, mode := range map[string]os.FileMode{"node/bootstrap.sh": 0o755, "ec2/modify-instance-metadata-options.sh": 0o755, "admission.yaml": 0o644} {
		info, err := os.Stat(filepath.Join(dir, path))
		if err != nil || info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, info.Mode().Perm(), err, mode)
		}
	}
	summary, _ := os.ReadFile(filepath.Join(dir, "SUMMARY.txt"))
	// The example's VPC CNI enforces NetworkPolicy only: the four cluster-wide policy layers
	// are refused beside the four namespaces.
	if !strings.Contains(string(summary), "REFUSED: 4 namespaces, 4 layers") {
		t.Errorf("SUMMARY.txt does not report the refusals:\n%s", summary)
	}
	// A second run rewrites the same files with the same content.
	before := readAll(t, dir)
	if code, _, stderr := run(t, "", "generate", "--cloud", "aws", "--output-dir", dir, "--fail-on-refusal=false", exampleCluster); code != ExitOK {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	if after := readAll(t, dir); !maps.Equal(before, after) {
		t.Error("a second run changed the output")
	}
}

func TestGenerateOutputDirectoryIsNeverPartial(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "adminnetworkpolicy.yaml")
	if err := os.WriteFile(old, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// "node" is a file, so node/imdsguard.nft cannot be written: nothing may change.
	if err := os.WriteFile(filepath.Join(dir, "node"), []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "", "generate", "--cloud", "aws", "--layer", "adminnetworkpolicy,node", "-d", dir)
	if code != ExitRuntime {
		t.Fatalf("a failed write is a runtime failure: exit %d, want %d\n%s", code, ExitRuntime, stderr)
	}
	if line := errorLine(t, stderr); !strings.Contains(line, "node") {
		t.Errorf("error %q does not name the path", line)
	}
	if data, _ := os.ReadFile(old); string(data) != "old\n" {
		t.Errorf("adminnetworkpolicy.yaml was replaced although the run failed: %q", data)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"adminnetworkpolicy.yaml", "node"}) {
		t.Errorf("files left behind: %v", got)
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range listFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(data)
	}
	return out
}
