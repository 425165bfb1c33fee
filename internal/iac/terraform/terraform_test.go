package terraform

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// want is what a test checks of a value: the value, Set, Known and the line.
type want struct {
	value string
	set   bool
	known bool
	line  int
}

func str(v iac.Value[string]) want { return want{v.Value, v.Set, v.Known, v.At.Line} }
func num(v iac.Value[int]) want {
	s := ""
	if v.Known {
		s = strconv.Itoa(v.Value)
	}
	return want{s, v.Set, v.Known, v.At.Line}
}

type wantOptions struct{ endpoint, tokens, hop, ipv6 want }

func options(o iac.MetadataOptions) wantOptions {
	return wantOptions{str(o.HTTPEndpoint), str(o.HTTPTokens), num(o.HopLimit), str(o.HTTPProtocolIPv6)}
}

func byResource(t *testing.T, groups []iac.NodeGroup) map[string]iac.NodeGroup {
	t.Helper()
	out := map[string]iac.NodeGroup{}
	for _, g := range groups {
		if _, dup := out[g.Resource]; dup {
			t.Fatalf("resource %s returned twice", g.Resource)
		}
		out[g.Resource] = g
	}
	return out
}

func load(t *testing.T, dir string) (map[string]iac.NodeGroup, []iac.Problem) {
	t.Helper()
	groups, problems, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return byResource(t, groups), problems
}

