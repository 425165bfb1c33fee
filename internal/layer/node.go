package layer

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxAgentStateAge bounds how old an agent's state may be to count: older, the node layer is
// unknown (the agent may have stopped publishing; its rules stay, but nothing confirms them).
const MaxAgentStateAge = 10 * time.Minute

// AgentNode is the node layer's verdict from the agent's published state, at time now:
//   - no state, or state older than MaxAgentStateAge: unknown;
//   - enforce, the address dropped, the subject on the pod network or hostNetwork with cgroup
//     matching active: deny (measured: the agent reports what it applied);
//   - observe: allow, saying the rules only count;
//   - otherwise allow: the ruleset does not drop this subject's traffic to the address.
func AgentNode(s *AgentState, hostNetwork bool, addr netip.Addr, now time.Time) Verdict {
	v := Verdict{Layer: Node}
	switch {
	case s == nil:
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = "no node firewall state for the node: run the imdsguard agent, which publishes it"
		return v
	case now.Sub(s.Synced) > MaxAgentStateAge:
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("the imdsguard agent on %s last reported %s ago (more than %s): its rules are not confirmed", s.Node, now.Sub(s.Synced).Round(time.Second), MaxAgentStateAge)
		return v
	}
	v.Source = Measured
	dropped := slices.Contains(s.Dropped, addr)
	switch {
	case !dropped:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s does not drop %s", s.Node, addr)
	case s.Mode == "observe":
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s is in observe mode: it counts traffic to %s and lets it pass", s.Node, addr)
	case s.Mode != "enforce":
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("the imdsguard agent on %s reports mode %q", s.Node, s.Mode)
	case hostNetwork && !s.HostNetworkCovered:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s drops %s for pods only: it cannot match hostNetwork pods (no pods cgroup)", s.Node, addr)
	default:
		v.Decision = Deny
		v.Reason = fmt.Sprintf("the imdsguard agent on %s drops %s (enforce)", s.Node, addr)
	}
	return v
}

// GKEMetadataServerLabel marks the nodes of a GKE node pool with the GKE metadata server
// (Workload Identity Federation for GKE) enabled; GKE schedules its metadata server DaemonSet on
// them (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
const GKEMetadataServerLabel = "iam.gke.io/gke-metadata-server-enabled"

// GKEMetadataServer is the node layer's verdict on a GKE node for the GCP metadata address:
// with the GKE metadata server enabled, pods on the pod network are answered by it instead of
// the Compute Engine metadata server, and it exposes only a subset of that server's endpoints,
// not the node's service account credentials nor kube-env
// (https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity#metadata_server):
// the node's credentials are denied. hostNetwork pods still reach the real metadata server.
// Without the label nothing is said (unknown).
func GKEMetadataServer(nodeLabels map[string]string, node string, hostNetwork bool) Verdict {
	v := Verdict{Layer: Node, Source: Configured}
	switch {
	case nodeLabels[GKEMetadataServerLabel] != "true":
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("node %s has no %s=true label: the GKE metadata server does not stand in front of the metadata server", node, GKEMetadataServerLabel)
	case hostNetwork:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("node %s runs the GKE metadata server, but a hostNetwork pod reaches the Compute Engine metadata server directly", node)
	default:
		v.Decision = Deny
		v.Reason = fmt.Sprintf("node %s runs the GKE metadata server (%s=true): pods get their own identity from it, never the node's service account token or kube-env", node, GKEMetadataServerLabel)
	}
	return v
}
