package fix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/terraform"
)

// TestPatchForEach: the instances of a resource with for_each or count are written by one
// block, patched once with what any instance needs; an expression that differs by instance
// (each.value.tokens) is replaced for all of them, with a note, and every instance then
// resolves to tokens required and a hop limit within the target. A module called with
// for_each is patched in its own files.
func TestPatchForEach(t *testing.T) {
	for _, hop := range []int{1, 2} {
		for _, fx := range []struct{ name, src, root string }{
			{"resources", filepath.Join("..", "terraform", "testdata", "foreach"), "."},
			{"calls", filepath.Join("..", "terraform", "testdata", "foreach-calls"), filepath.Join("envs", "prod")},
		} {
			t.Run(fx.name+"/hop"+string(rune('0'+hop)), func(t *testing.T) {
				dir := t.TempDir()
				if err := os.CopyFS(dir, os.DirFS(fx.src)); err != nil {
					t.Fatal(err)
				}
				load := func() []iac.NodeGroup {
					t.Helper()
					root := filepath.Join(dir, fx.root)
					files, _ := filepath.Glob(filepath.Join(root, "*.tf"))
					groups, problems, err := terraform.LoadModules(map[string][]string{root: files})
					if err != nil || len(problems) != 0 {
						t.Fatalf("LoadModules: %v %v", err, problems)
					}
					return groups
				}
				before := load()
				target := Target{HopLimit: hop, Base: dir}
				diff, notes, err := Patch(before, os.ReadFile, target)
				if err != nil {
					t.Fatalf("Patch: %v", err)
				}
				if fx.name == "resources" {
					if n := strings.Count(string(diff), "+    http_tokens"); n != 3 {
						t.Errorf("http_tokens set %d times, want once in each of aws_launch_template.this, aws_instance.zone and aws_launch_template.extra:\n%s", n, diff)
					}
					if !containsNote(notes, `http_tokens was each.value.tokens, which differs by instance; the patch sets "required" for every instance`) {
						t.Errorf("no note on each.value.tokens: %v", notes)
					}
				}
				apply(t, dir, diff)
				after := load()
				if len(after) != len(before) {
					t.Fatalf("%d groups after the patch, %d before", len(after), len(before))
				}
				for _, g := range after {
					r := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
					if !r.Tokens.Known || r.Tokens.Value != "required" || !r.HopLimit.Known || r.HopLimit.Value > hop {
						t.Errorf("%s after the patch: tokens %+v, hop limit %+v; want required, at most %d; notes %v", g.Resource, r.Tokens, r.HopLimit, hop, notes)
					}
				}
				if again, _, err := Patch(after, os.ReadFile, target); err != nil || len(again) != 0 {
					t.Errorf("second Patch: %v\n%s", err, again)
				}
			})
		}
	}
}

func containsNote(notes []Note, s string) bool {
	for _, n := range notes {
		if strings.Contains(n.Message, s) {
			return true
		}
	}
	return false
}

// A node group with for_each on the default version of its template's instance is moved to
// the newest version of its own instance: [each.key].latest_version, written once.
func TestPatchForEachVersionInDoubt(t *testing.T) {
	dir := t.TempDir()
	src := `locals {
  groups = {
    a = "optional"
    b = "required"
  }
}

resource "aws_launch_template" "this" {
  for_each = local.groups
  name     = each.key
  metadata_options {
    http_tokens = each.value
  }
}

resource "aws_eks_node_group" "this" {
  for_each        = local.groups
  node_group_name = each.key
  launch_template {
    id = aws_launch_template.this[each.key].id
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	before := loadTerraform(t, dir)
	if len(before) != 2 {
		t.Fatalf("%d groups, want 2", len(before))
	}
	for _, g := range before {
		if g.VersionInDoubt == "" {
			t.Fatalf("%s: want a version in doubt before the patch", g.Resource)
		}
	}
	diff, notes, err := Patch(before, os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(diff), "+    version = aws_launch_template.this[each.key].latest_version"); n != 1 {
		t.Fatalf("version set %d times, want once:\n%s", n, diff)
	}
	apply(t, dir, diff)
	for _, g := range loadTerraform(t, dir) {
		r := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
		if g.VersionInDoubt != "" || r.Tokens.Value != "required" || r.HopLimit.Value != 1 {
			t.Errorf("%s after the patch: version in doubt %q, tokens %+v, hop limit %+v; notes %v", g.Resource, g.VersionInDoubt, r.Tokens, r.HopLimit, notes)
		}
	}
}

func TestLocalAddress(t *testing.T) {
	for in, want := range map[string]string{
		`module.nodes.aws_launch_template.this`:                       "aws_launch_template.this",
		`module.nodes["a.b"].aws_launch_template.this["x.y"]`:         `aws_launch_template.this["x.y"]`,
		`module.nodes[0].module.inner["k"].aws_instance.x[1]`:         "aws_instance.x[1]",
		`module.eks.eks_managed_node_groups["own"]`:                   `module.eks.eks_managed_node_groups["own"]`,
		`module.nodes["a"].module.eks.eks_managed_node_groups["own"]`: `module.eks.eks_managed_node_groups["own"]`,
	} {
		if got := localAddress(in); got != want {
			t.Errorf("localAddress(%s) = %s, want %s", in, got, want)
		}
	}
	if typ, name := tfBlock(`aws_launch_template.this["a.b"]`); typ != "aws_launch_template" || name != "this" {
		t.Errorf("tfBlock = %s %s", typ, name)
	}
}
