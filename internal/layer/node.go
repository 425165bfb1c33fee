package layer

import (
	"fmt"
	"slices"
	"time"
)

// MaxAgentStateAge bounds how old an agent's state may be to count: older, the node layer is
// unknown (the agent may have stopped publishing; its rules stay, but nothing confirms them).
const MaxAgentStateAge = 10 * time.Minute

// Who is what a node firewall may tell subjects apart by.
type Who struct {
	Namespace, ServiceAccount string
	// UID is a pod's UID; empty for a workload template.
	UID         string
	HostNetwork bool
}

// exempts reports whether the agent's configuration lets the subject through.
func (s *AgentState) exempts(w Who) (bool, string) {
	sels := s.Exempt
	if w.HostNetwork {
		if w.UID != "" && slices.Contains(s.AllowedHostNetworkPodUIDs, w.UID) {
			return true, "pod UID " + w.UID
		}
		sels = s.AllowHostNetwork
	}
	for _, p := range sels {
		if p.Selects(w) {
			if p.ServiceAccount == "" {
				return true, "namespace " + p.Namespace
			}
			return true, "namespace " + p.Namespace + ", service account " + p.ServiceAccount
		}
	}
	return false, ""
}

// maxClockSkew is how far in the future a published time may lie before the state is refused.
const maxClockSkew = time.Minute

// AgentNode is the node layer's verdict from the agent's published state, at time now, for the
// subject w and the destination dest ("169.254.169.254:80/TCP"):
//   - no state, state older than MaxAgentStateAge or dated in the future: unknown;
//   - the destination not dropped: allow;
//   - observe: allow, saying the rules only count;
//   - filter, the destination redirected to the agent's proxy: deny (credentials never pass);
//   - the subject exempt in the agent's configuration: allow;
//   - a pod on the pod network where Cilium's eBPF host routing bypasses the forward rules:
//     allow; where Cilium's routing is unknown: unknown;
//   - a hostNetwork pod without cgroup matching: allow;
//   - otherwise deny (measured: the agent reports what it applied).
func AgentNode(s *AgentState, w Who, dest string, now time.Time) Verdict {
	v := Verdict{Layer: Node}
	switch {
	case s == nil:
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = "no node firewall state for the node: run the imdsguard agent, which publishes it"
		return v
	case s.Synced.After(now.Add(maxClockSkew)):
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("the imdsguard agent on %s reports a sync at %s, in the future: its state is not trusted", s.Node, s.Synced.UTC().Format(time.RFC3339))
		return v
	case now.Sub(s.Synced) > MaxAgentStateAge:
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("the imdsguard agent on %s last reported %s ago (more than %s): its rules are not confirmed", s.Node, now.Sub(s.Synced).Round(time.Second), MaxAgentStateAge)
		return v
	}
	v.Source = Measured
	exempt, why := s.exempts(w)
	filtered := s.Mode == "filter" && slices.Contains(s.Filtered, dest)
	switch {
	case !slices.Contains(s.Dropped, dest) && !filtered:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s does not drop %s", s.Node, dest)
	case s.Mode == "observe":
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s is in observe mode: it counts traffic to %s and lets it pass", s.Node, dest)
	case filtered && s.FilterObserve:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s filters %s in observe: its proxy logs what it would deny and passes it", s.Node, dest)
	case s.Mode != "enforce" && s.Mode != "filter":
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("the imdsguard agent on %s reports mode %q", s.Node, s.Mode)
	case exempt:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s lets %s through (exempt in its configuration)", s.Node, why)
	case !w.HostNetwork && s.CiliumRouting == "bpf":
		v.Decision = Allow
		v.Reason = fmt.Sprintf("on %s Cilium's eBPF host routing hands pod traffic past netfilter: the imdsguard agent's forward rules do not see it", s.Node)
	case !w.HostNetwork && s.CiliumRouting == "unknown":
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("on %s Cilium runs and the imdsguard agent cannot read how it routes pod traffic: with eBPF host routing its forward rules are bypassed", s.Node)
	case w.HostNetwork && !s.HostNetworkCovered:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("the imdsguard agent on %s drops %s for pods only: it cannot match hostNetwork pods (no pods cgroup)", s.Node, dest)
	case filtered:
		v.Decision = Deny
		v.Reason = fmt.Sprintf("the imdsguard agent on %s filters %s (filter mode): its proxy never passes credentials; region and instance ID stay reachable", s.Node, dest)
	default:
		v.Decision = Deny
		v.Reason = fmt.Sprintf("the imdsguard agent on %s drops %s (%s)", s.Node, dest, s.Mode)
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
