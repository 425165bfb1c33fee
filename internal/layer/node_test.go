package layer

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAgentNode is the node layer's truth table for the imdsguard agent's published state.
func TestAgentNode(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	imds := netip.MustParseAddr("169.254.169.254")
	enforce := &AgentState{Node: "n1", Mode: "enforce", Dropped: []netip.Addr{imds}, HostNetworkCovered: true, Synced: now.Add(-time.Minute)}
	with := func(f func(*AgentState)) *AgentState { s := *enforce; f(&s); return &s }
	for _, c := range []struct {
		name        string
		s           *AgentState
		hostNetwork bool
		addr        netip.Addr
		want        Decision
		source      Source
		reason      string
	}{
		{"enforce drops a pod's traffic", enforce, false, imds, Deny, Measured, "drops 169.254.169.254 (enforce)"},
		{"enforce with cgroup matching drops a hostNetwork pod's traffic", enforce, true, imds, Deny, Measured, "(enforce)"},
		{"without cgroup matching a hostNetwork pod passes", with(func(s *AgentState) { s.HostNetworkCovered = false }), true, imds, Allow, Measured, "cannot match hostNetwork pods"},
		{"observe counts and lets pass", with(func(s *AgentState) { s.Mode = "observe" }), false, imds, Allow, Measured, "observe mode"},
		{"an address the ruleset does not drop passes", enforce, false, netip.MustParseAddr("169.254.170.23"), Allow, Measured, "does not drop"},
		{"no state is unknown", nil, false, imds, Unknown, Assumed, "run the imdsguard agent"},
		{"stale state is unknown", with(func(s *AgentState) { s.Synced = now.Add(-time.Hour) }), false, imds, Unknown, Assumed, "not confirmed"},
		{"an unknown mode is unknown", with(func(s *AgentState) { s.Mode = "filter" }), false, imds, Unknown, Assumed, "mode \"filter\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := AgentNode(c.s, c.hostNetwork, c.addr, now)
			if v.Layer != Node || v.Decision != c.want || v.Source != c.source || !strings.Contains(v.Reason, c.reason) {
				t.Errorf("got %s, want %s (%s) with %q", v, c.want, c.source, c.reason)
			}
		})
	}
}

// TestGKEMetadataServer: the GKE metadata server denies the node's credentials to pods on the
// pod network of labelled nodes; hostNetwork pods and unlabelled nodes are not covered.
func TestGKEMetadataServer(t *testing.T) {
	on := map[string]string{GKEMetadataServerLabel: "true"}
	if v := GKEMetadataServer(on, "gke-1", false); v.Decision != Deny || v.Source != Configured {
		t.Errorf("pod on a labelled node: %s, want deny (configured)", v)
	}
	if v := GKEMetadataServer(on, "gke-1", true); v.Decision != Allow {
		t.Errorf("hostNetwork pod on a labelled node: %s, want allow", v)
	}
	if v := GKEMetadataServer(map[string]string{GKEMetadataServerLabel: "false"}, "gke-2", false); v.Decision != Unknown {
		t.Errorf("node without the metadata server: %s, want unknown", v)
	}
}