func TestLaunchTemplateReferences(t *testing.T) {
	groups, problems := load(t, "testdata/eks")
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	unknownAt := func(line int) want { return want{"", true, false, line} }
	tests := []struct {
		resource  string
		spec      string
		eksName   string
		ltID      string
		ltVersion string
		options   wantOptions
	}{
		{
			"aws_eks_node_group.workers",
			"id = .id and version = .latest_version resolve to the template; locals and variable defaults are evaluated",
			"prod-workers", "", "",
			wantOptions{want{"enabled", true, true, 12}, want{"required", true, true, 13}, want{"1", true, true, 14}, want{"disabled", true, true, 15}},
		},
		{
			"aws_eks_node_group.default_version",
			".default_version of a template with update_default_version = true is the configured version",
			"default", "", "",
			wantOptions{want{"enabled", true, true, 12}, want{"required", true, true, 13}, want{"1", true, true, 14}, want{"disabled", true, true, 15}},
		},
		{
			"aws_eks_node_group.pinned",
			"$Default of a template without update_default_version may be an older version: unknown",
			"pinned", "", "",
			wantOptions{unknownAt(51), unknownAt(51), unknownAt(51), unknownAt(51)},
		},
		{
			"aws_eks_node_group.external",
			"a literal template ID outside the configuration is a join key; its options are unknown",
			"external", "lt-0123456789abcdef0", "3",
			wantOptions{unknownAt(59), unknownAt(59), unknownAt(59), unknownAt(59)},
		},
		{
			"aws_eks_node_group.eks_template",
			"no launch_template: EKS's own template, not stated by the code; a data source name is not a join key",
			"", "", "",
			wantOptions{want{"", false, false, 64}, want{"", false, false, 64}, want{"", false, false, 64}, want{"", false, false, 64}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			g, ok := groups[tt.resource]
			if !ok {
				t.Fatalf("%s not found (%s)", tt.resource, tt.spec)
			}
			if g.EKSNodeGroup != tt.eksName || g.LaunchTemplateID != tt.ltID || g.LaunchTemplateVersion != tt.ltVersion {
				t.Errorf("%s: keys = %q %q %q, want %q %q %q", tt.spec, g.EKSNodeGroup, g.LaunchTemplateID, g.LaunchTemplateVersion, tt.eksName, tt.ltID, tt.ltVersion)
			}
			if diff := cmp.Diff(tt.options, options(g.Options), cmp.AllowUnexported(wantOptions{}, want{})); diff != "" {
				t.Errorf("%s: options (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
	if _, listed := groups["aws_launch_template.workers"]; listed {
		t.Error("a launch template a node group uses is listed on its own too")
	}
	if groups["aws_eks_node_group.workers"].Options.HopLimit.Expr != "var.hop_limit" {
		t.Errorf("Expr of a variable reference = %q", groups["aws_eks_node_group.workers"].Options.HopLimit.Expr)
	}
}

func TestResourcesTruthTable(t *testing.T) {
	groups, problems := load(t, "testdata/asg")
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	unset := func(line int) want { return want{"", false, false, line} }
	tests := []struct {
		resource string
		spec     string
		options  wantOptions
	}{
		{"aws_autoscaling_group.mixed", "mixed_instances_policy launch_template_specification with $Latest takes the template's options; left-out attributes are inherited",
			wantOptions{unset(7), want{"optional", true, true, 8}, want{"2", true, true, 9}, unset(7)}},
		{"aws_autoscaling_group.legacy", "launch_configuration takes the launch configuration's options; it has no http_protocol_ipv6",
			wantOptions{want{"enabled", true, true, 20}, want{"required", true, true, 21}, unset(19), unset(19)}},
		{"aws_instance.bastion", "a function call is not evaluated: set, unknown",
			wantOptions{want{"enabled", true, true, 43}, want{"required", true, true, 44}, want{"", true, false, 45}, unset(42)}},
		{"aws_instance.plain", "no metadata_options block: nothing set, at the resource",
			wantOptions{unset(49), unset(49), unset(49), unset(49)}},
		{"aws_launch_template.lonely", "a template no group uses is still listed",
			wantOptions{unset(13), unset(13), unset(13), unset(13)}},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			g, ok := groups[tt.resource]
			if !ok {
				t.Fatalf("%s not found", tt.resource)
			}
			if diff := cmp.Diff(tt.options, options(g.Options), cmp.AllowUnexported(wantOptions{}, want{})); diff != "" {
				t.Errorf("%s: options (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
	for _, used := range []string{"aws_launch_template.spot", "aws_launch_configuration.legacy"} {
		if _, listed := groups[used]; listed {
			t.Errorf("%s is used by a group and listed on its own too", used)
		}
	}
	if got := groups["aws_instance.bastion"].Options.HopLimit.Expr; got != "min(1, 2)" {
		t.Errorf("Expr of a function call = %q, want the source text", got)
	}
}

func TestLocalsCycle(t *testing.T) {
	groups, problems := load(t, "testdata/cycle")
	if len(problems) != 1 || problems[0].At.Line != 2 || !strings.Contains(problems[0].Message, "cycle between locals: local.a → local.b → local.a") {
		t.Fatalf("problems = %v, want one cycle at line 2", problems)
	}
	o := groups["aws_instance.x"].Options
	if !o.HTTPTokens.Known || o.HTTPTokens.Value != "required" {
		t.Errorf("a local outside the cycle is evaluated: %+v", o.HTTPTokens)
	}
	if o.HopLimit.Known || !o.HopLimit.Set || o.HopLimit.Expr != "local.a" {
		t.Errorf("a local in the cycle is set and unknown: %+v", o.HopLimit)
	}
}

func TestUnparsableFile(t *testing.T) {
	groups, problems := load(t, "testdata/broken")
	if len(problems) == 0 || problems[0].At.File != "testdata/broken/bad.tf" || problems[0].At.Line != 3 {
		t.Fatalf("problems = %v, want one at testdata/broken/bad.tf:3", problems)
	}
	if _, ok := groups["aws_instance.y"]; ok {
		t.Error("a resource of an unparsable file is read")
	}
	if g, ok := groups["aws_instance.x"]; !ok || g.Options.HTTPTokens.Value != "required" {
		t.Error("the other files are still read")
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	if _, _, err := Load("testdata/does-not-exist"); err == nil {
		t.Error("Load of a missing directory: no error")
	}
}

func TestEKSModule(t *testing.T) {
	groups, problems := load(t, "testdata/module")
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	unset := func(line int) want { return want{"", false, false, line} }
	unknown := func(line int) want { return want{"", true, false, line} }
	tests := []struct {
		resource  string
		spec      string
		eksName   string
		defaulted bool
		options   wantOptions
	}{
		{`module.eks.eks_managed_node_groups["default"]`, "v20 without metadata_options: the module's default, required and hop limit 2, at the module block",
			"", true, wantOptions{want{"enabled", true, true, 16}, want{"required", true, true, 16}, want{"2", true, true, 16}, unset(16)}},
		{`module.eks.eks_managed_node_groups["relaxed"]`, "v20 metadata_options replaces the default map: left-out attributes are inherited; use_name_prefix = false makes the name a join key",
			"relaxed", false, wantOptions{unset(9), want{"optional", true, true, 10}, unset(9), unset(9)}},
		{`module.eks_next.eks_managed_node_groups["general"]`, "v21 without metadata_options: required and hop limit 1",
			"", true, wantOptions{want{"enabled", true, true, 24}, want{"required", true, true, 24}, want{"1", true, true, 24}, unset(24)}},
		{`module.eks_next.eks_managed_node_groups["custom"]`, "v21 metadata_options: left-out attributes are unknown",
			"", false, wantOptions{unknown(34), unknown(34), want{"2", true, true, 35}, unknown(34)}},
		{`module.eks_floating.eks_managed_node_groups["any"]`, "a version constraint spanning majors leaves the defaults unknown",
			"", false, wantOptions{unknown(41), unknown(41), unknown(41), unknown(41)}},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			g, ok := groups[tt.resource]
			if !ok {
				t.Fatalf("%s not found", tt.resource)
			}
			if g.EKSNodeGroup != tt.eksName || g.Defaulted != tt.defaulted {
				t.Errorf("%s: name %q defaulted %v, want %q %v", tt.spec, g.EKSNodeGroup, g.Defaulted, tt.eksName, tt.defaulted)
			}
			if diff := cmp.Diff(tt.options, options(g.Options), cmp.AllowUnexported(wantOptions{}, want{})); diff != "" {
				t.Errorf("%s: options (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
	if len(groups) != len(tests) {
		t.Errorf("%d groups, want %d (other modules are not read)", len(groups), len(tests))
	}
}

func TestPinnedMajor(t *testing.T) {
	for constraint, major := range map[string]int{
		"20.8.5": 20, "= 20.8.5": 20, "~> 20.0": 20, "~> 21.1.0": 21, "v19.21.0": 19,
		"~> 20": 0, ">= 18.0": 0, ">= 18, < 21": 0, "": 0,
	} {
		if got := pinnedMajor(constraint); got != major {
			t.Errorf("pinnedMajor(%q) = %d, want %d", constraint, got, major)
		}
	}
}

func TestLoadPlan(t *testing.T) {
	list, problems, err := LoadPlan("testdata/plan.json")
	if err != nil || len(problems) != 0 {
		t.Fatalf("LoadPlan: %v %v", err, problems)
	}
	groups := byResource(t, list)
	if _, ok := groups["aws_launch_template.workers"]; ok {
		t.Error("the launch template the node group uses is reported on its own too")
	}
	ng := groups["aws_eks_node_group.workers"]
	if ng.EKSNodeGroup != "prod-workers" || ng.LaunchTemplateVersion != "4" {
		t.Errorf("node group keys: %+v", ng)
	}
	expected := wantOptions{want{"enabled", true, true, 8}, want{"optional", true, true, 8}, want{"2", true, true, 8}, want{"", false, false, 8}}
	if diff := cmp.Diff(expected, options(ng.Options), cmp.AllowUnexported(wantOptions{}, want{})); diff != "" {
		t.Errorf("version 4 = latest_version resolves to the template (-want +got):\n%s", diff)
	}
	inst := groups["module.bastion.aws_instance.this"]
	if inst.At.Line != 43 || inst.Options.HTTPTokens.Value != "required" {
		t.Errorf("child module instance: %+v", inst)
	}
	if h := inst.Options.HopLimit; !h.Set || h.Known {
		t.Errorf("a value left out of planned_values is unknown until apply: %+v", h)
	}
	if lc := groups["module.bastion.aws_launch_configuration.old"].Options.HTTPTokens; lc.Set {
		t.Errorf("an empty metadata_options list is not set: %+v", lc)
	}
	if _, _, err := LoadPlan("testdata/eks/main.tf"); err == nil {
		t.Error("LoadPlan of HCL: no error")
	}
}

func FuzzTerraform(f *testing.F) {
	for _, seed := range []string{
		"resource \"aws_launch_template\" \"x\" {\n metadata_options {\n http_tokens = local.t\n }\n}\nlocals {\n t = \"required\"\n}\n",
		"locals {\n a = local.b\n b = local.a\n}\n",
		"module \"eks\" {\n source = \"terraform-aws-modules/eks/aws\"\n version = \"~> 20.0\"\n eks_managed_node_groups = { a = { metadata_options = { http_put_response_hop_limit = \"x\" } } }\n}\n",
		"resource \"aws_eks_node_group\" \"n\" {\n launch_template {\n name = \"x\"\n version = 1\n }\n}\n",
		"resource \"aws_launch_template\" \"t\" {\n for_each = toset([\"a\"])\n metadata_options {\n http_tokens = each.value\n }\n}\nresource \"aws_eks_node_group\" \"n\" {\n count = 2\n launch_template {\n id = aws_launch_template.t[count.index].id\n version = aws_launch_template.t[\"a\"].latest_version\n }\n}\n",
		`{"format_version":"1.2","planned_values":{"root_module":{"resources":[{"address":"a","mode":"managed","type":"aws_instance","values":{"metadata_options":[{"http_put_response_hop_limit":1e300}]}}]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parseModule(map[string][]byte{"main.tf": data})
		_, _, _ = parsePlan("plan.json", data)
	})
}

// TestOriginsNameResourceAndPosition checks that the origin of every option, stated or left
// out, names the file, the line and the resource that states (or leaves out) the option: the
// launch template or launch configuration a group uses, else the group itself.
func TestOriginsNameResourceAndPosition(t *testing.T) {
	groups, problems := load(t, "testdata/asg")
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	planGroups, planProblems, err := LoadPlan("testdata/plan.json")
	if err != nil || len(planProblems) != 0 {
		t.Fatalf("LoadPlan: %v %v", err, planProblems)
	}
	plan := byResource(t, planGroups)
	tests := []struct {
		group    iac.NodeGroup
		tokens   string // what the HttpTokens origin must contain
		hopLimit string // what the HttpPutResponseHopLimit origin must contain
	}{
		{groups["aws_instance.plain"], "testdata/asg/main.tf:49:1 aws_instance.plain leaves HttpTokens out", "testdata/asg/main.tf:49:1 aws_instance.plain leaves HttpPutResponseHopLimit out"},
		{groups["aws_launch_template.lonely"], "testdata/asg/main.tf:13:1 aws_launch_template.lonely leaves HttpTokens out", "aws_launch_template.lonely leaves HttpPutResponseHopLimit out"},
		{groups["aws_autoscaling_group.mixed"], "testdata/asg/main.tf:8:35 aws_launch_template.spot http_tokens", "testdata/asg/main.tf:9:35 aws_launch_template.spot http_put_response_hop_limit"},
		{groups["aws_autoscaling_group.legacy"], "aws_launch_configuration.legacy http_tokens", "testdata/asg/main.tf:19:3 aws_launch_configuration.legacy leaves HttpPutResponseHopLimit out"},
		{plan["aws_eks_node_group.workers"], "testdata/plan.json:8 aws_launch_template.workers http_tokens", "aws_launch_template.workers http_put_response_hop_limit"},
		{plan["module.bastion.aws_instance.this"], "module.bastion.aws_instance.this http_tokens", "testdata/plan.json:43 module.bastion.aws_instance.this http_put_response_hop_limit is http_put_response_hop_limit (known after apply)"},
		{plan["module.bastion.aws_launch_configuration.old"], "module.bastion.aws_launch_configuration.old leaves HttpTokens out", "module.bastion.aws_launch_configuration.old leaves HttpPutResponseHopLimit out"},
	}
	for _, tt := range tests {
		if tt.group.Resource == "" {
			t.Fatalf("a group of the test is missing: %+v", tt)
		}
		o := iac.Resolve(tt.group.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
		if !strings.Contains(o.Tokens.Origin, tt.tokens) {
			t.Errorf("%s: HttpTokens origin %q, want it to contain %q", tt.group.Resource, o.Tokens.Origin, tt.tokens)
		}
		if !strings.Contains(o.HopLimit.Origin, tt.hopLimit) {
			t.Errorf("%s: HttpPutResponseHopLimit origin %q, want it to contain %q", tt.group.Resource, o.HopLimit.Origin, tt.hopLimit)
		}
	}
}

// TestLoadModules: a module called with a local source is read as each call, with the call's
// arguments, under the call's address; the modules it calls in turn too. A module no one calls
// is read on its own; a source that is not there, and a cycle, are problems at the call.
func TestLoadModules(t *testing.T) {
	const base = "testdata/calls"
	dirs := map[string][]string{}
	for _, d := range []string{"envs/prod", "envs/dev", "modules/nodes", "loop/a", "loop/b"} {
		files, err := filepath.Glob(filepath.Join(base, d, "*.tf"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v", d, err)
		}
		dirs[filepath.Join(base, d)] = files
	}
	list, problems, err := LoadModules(dirs)
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(g iac.NodeGroup) layer.AWSMetadataOptions {
		return iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
	}
	var prod, dev, prodBastion, devBastion int
	for _, g := range list {
		o := resolve(g)
		switch {
		case g.Resource == "module.nodes.aws_eks_node_group.this" && g.EKSNodeGroup == "prod-workers":
			prod++
			if g.Root != filepath.Join(base, "envs/prod") {
				t.Errorf("prod's root = %q", g.Root)
			}
			if !o.Tokens.Known || o.Tokens.Value != "required" || !o.HopLimit.Known || o.HopLimit.Value != 1 {
				t.Errorf("prod: tokens %+v, hop %+v; want required from the call, 1 from the default", o.Tokens, o.HopLimit)
			}
			if v := g.Options.HTTPTokens; !strings.HasPrefix(v.At.File, filepath.Join(base, "modules/nodes")) || !strings.Contains(v.Expr, `module.nodes argument http_tokens = "required" at `+filepath.Join(base, "envs/prod/main.tf")+":4") {
				t.Errorf("prod tokens at %v, expr %q; want the module's line and the call's argument", v.At, v.Expr)
			}
		case g.Resource == "module.nodes.aws_eks_node_group.this" && g.EKSNodeGroup == "dev-workers":
			dev++
			if o.Tokens.Value != "optional" || o.HopLimit.Value != 2 {
				t.Errorf("dev: tokens %+v, hop %+v; want optional (a local of the caller) and 2", o.Tokens, o.HopLimit)
			}
		case g.Resource == "module.nodes.module.bastion.aws_instance.this":
			switch o.Tokens.Value {
			case "required":
				prodBastion++
			case "optional":
				devBastion++
			}
		case strings.HasPrefix(g.Resource, "aws_") && strings.Contains(g.Options.HTTPTokens.At.File, "modules/nodes"):
			t.Errorf("the called module was also read on its own: %s", g.Resource)
		}
	}
	if prod != 1 || dev != 1 || prodBastion != 1 || devBastion != 1 {
		t.Errorf("instances: prod %d, dev %d, bastion %d+%d; want one of each", prod, dev, prodBastion, devBastion)
	}
	if !slices.ContainsFunc(list, func(g iac.NodeGroup) bool { return strings.HasSuffix(g.Resource, "aws_instance.x") }) {
		t.Errorf("a module of a cycle is still read: %v", list)
	}
	for _, want := range []string{"source " + filepath.Join(base, "envs/prod/not-there") + " is not a directory", "which calls it back"} {
		if !slices.ContainsFunc(problems, func(p iac.Problem) bool { return strings.Contains(p.Message, want) && p.At.Line > 0 }) {
			t.Errorf("problems %v: none says %q at a line", problems, want)
		}
	}

	// Given only the caller, the called module is read through its source.
	only, _, err := LoadModules(map[string][]string{filepath.Join(base, "envs/prod"): {filepath.Join(base, "envs/prod/main.tf")}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(only, func(g iac.NodeGroup) bool { return g.EKSNodeGroup == "prod-workers" }) {
		t.Errorf("the local source was not followed: %v", only)
	}
}
