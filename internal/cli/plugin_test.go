package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInvocationOf: only the plugin's name makes a plugin invocation.
func TestInvocationOf(t *testing.T) {
	for argv0, plugin := range map[string]bool{
		"/usr/local/bin/kubectl-imdsguard": true,
		"kubectl-imdsguard.exe":            true,
		"kubectl-imdsguard":                true,
		"/usr/bin/imdsguard":               false,
		"imdsguard":                        false,
		"kubectl-imdsguard-old":            false,
	} {
		if got := InvocationOf(argv0).Plugin; got != plugin {
			t.Errorf("InvocationOf(%q).Plugin = %v, want %v", argv0, got, plugin)
		}
	}
}

// TestKubectlPlugin: the binary installed as kubectl-imdsguard names itself "kubectl
// imdsguard" in its help, audits kubectl's current context when given no manifest, and -n
// restricts the audit to one namespace: the findings and exposures of that namespace are those
// of the whole-cluster audit, and no other namespace's appear.
func TestKubectlPlugin(t *testing.T) {
	_, kubeconfig := liveCluster(t)
	bin := filepath.Join(t.TempDir(), PluginBinary)
	build := exec.Command("go", "build", "-o", bin, "github.com/imdsguard/imdsguard/cmd/imdsguard")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	plugin := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", bin, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}

	code, help, _ := plugin("audit", "--help")
	if code != 0 || !strings.Contains(help, "kubectl imdsguard audit [FILE|DIR|-]...") || !strings.Contains(help, "  kubectl imdsguard audit examples/cluster") {
		t.Errorf("audit --help as the plugin (exit %d) does not name the command kubectl imdsguard audit:\n%s", code, help)
	}
	for _, flag := range []string{"-n, --namespace", "-A, --all-namespaces", "--context", "--kubeconfig"} {
		if !strings.Contains(help, flag) {
			t.Errorf("audit --help lacks kubectl's flag %s", flag)
		}
	}
	if code, _, stderr := plugin("nosuchcommand"); code != ExitUsage || !strings.Contains(stderr, "Run 'kubectl imdsguard --help' for usage.") {
		t.Errorf("unknown command: exit %d, stderr %q; want 2 and a pointer to kubectl imdsguard --help", code, stderr)
	}
	if code, _, stderr := plugin("audit", "-n", "shop", "-A"); code != ExitUsage {
		t.Errorf("-n with -A: exit %d, want 2\n%s", code, stderr)
	}
	if code, _, stderr := plugin("audit", "-n", "nosuchnamespace", "--fail-on", "none"); code != ExitUsage || !strings.Contains(stderr, "nosuchnamespace") {
		t.Errorf("-n of a missing namespace: exit %d, want 2\n%s", code, stderr)
	}

	code, out, stderr := plugin("audit", "-n", "shop", "--cloud", "aws", "-o", "json", "--fail-on", "none")
	if code != 0 {
		t.Fatalf("kubectl imdsguard audit -n shop: exit %d\n%s", code, stderr)
	}
	scoped := decodeAudit(t, out)
	if scoped.Cluster != "admin" {
		t.Errorf("plugin without manifests audited %q, want kubectl's current context admin", scoped.Cluster)
	}
	code, out, stderr = run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "-o", "json", "--fail-on", "none")
	if code != 0 {
		t.Fatalf("whole-cluster audit: exit %d\n%s", code, stderr)
	}
	whole := decodeAudit(t, out)

	inShop := func(a auditJSON) auditJSON {
		var kept auditJSON
		for _, f := range a.Findings {
			if f.Namespace == "shop" {
				kept.Findings = append(kept.Findings, f)
			}
		}
		for _, e := range a.Exposure {
			var head struct{ Namespace string }
			if err := json.Unmarshal(e, &head); err != nil {
				t.Fatal(err)
			}
			if head.Namespace == "shop" {
				kept.Exposure = append(kept.Exposure, e)
			}
		}
		return kept
	}
	for _, f := range scoped.Findings {
		if f.Namespace != "" && f.Namespace != "shop" {
			t.Errorf("-n shop reported a finding of namespace %s: %s %s", f.Namespace, f.ID, f.Message)
		}
	}
	want, got := inShop(whole), inShop(scoped)
	if len(want.Findings) == 0 || len(want.Exposure) == 0 {
		t.Fatal("the whole-cluster audit has nothing in shop to compare")
	}
	if len(got.Exposure) != len(scoped.Exposure) {
		t.Errorf("-n shop: %d exposures, %d of them in shop", len(scoped.Exposure), len(got.Exposure))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-n shop differs from the whole-cluster audit's shop (-whole +scoped):\n%s", diff)
	}
}
