package synth_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/synth"
)

// readTree returns every file under dir by its path relative to dir.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		out[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteTerraformDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	sa, err := synth.WriteTerraform(a, 25)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := synth.WriteTerraform(b, 25)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Errorf("stats differ: %+v and %+v", sa, sb)
	}
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != 25*synth.TerraformFilesPerModule || sa.Files != len(ta) || sa.Modules != 25 {
		t.Errorf("%d files, stats %+v, want %d files in 25 modules", len(ta), sa, 25*synth.TerraformFilesPerModule)
	}
	var total int64
	for name, data := range ta {
		if !bytes.Equal(data, tb[name]) {
			t.Errorf("%s differs between two runs", name)
		}
		total += int64(len(data))
	}
	if total != sa.Bytes {
		t.Errorf("stats.Bytes = %d, wrote %d", sa.Bytes, total)
	}
	// Files of realistic size: one to a few kilobytes each.
	if per := total / int64(len(ta)); per < 500 || per > 5000 {
		t.Errorf("%d bytes per file, want about 1-2 KB", per)
	}
}

// readRepository writes a repository of the given number of modules and reads it as an audit
// does.
func readRepository(t *testing.T, modules int) scan.Code {
	t.Helper()
	dir := t.TempDir()
	if _, err := synth.WriteTerraform(dir, modules); err != nil {
		t.Fatal(err)
	}
	manifests, inputs, err := scan.Split([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 0 || len(inputs) != modules {
		t.Fatalf("Split: %d manifests and %d inputs, want none and %d Terraform modules", len(manifests), len(inputs), modules)
	}
	code, err := scan.Read(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestWriteTerraformReads(t *testing.T) {
	const modules = 20
	code := readRepository(t, modules)
	for _, p := range code.Problems {
		t.Errorf("problem: %s: %s", p.At, p.Message)
	}
	if code.Files != modules*synth.TerraformFilesPerModule {
		t.Errorf("read %d files, want %d", code.Files, modules*synth.TerraformFilesPerModule)
	}
	var named []string
	tokens := map[string]int{}
	for _, g := range code.Groups {
		if g.EKSNodeGroup != "" {
			named = append(named, g.EKSNodeGroup)
		}
		o := g.Options.HTTPTokens
		switch {
		case !o.Set:
			tokens["not set"]++
		case !o.Known:
			tokens["unknown"]++
		default:
			tokens[o.Value]++
		}
	}
	want := synth.TerraformNodeGroups(modules)
	slices.Sort(named)
	slices.Sort(want)
	if !slices.Equal(named, want) {
		t.Errorf("EKS node groups read = %v, want %v", named, want)
	}
	// The variations of the launch templates all occur.
	for _, k := range []string{"required", "optional", "not set", "unknown"} {
		if tokens[k] == 0 {
			t.Errorf("no group with http_tokens %s (%v)", k, tokens)
		}
	}
}

func TestNodeGroupNodesJoin(t *testing.T) {
	const modules, nodes = 20, 150
	code := readRepository(t, modules)
	cfg := synth.Scaled(600)
	cfg.Nodes, cfg.NodeGroupModules = nodes, modules
	data, stats := generate(t, cfg)
	if stats.Nodes != nodes {
		t.Fatalf("%d nodes, want %d", stats.Nodes, nodes)
	}
	if bytes.Contains(data, []byte("EC2NodeClass")) || bytes.Contains(data, []byte("karpenter")) {
		t.Error("node group nodes come with Karpenter objects or labels")
	}
	inv, err := inventory.Load([]string{"-"}, inventory.Options{Stdin: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != nodes {
		t.Fatalf("loaded %d nodes, want %d", len(inv.Nodes), nodes)
	}
	src := iac.Source{Groups: code.Groups}
	joined := map[string]int{}
	for _, n := range inv.Nodes {
		i := src.GroupIndex(n)
		if i < 0 {
			t.Errorf("node %s (%v) joins no group", n.Name, n.Labels)
			continue
		}
		if g := src.Groups[i]; !strings.HasPrefix(g.Resource, "aws_eks_node_group.") && !strings.HasPrefix(g.Resource, "module.eks.") {
			t.Errorf("node %s joins %s", n.Name, g.Resource)
		}
		joined[src.Groups[i].EKSNodeGroup]++
	}
	if want := len(synth.TerraformNodeGroups(modules)); len(joined) != want {
		t.Errorf("nodes join %d node groups, want all %d", len(joined), want)
	}
}
