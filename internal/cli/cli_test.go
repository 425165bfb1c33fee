package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the command line in-process and returns the exit code, standard output and
// standard error.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// writeFile writes content to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// exposedPod is a pod with no policy at all: it reaches every metadata endpoint.
const exposedPod = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
`

// brokenDoc is a document with a YAML syntax error on its third line.
const brokenDoc = "apiVersion: v1\nkind: Pod\nmetadata: {name: [broken}\n"

// errorLine returns the one "imdsguard: ..." line of standard error, failing the test unless
// there is exactly one.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	var found []string
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "imdsguard: ") {
			found = append(found, strings.TrimSuffix(line, "\n"))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one \"imdsguard: \" error line on standard error, got %d:\n%s", len(found), stderr)
	}
	return found[0]
}

func TestUsageAndInputErrors(t *testing.T) {
	pod := writeFile(t, "pod.yaml", exposedPod)
	cases := []struct {
		name string
		args []string
		want string // substring of the error line
	}{
		{"a path that does not exist is named", []string{"audit", "/nonexistent/cluster.yaml"},
			"imdsguard: /nonexistent/cluster.yaml: no such file or directory"},
		{"a missing path among good ones stops the audit", []string{"audit", pod, "/nonexistent/more"},
			"/nonexistent/more: no such file or directory"},
		{"an unknown --output is named with the valid formats", []string{"audit", "--output", "xml", pod},
			`--output "xml": want table, json, sarif, html or junit`},
		{"an unknown --cloud is named with the valid clouds", []string{"audit", "--cloud", "aws,mars", pod},
			`--cloud: unknown cloud "mars" (want one of aws, gcp, azure`},
		{"a malformed --endpoint is named", []string{"audit", "--endpoint", "not-an-address", pod},
			"--endpoint:"},
		{"an unknown --fail-on is named with the valid severities", []string{"audit", "--fail-on", "severe", pod},
			`--fail-on: unknown severity "severe" (want info, low, medium, high, critical or none)`},
		{"an unknown --color is named", []string{"audit", "--color", "sometimes", pod},
			`--color "sometimes": want auto, always or never`},
		{"a malformed --max-file-size is named", []string{"audit", "--max-file-size", "lots", pod},
			`--max-file-size "lots": want a positive quantity`},
		{"an unknown --log-level is named", []string{"audit", "--log-level", "loud", pod},
			`--log-level "loud": want debug, info, warn or error`},
		{"audit without input says how to give it", []string{"audit"},
			"imdsguard: no input: give manifest files or directories, - for standard input, or --live"},
		{"an --explain target that is not in the input is named", []string{"audit", "--explain", "shop/nothing", pod},
			`--explain "shop/nothing": no pod or workload by that name`},
		{"an unknown flag is a usage error", []string{"audit", "--frobnicate", pod},
			"unknown flag: --frobnicate"},
		{"an unknown command is a usage error", []string{"inspect", pod},
			`unknown command "inspect"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", c.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d (usage or input error)\nstderr:\n%s", code, ExitUsage, stderr)
			}
			if line := errorLine(t, stderr); !strings.Contains(line, c.want) {
				t.Errorf("error line %q\nwant it to contain %q", line, c.want)
			}
			if stdout != "" {
				t.Errorf("a usage error printed a report:\n%s", stdout)
			}
		})
	}
}

func TestNothingCouldBeEvaluated(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(brokenDoc+"---\n"+"apiVersion: v1\nkind: Pod\nmetadata: {namespace: shop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blob.json")
	if err := os.WriteFile(blob, []byte("{\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "", "audit", "--fail-on", "none", bad, blob)
	if code != ExitUsage {
		t.Errorf("exit %d, want %d when no document could be evaluated\nstderr:\n%s", code, ExitUsage, stderr)
	}
	line := errorLine(t, stderr)
	if want := "imdsguard: nothing could be evaluated: "; !strings.HasPrefix(line, want) {
		t.Errorf("error line %q\nwant it to contain %q", line, want)
	}
	if stdout != "" {
		t.Errorf("printed a report although nothing was evaluated:\n%s", stdout)
	}
	// Each problem is logged with its file and position.
	for _, want := range []string{
		bad + ": document 1 (line 1)", "yaml: line 3: did not find expected ',' or ']'",
		bad + ": document 2 (line 4)", "metadata.name",
		blob, "binary data (NUL byte at offset 1)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error does not mention %q:\n%s", want, stderr)
		}
	}
}

