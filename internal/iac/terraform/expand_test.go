package terraform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// TestForEachAndCount: a resource with for_each or count is one group per instance, addressed
// as Terraform does, with each and count in the evaluation of that instance; references by
// each.key, by a literal key and by a count index resolve to the matching instance.
func TestForEachAndCount(t *testing.T) {
	groups, problems := load(t, "testdata/foreach")
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	unset := func(line int) want { return want{"", false, false, line} }
	unknown := func(line int) want { return want{"", true, false, line} }
	tests := []struct {
		resource string
		spec     string
		eksName  string
		options  wantOptions
		from     string // Options.Resource
		expr     string // HTTPTokens.Expr, else HopLimit.Expr
	}{
		{
			`aws_eks_node_group.this["workers"]`, "for_each over a variable default map; the template by [each.key]; the name is each.key",
			"workers", wantOptions{want{"enabled", true, true, 13}, want{"required", true, true, 14}, want{"1", true, true, 15}, unset(12)},
			`aws_launch_template.this["workers"]`, `each.value.tokens (each.key = "workers")`,
		},
		{
			`aws_eks_node_group.this["legacy"]`, "the other instance: same lines, its own values",
			"legacy", wantOptions{want{"enabled", true, true, 13}, want{"optional", true, true, 14}, want{"2", true, true, 15}, unset(12)},
			`aws_launch_template.this["legacy"]`, `each.value.tokens (each.key = "legacy")`,
		},
		{
			"aws_eks_node_group.spot_a", "for_each over a local; the template by a literal key",
			"spot-a", wantOptions{unset(32), want{"required", true, true, 33}, want{"1", true, true, 34}, unset(32)},
			`aws_launch_template.spot["spot-a"]`, `each.value.hop (each.key = "spot-a")`,
		},
		{
			`aws_launch_template.spot["spot-b"]`, "an instance no group uses is listed on its own",
			"", wantOptions{unset(32), want{"required", true, true, 33}, want{"3", true, true, 34}, unset(32)},
			`aws_launch_template.spot["spot-b"]`, `each.value.hop (each.key = "spot-b")`,
		},
		{
			`aws_instance.zone["a"]`, "for_each over toset(a local list): each.key is the element",
			"", wantOptions{unset(49), want{"required", true, true, 50}, unset(49), unset(49)},
			`aws_instance.zone["a"]`, `each.key == "a" ? "required" : "optional" (each.key = "a")`,
		},
		{
			`aws_instance.zone["b"]`, "the other element of the set",
			"", wantOptions{unset(49), want{"optional", true, true, 50}, unset(49), unset(49)},
			`aws_instance.zone["b"]`, `each.key == "a" ? "required" : "optional" (each.key = "b")`,
		},
		{
			"aws_autoscaling_group.bastion", "count: the template by [0]",
			"", wantOptions{unset(56), want{"required", true, true, 57}, want{"1", true, true, 58}, unset(56)},
			"aws_launch_template.bastion[0]", "count.index + 1 (count.index = 0)",
		},
		{
			"aws_launch_template.bastion[1]", "count: the instance no group uses",
			"", wantOptions{unset(56), want{"required", true, true, 57}, want{"2", true, true, 58}, unset(56)},
			"aws_launch_template.bastion[1]", "count.index + 1 (count.index = 1)",
		},
		{
			"aws_eks_node_group.extra", "for_each over a variable without default: one group, unknown where it depends on each, no name",
			"", wantOptions{unset(72), unknown(73), want{"1", true, true, 74}, unset(72)},
			"aws_launch_template.extra", "each.value.tokens (each not known statically)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			g, ok := groups[tt.resource]
			if !ok {
				t.Fatalf("%s not found (%s); groups: %v", tt.resource, tt.spec, keys(groups))
			}
			if g.EKSNodeGroup != tt.eksName {
				t.Errorf("%s: node group name %q, want %q", tt.spec, g.EKSNodeGroup, tt.eksName)
			}
			if diff := cmp.Diff(tt.options, options(g.Options), cmp.AllowUnexported(wantOptions{}, want{})); diff != "" {
				t.Errorf("%s: options (-want +got):\n%s", tt.spec, diff)
			}
			if g.Options.Resource != tt.from {
				t.Errorf("%s: options of %q, want %q", tt.spec, g.Options.Resource, tt.from)
			}
			expr := g.Options.HTTPTokens.Expr
			if expr == "" {
				expr = g.Options.HopLimit.Expr
			}
			if expr != tt.expr {
				t.Errorf("%s: Expr %q, want %q", tt.spec, expr, tt.expr)
			}
		})
	}
	if len(groups) != len(tests) {
		t.Errorf("%d groups, want %d: %v", len(groups), len(tests), keys(groups))
	}
}

