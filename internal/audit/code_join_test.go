package audit

import (
	"bytes"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/synth"
)

// TestCodeGroupsJoinAtScale joins the node groups of a synthetic Terraform repository to a
// synthetic cluster whose nodes are in those groups, and checks the counts of every group
// against a join done subject by subject: each pod counts in the group of its node, each
// workload template in every group of a node it may be scheduled on.
func TestCodeGroupsJoinAtScale(t *testing.T) {
	const modules, nodes = 10, 60
	dir := t.TempDir()
	if _, err := synth.WriteTerraform(dir, modules); err != nil {
		t.Fatal(err)
	}
	_, inputs, err := scan.Split([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	code, err := scan.Read(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Scaled(1500)
	cfg.Nodes, cfg.NodeGroupModules = nodes, modules
	var buf bytes.Buffer
	if _, err := synth.Generate(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{"-"}, inventory.Options{Stdin: &buf})
	if err != nil {
		t.Fatal(err)
	}
	src := &iac.Source{Groups: code.Groups}
	r := RunWith(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}), Options{Infrastructure: src})
	if len(r.Infrastructure) != len(code.Groups) {
		t.Fatalf("%d code groups in the report, want %d", len(r.Infrastructure), len(code.Groups))
	}

	subjects := make([]int, len(code.Groups))
	podNetwork := make([]int, len(code.Groups))
	templates := 0
	for i := range r.Subjects {
		s := &r.Subjects[i]
		var placed []*inventory.Node
		if s.Spec.NodeName != "" {
			for _, n := range inv.Nodes {
				if n.Name == s.Spec.NodeName {
					placed = append(placed, n)
				}
			}
		} else {
			templates++
			placed = layer.Candidates(s.Spec, inv.Nodes)
		}
		seen := map[int]bool{}
		for _, n := range placed {
			k := src.GroupIndex(n)
			if k < 0 || seen[k] {
				continue
			}
			seen[k] = true
			subjects[k]++
			if !s.Spec.HostNetwork {
				podNetwork[k]++
			}
		}
	}
	if templates == 0 {
		t.Fatal("no workload templates in the cluster")
	}
	joined := 0
	for k, g := range r.Infrastructure {
		if len(g.Nodes) > 0 {
			joined++
		}
		if g.Subjects != subjects[k] || g.PodNetwork != podNetwork[k] {
			t.Errorf("%s: %d subjects, %d on the pod network; want %d and %d", g.Resource, g.Subjects, g.PodNetwork, subjects[k], podNetwork[k])
		}
	}
	if want := len(synth.TerraformNodeGroups(modules)); joined != want {
		t.Errorf("%d groups have nodes, want %d", joined, want)
	}
}