func TestNothingToEvaluate(t *testing.T) {
	ns := writeFile(t, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
	code, _, stderr := run(t, "", "audit", ns)
	if code != ExitUsage {
		t.Errorf("exit %d, want %d for input without pods or workloads", code, ExitUsage)
	}
	if line := errorLine(t, stderr); !strings.Contains(line, "nothing to evaluate: the input (1 file, 1 document) holds no pods or workloads") &&
		!strings.Contains(line, "nothing to evaluate: the input (1 files, 1 documents) holds no pods or workloads") {
		t.Errorf("error line %q does not say there is nothing to evaluate", line)
	}
}

func TestOversizedInputIsNamed(t *testing.T) {
	big := writeFile(t, "big.yaml", exposedPod+strings.Repeat("# padding\n", 100))
	code, _, stderr := run(t, "", "audit", "--max-file-size", "1Ki", big)
	if code != ExitUsage {
		t.Errorf("exit %d, want %d when the only file is too large", code, ExitUsage)
	}
	for _, want := range []string{big, "larger than the limit of 1024 bytes (raise it with --max-file-size)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error does not mention %q:\n%s", want, stderr)
		}
	}
}

func TestFailOn(t *testing.T) {
	pod := writeFile(t, "pod.yaml", exposedPod)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"a pod reaching 169.254.169.254 with no policy fails the default --fail-on", []string{"audit", pod}, ExitFindings},
		{"--fail-on medium fails on the same pod", []string{"audit", "--fail-on", "medium", "--cloud", "aws", pod}, ExitFindings},
		{"--fail-on critical passes: the exposure is high, not critical", []string{"audit", "--fail-on", "critical", "--cloud", "aws", pod}, ExitOK},
		{"--fail-on none never fails on findings", []string{"audit", "--fail-on", "none", pod}, ExitOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stdout, "169.254.169.254") || !strings.Contains(stdout, "Pod/web") {
				t.Errorf("the report does not show Pod/web reaching 169.254.169.254:\n%s", stdout)
			}
			if strings.Contains(stdout, "INCOMPLETE") {
				t.Errorf("a complete audit is reported INCOMPLETE:\n%s", stdout)
			}
			if strings.Contains(stderr, "imdsguard: ") {
				t.Errorf("findings are not an error, but standard error says:\n%s", stderr)
			}
		})
	}
}

