package layer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/synth"
)

// TestPodNetwork: the pod network's extra hops are known only for a documented plugin, and a
// plugin known to add undocumented hops makes them unknown even next to one.
func TestPodNetwork(t *testing.T) {
	for _, c := range []struct {
		plugins []string
		known   bool
	}{
		{[]string{"aws-vpc-cni"}, true},
		{[]string{"aws-vpc-cni", "calico"}, true},
		{[]string{"aws-vpc-cni", "cilium"}, false},
		{[]string{"calico"}, false},
		{nil, false},
	} {
		if p := PodNetwork(c.plugins); p.ExtraHopsKnown != c.known || p.HostNetwork {
			t.Errorf("PodNetwork(%v) = %+v, want extra hops known %t", c.plugins, p, c.known)
		}
	}
}

// TestMergeAWS: the strongest source wins field by field, a disagreement is a drift naming both
// sides, and agreement is none.
func TestMergeAWS(t *testing.T) {
	measured := AWSMetadataOptions{HopLimit: Setting[int]{Value: 2, Known: true, Source: Measured, Origin: "agent"}}
	configured := options(true, "required", 1, false)
	n := &inventory.Node{Name: "n1"}
	o, drifts, found := MergeAWS(n, []InstanceSource{fixed{configured}, fixed{measured}})
	if !found || o.HopLimit.Value != 2 || o.HopLimit.Source != Measured || o.Tokens.Value != "required" {
		t.Fatalf("merged %+v, want the measured hop limit and the configured rest", o)
	}
	if len(drifts) != 1 || drifts[0].Option != "HttpPutResponseHopLimit" || !strings.HasPrefix(drifts[0].Used, "2 (measured") || !strings.HasPrefix(drifts[0].Other, "1 (configured") {
		t.Errorf("drifts %v, want the hop limit, measured 2 used over configured 1", drifts)
	}
	if _, drifts, _ := MergeAWS(n, []InstanceSource{fixed{configured}, fixed{configured}}); len(drifts) != 0 {
		t.Errorf("agreeing sources drift: %v", drifts)
	}
	if _, _, found := MergeAWS(n, []InstanceSource{Karpenter{}}); found {
		t.Error("a source that knows nothing of the node found something")
	}
}

type fixed struct{ o AWSMetadataOptions }

func (fixed) Name() string                                            { return "fixed" }
func (f fixed) AWSOptions(*inventory.Node) (AWSMetadataOptions, bool) { return f.o, true }

// TestAgentStateAnnotation: the format round-trips, and a value that is not the format, of
// another version or mode, is an error that names the annotation.
func TestAgentStateAnnotation(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	in := AgentState{Node: "n", Mode: "enforce", Dropped: []string{"169.254.169.254:80/TCP"}, Synced: now, Generation: 4}
	v, err := EncodeAgentState(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeAgentState(v)
	if err != nil || out.Version != AgentStateVersion || out.Generation != 4 || out.Dropped[0] != "169.254.169.254:80/TCP" || !out.Synced.Equal(now) {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{`{`, `{"version":2,"mode":"enforce","synced":"2026-12-01T00:00:00Z"}`, `{"version":1,"mode":"off","synced":"2026-12-01T00:00:00Z"}`, `{"version":1,"mode":"enforce"}`} {
		if _, err := DecodeAgentState(bad); err == nil || !strings.Contains(err.Error(), AgentStateAnnotation) {
			t.Errorf("DecodeAgentState(%s) = %v, want an error naming the annotation", bad, err)
		}
	}
}

// TestSyntheticNodes: the synthetic cluster's Nodes carry agent states this package reads, and
// the assessor gives every pod a row: the benchmarks measure real work.
func TestSyntheticNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Scaled(300)
	cfg.Nodes, cfg.NodePools = 12, 4
	if _, err := synth.Generate(f, cfg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil || len(inv.Problems) > 0 {
		t.Fatalf("load: %v %v", err, inv.Problems)
	}
	states := 0
	for _, n := range inv.Nodes {
		if n.AgentState == "" {
			continue
		}
		if _, err := DecodeAgentState(n.AgentState); err != nil {
			t.Errorf("node %s: %v", n.Name, err)
		}
		states++
	}
	if len(inv.Nodes) != 12 || states != 6 || len(inv.EC2NodeClasses) != 4 {
		t.Fatalf("nodes %d with %d agent states, %d EC2NodeClasses: want 12, 6, 4", len(inv.Nodes), states, len(inv.EC2NodeClasses))
	}
	eps := endpoint.Select([]endpoint.Cloud{endpoint.AWS})
	a := NewAssessor(inv.Nodes, eps, Sources(inv, time.Date(2026, 11, 1, 12, 5, 0, 0, time.UTC)), Placement{}, time.Date(2026, 11, 1, 12, 5, 0, 0, time.UTC))
	denied := 0
	for _, p := range inv.Pods {
		row := a.Row(Who{Namespace: p.Pod.Namespace}, &p.Pod.Spec)
		if len(row) != len(eps) {
			t.Fatalf("row of %d, want %d", len(row), len(eps))
		}
		if row[0].Node.Decision == Deny {
			denied++
		}
	}
	if denied == 0 || denied == len(inv.Pods) {
		t.Errorf("%d of %d pods denied by an agent: want some, on the pools that run it", denied, len(inv.Pods))
	}
}
