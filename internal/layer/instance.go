package layer

import (
	"fmt"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// An InstanceSource knows the EC2 instance metadata options of some nodes: a Karpenter
// EC2NodeClass, an EKS managed node group's documented defaults, the imdsguard agent's
// measurement, the EC2 API.
type InstanceSource interface {
	// Name names the source in reports.
	Name() string
	// AWSOptions returns what the source knows of node n's options, field by field (a field
	// it does not know stays unknown), and false when it knows nothing of n.
	AWSOptions(n *inventory.Node) (AWSMetadataOptions, bool)
}

// Drift is a disagreement between two sources on one option of one node. The stronger source
// wins (measured over configured over default); the drift is reported.
type Drift struct {
	Node string
	// Option names the EC2 option: "HttpTokens", "HttpPutResponseHopLimit".
	Option string
	// Used and Other render each side: "required (configured: EC2NodeClass default
	// spec.metadataOptions.httpTokens)".
	Used, Other string
}

func (d Drift) String() string {
	return fmt.Sprintf("node %s %s: %s, but %s", d.Node, d.Option, d.Used, d.Other)
}

// MergeAWS joins what the sources know of node n: for each option the known setting of the
// strongest source (the earlier source at equal strength), and a Drift for every other known
// setting of a different value. found is false when no source knows anything of n.
func MergeAWS(n *inventory.Node, sources []InstanceSource) (o AWSMetadataOptions, drifts []Drift, found bool) {
	for _, src := range sources {
		got, ok := src.AWSOptions(n)
		if !ok {
			continue
		}
		found = true
		drifts = mergeSetting(n.Name, "HttpEndpoint", &o.Endpoint, got.Endpoint, enabled, drifts)
		drifts = mergeSetting(n.Name, "HttpTokens", &o.Tokens, got.Tokens, func(s string) string { return s }, drifts)
		drifts = mergeSetting(n.Name, "HttpPutResponseHopLimit", &o.HopLimit, got.HopLimit, func(h int) string { return fmt.Sprint(h) }, drifts)
		drifts = mergeSetting(n.Name, "HttpProtocolIpv6", &o.IPv6, got.IPv6, enabled, drifts)
	}
	return o, drifts, found
}

func enabled(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

// mergeSetting folds setting next into cur: the stronger known one stays.
func mergeSetting[T comparable](node, option string, cur *Setting[T], next Setting[T], render func(T) string, drifts []Drift) []Drift {
	if !next.Known {
		return drifts
	}
	if !cur.Known {
		*cur = next
		return drifts
	}
	if cur.Value == next.Value {
		if rank(next.Source) < rank(cur.Source) {
			*cur = next
		}
		return drifts
	}
	used, other := *cur, next
	if rank(next.Source) < rank(cur.Source) {
		used, other = next, *cur
		*cur = next
	}
	describe := func(s Setting[T]) string {
		return fmt.Sprintf("%s (%s: %s)", render(s.Value), s.Source, s.Origin)
	}
	return append(drifts, Drift{Node: node, Option: option, Used: describe(used), Other: describe(other)})
}

// rank orders sources, strongest first.
func rank(s Source) int {
	switch s {
	case Measured:
		return 0
	case Configured:
		return 1
	case Default:
		return 2
	}
	return 3
}

// Karpenter is the instance source of nodes Karpenter launched: the EC2NodeClass a node's
// label names or, for a node without the label, the one its NodeClaim refers to, with Karpenter
// v1's defaults for fields left out.
type Karpenter struct {
	// Classes are the input's EC2NodeClasses by name (KarpenterClasses).
	Classes map[string]*inventory.EC2NodeClassMetadataOptions
	// NodeClaims map a node's spec.providerID to the EC2NodeClass name of its NodeClaim
	// (KarpenterNodeClaims); nil when the input has none.
	NodeClaims map[string]string
	// At says where each EC2NodeClass was read, by name (KarpenterPositions): the origins of
	// its options name the file and line, as infrastructure code's do. Empty for a live
	// cluster.
	At map[string]inventory.Source
}

// Name implements InstanceSource.
func (Karpenter) Name() string { return "Karpenter EC2NodeClass" }

// AWSOptions implements InstanceSource. The node's label decides first: Karpenter sets it on
// every node it launches, so a NodeClaim only matters for a node that lost it.
func (k Karpenter) AWSOptions(n *inventory.Node) (AWSMetadataOptions, bool) {
	name, labelled := n.Labels[EC2NodeClassLabel]
	if !labelled {
		if n.ProviderID == "" {
			return AWSMetadataOptions{}, false
		}
		var ok bool
		if name, ok = k.NodeClaims[n.ProviderID]; !ok {
			return AWSMetadataOptions{}, false
		}
	}
	m, ok := k.Classes[name]
	if !ok {
		return AWSMetadataOptions{}, false
	}
	o := FromEC2NodeClass(name, m)
	if at, ok := k.At[name]; ok && at.File != "" && at.Line > 0 {
		where := fmt.Sprintf(" (%s:%d)", at.File, at.Line)
		o.Endpoint.Origin += where
		o.Tokens.Origin += where
		o.HopLimit.Origin += where
		o.IPv6.Origin += where
	}
	return o, true
}

// AgentMeasurement is the instance source of nodes whose imdsguard agent published a
// measurement of the instance metadata service no older than MaxAgentStateAge at Now.
type AgentMeasurement struct {
	Now time.Time
}

// Name implements InstanceSource.
func (AgentMeasurement) Name() string { return "imdsguard agent measurement" }

// AWSOptions implements InstanceSource.
func (a AgentMeasurement) AWSOptions(n *inventory.Node) (AWSMetadataOptions, bool) {
	if n.AgentState == "" {
		return AWSMetadataOptions{}, false
	}
	// Only on AWS nodes: the probe's answers (a 403 above all) mean what EC2 means by them
	// only where EC2 answers.
	if Cloud(n) != "aws" {
		return AWSMetadataOptions{}, false
	}
	s, err := DecodeAgentState(n.AgentState)
	if err != nil || s.Node != n.Name || s.Instance == nil || a.Now.Sub(s.Instance.Measured) > MaxAgentStateAge ||
		s.Instance.Measured.After(a.Now.Add(maxClockSkew)) {
		return AWSMetadataOptions{}, false
	}
	return s.Instance.Options(n.Name), true
}

// Cloud is the cloud a node runs in, from the scheme of spec.providerID ("aws:///eu-west-1a/i-0abc"),
// or "" when it does not say.
func Cloud(n *inventory.Node) string {
	scheme, _, ok := strings.Cut(n.ProviderID, "://")
	if !ok {
		return ""
	}
	return scheme
}
