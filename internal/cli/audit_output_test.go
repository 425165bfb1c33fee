package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditOutputFlags(t *testing.T) {
	example := filepath.Join("..", "..", "examples", "cluster")
	for _, tc := range []struct {
		name string
		args []string
		code int
		// out is a line the output starts with, or a line it holds.
		out, stderr string
	}{
		{"html is one page", []string{"-o", "html"}, ExitFindings, "<!DOCTYPE html>", ""},
		{"summary is one line per namespace", []string{"--summary"}, ExitFindings, "NAMESPACE    SUBJECTS  REACHABLE  CRITICAL  HIGH  MEDIUM  LOW  INFO", ""},
		{"show reachable hides the denied rows", []string{"--show", "reachable"}, ExitFindings, "11 denied rows hidden; --show all lists them", ""},
		{"show all lists them", []string{"--show", "all", "--fail-on", "none"}, ExitOK, "  Deployment/cart-worker   aws-imds               denied", ""},
		{"unknown show", []string{"--show", "denied"}, ExitUsage, "", `--show "denied": want reachable or all`},
		{"summary shapes the table only", []string{"--summary", "-o", "json"}, ExitUsage, "", "--summary and --show shape the table: they do not apply to --output json"},
		{"unknown output", []string{"-o", "pdf"}, ExitUsage, "", `--output "pdf": want table, json, sarif, html or junit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"audit", "--cloud", "aws"}, tc.args...)
			code, out, stderr := run(t, "", append(args, example)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			if tc.out != "" && !strings.HasPrefix(out, tc.out) && !strings.Contains(out, "\n"+tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, out)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("standard error lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}
