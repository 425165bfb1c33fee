package cli

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/controller"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/spf13/cobra"
)

// helpOf returns the long description of the command at path (empty for the root), as its
// --help prints it, with its flags' help appended.
func helpOf(t *testing.T, path ...string) string {
	t.Helper()
	root := NewCommand(Streams{In: strings.NewReader(""), Out: &strings.Builder{}, Err: &strings.Builder{}})
	cmd, _, err := root.Find(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", append(path, "--help")...)
	if code != ExitOK || !strings.Contains(out, cmd.Long) {
		t.Fatalf("%v --help: exit %d, or it does not print the description\n%s", path, code, stderr)
	}
	return cmd.Long + "\n" + cmd.Flags().FlagUsages()
}

// tableNames returns the names in the first column of a help text's two-column table:
// lines "  NAME  description".
func tableNames(help string) []string {
	row := regexp.MustCompile(`(?m)^  ([a-z0-9-]+) {2,}\S`)
	var names []string
	for _, m := range row.FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestHelpNamesWhatTheCodeHas: each command's help names exactly the layers, modes, policy
// kinds and clouds the code has, derived from the code: a layer or kind added, renamed or
// removed fails here until the help says so.
func TestHelpNamesWhatTheCodeHas(t *testing.T) {
	t.Run("the root help names every audit layer and every policy kind, and no other kind", func(t *testing.T) {
		help := helpOf(t)
		if got, want := tableNames(help), []string{string(layer.ClusterPolicy), string(layer.Node), string(layer.Instance)}; !slices.Equal(got, want) {
			t.Errorf("the root help's layers are %v, want %v", got, want)
		}
		for _, k := range policy.Kinds {
			if !strings.Contains(help, string(k)) {
				t.Errorf("the root help does not name the policy kind %s", k)
			}
		}
		// Every word that looks like a policy kind must be one.
		kindLike := regexp.MustCompile(`\b[A-Z][A-Za-z]*NetworkPolicy(\.[a-z0-9.]+[a-z])?\b`)
		for _, k := range kindLike.FindAllString(help, -1) {
			if !slices.Contains(policy.Kinds, policy.Kind(k)) {
				t.Errorf("the root help names %s, which is not a policy kind (policy.Kinds)", k)
			}
		}
	})
	t.Run("generate's help lists exactly generate's layers", func(t *testing.T) {
		help := helpOf(t, "generate")
		var want []string
		for _, l := range generate.Layers {
			want = append(want, string(l))
		}
		if got := tableNames(help); !slices.Equal(got, want) {
			t.Errorf("generate's help lists the layers %v, want %v", got, want)
		}
		if !strings.Contains(help, strings.Join(want, ", ")+" or all") {
			t.Errorf("--layer's help does not list %s or all", strings.Join(want, ", "))
		}
	})
	t.Run("the controller's help lists exactly its modes", func(t *testing.T) {
		help := helpOf(t, "controller")
		got := tableNames(help)
		slices.Sort(got)
		all := make([]string, len(controller.Modes))
		for i, m := range controller.Modes {
			all[i] = string(m)
		}
		slices.Sort(all)
		if !slices.Equal(got, all) {
			t.Errorf("the controller's help lists the modes %v, want %v", got, all)
		}
	})
	t.Run("every --cloud names exactly the catalogue's clouds, and completes them", func(t *testing.T) {
		list := strings.Join(endpoint.CloudNames()[:len(endpoint.CloudNames())-1], ", ") + " or all"
		root := NewCommand(Streams{In: strings.NewReader(""), Out: &strings.Builder{}, Err: &strings.Builder{}})
		var visit func(*cobra.Command)
		found := 0
		visit = func(c *cobra.Command) {
			if f := c.Flags().Lookup("cloud"); f != nil {
				found++
				if !strings.Contains(f.Usage, list) {
					t.Errorf("%s --cloud: %q does not list %s", c.CommandPath(), f.Usage, list)
				}
			}
			for _, sub := range c.Commands() {
				visit(sub)
			}
		}
		visit(root)
		if found < 4 {
			t.Errorf("found --cloud on %d commands, want audit, generate, controller, agent and agent rules", found)
		}
		for _, cmd := range []string{"audit", "generate", "controller"} {
			_, out, _ := run(t, "", "__complete", cmd, "--cloud", "")
			var got []string
			for line := range strings.Lines(out) {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "Completion") {
					got = append(got, line)
				}
			}
			if !slices.Equal(got, endpoint.CloudNames()) {
				t.Errorf("%s --cloud completes %v, want %v", cmd, got, endpoint.CloudNames())
			}
		}
	})
}
