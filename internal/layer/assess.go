package layer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
)

// Pair is the instance and node layers' verdicts for one subject and endpoint. Pairs are
// shared between subjects and must not be changed.
type Pair struct {
	Instance, Node *Verdict
}

// Assessor decides the instance and node layers for subjects from the nodes they run on or may
// be scheduled on. Each node's verdicts are computed once, and each distinct placement (a node
// name, or a template's scheduling constraints, with host networking) once: 100,000 pods on
// 1,000 nodes cost about 1,000 node assessments and as many row lookups.
type Assessor struct {
	nodes []*inventory.Node
	eps   []endpoint.Endpoint
	// perNode holds node k's pairs per endpoint, for the pod network [0] and hostNetwork [1].
	perNode [][2][]Pair
	memo    map[placementKey][]Pair
	// placed memoizes placedIndex by scheduling key; position is each node's index in nodes.
	placed   map[string][]int
	position map[*inventory.Node]int
	// none is the row of a subject with no candidate node.
	none []Pair
	// states are the nodes' agent states, by node index; exemptions is set when some state
	// exempts subjects, whose rows then depend on who they are.
	states     []*AgentState
	exemptions bool
	now        time.Time
	// Nodes says what is known of each node, in input order.
	Nodes []NodeAssessment
	// Drifts are the sources' disagreements, node by node.
	Drifts []Drift
	// Warnings are published states that could not be read.
	Warnings []string
}

// NodeAssessment is what the sources say of one node.
type NodeAssessment struct {
	Node *inventory.Node
	// AWS is set when some source knows the node's EC2 metadata options; Options are then
	// the merged options.
	AWS     bool
	Options AWSMetadataOptions
	// Agent is the imdsguard agent's published state, if readable.
	Agent *AgentState
}

type placementKey struct {
	scheduling  string
	hostNetwork bool
	// exempt names the subject when some node's agent exempts it: namespace, service account
	// and UID.
	exempt string
}

// NewAssessor assesses the nodes for the endpoints at time now: instance metadata options from
// the sources (MergeAWS), the node firewall from the imdsguard agent's published state and GKE's
// metadata server label. pod is the placement of a pod on the pod network (PodNetwork).
func NewAssessor(nodes []*inventory.Node, eps []endpoint.Endpoint, sources []InstanceSource, pod Placement, now time.Time) *Assessor {
	// By name: a template's weakest node, among equally weak ones, is then the same whatever
	// order the input lists the nodes in (files, or the API server's).
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *inventory.Node) int { return strings.Compare(a.Name, b.Name) })
	a := &Assessor{nodes: nodes, eps: eps, perNode: make([][2][]Pair, len(nodes)), memo: map[placementKey][]Pair{}, placed: map[string][]int{},
		states: make([]*AgentState, len(nodes)), now: now}
	for k, n := range nodes {
		opts, drifts, found := MergeAWS(n, sources)
		a.Drifts = append(a.Drifts, drifts...)
		var state *AgentState
		if n.AgentState != "" {
			s, err := DecodeAgentState(n.AgentState)
			switch {
			case err != nil:
				a.Warnings = append(a.Warnings, fmt.Sprintf("node %s: %v; its node layer is unknown", n.Name, err))
			case s.Node != n.Name:
				a.Warnings = append(a.Warnings, fmt.Sprintf("node %s: annotation %s was published for node %q; its node layer is unknown", n.Name, AgentStateAnnotation, s.Node))
			default:
				state = s
			}
		}
		a.states[k] = state
		if state != nil && len(state.Exempt)+len(state.AllowHostNetwork)+len(state.AllowedHostNetworkPodUIDs) > 0 {
			a.exemptions = true
		}
		a.Nodes = append(a.Nodes, NodeAssessment{Node: n, AWS: found, Options: opts, Agent: state})
		for h, host := range [2]bool{false, true} {
			p := pod
			if host {
				p = Placement{HostNetwork: true}
			}
			row := make([]Pair, len(eps))
			for j, ep := range eps {
				inst := instanceVerdict(n, opts, found, p, ep)
				node := nodeVerdict(n, state, Who{HostNetwork: host}, ep, now)
				row[j] = Pair{Instance: &inst, Node: &node}
			}
			a.perNode[k][h] = row
		}
	}
	a.none = make([]Pair, len(eps))
	for j := range eps {
		inst, node := Weakest(Instance, nil), Weakest(Node, nil)
		a.none[j] = Pair{Instance: &inst, Node: &node}
	}
	return a
}

