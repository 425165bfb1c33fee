package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var exampleInfra = filepath.Join("..", "..", "examples", "infra")

// TestAuditJoinsInfrastructureCode: manifests and infrastructure code in one run; the code's
// node group joins the node, and the instance layer of a pod on it names the file and line.
func TestAuditJoinsInfrastructureCode(t *testing.T) {
	code, out, stderr := run(t, "", "audit", "-o", "json", "--fail-on", "none", exampleCluster, exampleInfra)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var report struct {
		Complete       bool `json:"complete"`
		Infrastructure []struct {
			Resource string   `json:"resource"`
			Nodes    []string `json:"nodes"`
		} `json:"infrastructure"`
		LayerVerdicts []struct{ Layer, Decision, Source, Reason string } `json:"layerVerdicts"`
		Exposure      []struct {
			Namespace     string
			Workload      struct{ Name string }
			Endpoint      struct{ Name string }
			LayerVerdicts struct{ Instance int }
		} `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	if !report.Complete || len(report.Infrastructure) != 2 {
		t.Fatalf("complete %v, %d launch settings; want complete and 2", report.Complete, len(report.Infrastructure))
	}
	system := slices.IndexFunc(report.Infrastructure, func(g struct {
		Resource string   `json:"resource"`
		Nodes    []string `json:"nodes"`
	}) bool {
		return g.Resource == "aws_eks_node_group.system"
	})
	if system < 0 || !slices.Equal(report.Infrastructure[system].Nodes, []string{"ip-10-0-1-10.us-west-2.compute.internal"}) {
		t.Errorf("infrastructure = %+v, want aws_eks_node_group.system joined to the system node", report.Infrastructure)
	}
	found := false
	for _, e := range report.Exposure {
		if e.Namespace == "kube-system" && e.Workload.Name == "coredns" && e.Endpoint.Name == "aws-imds" {
			v := report.LayerVerdicts[e.LayerVerdicts.Instance]
			found = v.Decision == "allow" && v.Source == "configured" && strings.Contains(v.Reason, filepath.Join("examples", "infra", "system.tf")+":10:")
			if !found {
				t.Errorf("coredns's instance layer = %+v, want allow, configured, at system.tf:10", v)
			}
		}
	}
	if !found {
		t.Error("no exposure of kube-system coredns to aws-imds")
	}

	// The table shows the code and the joined finding.
	_, table, _ := run(t, "", "audit", "--fail-on", "none", exampleCluster, exampleInfra)
	for _, want := range []string{"INFRASTRUCTURE CODE", "IMDS017 aws_eks_node_group.system", "it runs 1 node"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestAuditInfrastructureCodeAlone: code without manifests is audited on its own; the account
// defaults settle what the code leaves out.
func TestAuditInfrastructureCodeAlone(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "main.tf")
	if err := os.WriteFile(tf, []byte("resource \"aws_instance\" \"bastion\" {\n  ami = \"ami-1\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "audit", "-o", "json", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var head struct {
		Clouds []struct{ Cloud, Basis, Evidence string } `json:"clouds"`
	}
	if err := json.Unmarshal([]byte(out), &head); err != nil {
		t.Fatal(err)
	}
	if len(head.Clouds) != 1 || head.Clouds[0].Cloud != "aws" || head.Clouds[0].Basis != "input" || !strings.HasPrefix(head.Clouds[0].Evidence, "infrastructure code aws_instance.bastion at ") {
		t.Errorf("clouds = %+v, want aws from the infrastructure code", head.Clouds)
	}
	if !strings.Contains(out, `"IMDS020"`) || strings.Contains(out, `"IMDS017"`) {
		t.Errorf("without account defaults the bastion's options are unknown (IMDS020), not IMDSv1 (IMDS017):\n%s", out)
	}
	code, out, stderr = run(t, "", "audit", "-o", "json", "--aws-account-defaults", "hop-limit=1", "--aws-ami-imds-support", "none", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(out, `"IMDS017"`) || !strings.Contains(out, "EC2's default HttpTokens optional") {
		t.Errorf("with the account and AMI stated, EC2's default leaves IMDSv1 on (IMDS017):\n%s", out)
	}
}

func TestAuditInfrastructureCodeErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("resource \"aws_launch_template\" \"x\" {\n  metadata_options {\n    http_tokens =\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad account defaults", []string{"--aws-account-defaults", "tokens=sometimes", exampleInfra}, ExitUsage, "--aws-account-defaults"},
		{"bad AMI support", []string{"--aws-ami-imds-support", "v3", exampleInfra}, ExitUsage, "--aws-ami-imds-support"},
		{"account defaults without code", []string{"--aws-account-defaults", "tokens=required", exampleCluster}, ExitUsage, "give Terraform, CloudFormation or eksctl files"},
		{"empty directory", []string{t.TempDir()}, ExitUsage, "holds no *.yaml, *.yml, *.json or *.tf files"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", append([]string{"audit"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errorLine(t, stderr), tt.want) {
				t.Errorf("exit %d, stderr %s; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	// Code that does not parse: the rest is audited, the report is incomplete, IMDS011 names
	// the file and line, and the run fails.
	code, out, stderr := run(t, "", "audit", "-o", "json", exampleCluster, dir)
	if code != ExitFindings || !strings.Contains(out, `"complete": false`) || !strings.Contains(out, filepath.Join(dir, "main.tf")+":") || !strings.Contains(out, `"IMDS011"`) {
		t.Errorf("exit %d; want %d, an incomplete report and IMDS011 at main.tf\n%s", code, ExitFindings, stderr)
	}
}

// TestGenerateEC2PatchesTheCode: generate --layer ec2 writes a patch of the user's own files that
// applies with git apply and leaves the code requiring IMDSv2 with hop limit 1.
func TestGenerateEC2PatchesTheCode(t *testing.T) {
	work := t.TempDir()
	infra := filepath.Join(work, "infra")
	if err := os.CopyFS(infra, os.DirFS(exampleInfra)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	code, stdout, stderr := run(t, "", "generate", "--layer", "ec2", "-d", out, infra)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	patch := filepath.Join(out, "ec2", "infrastructure-code.patch")
	if !strings.Contains(stdout, patch) || !strings.Contains(stdout, "apply it with git apply (or patch -p1 <) in "+infra) {
		t.Errorf("stdout does not name the patch and where it applies:\n%s", stdout)
	}
	cmd := exec.Command("git", "apply", patch)
	cmd.Dir = infra
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v\n%s", err, b)
	}
	code, audit, stderr := run(t, "", "audit", "-o", "json", "--fail-on", "none", exampleCluster, infra)
	if code != 0 {
		t.Fatalf("audit after the patch: exit %d\n%s", code, stderr)
	}
	for _, id := range []string{`"IMDS017"`, `"IMDS018"`, `"IMDS019"`} {
		if strings.Contains(audit, id) {
			t.Errorf("%s still reported after the patch", id)
		}
	}
}
