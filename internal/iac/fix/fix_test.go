package fix

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/terraform"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden diffs")

// loadTerraform reads dir as one Terraform module.
func loadTerraform(t *testing.T, dir string) []iac.NodeGroup {
	t.Helper()
	groups, problems, err := terraform.Load(dir)
	if err != nil || len(problems) != 0 {
		t.Fatalf("terraform.Load(%s): %v %v", dir, err, problems)
	}
	return groups
}

// loadYAML reads every file of dir with read.
func loadYAML(read func(string, []byte) ([]iac.NodeGroup, []iac.Problem, error)) func(*testing.T, string) []iac.NodeGroup {
	return func(t *testing.T, dir string) []iac.NodeGroup {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var groups []iac.NodeGroup
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			g, _, err := read(path, data)
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
			groups = append(groups, g...)
		}
		return groups
	}
}

type fixture struct {
	dir  string
	load func(*testing.T, string) []iac.NodeGroup
	// unpatched are the groups Patch cannot patch: each gets a note, and keeps its options.
	unpatched []string
	// caveats are the groups patched with a note (an expression replaced) at hop limit 1.
	caveats []string
}

var fixtures = []fixture{
	{
		dir:  "terraform",
		load: loadTerraform,
		unpatched: []string{
			"aws_eks_node_group.external",                         // a launch template ID only
			`module.eks.eks_managed_node_groups["own"]`,           // EKS's own launch template
			`module.eks_local.eks_managed_node_groups["general"]`, // the local is in another file
		},
		caveats: []string{"aws_eks_node_group.a"}, // http_tokens = var.tokens
	},
	{
		dir:  "cloudformation",
		load: loadYAML(iac.ReadCloudFormation),
		unpatched: []string{
			"AWS::EKS::Nodegroup External", // a launch template ID only
			"AWS::EC2::Instance Conditional",
		},
		caveats: []string{"AWS::EKS::Nodegroup Workers"}, // its template's HopLimit !Ref HopLimit
	},
	{
		dir:       "eksctl",
		load:      loadYAML(iac.ReadEksctl),
		unpatched: []string{"eksctl managedNodeGroups[1] mng-custom"},
	},
}

// copyDir copies the files of testdata/name into a new temporary directory.
func copyDir(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// apply applies diff in dir with the patch binary, as a user would.
func apply(t *testing.T, dir string, diff []byte) {
	t.Helper()
	if _, err := exec.LookPath("patch"); err != nil {
		t.Fatal("patch(1) is not installed: apt-get install -y patch (hack/node-deps.sh installs it as root)")
	}
	cmd := exec.Command("patch", "-p1", "--batch", "--forward")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(diff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch -p1: %v\n%s\ndiff:\n%s", err, out, diff)
	}
	if strings.Contains(string(diffOutput(t, dir)), ".rej") {
		t.Fatalf("patch left rejects in %s", dir)
	}
}

func diffOutput(t *testing.T, dir string) []byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return []byte(strings.Join(names, "\n"))
}

func noted(notes []Note, resource string) []Note {
	var out []Note
	for _, n := range notes {
		if n.Resource == resource {
			out = append(out, n)
		}
	}
	return out
}

