// Package calicov3 holds the Go types of the Calico policy resources imdsguard reads:
// GlobalNetworkPolicy, NetworkPolicy, Tier, GlobalNetworkSet and NetworkSet of
// projectcalico.org/v3 (and of
// crd.projectcalico.org/v1, Calico's storage version, which has the same spec).
//
// They are written from Calico's published CRD schemas (release v3.32.1) and hold only what
// egress evaluation and validation read; ingress rules are kept as raw JSON. Calico's own Go
// module is not used: it is not served by every module proxy, and it would bring Calico's whole
// dependency tree for a handful of structs.
package calicov3

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Group and versions of Calico's policy resources.
const (
	GroupVersion        = "projectcalico.org/v3"
	StorageGroupVersion = "crd.projectcalico.org/v1"
)

// DefaultTier is the tier of a policy whose spec.tier is empty.
const DefaultTier = "default"

// GlobalNetworkPolicy is a cluster-wide Calico policy.
type GlobalNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// NetworkPolicy is a namespaced Calico policy.
type NetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkPolicySpec `json:"spec,omitempty"`
}

// Tier orders groups of policies.
type Tier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TierSpec `json:"spec,omitempty"`
}

// GlobalNetworkSet is a cluster-wide, labelled set of networks that policy rules select with
// their destination selectors.
type GlobalNetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkSetSpec `json:"spec,omitempty"`
}

// NetworkSet is a namespaced, labelled set of networks.
type NetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkSetSpec `json:"spec,omitempty"`
}

// NetworkSetSpec lists a network set's networks: addresses or CIDRs, IPv4 or IPv6.
type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
	// AllowedEgressDomains is a Calico Enterprise field: Calico Open Source ignores it.
	AllowedEgressDomains []string `json:"allowedEgressDomains,omitempty"`
}

// TierSpec is a tier's order and the action for traffic its policies select but do not decide.
type TierSpec struct {
	// Order: lower first; nil is evaluated after every tier that has an order.
	Order *float64 `json:"order,omitempty"`
	// DefaultAction is Deny (the default) or Pass.
	DefaultAction string `json:"defaultAction,omitempty"`
}

// NetworkPolicySpec is the spec of a namespaced policy.
type NetworkPolicySpec struct {
	Tier                   string          `json:"tier,omitempty"`
	Order                  *float64        `json:"order,omitempty"`
	Selector               string          `json:"selector,omitempty"`
	ServiceAccountSelector string          `json:"serviceAccountSelector,omitempty"`
	Types                  []string        `json:"types,omitempty"`
	Ingress                json.RawMessage `json:"ingress,omitempty"`
	Egress                 []Rule          `json:"egress,omitempty"`
	PerformanceHints       []string        `json:"performanceHints,omitempty"`
}

// GlobalNetworkPolicySpec is the spec of a cluster-wide policy: a namespaced policy's fields,
// a namespace selector, and the host endpoint switches.
type GlobalNetworkPolicySpec struct {
	Tier                   string          `json:"tier,omitempty"`
	Order                  *float64        `json:"order,omitempty"`
	Selector               string          `json:"selector,omitempty"`
	NamespaceSelector      string          `json:"namespaceSelector,omitempty"`
	ServiceAccountSelector string          `json:"serviceAccountSelector,omitempty"`
	Types                  []string        `json:"types,omitempty"`
	Ingress                json.RawMessage `json:"ingress,omitempty"`
	Egress                 []Rule          `json:"egress,omitempty"`
	DoNotTrack             bool            `json:"doNotTrack,omitempty"`
	PreDNAT                bool            `json:"preDNAT,omitempty"`
	ApplyOnForward         bool            `json:"applyOnForward,omitempty"`
	PerformanceHints       []string        `json:"performanceHints,omitempty"`
}

// Rule is one policy rule.
type Rule struct {
	Action      string              `json:"action"`
	Protocol    *intstr.IntOrString `json:"protocol,omitempty"`
	NotProtocol *intstr.IntOrString `json:"notProtocol,omitempty"`
	IPVersion   *int                `json:"ipVersion,omitempty"`
	ICMP        *ICMPFields         `json:"icmp,omitempty"`
	NotICMP     *ICMPFields         `json:"notICMP,omitempty"`
	Source      EntityRule          `json:"source,omitempty"`
	Destination EntityRule          `json:"destination,omitempty"`
	HTTP        *HTTPMatch          `json:"http,omitempty"`
	Metadata    *RuleMetadata       `json:"metadata,omitempty"`
}

// ICMPFields matches ICMP type and code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// HTTPMatch matches HTTP requests (application layer policy).
type HTTPMatch struct {
	Methods []string          `json:"methods,omitempty"`
	Paths   []json.RawMessage `json:"paths,omitempty"`
}

// RuleMetadata holds a rule's annotations.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// EntityRule is the source or destination of a rule.
type EntityRule struct {
	Nets              []string             `json:"nets,omitempty"`
	NotNets           []string             `json:"notNets,omitempty"`
	Selector          string               `json:"selector,omitempty"`
	NotSelector       string               `json:"notSelector,omitempty"`
	NamespaceSelector string               `json:"namespaceSelector,omitempty"`
	Ports             []intstr.IntOrString `json:"ports,omitempty"`
	NotPorts          []intstr.IntOrString `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
	Services          *ServiceMatch        `json:"services,omitempty"`
}

// ServiceAccountMatch matches endpoints by their service account.
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// ServiceMatch matches the endpoints of a Kubernetes Service.
type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}