// Sources are the instance sources of an audit, in the order MergeAWS prefers them at equal
// strength: the agents' measurements, the sources given (the EC2 API, which reads the instances
// themselves), the Karpenter EC2NodeClasses (by node label or NodeClaim), then EKS managed node
// groups' documented defaults.
func Sources(inv *inventory.Inventory, now time.Time, given ...InstanceSource) []InstanceSource {
	out := []InstanceSource{AgentMeasurement{Now: now}}
	out = append(out, given...)
	return append(out,
		Karpenter{Classes: KarpenterClasses(inv.EC2NodeClasses), NodeClaims: KarpenterNodeClaims(inv.NodeClaims), At: KarpenterPositions(inv.EC2NodeClasses)},
		EKSNodeGroup{})
}

// instanceVerdict is the instance layer of node n for a subject at p and endpoint ep.
func instanceVerdict(n *inventory.Node, o AWSMetadataOptions, found bool, p Placement, ep endpoint.Endpoint) Verdict {
	cloud := Cloud(n)
	switch {
	case ep.Role != endpoint.Credentials:
		return Verdict{Layer: Instance, Decision: Unknown, Source: Assumed, Reason: ep.Name + " is not governed by instance settings"}
	case IsAWSIMDS(ep.Address) && ep.HasCloud(endpoint.AWS) && (cloud == "aws" || found):
		v := AWSInstance(o, p, ep.Address)
		if v.Decision == Unknown && !found {
			v.Reason = fmt.Sprintf("no source knows node %s's EC2 metadata options: add its EC2NodeClass or launch template, run the imdsguard agent (it measures them), or audit with --aws", n.Name)
		}
		return v
	case cloud == "":
		return Verdict{Layer: Instance, Decision: Unknown, Source: Assumed,
			Reason: fmt.Sprintf("node %s's cloud is not known (no spec.providerID) and no instance source names it", n.Name)}
	}
	return Verdict{Layer: Instance, Decision: Unknown, Source: Assumed,
		Reason: fmt.Sprintf("no instance setting of node %s (%s) is known to govern %s", n.Name, cloud, ep.Name)}
}

// nodeVerdict is the node layer of node n for a subject and endpoint ep: the imdsguard agent's
// ruleset and, on GKE, the GKE metadata server. A denial by either denies; else an allow
// allows; else the agent's unknown, which says what would settle it.
func nodeVerdict(n *inventory.Node, s *AgentState, w Who, ep endpoint.Endpoint, now time.Time) Verdict {
	if ep.Role != endpoint.Credentials {
		return Verdict{Layer: Node, Decision: Allow, Source: Default,
			Reason: ep.Name + " must stay reachable: the imdsguard agent never drops it"}
	}
	hostNetwork := w.HostNetwork
	agent := AgentNode(s, w, ep.Destination(), now)
	switch {
	case s == nil && n.AgentState != "":
		agent.Reason = fmt.Sprintf("node %s's agent state cannot be read (see the warnings)", n.Name)
	case s == nil:
		agent.Reason = fmt.Sprintf("node %s publishes no node firewall state: run the imdsguard agent, which does", n.Name)
	}
	if agent.Decision == Deny || !ep.HasCloud(endpoint.GCP) || ep.Address != awsIMDSv4 {
		return agent
	}
	gke := GKEMetadataServer(n.Labels, n.Name, hostNetwork)
	switch {
	case gke.Decision == Deny:
		return gke
	case agent.Decision == Unknown && gke.Decision == Allow:
		return gke
	}
	return agent
}

// Row returns the instance and node layers' verdicts, one per endpoint, for the subject w with
// the pod spec: the weakest over the nodes it runs on or may be scheduled on (Candidates).
// Subjects with the same placement share a row; so do subjects no agent exempts.
func (a *Assessor) Row(w Who, spec *corev1.PodSpec) []Pair {
	w.HostNetwork = spec.HostNetwork
	key := placementKey{scheduling: schedulingKey(spec), hostNetwork: spec.HostNetwork}
	if a.exemptions && a.exemptAnywhere(w) {
		key.exempt = w.Namespace + "/" + w.ServiceAccount + "/" + w.UID
	}
	if row, ok := a.memo[key]; ok {
		return row
	}
	h := 0
	if spec.HostNetwork {
		h = 1
	}
	idx := a.placedIndex(key.scheduling, spec)
	rows := a.perNode
	if key.exempt != "" {
		rows = a.exemptRows(w, idx)
	}
	var row []Pair
	switch len(idx) {
	case 0:
		row = a.none
	case 1:
		row = rows[idx[0]][h]
	default:
		row = make([]Pair, len(a.eps))
		for j := range a.eps {
			row[j] = Pair{Instance: weakestOf(rows, idx, h, j, true), Node: weakestOf(rows, idx, h, j, false)}
		}
	}
	a.memo[key] = row
	return row
}

