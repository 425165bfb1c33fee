package layer

import (
	"encoding/json"
	"fmt"
	"time"
)

// AgentStateAnnotation is the annotation on a Node under which the imdsguard agent on that node
// publishes its state (AgentState, JSON). An annotation rather than a status condition: the
// state is structured (addresses, a generation, a measurement) and conditions carry only
// free text; and the audit reads it with the Nodes it lists anyway.
const AgentStateAnnotation = "imdsguard.io/agent-state"

// AgentStateVersion is the version of the annotation's format. A reader refuses other versions
// (the node layer is then unknown) rather than guess at their meaning.
const AgentStateVersion = 1

// AgentState is what the imdsguard agent on a node says of its firewall (the node layer) and
// of the instance it runs on: its mode, the addresses its ruleset drops, whether it matches
// hostNetwork pods by the kubelet's pods cgroup, when it last brought the ruleset in place, and
// what it measured of the instance metadata service.
type AgentState struct {
	Version int    `json:"version"`
	Node    string `json:"node"`
	// Mode is "enforce" or "observe".
	Mode string `json:"mode"`
	// Dropped are the destinations the ruleset drops (observe: would drop), as
	// endpoint.Endpoint.Destination renders them: "169.254.169.254:80/TCP".
	Dropped []string `json:"dropped"`
	// Filtered are the destinations filter mode redirects to the agent's filtering proxy, in the
	// same form: the proxy passes harmless metadata (region, instance ID) and never credentials.
	Filtered []string `json:"filtered,omitempty"`
	// FilterObserve is set when the filter proxy only observes: it passes what it would deny.
	FilterObserve bool `json:"filterObserve,omitempty"`
	// HostNetworkCovered is set when the output-hook rules match the pods cgroup, so hostNetwork
	// pods are covered too.
	HostNetworkCovered bool `json:"hostNetworkCovered"`
	// CiliumRouting is how Cilium forwards pod traffic on the node: "" (no Cilium), "legacy"
	// (through netfilter: the forward rules apply), "bpf" (eBPF host routing: pod traffic
	// bypasses them) or "unknown" (Cilium's datapath configuration is not readable).
	CiliumRouting string `json:"ciliumRouting,omitempty"`
	// Exempt select the pods on the pod network the ruleset lets through, AllowHostNetwork the
	// hostNetwork pods, AllowedHostNetworkPodUIDs further hostNetwork pods by UID (the agent's
	// own among them): the agent's configuration, never anything a pod's author sets.
	Exempt                    []PodSelector `json:"exempt,omitempty"`
	AllowHostNetwork          []PodSelector `json:"allowHostNetwork,omitempty"`
	AllowedHostNetworkPodUIDs []string      `json:"allowedHostNetworkPodUIDs,omitempty"`
	// Generation counts the rulesets the agent has brought in place since it started.
	Generation int64 `json:"generation"`
	// Synced is when the ruleset was last brought in place (or confirmed unchanged).
	Synced time.Time `json:"synced"`
	// Instance is what the agent measured of the instance metadata service from the node, if
	// it measured (AWS only).
	Instance *InstanceMeasurement `json:"instance,omitempty"`
}

// PodSelector selects pods by namespace and, when set, service account.
type PodSelector struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// Selects reports whether the selector selects the subject.
func (p PodSelector) Selects(w Who) bool {
	return p.Namespace != "" && p.Namespace == w.Namespace && (p.ServiceAccount == "" || p.ServiceAccount == w.ServiceAccount)
}

// InstanceMeasurement is what the agent observed of the EC2 instance metadata service from the
// node's own network namespace (one hop away).
type InstanceMeasurement struct {
	// Measured is when the measurement was taken.
	Measured time.Time `json:"measured"`
	// V1Status is the HTTP status of GET /latest/meta-data/ without a token: 200 when IMDSv1
	// answers (HttpTokens optional), 401 when a token is required, 403 when the endpoint is
	// disabled; 0 when nothing answered.
	V1Status int `json:"v1Status"`
	// IPv6 says whether fd00:ec2::254 answered; nil when not tried.
	IPv6 *bool `json:"ipv6,omitempty"`
	// HopLimit is the IP TTL (IPv4) of the token response as received on the node: the
	// instance sends it with TTL = HttpPutResponseHopLimit, and no router lies between; 0 when
	// not measured.
	HopLimit int `json:"hopLimit,omitempty"`
}

// EncodeAgentState renders the annotation's value.
func EncodeAgentState(s AgentState) (string, error) {
	s.Version = AgentStateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode agent state: %w", err)
	}
	return string(b), nil
}

// DecodeAgentState parses the annotation's value. An unknown version or a value that is not the
// format is an error naming the problem.
func DecodeAgentState(value string) (*AgentState, error) {
	var s AgentState
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AgentStateAnnotation, err)
	}
	if s.Version != AgentStateVersion {
		return nil, fmt.Errorf("annotation %s: version %d, want %d (a newer agent? upgrade imdsguard)", AgentStateAnnotation, s.Version, AgentStateVersion)
	}
	switch s.Mode {
	case "enforce", "observe", "filter":
	default:
		return nil, fmt.Errorf("annotation %s: mode %q (want enforce, observe or filter)", AgentStateAnnotation, s.Mode)
	}
	if s.Synced.IsZero() {
		return nil, fmt.Errorf("annotation %s: no synced time", AgentStateAnnotation)
	}
	return &s, nil
}

// Options are the metadata options the measurement establishes, each Measured, named after the
// node: V1Status settles HttpEndpoint and HttpTokens, IPv6 HttpProtocolIpv6, HopLimit
// HttpPutResponseHopLimit. What was not measured stays unknown.
func (m *InstanceMeasurement) Options(node string) AWSMetadataOptions {
	var o AWSMetadataOptions
	origin := fmt.Sprintf("measured by the imdsguard agent on %s at %s", node, m.Measured.UTC().Format(time.RFC3339))
	set := func(s *Setting[bool], v bool) {
		*s = Setting[bool]{Value: v, Known: true, Source: Measured, Origin: origin}
	}
	switch m.V1Status {
	case 200:
		set(&o.Endpoint, true)
		o.Tokens = Setting[string]{Value: "optional", Known: true, Source: Measured, Origin: origin + ": GET without a token answered 200"}
	case 401:
		set(&o.Endpoint, true)
		o.Tokens = Setting[string]{Value: "required", Known: true, Source: Measured, Origin: origin + ": GET without a token answered 401"}
	case 403:
		o.Endpoint = Setting[bool]{Value: false, Known: true, Source: Measured, Origin: origin + ": GET answered 403"}
	}
	if m.IPv6 != nil {
		set(&o.IPv6, *m.IPv6)
	}
	if m.HopLimit >= 1 && m.HopLimit <= 64 {
		o.HopLimit = Setting[int]{Value: m.HopLimit, Known: true, Source: Measured, Origin: origin + fmt.Sprintf(": token response TTL %d", m.HopLimit)}
	}
	return o
}
