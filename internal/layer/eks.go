package layer

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// The labels EKS applies to the nodes of a managed node group: eks.amazonaws.com/nodegroup on
// every one, and eks.amazonaws.com/sourceLaunchTemplateId only on those of "a custom launch
// template or AMI node group"
// (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html).
const (
	EKSNodeGroupLabel      = "eks.amazonaws.com/nodegroup"
	EKSLaunchTemplateLabel = "eks.amazonaws.com/sourceLaunchTemplateId"
)

// EKSNodeGroupDefaultsDoc and EKSIMDSv2Announcement are the AWS sources of the defaults
// EKSNodeGroup reports.
const (
	// EKSNodeGroupDefaultsDoc (Amazon Linux 2023): "AL2023 requires IMDSv2 by default" and
	// "For IMDSv2, the default hop count for managed node groups is set to 1. This means that
	// containers won't have access to the node's credentials using IMDS" (later revisions: "When
	// not using a launch template, the default is set to 1").
	EKSNodeGroupDefaultsDoc = "https://docs.aws.amazon.com/eks/latest/userguide/al2023.html"
	// EKSIMDSv2Announcement (Amazon Linux 2, August 2020): "newly launched and updated EKS
	// managed node groups will be configured with a metadata token response hop limit of 2", and
	// customers "can choose to disable IMDSv1": IMDSv1 stays enabled unless they do. AWS's plan
	// in https://github.com/aws/containers-roadmap/issues/930 says the same of managed nodes.
	EKSIMDSv2Announcement = "https://aws.amazon.com/about-aws/whats-new/2020/08/amazon-eks-supports-ec2-instance-metadata-service-v2/"
	// ec2EndpointDefault: HttpEndpoint "If the parameter is not specified, the default state is
	// enabled"; EKS's nodes themselves read the instance metadata to join the cluster.
	ec2EndpointDefault = "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceMetadataOptions.html"
)

// AMIFamily is the operating system family of an EKS node, from status.nodeInfo.osImage.
type AMIFamily string

// The AMI families EKSNodeGroup tells apart. Bottlerocket, Windows and any other image are
// AMIFamilyUnknown: AWS does not document the metadata options of EKS's own launch template for
// them.
const (
	AMIFamilyAL2023  AMIFamily = "Amazon Linux 2023"
	AMIFamilyAL2     AMIFamily = "Amazon Linux 2"
	AMIFamilyUnknown AMIFamily = ""
)

// AMIFamilyOf returns the family of an osImage: "Amazon Linux 2023.6.20241010" is AL2023,
// "Amazon Linux 2" is AL2 (AL2023's image name starts with AL2's, so it is matched first).
func AMIFamilyOf(osImage string) AMIFamily {
	image := strings.TrimSpace(osImage)
	switch {
	case strings.HasPrefix(image, "Amazon Linux 2023"):
		return AMIFamilyAL2023
	case image == "Amazon Linux 2" || strings.HasPrefix(image, "Amazon Linux 2 "):
		return AMIFamilyAL2
	}
	return AMIFamilyUnknown
}

// EKSNodeGroup is the instance source of nodes of an EKS managed node group launched from the
// launch template EKS creates itself (the node has eks.amazonaws.com/nodegroup and not
// eks.amazonaws.com/sourceLaunchTemplateId): AWS's documented defaults of that template, by AMI
// family, each reported as a Default.
//
//   - Amazon Linux 2023: HttpTokens required, hop limit 1 (EKSNodeGroupDefaultsDoc);
//   - Amazon Linux 2: HttpTokens optional, hop limit 2 (EKSIMDSv2Announcement);
//   - HttpEndpoint enabled for both (ec2EndpointDefault);
//   - HttpProtocolIpv6 is not documented for either and stays unknown.
//
// A node group with a custom launch template, or of another AMI family (Bottlerocket, Windows),
// is unknown here: the launch template, the EC2 API or the agent's measurement may know.
type EKSNodeGroup struct{}

// Name implements InstanceSource.
func (EKSNodeGroup) Name() string { return "EKS managed node group defaults" }

// AWSOptions implements InstanceSource.
func (EKSNodeGroup) AWSOptions(n *inventory.Node) (AWSMetadataOptions, bool) {
	group, ok := n.Labels[EKSNodeGroupLabel]
	if !ok {
		return AWSMetadataOptions{}, false
	}
	if _, custom := n.Labels[EKSLaunchTemplateLabel]; custom {
		return AWSMetadataOptions{}, false
	}
	family := AMIFamilyOf(n.OSImage)
	var tokens, doc string
	var hop int
	switch family {
	case AMIFamilyAL2023:
		tokens, hop, doc = "required", 1, EKSNodeGroupDefaultsDoc
	case AMIFamilyAL2:
		tokens, hop, doc = "optional", 2, EKSIMDSv2Announcement
	default:
		return AWSMetadataOptions{}, false
	}
	origin := func(option, source string) string {
		return fmt.Sprintf("EKS managed node group %s on %s without a custom launch template: EKS's launch template default %s (%s)", group, family, option, source)
	}
	return AWSMetadataOptions{
		Endpoint: Setting[bool]{Value: true, Known: true, Source: Default, Origin: origin("HttpEndpoint", ec2EndpointDefault)},
		Tokens:   Setting[string]{Value: tokens, Known: true, Source: Default, Origin: origin("HttpTokens", doc)},
		HopLimit: Setting[int]{Value: hop, Known: true, Source: Default, Origin: origin("HttpPutResponseHopLimit", doc)},
	}, true
}
