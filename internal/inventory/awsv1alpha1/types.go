// Package awsv1alpha1 holds the Go types of the AWS VPC CNI's own ClusterNetworkPolicy,
// networking.k8s.aws/v1alpha1, enforced by the aws-network-policy-agent from VPC CNI v1.21 on
// ("Amazon EKS introduces enhanced network policy capabilities",
// https://aws.amazon.com/blogs/containers/amazon-eks-introduces-enhanced-network-policy-capabilities).
//
// The types are written from the published Go schema, api/v1alpha1/clusternetworkpolicy_types.go
// of the Amazon network policy controller (the copy read: github.com/oliviassss/
// amazon-network-policy-controller-k8s at commit 1b16d320b12a4bb964cadba80c3397adae398f53, a fork
// of aws/amazon-network-policy-controller-k8s), and hold only what egress evaluation and
// validation read. Its shape is upstream network-policy-api's v1alpha1 AdminNetworkPolicy ports
// (portNumber, portRange, namedPort) with v1alpha2's tier field and Accept/Deny/Pass actions,
// and a few differences of its own, noted on the fields.
package awsv1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupVersion of the AWS ClusterNetworkPolicy.
const GroupVersion = "networking.k8s.aws/v1alpha1"

// ClusterNetworkPolicy is a cluster-scoped AWS network policy (shortName cnp, scope Cluster).
type ClusterNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterNetworkPolicySpec `json:"spec,omitempty"`
}

// ClusterNetworkPolicySpec is the policy: its tier ("Admin" or "Baseline", enum), priority
// within the tier (0-1000, lower first), subject and rules (at most 100 of each direction).
type ClusterNetworkPolicySpec struct {
	Tier     string                            `json:"tier"`
	Priority int32                             `json:"priority"`
	Subject  ClusterNetworkPolicySubject       `json:"subject"`
	Ingress  []ClusterNetworkPolicyIngressRule `json:"ingress,omitempty"`
	Egress   []ClusterNetworkPolicyEgressRule  `json:"egress,omitempty"`
}

// ClusterNetworkPolicySubject selects pods; exactly one field is set (MinProperties and
// MaxProperties 1).
type ClusterNetworkPolicySubject struct {
	Namespaces *metav1.LabelSelector `json:"namespaces,omitempty"`
	Pods       *NamespacedPod        `json:"pods,omitempty"`
}

// NamespacedPod selects pods by namespace AND pod labels.
type NamespacedPod struct {
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector"`
	PodSelector       metav1.LabelSelector `json:"podSelector"`
}

// ClusterNetworkPolicyIngressRule is read for validation only.
type ClusterNetworkPolicyIngressRule struct {
	Name   string                            `json:"name,omitempty"`
	Action string                            `json:"action"`
	From   []ClusterNetworkPolicyIngressPeer `json:"from"`
	Ports  *[]ClusterNetworkPolicyPort       `json:"ports,omitempty"`
}

// ClusterNetworkPolicyIngressPeer is exactly one of namespaces or pods.
type ClusterNetworkPolicyIngressPeer struct {
	Namespaces *metav1.LabelSelector `json:"namespaces,omitempty"`
	Pods       *NamespacedPod        `json:"pods,omitempty"`
}

// ClusterNetworkPolicyEgressRule is one egress rule: a name (at most 100 characters), an
// action (Accept, Deny or Pass), 1 to 100 peers and optional ports (1 to 100). A CEL rule refuses
// domainNames peers in Deny rules: unlike upstream, Pass rules may use them.
type ClusterNetworkPolicyEgressRule struct {
	Name   string                           `json:"name,omitempty"`
	Action string                           `json:"action"`
	To     []ClusterNetworkPolicyEgressPeer `json:"to"`
	Ports  *[]ClusterNetworkPolicyPort      `json:"ports,omitempty"`
}

// ClusterNetworkPolicyEgressPeer is exactly one of namespaces, pods, networks (1 to 25 CIDRs, a
// set) or domainNames (1 to 25, a set). There is no nodes peer. Unlike upstream, networks have no
// CEL rule: the CRD only limits each to 43 characters.
type ClusterNetworkPolicyEgressPeer struct {
	Namespaces  *metav1.LabelSelector `json:"namespaces,omitempty"`
	Pods        *NamespacedPod        `json:"pods,omitempty"`
	Networks    []string              `json:"networks,omitempty"`
	DomainNames []string              `json:"domainNames,omitempty"`
}

// ClusterNetworkPolicyPort is a port match. The schema does not say that exactly one field is
// set (no MaxProperties on this type).
type ClusterNetworkPolicyPort struct {
	PortNumber *Port      `json:"portNumber,omitempty"`
	PortRange  *PortRange `json:"portRange,omitempty"`
	NamedPort  *string    `json:"namedPort,omitempty"`
}

// Port is a protocol (defaulted to TCP by the CRD) and a port (1-65535).
type Port struct {
	Protocol corev1.Protocol `json:"protocol,omitempty"`
	Port     int32           `json:"port"`
}

// PortRange is a protocol (defaulted to TCP) and an inclusive range, start < end (CEL).
type PortRange struct {
	Protocol corev1.Protocol `json:"protocol,omitempty"`
	Start    int32           `json:"start"`
	End      int32           `json:"end"`
}
