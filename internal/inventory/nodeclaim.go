package inventory

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KarpenterCoreGroupVersion is Karpenter's core API group version, of NodeClaim.
const KarpenterCoreGroupVersion = "karpenter.sh/v1"

// The class a NodeClaim of Karpenter's AWS provider refers to: "nodeClassRef: group:
// karpenter.k8s.aws, kind: EC2NodeClass" (https://karpenter.sh/docs/concepts/nodeclaims/).
const (
	EC2NodeClassGroup = "karpenter.k8s.aws"
	EC2NodeClassKind  = "EC2NodeClass"
)

// NodeClaimObject is a karpenter.sh/v1 NodeClaim, decoded into the fields the instance layer
// reads: the class the instance was launched from and the instance's provider ID, which is the
// Node's spec.providerID (https://karpenter.sh/docs/concepts/nodeclaims/). Karpenter's Go module
// needs a newer Go than the project's.
type NodeClaimObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NodeClaimSpec   `json:"spec,omitempty"`
	Status            NodeClaimStatus `json:"status,omitempty"`
}

// NodeClaimSpec holds the NodeClaim fields imdsguard reads.
type NodeClaimSpec struct {
	// NodeClassRef names the provider's class the instance is launched from; nil when left
	// out (the API server refuses that: the field is required).
	NodeClassRef *NodeClassReference `json:"nodeClassRef,omitempty"`
}

// NodeClassReference is spec.nodeClassRef of a NodeClaim.
type NodeClassReference struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Name  string `json:"name,omitempty"`
}

// NodeClaimStatus holds the NodeClaim status fields imdsguard reads.
type NodeClaimStatus struct {
	// ProviderID is the launched instance's provider ID ("aws:///eu-west-1a/i-0abc"), empty
	// until the instance is launched.
	ProviderID string `json:"providerID,omitempty"`
}

// NodeClaim is a Karpenter NodeClaim read from the input whose spec.nodeClassRef names an
// EC2NodeClass.
type NodeClaim struct {
	NodeClaim *NodeClaimObject
	Source    Source
}

// nodeClaimProblem checks a NodeClaim's spec.nodeClassRef: it must name an EC2NodeClass, the
// only class imdsguard reads. It returns the offending field and why, or "" when the reference
// is usable.
func nodeClaimProblem(c *NodeClaimObject) (field, message string) {
	ref := c.Spec.NodeClassRef
	switch {
	case ref == nil:
		return "spec.nodeClassRef", "nodeClassRef is required"
	case ref.Group != EC2NodeClassGroup:
		return "spec.nodeClassRef.group", fmt.Sprintf("group %q is not supported: imdsguard reads %s of group %s", ref.Group, EC2NodeClassKind, EC2NodeClassGroup)
	case ref.Kind != EC2NodeClassKind:
		return "spec.nodeClassRef.kind", fmt.Sprintf("kind %q is not supported: imdsguard reads %s of group %s", ref.Kind, EC2NodeClassKind, EC2NodeClassGroup)
	case ref.Name == "":
		return "spec.nodeClassRef.name", "name is required"
	}
	return "", ""
}
