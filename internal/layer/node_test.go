package layer

import (
	"strings"
	"testing"
	"time"
)

// TestAgentNode is the node layer's truth table for the imdsguard agent's published state.
func TestAgentNode(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	const imds, wire32526 = "169.254.169.254:80/TCP", "168.63.129.16:32526/TCP"
	enforce := &AgentState{Node: "n1", Mode: "enforce", Dropped: []string{imds}, HostNetworkCovered: true, Synced: now.Add(-time.Minute)}
	with := func(f func(*AgentState)) *AgentState { s := *enforce; f(&s); return &s }
	pod := Who{Namespace: "shop", ServiceAccount: "web", UID: "u-1"}
	host := Who{Namespace: "kube-system", ServiceAccount: "ebs-csi-node", UID: "u-2", HostNetwork: true}
	for _, c := range []struct {
		name   string
		s      *AgentState
		who    Who
		dest   string
		want   Decision
		source Source
		reason string
	}{
		{"enforce drops a pod's traffic", enforce, pod, imds, Deny, Measured, "drops 169.254.169.254:80/TCP (enforce)"},
		{"enforce with cgroup matching drops a hostNetwork pod's traffic", enforce, host, imds, Deny, Measured, "(enforce)"},
		{"without cgroup matching a hostNetwork pod passes", with(func(s *AgentState) { s.HostNetworkCovered = false }), host, imds, Allow, Measured, "cannot match hostNetwork pods"},
		{"observe counts and lets pass", with(func(s *AgentState) { s.Mode = "observe" }), pod, imds, Allow, Measured, "observe mode"},
		{"a destination the ruleset does not drop passes", enforce, pod, "169.254.170.23:80/TCP", Allow, Measured, "does not drop"},
		// The ruleset matches address, protocol and port: another port of a dropped address passes.
		{"another port of a dropped address passes", with(func(s *AgentState) { s.Dropped = []string{"168.63.129.16:80/TCP"} }), pod, wire32526, Allow, Measured, "does not drop"},
		{"no state is unknown", nil, pod, imds, Unknown, Assumed, "run the imdsguard agent"},
		{"stale state is unknown", with(func(s *AgentState) { s.Synced = now.Add(-time.Hour) }), pod, imds, Unknown, Assumed, "not confirmed"},
		{"state dated in the future is unknown", with(func(s *AgentState) { s.Synced = now.Add(time.Hour) }), pod, imds, Unknown, Assumed, "in the future"},
		{"an unknown mode is unknown", with(func(s *AgentState) { s.Mode = "bypass" }), pod, imds, Unknown, Assumed, "mode \"bypass\""},
		{"filter mode denies the credentials of a filtered destination", with(func(s *AgentState) { s.Mode, s.Dropped, s.Filtered = "filter", nil, []string{imds} }), pod, imds, Deny, Measured, "never passes credentials"},
		{"filter mode in observe lets credentials pass", with(func(s *AgentState) {
			s.Mode, s.Dropped, s.Filtered, s.FilterObserve = "filter", nil, []string{imds}, true
		}), pod, imds, Allow, Measured, "logs what it would deny"},
		{"filter mode drops the destinations it does not filter", with(func(s *AgentState) { s.Mode, s.Filtered = "filter", []string{"[fd00:ec2::254]:80/TCP"} }), pod, imds, Deny, Measured, "drops 169.254.169.254:80/TCP (filter)"},
		{"filter mode lets a destination neither dropped nor filtered pass", with(func(s *AgentState) { s.Mode, s.Dropped = "filter", nil }), pod, imds, Allow, Measured, "does not drop"},
		{"filter mode without cgroup matching lets a hostNetwork pod pass", with(func(s *AgentState) {
			s.Mode, s.Dropped, s.Filtered, s.HostNetworkCovered = "filter", nil, []string{imds}, false
		}), host, imds, Allow, Measured, "cannot match hostNetwork pods"},
		{"a namespace exempt in the agent's configuration passes", with(func(s *AgentState) { s.Exempt = []PodSelector{{Namespace: "shop"}} }), pod, imds, Allow, Measured, "lets namespace shop through"},
		{"an exemption of another service account does not apply", with(func(s *AgentState) { s.Exempt = []PodSelector{{Namespace: "shop", ServiceAccount: "batch"}} }), pod, imds, Deny, Measured, "(enforce)"},
		{"a pod-network exemption does not exempt hostNetwork pods", with(func(s *AgentState) { s.Exempt = []PodSelector{{Namespace: "kube-system"}} }), host, imds, Deny, Measured, "(enforce)"},
		{"a hostNetwork pod allowed by selector passes", with(func(s *AgentState) {
			s.AllowHostNetwork = []PodSelector{{Namespace: "kube-system", ServiceAccount: "ebs-csi-node"}}
		}), host, imds, Allow, Measured, "service account ebs-csi-node"},
		{"a hostNetwork pod allowed by UID passes", with(func(s *AgentState) { s.AllowedHostNetworkPodUIDs = []string{"u-2"} }), host, imds, Allow, Measured, "pod UID u-2"},
		{"eBPF host routing bypasses the forward rules", with(func(s *AgentState) { s.CiliumRouting = "bpf" }), pod, imds, Allow, Measured, "eBPF host routing"},
		{"eBPF host routing leaves the output rules", with(func(s *AgentState) { s.CiliumRouting = "bpf" }), host, imds, Deny, Measured, "(enforce)"},
		{"an unknown Cilium routing is unknown", with(func(s *AgentState) { s.CiliumRouting = "unknown" }), pod, imds, Unknown, Assumed, "cannot read how it routes"},
		{"Cilium's legacy routing keeps the forward rules", with(func(s *AgentState) { s.CiliumRouting = "legacy" }), pod, imds, Deny, Measured, "(enforce)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := AgentNode(c.s, c.who, c.dest, now)
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
