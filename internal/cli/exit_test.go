package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// brokenWriter fails every write, as standard output does when its pipe is closed or its disk
// is full.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// runBroken runs the command line with a standard output that fails every write.
func runBroken(args ...string) (int, string) {
	var errOut bytes.Buffer
	code := Run(context.Background(), args, Streams{In: strings.NewReader(""), Out: brokenWriter{}, Err: &errOut})
	return code, errOut.String()
}

// TestExitCodes: every command exits 0 when clean, 1 on findings or refusals, 2 on a usage or
// input error and 3 on a runtime failure; the controller's own cases, which need an API
// server, are in controller_test.go.
func TestExitCodes(t *testing.T) {
	pod := writeFile(t, "pod.yaml", exposedPod)
	unprotectedNS := writeFile(t, "unprotected.yaml", unprotected)
	for _, tc := range []struct {
		sentence string
		args     []string
		want     int
	}{
		{"audit: nothing at or above --fail-on is clean", []string{"audit", "--fail-on", "none", pod}, ExitOK},
		{"audit: a finding at or above --fail-on", []string{"audit", pod}, ExitFindings},
		{"audit: an unknown flag is a usage error", []string{"audit", "--frobnicate", pod}, ExitUsage},
		{"audit: a missing input is an input error", []string{"audit", "/nonexistent/cluster.yaml"}, ExitUsage},
		{"generate: everything generated is clean", []string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy"}, ExitOK},
		{"generate: a refused namespace", []string{"generate", "--cloud", "aws", "--layer", "networkpolicy", exampleCluster}, ExitFindings},
		{"generate: a refused layer", []string{"generate", "--cloud", "aws", "--layer", "cilium", "--policy-engine", "calico@3.31.2", unprotectedNS}, ExitFindings},
		{"generate: an unknown layer is a usage error", []string{"generate", "--layer", "firewall"}, ExitUsage},
		{"controller: an unknown mode is a usage error", []string{"controller", "--mode", "iptables"}, ExitUsage},
		{"agent: an unknown backend is a usage error", []string{"agent", "--backend", "ebpf", "--no-kubernetes"}, ExitUsage},
		{"agent rules: the ruleset printed is clean", []string{"agent", "rules", "--cloud", "aws"}, ExitOK},
		{"agent rules: an unknown format is a usage error", []string{"agent", "rules", "--format", "pf"}, ExitUsage},
		{"version is clean", []string{"version"}, ExitOK},
		{"an unknown command is a usage error", []string{"inspect"}, ExitUsage},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			if code, _, stderr := run(t, "", tc.args...); code != tc.want {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.want, stderr)
			}
		})
	}
	for _, tc := range []struct {
		sentence string
		args     []string
	}{
		{"audit: the table cannot be written", []string{"audit", "--fail-on", "none", pod}},
		{"audit: the JSON report cannot be written", []string{"audit", "--fail-on", "none", "-o", "json", pod}},
		{"audit: the SARIF report cannot be written", []string{"audit", "--fail-on", "none", "-o", "sarif", pod}},
		{"generate: the manifests cannot be written", []string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy"}},
		{"agent rules: the ruleset cannot be written", []string{"agent", "rules", "--cloud", "aws"}},
		{"version cannot be written", []string{"version"}},
	} {
		t.Run(tc.sentence+": a runtime failure", func(t *testing.T) {
			code, stderr := runBroken(tc.args...)
			if code != ExitRuntime {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, ExitRuntime, stderr)
			}
			line := errorLine(t, stderr)
			if !strings.Contains(line, "no space left on device") || strings.Contains(stderr, "--help") {
				t.Errorf("the error should name the failure and not point to the usage:\n%s", stderr)
			}
		})
	}
}

// TestDeprecatedFlagSpellings: the old spellings still work, hidden from the help, with one
// warning on standard error that names the new one; standard output stays clean.
func TestDeprecatedFlagSpellings(t *testing.T) {
	for _, tc := range []struct {
		sentence string
		old, new []string
		warning  string
	}{
		{"generate -o is generate -d", []string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy,node", "-o", "DIR"},
			[]string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy,node", "-d", "DIR"}, "flag --output (-o) is deprecated and will be removed: use --output-dir (-d)"},
		{"generate --output is generate --output-dir", []string{"generate", "--cloud", "aws", "--layer", "node", "--output", "DIR"},
			[]string{"generate", "--cloud", "aws", "--layer", "node", "--output-dir", "DIR"}, "flag --output (-o) is deprecated"},
		{"generate --exemption-label is --exempt-pod-label", []string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy", "--exemption-label", "team.example/imds"},
			[]string{"generate", "--cloud", "aws", "--layer", "adminnetworkpolicy", "--exempt-pod-label", "team.example/imds"}, "flag --exemption-label is deprecated and will be removed: use --exempt-pod-label"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			dirOld, dirNew := t.TempDir(), t.TempDir()
			oldArgs := slicesReplace(tc.old, "DIR", dirOld)
			newArgs := slicesReplace(tc.new, "DIR", dirNew)
			codeOld, outOld, errOld := run(t, "", oldArgs...)
			codeNew, outNew, errNew := run(t, "", newArgs...)
			if codeOld != ExitOK || codeNew != ExitOK {
				t.Fatalf("exit %d (old spelling) and %d (new), want 0\n%s\n%s", codeOld, codeNew, errOld, errNew)
			}
			if strings.ReplaceAll(outOld, dirOld, "DIR") != strings.ReplaceAll(outNew, dirNew, "DIR") {
				t.Errorf("the old spelling does something else:\n%s\n---\n%s", outOld, outNew)
			}
			if !strings.Contains(errOld, tc.warning) || strings.Count(errOld, "deprecated") != 1 {
				t.Errorf("want one warning %q on standard error, got:\n%s", tc.warning, errOld)
			}
			if strings.Contains(errNew, "deprecated") || strings.Contains(outOld, "deprecated") {
				t.Errorf("a warning where none belongs:\n%s\n%s", errNew, outOld)
			}
		})
	}
	t.Run("the controller's --exempt-label and --exemption-label are checked as their new spellings are", func(t *testing.T) {
		code, _, stderr := run(t, "", "controller", "--exempt-label", "no-value")
		if code != ExitUsage || !strings.Contains(stderr, "flag --exempt-label is deprecated and will be removed: use --exempt-namespace-label") ||
			!strings.Contains(stderr, `--exempt-namespace-label "no-value": want KEY=VALUE`) {
			t.Errorf("exit %d, want %d with the deprecation warning and the check of the value:\n%s", code, ExitUsage, stderr)
		}
		code, _, stderr = run(t, "", "controller", "--exemption-label", "Not A Key", "--mode", "networkpolicy")
		if code != ExitUsage || !strings.Contains(stderr, "flag --exemption-label is deprecated and will be removed: use --exempt-pod-label") {
			t.Errorf("exit %d, want %d with the deprecation warning:\n%s", code, ExitUsage, stderr)
		}
	})
	t.Run("the old spellings are hidden from the help", func(t *testing.T) {
		for _, path := range [][]string{{"generate"}, {"controller"}} {
			_, out, _ := run(t, "", append(path, "--help")...)
			for _, old := range []string{"--output ", "--exemption-label", "--exempt-label"} {
				if strings.Contains(out, old) {
					t.Errorf("%s --help shows %s", path[0], old)
				}
			}
		}
	})
}

// slicesReplace returns a copy of s with every element old replaced by new.
func slicesReplace(s []string, old, new string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = v
		if v == old {
			out[i] = new
		}
	}
	return out
}
