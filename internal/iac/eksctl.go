package iac

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The eksctl sources of EksctlMetadataOptions's rules.
const (
	// EksctlMetadataOptionsSource: eksctl's launch template for a node group
	// (makeMetadataOptions, used for nodeGroups and managedNodeGroups alike): HttpTokens
	// "required" if disableIMDSv1 or disablePodIMDS is enabled, else "optional";
	// HttpPutResponseHopLimit 1 with disablePodIMDS, else 2. It sets neither HttpEndpoint nor
	// HttpProtocolIpv6.
	EksctlMetadataOptionsSource = "https://github.com/eksctl-io/eksctl/blob/main/pkg/cfn/builder/nodegroup.go"
	// EksctlIMDSv2DefaultSource: since eksctl 0.143.0 disableIMDSv1 defaults to true ("Enforce
	// IMDSv2 by default (#6631)" in the 0.143.0 release notes).
	EksctlIMDSv2DefaultSource = "https://github.com/eksctl-io/eksctl/pull/6631"
	// EksctlNodeGroupLabel is the label eksctl puts on every node of a node group it creates,
	// with the node group's name.
	EksctlNodeGroupLabel = "alpha.eksctl.io/nodegroup-name"
)

// IsEksctl reports whether a parsed document is an eksctl ClusterConfig.
func IsEksctl(root *yaml.Node) bool {
	api, _ := scalar(field(root, "apiVersion"))
	kind, _ := scalar(field(root, "kind"))
	return strings.HasPrefix(api, "eksctl.io/") && kind == "ClusterConfig"
}

// ReadEksctl reads the node groups of an eksctl ClusterConfig (eksctl.io/v1alpha5):
// nodeGroups (self-managed) and managedNodeGroups, each with the options eksctl writes into
// its launch template (EksctlMetadataOptionsSource):
//
//   - HttpTokens required if disableIMDSv1 or disablePodIMDS is true, else optional;
//   - HttpPutResponseHopLimit 1 with disablePodIMDS, else 2;
//   - HttpEndpoint and HttpProtocolIpv6 left out (EC2's precedence decides them).
//
// disableIMDSv1 left out is true (eksctl 0.143.0 and later, EksctlIMDSv2DefaultSource) and
// disablePodIMDS left out is false; the options they decide are marked Default, and the group
// Defaulted. A managed node group with its own launchTemplate runs from that template, which
// eksctl does not write: its options are unknown, joined by the template's ID.
//
// Join keys: the node group's name as eksctl's label alpha.eksctl.io/nodegroup-name and, for a
// managed node group, as the EKS node group name (eks.amazonaws.com/nodegroup).
func ReadEksctl(file string, data []byte) ([]NodeGroup, []Problem, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, nil, err
	}
	if root == nil {
		return nil, nil, nil
	}
	if !IsEksctl(root) {
		return nil, []Problem{{At: at(file, root), Message: "not an eksctl ClusterConfig: want apiVersion eksctl.io/* and kind ClusterConfig"}}, nil
	}
	r := eksctlReader{file: file}
	var groups []NodeGroup
	for _, list := range []string{"nodeGroups", "managedNodeGroups"} {
		seq := field(root, list)
		if seq == nil {
			continue
		}
		if seq.Kind != yaml.SequenceNode {
			r.problem(seq, "%s: want a list of node groups", list)
			continue
		}
		for i, ng := range seq.Content {
			if g, ok := r.nodeGroup(list, i, deref(ng)); ok {
				groups = append(groups, g)
			}
		}
	}
	return groups, r.problems, nil
}

type eksctlReader struct {
	file     string
	problems []Problem
}

func (r *eksctlReader) problem(n *yaml.Node, format string, args ...any) {
	r.problems = append(r.problems, Problem{At: at(r.file, n), Message: fmt.Sprintf(format, args...)})
}

// flag reads a boolean field of a node group; set is false when it is left out.
func (r *eksctlReader) flag(ng *yaml.Node, key string) (value, set, known bool) {
	n := field(ng, key)
	if n == nil {
		return false, false, true
	}
	s, ok := scalar(n)
	if ok {
		if b, ok := parseBool(s); ok {
			return b, true, true
		}
	}
	r.problem(n, "%s: want true or false", key)
	return false, true, false
}