func TestStandardInput(t *testing.T) {
	code, stdout, stderr := run(t, exposedPod, "audit", "--fail-on", "none", "-o", "json", "-")
	if code != ExitOK {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, stderr)
	}
	var report struct {
		Complete bool `json:"complete"`
		Summary  struct {
			Files int `json:"files"`
			Pods  int `json:"pods"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("the JSON report does not parse: %v\n%s", err, stdout)
	}
	if !report.Complete || report.Summary.Files != 1 || report.Summary.Pods != 1 {
		t.Errorf("report of standard input: %+v, want complete with 1 file and 1 pod", report)
	}
}

// partialInput is valid pods around one malformed document (document 3, starting on line 9,
// its error on line 12).
const partialInput = exposedPod + "---\n" + brokenDoc + "---\n" +
	"apiVersion: v1\nkind: Pod\nmetadata: {name: cart, namespace: shop}\nspec: {containers: [{name: c, image: cart}]}\n"

func TestPartialInput(t *testing.T) {
	path := writeFile(t, "cluster.yaml", partialInput)
	position := path + ": document 3 (line 9)"

	t.Run("the table is produced, marked INCOMPLETE, and standard error names the file and document", func(t *testing.T) {
		code, stdout, stderr := run(t, "", "audit", "--fail-on", "none", path)
		if code != ExitOK {
			t.Errorf("exit %d, want 0 with --fail-on none\nstderr:\n%s", code, stderr)
		}
		if !strings.Contains(stdout, "INCOMPLETE") {
			t.Errorf("the table does not say the audit is incomplete:\n%s", stdout)
		}
		if !strings.Contains(stdout, "Pod/web") || !strings.Contains(stdout, "Pod/cart") {
			t.Errorf("the table lacks the pods around the malformed document:\n%s", stdout)
		}
		for _, want := range []string{position, "yaml: line 12: did not find expected ',' or ']'", "incomplete"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("standard error does not mention %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("the JSON report says complete: false and lists the problem with its position", func(t *testing.T) {
		code, stdout, stderr := run(t, "", "audit", "-o", "json", "--fail-on", "none", path)
		if code != ExitOK {
			t.Errorf("exit %d, want 0\nstderr:\n%s", code, stderr)
		}
		var report struct {
			Complete *bool `json:"complete"`
			Summary  struct {
				Documents int `json:"documents"`
				Pods      int `json:"pods"`
				Problems  int `json:"problems"`
			} `json:"summary"`
			Problems []struct {
				Source struct {
					File     string `json:"file"`
					Document int    `json:"document"`
					Line     int    `json:"line"`
				} `json:"source"`
				Message string `json:"message"`
			} `json:"problems"`
		}
		if err := json.Unmarshal([]byte(stdout), &report); err != nil {
			t.Fatalf("the JSON report does not parse: %v\n%s", err, stdout)
		}
		if report.Complete == nil || *report.Complete {
			t.Errorf(`"complete" is %v, want false`, report.Complete)
		}
		if report.Summary.Documents != 4 || report.Summary.Pods != 2 || report.Summary.Problems != 1 {
			t.Errorf("summary %+v, want 4 documents, 2 pods, 1 problem", report.Summary)
		}
		if len(report.Problems) != 1 {
			t.Fatalf("%d problems in the report, want 1", len(report.Problems))
		}
		p := report.Problems[0]
		if p.Source.File != path || p.Source.Document != 3 || p.Source.Line != 9 || !strings.Contains(p.Message, "invalid YAML") {
			t.Errorf("problem %+v, want invalid YAML at %s document 3 line 9", p, path)
		}
	})

	t.Run("findings still fail the audit", func(t *testing.T) {
		if code, _, stderr := run(t, "", "audit", path); code != ExitFindings {
			t.Errorf("exit %d, want %d\nstderr:\n%s", code, ExitFindings, stderr)
		}
	})
}

func TestVersionHelpAndCompletion(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // substrings of standard output
	}{
		{"version prints the version", []string{"version"}, []string{"imdsguard " + Version() + "\n"}},
		{"--help describes the root command", []string{"--help"}, []string{"Usage:", "imdsguard [command]", "audit", "version"}},
		{"audit --help describes the flags and exit codes", []string{"audit", "--help"},
			[]string{"imdsguard audit [FILE|DIR|-]...", "--fail-on", "--output", "--cloud", "--max-file-size", "Exit status: 0"}},
		{"completion bash prints a bash completion script", []string{"completion", "bash"}, []string{"# bash completion", "__start_imdsguard", "complete -o default"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", c.args...)
			if code != ExitOK {
				t.Fatalf("exit %d, want 0\nstderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("standard output does not contain %q:\n%s", w, stdout)
				}
			}
			if stderr != "" {
				t.Errorf("standard error is not empty:\n%s", stderr)
			}
		})
	}
	if v := Version(); v == "" {
		t.Error("Version() is empty")
	}
}
