// Package ciliumv2 holds the Go types of the Cilium policy resources imdsguard reads:
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy of cilium.io/v2.
//
// They are written from Cilium's published CRD schemas (release v1.20) and hold only what egress
// evaluation and validation read; ingress rules are kept as raw JSON. Cilium's own Go module is
// not used: it is very large, and imdsguard needs a handful of structs.
package ciliumv2

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupVersion of Cilium's policy resources.
const GroupVersion = "cilium.io/v2"

// CiliumNetworkPolicy is a namespaced Cilium policy: one rule in Spec, or several in Specs, or
// both.
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              *Rule  `json:"spec,omitempty"`
	Specs             []Rule `json:"specs,omitempty"`
}

// CiliumClusterwideNetworkPolicy is a cluster-wide Cilium policy.
type CiliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              *Rule  `json:"spec,omitempty"`
	Specs             []Rule `json:"specs,omitempty"`
}

// Rule selects endpoints (or nodes) and lists what they may and may not send and receive.
type Rule struct {
	EndpointSelector  *EndpointSelector  `json:"endpointSelector,omitempty"`
	NodeSelector      *EndpointSelector  `json:"nodeSelector,omitempty"`
	Ingress           json.RawMessage    `json:"ingress,omitempty"`
	IngressDeny       json.RawMessage    `json:"ingressDeny,omitempty"`
	Egress            []EgressRule       `json:"egress,omitempty"`
	EgressDeny        []EgressDenyRule   `json:"egressDeny,omitempty"`
	EnableDefaultDeny *DefaultDenyConfig `json:"enableDefaultDeny,omitempty"`
	Description       string             `json:"description,omitempty"`
}

// DefaultDenyConfig says whether a policy puts its endpoints into default deny, per direction.
// Unset means: yes for each direction the policy has rules for.
type DefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// EndpointSelector is a Kubernetes label selector whose keys may carry a source prefix
// ("k8s:app", "any:app", "reserved:host").
type EndpointSelector struct {
	MatchLabels      map[string]string     `json:"matchLabels,omitempty"`
	MatchExpressions []SelectorRequirement `json:"matchExpressions,omitempty"`
}

// SelectorRequirement is one matchExpressions entry.
type SelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// EgressRule allows traffic to its peers (L3) on its ports (L4).
type EgressRule struct {
	ToEndpoints    []EndpointSelector `json:"toEndpoints,omitempty"`
	ToRequires     []EndpointSelector `json:"toRequires,omitempty"`
	ToCIDR         []string           `json:"toCIDR,omitempty"`
	ToCIDRSet      []CIDRRule         `json:"toCIDRSet,omitempty"`
	ToEntities     []string           `json:"toEntities,omitempty"`
	ToServices     []json.RawMessage  `json:"toServices,omitempty"`
	ToFQDNs        []FQDNSelector     `json:"toFQDNs,omitempty"`
	ToGroups       []json.RawMessage  `json:"toGroups,omitempty"`
	ToNodes        []EndpointSelector `json:"toNodes,omitempty"`
	ToPorts        []PortRule         `json:"toPorts,omitempty"`
	ICMPs          []json.RawMessage  `json:"icmps,omitempty"`
	Authentication json.RawMessage    `json:"authentication,omitempty"`
}

// EgressDenyRule denies traffic to its peers on its ports, whatever the allow rules say.
type EgressDenyRule struct {
	ToEndpoints []EndpointSelector `json:"toEndpoints,omitempty"`
	ToRequires  []EndpointSelector `json:"toRequires,omitempty"`
	ToCIDR      []string           `json:"toCIDR,omitempty"`
	ToCIDRSet   []CIDRRule         `json:"toCIDRSet,omitempty"`
	ToEntities  []string           `json:"toEntities,omitempty"`
	ToServices  []json.RawMessage  `json:"toServices,omitempty"`
	ToGroups    []json.RawMessage  `json:"toGroups,omitempty"`
	ToNodes     []EndpointSelector `json:"toNodes,omitempty"`
	ToPorts     []PortRule         `json:"toPorts,omitempty"`
	ICMPs       []json.RawMessage  `json:"icmps,omitempty"`
}

// CIDRRule is a block with exceptions, or a reference to CiliumCIDRGroups.
type CIDRRule struct {
	CIDR              string            `json:"cidr,omitempty"`
	Except            []string          `json:"except,omitempty"`
	CIDRGroupRef      string            `json:"cidrGroupRef,omitempty"`
	CIDRGroupSelector *EndpointSelector `json:"cidrGroupSelector,omitempty"`
}

// FQDNSelector matches DNS names the endpoint resolves.
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRule is a list of ports, optionally with L7 rules.
type PortRule struct {
	Ports []PortProtocol  `json:"ports,omitempty"`
	Rules json.RawMessage `json:"rules,omitempty"`
	// ServerNames restricts the rule to TLS connections with these server names.
	ServerNames []string `json:"serverNames,omitempty"`
}

// PortProtocol is a port (a number, a range with EndPort, or a name) and a protocol.
type PortProtocol struct {
	Port     string `json:"port,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}