func keys(groups map[string]iac.NodeGroup) []string {
	var out []string
	for k := range groups {
		out = append(out, k)
	}
	return out
}

// TestForEachModuleCall: a local module call with for_each or count is read once per
// instance, under module.NAME["key"]. or module.NAME[0]., its arguments evaluated with each
// or count.
func TestForEachModuleCall(t *testing.T) {
	dir := filepath.Join("testdata", "foreach-calls", "envs", "prod")
	list, problems, err := LoadModules(map[string][]string{dir: {filepath.Join(dir, "main.tf")}})
	if err != nil || len(problems) != 0 {
		t.Fatalf("LoadModules: %v %v", err, problems)
	}
	groups := byResource(t, list)
	tests := []struct {
		resource, eksName, tokens, expr string
	}{
		{`module.nodes["general"].aws_eks_node_group.this`, "general", "required", `var.tokens (module.nodes["general"] argument tokens = each.value.tokens (each.key = "general") at ` + filepath.Join(dir, "main.tf") + ":12:"},
		{`module.nodes["gpu"].aws_eks_node_group.this`, "gpu", "optional", `var.tokens (module.nodes["gpu"] argument tokens = each.value.tokens (each.key = "gpu") at ` + filepath.Join(dir, "main.tf") + ":12:"},
		{`module.canary[0].aws_eks_node_group.this`, "canary-0", "required", `var.tokens (module.canary[0] argument tokens = "required" at `},
	}
	for _, tt := range tests {
		g, ok := groups[tt.resource]
		if !ok {
			t.Errorf("%s not found: %v", tt.resource, keys(groups))
			continue
		}
		o := g.Options
		if g.EKSNodeGroup != tt.eksName || o.HTTPTokens.Value != tt.tokens || !o.HTTPTokens.Known || !strings.HasPrefix(o.HTTPTokens.Expr, tt.expr) {
			t.Errorf("%s: name %q, tokens %+v; want %q, %q from %q", tt.resource, g.EKSNodeGroup, o.HTTPTokens, tt.eksName, tt.tokens, tt.expr)
		}
		if o.Resource != strings.Replace(tt.resource, "aws_eks_node_group", "aws_launch_template", 1) || g.Root != dir {
			t.Errorf("%s: options of %s, root %q", tt.resource, o.Resource, g.Root)
		}
	}
	if len(groups) != len(tests) {
		t.Errorf("%d groups, want %d: %v", len(groups), len(tests), keys(groups))
	}
}

