package layer

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// Karpenter v1's defaults for a field of spec.metadataOptions left out: "httpEndpoint: enabled,
// httpProtocolIPv6: disabled, httpPutResponseHopLimit: 1, httpTokens: required"
// (https://karpenter.sh/docs/concepts/nodeclasses/#specmetadataoptions).
const (
	karpenterEndpoint = "enabled"
	karpenterIPv6     = "disabled"
	karpenterHopLimit = 1
	karpenterTokens   = "required"
)

// FromEC2NodeClass returns the metadata options of the instances Karpenter launches for the
// EC2NodeClass named class: each field as configured, or Karpenter's default where left out.
func FromEC2NodeClass(class string, m *inventory.EC2NodeClassMetadataOptions) AWSMetadataOptions {
	if m == nil {
		m = &inventory.EC2NodeClassMetadataOptions{}
	}
	field := func(name string, set bool) (Source, string) {
		if set {
			return Configured, fmt.Sprintf("EC2NodeClass %s spec.metadataOptions.%s", class, name)
		}
		return Default, fmt.Sprintf("EC2NodeClass %s: %s left out, Karpenter's default", class, name)
	}
	var o AWSMetadataOptions
	endpoint := karpenterEndpoint
	if m.HTTPEndpoint != nil {
		endpoint = *m.HTTPEndpoint
	}
	o.Endpoint.Source, o.Endpoint.Origin = field("httpEndpoint", m.HTTPEndpoint != nil)
	o.Endpoint.Value, o.Endpoint.Known = endpoint == "enabled", endpoint == "enabled" || endpoint == "disabled"

	ipv6 := karpenterIPv6
	if m.HTTPProtocolIPv6 != nil {
		ipv6 = *m.HTTPProtocolIPv6
	}
	o.IPv6.Source, o.IPv6.Origin = field("httpProtocolIPv6", m.HTTPProtocolIPv6 != nil)
	o.IPv6.Value, o.IPv6.Known = ipv6 == "enabled", ipv6 == "enabled" || ipv6 == "disabled"

	hop := int64(karpenterHopLimit)
	if m.HTTPPutResponseHopLimit != nil {
		hop = *m.HTTPPutResponseHopLimit
	}
	o.HopLimit.Source, o.HopLimit.Origin = field("httpPutResponseHopLimit", m.HTTPPutResponseHopLimit != nil)
	o.HopLimit.Value, o.HopLimit.Known = int(hop), hop >= 1 && hop <= 64

	tokens := karpenterTokens
	if m.HTTPTokens != nil {
		tokens = *m.HTTPTokens
	}
	o.Tokens.Source, o.Tokens.Origin = field("httpTokens", m.HTTPTokens != nil)
	o.Tokens.Value, o.Tokens.Known = tokens, tokens == "optional" || tokens == "required"
	return o
}

// EC2NodeClassLabel names the EC2NodeClass of a node Karpenter launched: the constant
// LabelNodeClass of aws/karpenter-provider-aws (pkg/apis/v1), which Karpenter sets on the
// instances and the nodes it launches. A node without it reaches its class through its NodeClaim
// (KarpenterNodeClaims).
const EC2NodeClassLabel = "karpenter.k8s.aws/ec2nodeclass"

// NodeOptions returns the metadata options of a node launched by Karpenter, from the
// EC2NodeClass its label names (classes by name), and whether one was found. A node without the
// label, or whose class is not in the input, has unknown options.
func NodeOptions(labels map[string]string, classes map[string]*inventory.EC2NodeClassMetadataOptions) (AWSMetadataOptions, bool) {
	name, ok := labels[EC2NodeClassLabel]
	if !ok {
		return AWSMetadataOptions{}, false
	}
	m, ok := classes[name]
	if !ok {
		return AWSMetadataOptions{}, false
	}
	return FromEC2NodeClass(name, m), true
}

// KarpenterClasses indexes the input's EC2NodeClasses by name, for NodeOptions.
func KarpenterClasses(classes []*inventory.EC2NodeClass) map[string]*inventory.EC2NodeClassMetadataOptions {
	out := make(map[string]*inventory.EC2NodeClassMetadataOptions, len(classes))
	for _, c := range classes {
		out[c.NodeClass.Name] = c.NodeClass.Spec.MetadataOptions
	}
	return out
}

// KarpenterPositions says where each EC2NodeClass of the input was read, by name.
func KarpenterPositions(classes []*inventory.EC2NodeClass) map[string]inventory.Source {
	out := make(map[string]inventory.Source, len(classes))
	for _, c := range classes {
		out[c.NodeClass.Name] = c.Source
	}
	return out
}

// KarpenterNodeClaims indexes the input's NodeClaims by status.providerID, the spec.providerID of
// the Node Karpenter registered for the claim (https://karpenter.sh/docs/concepts/nodeclaims/),
// to the name of the EC2NodeClass of their spec.nodeClassRef. A NodeClaim without a provider ID
// (the instance is not launched yet) is left out, and so is a provider ID two NodeClaims give
// different classes: which one launched the instance is not known.
func KarpenterNodeClaims(claims []*inventory.NodeClaim) map[string]string {
	out := make(map[string]string, len(claims))
	conflicting := map[string]bool{}
	for _, c := range claims {
		id, ref := c.NodeClaim.Status.ProviderID, c.NodeClaim.Spec.NodeClassRef
		if id == "" || ref == nil {
			continue
		}
		if class, seen := out[id]; seen && class != ref.Name {
			conflicting[id] = true
		}
		out[id] = ref.Name
	}
	for id := range conflicting {
		delete(out, id)
	}
	return out
}