func TestPatch(t *testing.T) {
	for _, fx := range fixtures {
		for _, hop := range []int{1, 2} {
			t.Run(fx.dir+"/hop"+string(rune('0'+hop)), func(t *testing.T) {
				dir := copyDir(t, fx.dir)
				before := fx.load(t, dir)
				target := Target{HopLimit: hop, Base: dir}
				diff, notes, err := Patch(before, os.ReadFile, target)
				if err != nil {
					t.Fatalf("Patch: %v", err)
				}
				if len(diff) == 0 {
					t.Fatal("empty diff")
				}
				expected := fx.unpatched
				if hop == 1 {
					expected = append(append([]string(nil), expected...), fx.caveats...)
				}
				for _, r := range expected {
					if len(noted(notes, r)) == 0 {
						t.Errorf("no note for %s; notes: %v", r, notes)
					}
				}
				apply(t, dir, diff)

				after := fx.load(t, dir)
				if len(after) != len(before) {
					t.Fatalf("%d groups after the patch, %d before", len(after), len(before))
				}
				unpatched := map[string]bool{}
				for _, r := range fx.unpatched {
					unpatched[r] = true
				}
				for _, g := range after {
					r := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
					fixed := r.Tokens.Known && r.Tokens.Value == "required" && r.HopLimit.Known && r.HopLimit.Value <= hop
					if unpatched[g.Resource] {
						if fixed {
							t.Errorf("%s: fixed, but it was to be left with a note", g.Resource)
						}
						continue
					}
					if !fixed {
						t.Errorf("%s: after the patch tokens %+v, hop limit %+v; want required, at most %d", g.Resource, r.Tokens, r.HopLimit, hop)
					}
				}

				again, _, err := Patch(after, os.ReadFile, target)
				if err != nil {
					t.Fatalf("second Patch: %v", err)
				}
				if len(again) != 0 {
					t.Errorf("second Patch is not empty:\n%s", again)
				}

				golden := filepath.Join("testdata", fx.dir+"-hop"+string(rune('0'+hop))+".golden")
				if *update {
					if err := os.WriteFile(golden, diff, 0o600); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to write it)", err)
				}
				if !bytes.Equal(want, diff) {
					t.Errorf("diff differs from %s (go test -update rewrites it):\n%s", golden, diff)
				}
			})
		}
	}
}

