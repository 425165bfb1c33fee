package scan

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head string
		want Format
	}{
		{"CloudFormation YAML", "AWSTemplateFormatVersion: \"2010-09-09\"\nResources: {}\n", CloudFormation},
		{"CloudFormation after comments and a marker", "# nodes\n---\nDescription: x\nResources:\n", CloudFormation},
		{"CloudFormation starting with Resources", "Resources:\n  LT:\n    Type: AWS::EC2::LaunchTemplate\n", CloudFormation},
		{"CloudFormation JSON", `{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}`, CloudFormation},
		{"CloudFormation with a BOM", "\xef\xbb\xbfParameters:\n", CloudFormation},
		{"eksctl", "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\n", Eksctl},
		{"eksctl, kind first, quoted", "kind: ClusterConfig\napiVersion: \"eksctl.io/v1alpha5\"\n", Eksctl},
		{"eksctl JSON", `{"apiVersion": "eksctl.io/v1alpha5", "kind": "ClusterConfig"}`, Eksctl},
		{"Terraform plan", `{"format_version":"1.2","terraform_version":"1.9.0","planned_values":{}}`, TerraformPlan},
		{"Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n", ""},
		{"Kubernetes List JSON", `{"apiVersion": "v1", "kind": "List", "items": []}`, ""},
		{"eksctl in a second document only", "apiVersion: v1\nkind: Namespace\n---\napiVersion: eksctl.io/v1alpha5\n", ""},
		{"nested apiVersion", "apiVersion: v1\nkind: ConfigMap\ndata:\n  apiVersion: eksctl.io/v1alpha5\n", ""},
		{"capitalised key in a nested mapping", "apiVersion: v1\nkind: ConfigMap\ndata:\nResources: x\n", ""},
		{"empty", "", ""},
		{"not an object", "[1, 2]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sniff([]byte(tt.head)); got != tt.want {
				t.Errorf("Sniff = %q, want %q", got, tt.want)
			}
		})
	}
}

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"k8s/app.yaml":               "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
		"k8s/list.json":              `{"apiVersion": "v1", "kind": "List", "items": []}`,
		"infra/main.tf":              "resource \"aws_launch_template\" \"a\" {}\n",
		"infra/variables.tf":         "variable \"x\" {}\n",
		"infra/modules/nodes/lt.tf":  "resource \"aws_launch_template\" \"b\" {}\n",
		"infra/.terraform/cached.tf": "resource \"aws_launch_template\" \"cached\" {}\n",
		"infra/stack.yaml":           "Resources:\n  LT:\n    Type: AWS::EC2::LaunchTemplate\n",
		"infra/cluster.yml":          "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\n",
		"infra/plan.json":            `{"format_version":"1.2"}`,
		"infra/README.md":            "# infra\n",
	})
	manifests, code, err := Split([]string{filepath.Join(dir, "k8s"), filepath.Join(dir, "infra")})
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { r, _ := filepath.Rel(dir, p); return r }
	var gotManifests []string
	for _, m := range manifests {
		gotManifests = append(gotManifests, rel(m))
	}
	if want := []string{"k8s/app.yaml", "k8s/list.json"}; !slices.Equal(gotManifests, want) {
		t.Errorf("manifests = %v, want %v", gotManifests, want)
	}
	var gotCode []string
	for _, in := range code {
		var files []string
		for _, f := range in.Files {
			files = append(files, rel(f))
		}
		gotCode = append(gotCode, string(in.Format)+": "+strings.Join(files, ","))
	}
	want := []string{
		"eksctl: infra/cluster.yml",
		"Terraform: infra/main.tf,infra/variables.tf",
		"Terraform: infra/modules/nodes/lt.tf",
		"Terraform plan: infra/plan.json",
		"CloudFormation: infra/stack.yaml",
	}
	if !slices.Equal(gotCode, want) {
		t.Errorf("code =\n%s\nwant\n%s", strings.Join(gotCode, "\n"), strings.Join(want, "\n"))
	}

	for _, tt := range []struct {
		name, path, want string
	}{
		{"missing path", filepath.Join(dir, "absent"), "no such file or directory"},
		{"directory without input", filepath.Join(dir, "empty"), "holds no *.yaml, *.yml, *.json or *.tf files"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Mkdir(filepath.Join(dir, "empty"), 0o755)
			_, _, err := Split([]string{tt.path})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// Named explicitly: a .tf file is code, stdin and other names are manifests.
	manifests, code, err = Split([]string{"-", filepath.Join(dir, "infra/main.tf"), filepath.Join(dir, "infra/README.md")})
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 2 || manifests[0] != "-" || len(code) != 1 || code[0].Format != Terraform || len(code[0].Files) != 1 {
		t.Errorf("explicit files: manifests %v, code %v", manifests, code)
	}
}

func readDir(t *testing.T, paths ...string) ([]string, Code) {
	t.Helper()
	manifests, inputs, err := Split(paths)
	if err != nil {
		t.Fatal(err)
	}
	code, err := Read(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return manifests, code
}

func TestReadAndJoin(t *testing.T) {
	manifests, code := readDir(t, filepath.Join("..", "testdata", "infra"))
	if len(code.Problems) != 0 {
		t.Errorf("problems: %v", code.Problems)
	}
	if want := []string{filepath.Join("..", "testdata", "infra", "deployment.yaml")}; !slices.Equal(manifests, want) {
		t.Errorf("manifests = %v, want %v", manifests, want)
	}
	// 4 from nodes.yaml, 1 from nodes.json, 5 from cluster.yml (launch templates a node group uses are reported through it); README.txt is not read.
	if len(code.Groups) != 10 || code.Files != 3 {
		t.Errorf("got %d groups from %d files, want 10 from 3", len(code.Groups), code.Files)
	}
	src := iac.Source{Groups: code.Groups, Account: iac.AccountDefaults{Given: true, Endpoint: "enabled"}, AMI: iac.AMISupportNone}
	node := func(labels map[string]string) *inventory.Node { return &inventory.Node{Name: "n", Labels: labels} }
	tests := []struct {
		name     string
		labels   map[string]string
		resource string // "" when no group joins
	}{
		{"EKS node group name", map[string]string{layer.EKSNodeGroupLabel: "workers"}, "AWS::EKS::Nodegroup Workers"},
		{"eksctl node group name", map[string]string{iac.EksctlNodeGroupLabel: "ng-locked"}, "eksctl nodeGroups[2] ng-locked"},
		{"launch template ID and version", map[string]string{layer.EKSLaunchTemplateLabel: "lt-0abc123", iac.EKSLaunchTemplateVersionLabel: "4"}, "eksctl managedNodeGroups[1] mng-custom"},
		{"launch template ID without version", map[string]string{layer.EKSLaunchTemplateLabel: "lt-0abc123"}, "eksctl managedNodeGroups[1] mng-custom"},
		{"launch template ID of another version", map[string]string{layer.EKSLaunchTemplateLabel: "lt-0abc123", iac.EKSLaunchTemplateVersionLabel: "5"}, ""},
		{"no label", map[string]string{"kubernetes.io/os": "linux"}, ""},
		{"unknown node group", map[string]string{layer.EKSNodeGroupLabel: "other"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, ok := src.Group(node(tt.labels))
			if ok != (tt.resource != "") || g.Resource != tt.resource {
				t.Fatalf("joined %q (%v), want %q", g.Resource, ok, tt.resource)
			}
			if _, ok2 := src.AWSOptions(node(tt.labels)); ok2 != ok {
				t.Errorf("AWSOptions found = %v, want %v", ok2, ok)
			}
		})
	}
	o, _ := src.AWSOptions(node(map[string]string{iac.EksctlNodeGroupLabel: "ng-locked"}))
	if !o.Tokens.Known || o.Tokens.Value != "required" || o.HopLimit.Value != 1 || !o.Endpoint.Value {
		t.Errorf("ng-locked = %+v, want required, 1, endpoint enabled by the account default", o)
	}
}

func TestReadProblems(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"bad.yaml":  "Resources:\n  A: [unclosed\n",
		"notcf.yml": "Description: a settings file that only looks like a template\nName: x\n",
		"huge.tf":   "# padding\n",
	})
	if err := os.Truncate(filepath.Join(dir, "huge.tf"), iac.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	_, code := readDir(t, dir, filepath.Join("..", "testdata", "infra", "nodes.json"))
	var got []string
	for _, p := range code.Problems {
		got = append(got, filepath.Base(p.At.File)+":"+p.Message)
		if p.At.File == "" {
			t.Errorf("problem without a file: %v", p)
		}
	}
	for _, want := range []string{"bad.yaml:not YAML or JSON", "notcf.yml:not a CloudFormation template", "huge.tf:16777217 bytes, larger than"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("problems %q: none starts with %q", got, want)
		}
	}
	if len(code.Groups) != 1 {
		t.Errorf("the rest is read: got %d groups, want the 1 of nodes.json", len(code.Groups))
	}
}

func FuzzSniff(f *testing.F) {
	for _, seed := range []string{
		"AWSTemplateFormatVersion: x\n", "apiVersion: eksctl.io/v1alpha5\n", `{"format_version":"1.2"}`,
		"apiVersion: v1\nkind: Pod\n", "\xef\xbb\xbf---\n# c\nResources:\n", `{"apiVersion": 1}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		got := Sniff(head)
		switch got {
		case "", CloudFormation, Eksctl, TerraformPlan:
		default:
			t.Fatalf("Sniff = %q", got)
		}
		// A Kubernetes object's first line decides nothing for it: prefixing one keeps every
		// document a manifest unless a later top-level key of that document is eksctl's.
		if prefixed := Sniff(append([]byte("apiVersion: v1\nkind: Pod\n---\n"), head...)); prefixed == CloudFormation || prefixed == TerraformPlan {
			t.Errorf("a file starting with a Pod is %q", prefixed)
		}
	})
}