// Placed returns the nodes a pod with spec runs on (spec.nodeName) or, for a pod not yet
// scheduled and a workload's template, may be scheduled on (Candidates), in name order.
func (a *Assessor) Placed(spec *corev1.PodSpec) []*inventory.Node {
	idx := a.placedIndex(schedulingKey(spec), spec)
	out := make([]*inventory.Node, len(idx))
	for i, k := range idx {
		out[i] = a.nodes[k]
	}
	return out
}

// placedIndex returns the indices in a.nodes of the nodes Placed names, once per scheduling key.
func (a *Assessor) placedIndex(key string, spec *corev1.PodSpec) []int {
	if idx, ok := a.placed[key]; ok {
		return idx
	}
	var idx []int
	if spec.NodeName != "" {
		for k, n := range a.nodes {
			if n.Name == spec.NodeName {
				idx = append(idx, k)
				break
			}
		}
	} else {
		if a.position == nil {
			a.position = make(map[*inventory.Node]int, len(a.nodes))
			for k, n := range a.nodes {
				a.position[n] = k
			}
		}
		for _, n := range Candidates(spec, a.nodes) {
			idx = append(idx, a.position[n])
		}
	}
	a.placed[key] = idx
	return idx
}

// exemptAnywhere reports whether some node's agent exempts the subject.
func (a *Assessor) exemptAnywhere(w Who) bool {
	for _, s := range a.states {
		if s != nil {
			if ok, _ := s.exempts(w); ok {
				return true
			}
		}
	}
	return false
}

// exemptRows are the candidate nodes' rows for a subject some agent exempts: the node layer
// judged for the subject itself, the instance layer as for anyone.
func (a *Assessor) exemptRows(w Who, idx []int) [][2][]Pair {
	h := 0
	if w.HostNetwork {
		h = 1
	}
	rows := make([][2][]Pair, len(a.nodes))
	for _, k := range idx {
		row := make([]Pair, len(a.eps))
		for j, ep := range a.eps {
			node := nodeVerdict(a.nodes[k], a.states[k], w, ep, a.now)
			row[j] = Pair{Instance: a.perNode[k][h][j].Instance, Node: &node}
		}
		rows[k][h] = row
	}
	return rows
}

// weakestOf is Weakest over the candidate nodes' verdicts for endpoint j, without copying them.
func weakestOf(perNode [][2][]Pair, idx []int, h, j int, instance bool) *Verdict {
	var out *Verdict
	rankOf := map[Decision]int{Allow: 0, Unknown: 1, Deny: 2}
	for _, k := range idx {
		v := perNode[k][h][j].Node
		if instance {
			v = perNode[k][h][j].Instance
		}
		if out == nil || rankOf[v.Decision] < rankOf[out.Decision] {
			out = v
		}
	}
	return out
}

// SchedulingKey returns what decides the nodes Assessor.Placed returns for spec: specs with the
// same key are placed on the same nodes, so that callers can compute once per key what depends
// on the placement alone.
func SchedulingKey(spec *corev1.PodSpec) string { return schedulingKey(spec) }

// schedulingKey identifies what decides a pod's candidate nodes: its node name, or its node
// selector, required node affinity and tolerations.
func schedulingKey(spec *corev1.PodSpec) string {
	if spec.NodeName != "" {
		return "node:" + spec.NodeName
	}
	if len(spec.NodeSelector) == 0 && len(spec.Tolerations) == 0 && (spec.Affinity == nil || spec.Affinity.NodeAffinity == nil) {
		return "any"
	}
	var req *corev1.NodeSelector
	if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
		req = spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	b, err := json.Marshal(struct {
		S map[string]string
		A *corev1.NodeSelector
		T []corev1.Toleration
	}{spec.NodeSelector, req, spec.Tolerations})
	if err != nil {
		return "unencodable:" + fmt.Sprint(spec.NodeSelector, req, spec.Tolerations)
	}
	return string(b)
}

// PodNetwork is the placement of a pod on the pod network of a cluster whose network plugins
// (package engine's names) are given: the extra hops are known when one plugin is in CNIHops and
// none is known to add undocumented hops.
func PodNetwork(plugins []string) Placement {
	p := Placement{}
	for _, name := range plugins {
		if unknownHops[name] {
			return Placement{}
		}
		if extra, ok := CNIHops[name]; ok {
			p.ExtraHops, p.ExtraHopsKnown = extra, true
		}
	}
	return p
}

// unknownHops are plugins whose pods have needed more hops than the pod network's one, by a
// number that depends on their routing mode: with them the hops stay unknown above 2.
var unknownHops = map[string]bool{
	// Pods behind Cilium on EC2 have needed a hop limit of 3
	// (https://github.com/cilium/cilium/issues/25232, overlay mode; kubernetes/kops#10702).
	"cilium": true,
}