// TestPatchGitApply applies one diff with git apply too.
func TestPatchGitApply(t *testing.T) {
	dir := copyDir(t, "terraform")
	diff, _, err := Patch(loadTerraform(t, dir), os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "apply", "-p1", "-")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(diff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v\n%s", err, out)
	}
	again, _, err := Patch(loadTerraform(t, dir), os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil || len(again) != 0 {
		t.Errorf("after git apply: %v\n%s", err, again)
	}
}

// TestPatchSharedTemplate checks that two groups on one launch template patch it once.
func TestPatchSharedTemplate(t *testing.T) {
	dir := copyDir(t, "terraform")
	groups := loadTerraform(t, dir)
	var shared []iac.NodeGroup
	for _, g := range groups {
		if g.Options.Resource == "aws_launch_template.nodes" {
			shared = append(shared, g)
		}
	}
	if len(shared) != 2 {
		t.Fatalf("%d groups on aws_launch_template.nodes, want 2", len(shared))
	}
	diff, notes, err := Patch(shared, os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(diff), "+    http_tokens"); n != 1 {
		t.Errorf("http_tokens replaced %d times, want once:\n%s", n, diff)
	}
	if len(notes) != 1 {
		t.Errorf("notes %v, want one (the variable)", notes)
	}
}

func TestPatchNotes(t *testing.T) {
	at := iac.Position{File: "plan.json", Line: 3}
	groups := []iac.NodeGroup{
		{Resource: "aws_launch_template.x", At: at, Options: iac.MetadataOptions{Resource: "aws_launch_template.x", At: at}},
		{Resource: "aws_eks_node_group.y", At: at, Options: iac.MetadataOptions{At: at,
			HTTPTokens: iac.Value[string]{Set: true, At: at, Expr: "launch template lt-1, not declared in this configuration"}}},
	}
	read := func(string) ([]byte, error) { t.Fatal("nothing to read"); return nil, nil }
	diff, notes, err := Patch(groups, read, Target{HopLimit: 1})
	if err != nil || len(diff) != 0 {
		t.Fatalf("Patch: %v %q", err, diff)
	}
	var msgs []string
	for _, n := range notes {
		msgs = append(msgs, n.String())
	}
	sort.Strings(msgs)
	if len(msgs) != 2 || !strings.Contains(msgs[1], "Terraform plan") || !strings.Contains(msgs[0], "lt-1") {
		t.Errorf("notes: %q", msgs)
	}
	if _, _, err := Patch(nil, read, Target{HopLimit: 0}); err == nil {
		t.Error("hop limit 0: no error")
	}
}

// TestPatchNoFinalNewline patches a file whose last line has no newline.
func TestPatchNoFinalNewline(t *testing.T) {
	dir := t.TempDir()
	src := "resource \"aws_instance\" \"x\" {\n  ami = \"ami-1\"\n}"
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	diff, _, err := Patch(loadTerraform(t, dir), os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(diff), "\\ No newline at end of file") {
		t.Errorf("diff does not mark the missing newline:\n%s", diff)
	}
	apply(t, dir, diff)
	again, _, err := Patch(loadTerraform(t, dir), os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil || len(again) != 0 {
		t.Errorf("after the patch: %v\n%s", err, again)
	}
}

// FuzzPatch feeds odd files to Patch through the readers: it must not panic, and its diff
// must be empty or well formed.
func FuzzPatch(f *testing.F) {
	for _, name := range []string{"terraform/main.tf", "terraform/eks.tf", "cloudformation/nodes.yaml", "cloudformation/nodes.json", "eksctl/cluster.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Ext(name), data)
	}
	f.Fuzz(func(t *testing.T, ext string, data []byte) {
		var groups []iac.NodeGroup
		file := "f" + ext
		switch ext {
		case ".tf":
			dir := t.TempDir()
			file = filepath.Join(dir, "main.tf")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			groups, _, _ = terraform.Load(dir)
		default:
			g1, _, _ := iac.ReadCloudFormation(file, data)
			g2, _, _ := iac.ReadEksctl(file, data)
			groups = append(g1, g2...)
		}
		read := func(string) ([]byte, error) { return data, nil }
		diff, _, err := Patch(groups, read, Target{HopLimit: 1, Base: filepath.Dir(file)})
		if err == nil && len(diff) > 0 && !bytes.HasPrefix(diff, []byte("--- a/")) {
			t.Errorf("diff starts %q", diff[:min(len(diff), 20)])
		}
	})
}

// A node group on the default version of a template that does not follow its newest version
// gets the template patched and is moved to the newest version.
func TestPatchVersionInDoubt(t *testing.T) {
	dir := t.TempDir()
	src := `resource "aws_launch_template" "nodes" {
  name = "nodes"
  metadata_options {
    http_tokens = "optional"
  }
}

resource "aws_eks_node_group" "default_version" {
  node_group_name = "default-version"
  launch_template {
    id = aws_launch_template.nodes.id
  }
}

resource "aws_eks_node_group" "pinned" {
  node_group_name = "pinned"
  launch_template {
    name    = aws_launch_template.nodes.name
    version = "3"
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	before := loadTerraform(t, dir)
	for _, g := range before {
		if g.VersionInDoubt == "" {
			t.Fatalf("%s: want a version in doubt before the patch", g.Resource)
		}
	}
	diff, notes, err := Patch(before, os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, dir, diff)
	after := loadTerraform(t, dir)
	if len(after) != 2 {
		t.Fatalf("got %d groups after the patch, want 2; notes %v", len(after), notes)
	}
	for _, g := range after {
		r := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
		if g.VersionInDoubt != "" || !r.Tokens.Known || r.Tokens.Value != "required" || r.HopLimit.Value != 1 {
			t.Errorf("%s after the patch: version in doubt %q, tokens %+v, hop limit %+v", g.Resource, g.VersionInDoubt, r.Tokens, r.HopLimit)
		}
	}
	if !strings.Contains(string(diff), "version = aws_launch_template.nodes.latest_version") {
		t.Errorf("diff does not move the groups to the newest version:\n%s", diff)
	}
}

// A module two roots call is patched once, in its own files, and both calls then resolve to
// tokens required.
func TestPatchCalledModule(t *testing.T) {
	src := filepath.Join("..", "terraform", "testdata", "calls")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	load := func() []iac.NodeGroup {
		t.Helper()
		dirs := map[string][]string{}
		for _, d := range []string{"envs/prod", "envs/dev"} {
			files, _ := filepath.Glob(filepath.Join(dir, d, "*.tf"))
			dirs[filepath.Join(dir, d)] = files
		}
		groups, _, err := terraform.LoadModules(dirs)
		if err != nil {
			t.Fatal(err)
		}
		return groups
	}
	diff, notes, err := Patch(load(), os.ReadFile, Target{HopLimit: 1, Base: dir})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(diff), "+++ b/modules/nodes/main.tf") != 1 {
		t.Errorf("want one patch of modules/nodes/main.tf:\n%s", diff)
	}
	apply(t, dir, diff)
	for _, g := range load() {
		r := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
		if !r.Tokens.Known || r.Tokens.Value != "required" || !r.HopLimit.Known || r.HopLimit.Value > 1 {
			t.Errorf("%s (%s) after the patch: tokens %+v, hop limit %+v; notes %v", g.Resource, g.Root, r.Tokens, r.HopLimit, notes)
		}
	}
}