func (r *eksctlReader) nodeGroup(list string, i int, ng *yaml.Node) (NodeGroup, bool) {
	name, ok := scalar(field(ng, "name"))
	if !ok || name == "" {
		r.problem(ng, "%s[%d]: no name", list, i)
		return NodeGroup{}, false
	}
	resource := fmt.Sprintf("eksctl %s[%d] %s", list, i, name)
	g := NodeGroup{Resource: resource, At: at(r.file, ng), EksctlNodeGroup: name}
	managed := list == "managedNodeGroups"
	if managed {
		g.EKSNodeGroup = name
	}
	g.Options = MetadataOptions{Resource: resource, At: at(r.file, ng)}
	if lt := field(ng, "launchTemplate"); managed && lt != nil {
		if id, ok := scalar(field(lt, "id")); ok {
			g.LaunchTemplateID = id
		}
		if v, ok := scalar(field(lt, "version")); ok {
			g.LaunchTemplateVersion = v
		}
		p := at(r.file, lt)
		why := "launchTemplate " + g.LaunchTemplateID + ": a launch template eksctl does not write"
		g.Options.HTTPEndpoint = Value[string]{Set: true, At: p, Expr: why, Attr: "launchTemplate"}
		g.Options.HTTPTokens = Value[string]{Set: true, At: p, Expr: why, Attr: "launchTemplate"}
		g.Options.HopLimit = Value[int]{Set: true, At: p, Expr: why, Attr: "launchTemplate"}
		g.Options.HTTPProtocolIPv6 = Value[string]{Set: true, At: p, Expr: why, Attr: "launchTemplate"}
		return g, true
	}

	v1, v1Set, v1Known := r.flag(ng, "disableIMDSv1")
	pod, podSet, podKnown := r.flag(ng, "disablePodIMDS")
	if !v1Set {
		v1 = true
	}
	posOf := func(key string) Position {
		if n := field(ng, key); n != nil {
			return at(r.file, n)
		}
		return at(r.file, ng)
	}
	tokens := Value[string]{Set: true, Known: v1Known && podKnown, Value: "optional"}
	switch {
	case pod && podSet:
		tokens.Value, tokens.At, tokens.Attr = "required", posOf("disablePodIMDS"), "disablePodIMDS: true"
	case v1 && v1Set:
		tokens.Value, tokens.At, tokens.Attr = "required", posOf("disableIMDSv1"), "disableIMDSv1: true"
	case v1:
		tokens.Value, tokens.At, tokens.Attr = "required", posOf("disableIMDSv1"), "disableIMDSv1 left out"
		tokens.Default = fmt.Sprintf("eksctl's default disableIMDSv1: true (eksctl 0.143.0 and later, %s): HttpTokens required (%s)", EksctlIMDSv2DefaultSource, EksctlMetadataOptionsSource)
		g.Defaulted = true
	default:
		tokens.At, tokens.Attr = posOf("disableIMDSv1"), "disableIMDSv1: false, disablePodIMDS not true"
	}
	if !tokens.Known {
		tokens.Expr = "a disableIMDSv1 or disablePodIMDS that is not a boolean"
	}
	hop := Value[int]{Set: true, Known: podKnown, Value: 2, At: posOf("disablePodIMDS")}
	switch {
	case pod:
		hop.Value, hop.Attr = 1, "disablePodIMDS: true"
	case podSet:
		hop.Attr = "disablePodIMDS: false"
	default:
		hop.Attr = "disablePodIMDS left out"
		hop.Default = fmt.Sprintf("eksctl's default disablePodIMDS: false: HttpPutResponseHopLimit 2 (%s)", EksctlMetadataOptionsSource)
		g.Defaulted = true
	}
	if !hop.Known {
		hop.Expr = "a disablePodIMDS that is not a boolean"
	}
	g.Options.HTTPTokens, g.Options.HopLimit = tokens, hop
	return g, true
}
