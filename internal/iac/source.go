package iac

import (
	"slices"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// EKSLaunchTemplateVersionLabel is the label EKS puts next to layer.EKSLaunchTemplateLabel on
// the nodes of a managed node group with a custom launch template: the template's version
// (EKS's bootstrap passes both, "--node-labels=eks.amazonaws.com/sourceLaunchTemplateVersion=1,
// ...,eks.amazonaws.com/sourceLaunchTemplateId=lt-...").
const EKSLaunchTemplateVersionLabel = "eks.amazonaws.com/sourceLaunchTemplateVersion"

// MaxFileSize bounds the files Load reads: a larger one is a Problem, not read.
const MaxFileSize = 16 << 20

// Source is the instance source of nodes whose node group the infrastructure code launches:
// the group's options, resolved with EC2's precedence (Resolve).
type Source struct {
	Groups  []NodeGroup
	Account AccountDefaults
	// AMI is the imds-support of the groups' AMI when the caller knows it.
	AMI AMISupport
}

var _ layer.InstanceSource = Source{}

// Name implements layer.InstanceSource.
func (Source) Name() string { return "infrastructure code" }

// AWSOptions implements layer.InstanceSource. A node joins the first group (in Groups order)
// that matches, by the first of its labels that one does: the EKS node group name
// (eks.amazonaws.com/nodegroup), the eksctl node group name (alpha.eksctl.io/nodegroup-name),
// then the launch template ID (eks.amazonaws.com/sourceLaunchTemplateId) and, when both the
// node and the group name one, the version.
func (s Source) AWSOptions(n *inventory.Node) (layer.AWSMetadataOptions, bool) {
	g, ok := s.Group(n)
	if !ok {
		return layer.AWSMetadataOptions{}, false
	}
	return Resolve(g.Options, s.Account, s.AMI), true
}

// Group returns the node group node n joins (AWSOptions), and false when none does.
func (s Source) Group(n *inventory.Node) (NodeGroup, bool) {
	i := s.GroupIndex(n)
	if i < 0 {
		return NodeGroup{}, false
	}
	return s.Groups[i], true
}

// GroupIndex returns the index in Groups of the node group node n joins (AWSOptions), and -1
// when none does.
func (s Source) GroupIndex(n *inventory.Node) int {
	if name := n.Labels[layer.EKSNodeGroupLabel]; name != "" {
		if i := slices.IndexFunc(s.Groups, func(g NodeGroup) bool { return g.EKSNodeGroup == name }); i >= 0 {
			return i
		}
	}
	if name := n.Labels[EksctlNodeGroupLabel]; name != "" {
		if i := slices.IndexFunc(s.Groups, func(g NodeGroup) bool { return g.EksctlNodeGroup == name }); i >= 0 {
			return i
		}
	}
	if id := n.Labels[layer.EKSLaunchTemplateLabel]; id != "" {
		version := n.Labels[EKSLaunchTemplateVersionLabel]
		return slices.IndexFunc(s.Groups, func(g NodeGroup) bool {
			return g.LaunchTemplateID == id && (version == "" || g.LaunchTemplateVersion == "" || version == g.LaunchTemplateVersion)
		})
	}
	return -1
}