// TestForEachProblems: what Terraform rejects is a problem at its line, and the block is read
// once, unknown where it depends on each or count.
func TestForEachProblems(t *testing.T) {
	tests := []struct {
		name, src, problem, resource string
	}{
		{"list", `resource "aws_instance" "x" {
  for_each = ["a", "b"]
  metadata_options {
    http_tokens = each.value
  }
}`, "for_each takes a map or a set of strings, not a tuple", "aws_instance.x"},
		{"both", `resource "aws_instance" "x" {
  for_each = {}
  count    = 2
  metadata_options {
    http_tokens = each.value
  }
}`, "has both count and for_each", "aws_instance.x"},
		{"negative count", `resource "aws_instance" "x" {
  count = -1
  metadata_options {
    http_tokens = "required"
  }
}`, "count -1 is not a whole number", "aws_instance.x"},
		{"missing key", `resource "aws_launch_template" "lt" {
  for_each = { a = 1 }
  metadata_options {
    http_tokens = "required"
  }
}
resource "aws_eks_node_group" "ng" {
  launch_template {
    id      = aws_launch_template.lt["b"].id
    version = aws_launch_template.lt["b"].latest_version
  }
}`, `aws_launch_template.lt has no instance aws_launch_template.lt["b"].id`, "aws_eks_node_group.ng"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			groups, problems := load(t, dir)
			if len(problems) != 1 || !strings.Contains(problems[0].Message, tt.problem) || problems[0].At.Line < 2 {
				t.Errorf("problems %v, want one saying %q at its line", problems, tt.problem)
			}
			g, ok := groups[tt.resource]
			if !ok {
				t.Fatalf("%s not found: %v", tt.resource, keys(groups))
			}
			if g.Options.HTTPTokens.Known && tt.name != "negative count" {
				t.Errorf("tokens %+v, want unknown", g.Options.HTTPTokens)
			}
		})
	}
}

// An empty for_each or count = 0 declares no instance.
func TestForEachEmpty(t *testing.T) {
	dir := t.TempDir()
	src := `resource "aws_instance" "none" {
  count = 0
}
resource "aws_instance" "empty" {
  for_each = toset([])
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	groups, problems := load(t, dir)
	if len(groups) != 0 || len(problems) != 0 {
		t.Errorf("groups %v, problems %v; want none", keys(groups), problems)
	}
}

// References by each.key to .name and .default_version resolve per instance; a reference whose
// key is not known (the referring block's for_each is not) leaves the options unknown, and
// every instance of the template is then listed on its own.
func TestForEachReferences(t *testing.T) {
	dir := t.TempDir()
	src := `variable "later" {}

locals {
  groups = toset(["a", "b"])
}

resource "aws_launch_template" "this" {
  for_each               = local.groups
  name                   = "nodes-${each.key}"
  update_default_version = true
  metadata_options {
    http_tokens = each.key == "a" ? "required" : "optional"
  }
}

resource "aws_eks_node_group" "this" {
  for_each        = local.groups
  node_group_name = each.key
  launch_template {
    name    = aws_launch_template.this[each.key].name
    version = aws_launch_template.this[each.key].default_version
  }
}

resource "aws_launch_template" "other" {
  for_each = local.groups
  metadata_options {
    http_tokens = "required"
  }
}

resource "aws_eks_node_group" "unknown" {
  for_each        = var.later
  node_group_name = each.key
  launch_template {
    id      = aws_launch_template.other[each.key].id
    version = aws_launch_template.other[each.key].latest_version
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	groups, problems := load(t, dir)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	for key, tokens := range map[string]string{"a": "required", "b": "optional"} {
		g := groups[`aws_eks_node_group.this["`+key+`"]`]
		if g.EKSNodeGroup != key || g.Options.HTTPTokens.Value != tokens || g.Options.Resource != `aws_launch_template.this["`+key+`"]` {
			t.Errorf("instance %s: name %q, tokens %+v from %s", key, g.EKSNodeGroup, g.Options.HTTPTokens, g.Options.Resource)
		}
	}
	u, ok := groups["aws_eks_node_group.unknown"]
	if !ok || u.Options.HTTPTokens.Known || !strings.Contains(u.Options.HTTPTokens.Expr, "an instance not known statically") {
		t.Errorf("a key not known: %+v", u.Options.HTTPTokens)
	}
	for _, own := range []string{`aws_launch_template.other["a"]`, `aws_launch_template.other["b"]`} {
		if _, listed := groups[own]; !listed {
			t.Errorf("%s is not listed on its own: %v", own, keys(groups))
		}
	}
	if len(groups) != 5 {
		t.Errorf("groups %v, want the two instances, unknown and other's two", keys(groups))
	}
}
