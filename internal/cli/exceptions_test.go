package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditBaselineAndExceptions runs the audit twice: the first run's JSON report is the
// baseline of the second, whose input has one more exposed pod. Only the new pod's findings
// fail the run; accepting them with an exceptions file passes it, and an expired exception
// makes them count again.
func TestAuditBaselineAndExceptions(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "cluster.yaml")
	baseline := filepath.Join(dir, "main.json")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(input, exposedPod)
	code, out, stderr := run(t, "", "audit", "--cloud", "aws", "-o", "json", input)
	if code != ExitFindings {
		t.Fatalf("first run: exit %d, want %d\n%s", code, ExitFindings, stderr)
	}
	write(baseline, out)

	code, _, stderr = run(t, "", "audit", "--cloud", "aws", "--baseline", baseline, input)
	if code != ExitOK {
		t.Fatalf("same input against its own baseline: exit %d, want %d\n%s", code, ExitOK, stderr)
	}

	write(input, exposedPod+"\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop}\nspec: {containers: [{name: api, image: nginx}]}\n")
	code, out, stderr = run(t, "", "audit", "--cloud", "aws", "--baseline", baseline, input)
	if code != ExitFindings {
		t.Fatalf("a new pod: exit %d, want %d\n%s\n%s", code, ExitFindings, stderr, out)
	}
	if !strings.Contains(out, "IMDS001 [in baseline] Pod shop/web") || !strings.Contains(out, "  HIGH IMDS001 Pod shop/api") ||
		!strings.Contains(out, "unchanged since the baseline") {
		t.Errorf("the table does not mark the baseline's findings:\n%s", out)
	}

	exceptions := filepath.Join(dir, "accepted.yaml")
	accept := func(expires string) {
		write(exceptions, "apiVersion: imdsguard.io/v1\nkind: Exceptions\nexceptions:\n"+
			"- id: IMDS001\n  object: {kind: Pod, namespace: shop, name: api}\n  reason: replaced next sprint\n  expires: "+expires+"\n")
	}
	accept("2999-12-31")
	code, out, stderr = run(t, "", "audit", "--cloud", "aws", "--baseline", baseline, "--exceptions", exceptions, input)
	if code != ExitOK || !strings.Contains(out, "IMDS001 [accepted until 2999-12-31: replaced next sprint] Pod shop/api") {
		t.Errorf("the new findings accepted: exit %d, want %d\n%s\n%s", code, ExitOK, out, stderr)
	}
	accept("2000-01-01")
	code, out, stderr = run(t, "", "audit", "--cloud", "aws", "--baseline", baseline, "--exceptions", exceptions, input)
	if code != ExitFindings || !strings.Contains(out, "exceptions[0] (IMDS001 Pod shop/api) expired on 2000-01-01: the findings it matched count again") {
		t.Errorf("an expired exception: exit %d, want %d and a warning\n%s\n%s", code, ExitFindings, out, stderr)
	}
}

func TestAuditExceptionsAndBaselineInputErrors(t *testing.T) {
	dir := t.TempDir()
	input := writeFile(t, "cluster.yaml", exposedPod)
	bad := filepath.Join(dir, "accepted.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: imdsguard.io/v1\nkind: Exceptions\nexceptions:\n- {id: IMDS001, object: {kind: Pod, name: web}, expires: 2030-01-01}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.json")
	if err := os.WriteFile(old, []byte(`{"schemaVersion": "1.3", "findings": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--exceptions", bad}, "--exceptions: " + bad + ": exceptions[0]: reason: missing"},
		{[]string{"--exceptions", filepath.Join(dir, "none.yaml")}, "--exceptions: read exceptions: open"},
		{[]string{"--baseline", old}, "--baseline: baseline " + old + ": schemaVersion 1.3: want 2.x"},
	} {
		code, _, stderr := run(t, "", append(append([]string{"audit"}, tc.args...), input)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.err) {
			t.Errorf("%v: exit %d, want %d and %q\n%s", tc.args, code, ExitUsage, tc.err, stderr)
		}
	}
}
