package generate

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"sigs.k8s.io/yaml"
)

// generateFiles returns the files of the given layers by path.
func generateFiles(t *testing.T, clouds []endpoint.Cloud, layers ...Layer) map[string]File {
	t.Helper()
	out := mustGenerate(t, options(nil, layers, clouds...))
	files := map[string]File{}
	for _, f := range out.Files {
		files[f.Path] = f
	}
	return files
}

// writeTemp writes content to a file in a new temporary directory.
func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// runIfInstalled runs a checker when it is installed and allowed to run here; it returns
// false (and logs why) when it is not.
func runIfInstalled(t *testing.T, stdin string, name string, args ...string) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Geteuid() == 0 {
			// As root (CI), hack/node-deps.sh installs the checkers: a missing one is a failure.
			t.Errorf("%s is not installed: run hack/node-deps.sh (make test does)", name)
			return false
		}
		t.Logf("%s is not installed: not checked here (make test installs and runs it as root)", name)
		return false
	}
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil && (strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "Permission denied")) {
		t.Logf("%s cannot run without privileges here: not checked (%s)", name, strings.TrimSpace(string(out)))
		return false
	}
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return true
}

func TestNodeFiles(t *testing.T) {
	for _, clouds := range [][]endpoint.Cloud{{endpoint.AWS}, {endpoint.All, endpoint.ECS}, {endpoint.GCP}} {
		t.Run(string(clouds[0]), func(t *testing.T) {
			files := generateFiles(t, clouds, Node)
			cfg := firewall.Config{Endpoints: eps(clouds...), Mode: firewall.Enforce}
			nft, err := firewall.NFTScript(cfg)
			if err != nil {
				t.Fatal(err)
			}
			v4, _ := firewall.IPTablesRestore(cfg, firewall.IPv4)
			v6, _ := firewall.IPTablesRestore(cfg, firewall.IPv6)
			// The node layer writes exactly what the node agent's builder renders.
			for path, want := range map[string]string{NodeNFTPath: nft, NodeIPTablesPath: v4, NodeIP6TablesPath: v6} {
				if got := string(files[path].Content); got != withNewline(want) {
					t.Errorf("%s is not the firewall builder's output", path)
				}
				if !strings.Contains(string(files[NodeBootstrapPath].Content), "<<'IMDSGUARD_EOF'\n"+withNewline(want)+"IMDSGUARD_EOF\n") {
					t.Errorf("the bootstrap script does not embed %s verbatim", path)
				}
			}
			boot := files[NodeBootstrapPath]
			if !boot.Executable {
				t.Error("bootstrap.sh must be executable")
			}
			for _, want := range []string{"Before=network-pre.target containerd.service kubelet.service", "Requires=imdsguard-node-firewall.service", "systemctl enable --now imdsguard-node-firewall.service"} {
				if !strings.Contains(string(boot.Content), want) {
					t.Errorf("bootstrap.sh lacks %q", want)
				}
			}
			// Real syntax checks, where the tools are installed (the integration suite runs them
			// everywhere).
			runIfInstalled(t, "", "sh", "-n", writeTemp(t, "bootstrap.sh", boot.Content))
			runIfInstalled(t, "", "nft", "-c", "-f", writeTemp(t, "imdsguard.nft", files[NodeNFTPath].Content))
			runIfInstalled(t, string(files[NodeIPTablesPath].Content), "iptables-restore", "--test", "--noflush")
			runIfInstalled(t, string(files[NodeIP6TablesPath].Content), "ip6tables-restore", "--test", "--noflush")
		})
	}
}

func TestNodeFilesRefuseWhatTheBootScriptCannotCarry(t *testing.T) {
	aws := eps(endpoint.AWS)
	for _, rs := range []nodeRules{
		{nft: "add table inet x\n" + heredocEnd + "\nrm -rf /\n", iptables: "*filter\nCOMMIT\n", ip6tables: "*filter\nCOMMIT\n"},
		{nft: "add table inet x\n", iptables: "", ip6tables: "*filter\nCOMMIT\n"},
	} {
		if _, err := nodeFiles(aws, rs); err == nil {
			t.Errorf("nodeFiles accepted %+v", rs)
		}
	}
}

func TestEC2Files(t *testing.T) {
	files := generateFiles(t, []endpoint.Cloud{endpoint.AWS}, EC2)
	if len(files) != 5 {
		t.Fatalf("got %d files, want 5", len(files))
	}
	var lt struct {
		MetadataOptions struct {
			HTTPEndpoint            string `json:"HttpEndpoint"`
			HTTPTokens              string `json:"HttpTokens"`
			HTTPPutResponseHopLimit int    `json:"HttpPutResponseHopLimit"`
		}
	}
	if err := json.Unmarshal(files[EC2LaunchTemplatePath].Content, &lt); err != nil {
		t.Fatalf("launch template data: %v", err)
	}
	if m := lt.MetadataOptions; m.HTTPTokens != "required" || m.HTTPPutResponseHopLimit != 1 || m.HTTPEndpoint != "enabled" {
		t.Errorf("launch template data: %+v", m)
	}
	var karpenter struct {
		Spec struct {
			MetadataOptions map[string]any `json:"metadataOptions"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(files[EC2KarpenterPath].Content, &karpenter); err != nil {
		t.Fatalf("karpenter patch: %v", err)
	}
	if m := karpenter.Spec.MetadataOptions; m["httpTokens"] != "required" || m["httpPutResponseHopLimit"] != float64(1) {
		t.Errorf("karpenter metadataOptions: %v", m)
	}
	var eksctl struct {
		ManagedNodeGroups []struct {
			DisableIMDSv1  bool `json:"disableIMDSv1"`
			DisablePodIMDS bool `json:"disablePodIMDS"`
		} `json:"managedNodeGroups"`
	}
	if err := yaml.Unmarshal(files[EC2EksctlPath].Content, &eksctl); err != nil || len(eksctl.ManagedNodeGroups) != 1 ||
		!eksctl.ManagedNodeGroups[0].DisableIMDSv1 || !eksctl.ManagedNodeGroups[0].DisablePodIMDS {
		t.Errorf("eksctl: %+v, %v", eksctl, err)
	}
	for _, want := range []string{"http_tokens                 = \"required\"", "http_put_response_hop_limit = 1"} {
		if !strings.Contains(string(files[EC2TerraformPath].Content), want) {
			t.Errorf("terraform lacks %q", want)
		}
	}
	script := files[EC2ModifyScriptPath]
	if !script.Executable || !strings.Contains(string(script.Content), "--http-tokens required --http-put-response-hop-limit 1") {
		t.Errorf("modify script: executable %v\n%s", script.Executable, script.Content)
	}
	runIfInstalled(t, "", "sh", "-n", writeTemp(t, "modify.sh", script.Content))
	// Every file that can carry comments says what a hop limit of 1 does not cover.
	for path, f := range files {
		if path != EC2LaunchTemplatePath && !strings.Contains(string(f.Content), "hostNetwork pods: they share the node's network namespace") {
			t.Errorf("%s does not say that hostNetwork pods still reach IMDS", path)
		}
	}
}

func TestEC2IsAWSOnly(t *testing.T) {
	_, err := Generate(options(nil, []Layer{EC2}, endpoint.Azure))
	if err == nil || !strings.Contains(err.Error(), "AWS only") {
		t.Errorf("got %v", err)
	}
	if errors.Is(err, ErrNeedsInventory) {
		t.Error("wrong error")
	}
}
