package inventory

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KarpenterGroupVersion is Karpenter's AWS API group version, of EC2NodeClass.
const KarpenterGroupVersion = "karpenter.k8s.aws/v1"

// EC2NodeClassObject is a karpenter.k8s.aws/v1 EC2NodeClass, decoded into the fields the
// instance layer reads (the Go module that defines it needs a newer Go than the project's).
// https://karpenter.sh/docs/concepts/nodeclasses/
type EC2NodeClassObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EC2NodeClassSpec `json:"spec,omitempty"`
}

// EC2NodeClassSpec holds the EC2NodeClass fields imdsguard reads.
type EC2NodeClassSpec struct {
	// MetadataOptions are the instance metadata options of the instances Karpenter launches
	// for the class; nil when left out (Karpenter's defaults apply).
	MetadataOptions *EC2NodeClassMetadataOptions `json:"metadataOptions,omitempty"`
}

// EC2NodeClassMetadataOptions is spec.metadataOptions of an EC2NodeClass; nil fields were left
// out.
type EC2NodeClassMetadataOptions struct {
	HTTPEndpoint            *string `json:"httpEndpoint,omitempty"`
	HTTPProtocolIPv6        *string `json:"httpProtocolIPv6,omitempty"`
	HTTPPutResponseHopLimit *int64  `json:"httpPutResponseHopLimit,omitempty"`
	HTTPTokens              *string `json:"httpTokens,omitempty"`
}

// EC2NodeClass is a Karpenter EC2NodeClass read from the input.
type EC2NodeClass struct {
	NodeClass *EC2NodeClassObject
	Source    Source
}
