package generate

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Cilium object, cilium.io/v2, as Cilium v1.20's CRD defines it. Importing Cilium's API
// module would pull the whole agent into the build, so the few fields used are declared here.

// ciliumNamespaceLabel is the label Cilium gives every pod endpoint: its namespace.
const ciliumNamespaceLabel = "io.kubernetes.pod.namespace"

type ciliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ciliumPolicySpec  `json:"spec"`
}

type ciliumPolicySpec struct {
	Description       string                 `json:"description"`
	EndpointSelector  metav1.LabelSelector   `json:"endpointSelector"`
	EnableDefaultDeny ciliumDefaultDeny      `json:"enableDefaultDeny"`
	EgressDeny        []ciliumEgressDenyRule `json:"egressDeny"`
}

// ciliumDefaultDeny says whether a policy puts the endpoints it selects into default-deny.
// Both fields are always written: false must be explicit.
type ciliumDefaultDeny struct {
	Egress  bool `json:"egress"`
	Ingress bool `json:"ingress"`
}

type ciliumEgressDenyRule struct {
	ToCIDRSet []ciliumCIDRRule `json:"toCIDRSet"`
	ToPorts   []ciliumPortRule `json:"toPorts"`
}

type ciliumCIDRRule struct {
	CIDR string `json:"cidr"`
}

type ciliumPortRule struct {
	Ports []ciliumPortProtocol `json:"ports"`
}

type ciliumPortProtocol struct {
	Port     string `json:"port"`
	Protocol string `json:"protocol"`
}

// buildCilium denies the credential endpoints to every pod outside the exempt namespaces.
// Without enableDefaultDeny, a policy with egressDeny rules puts every endpoint it selects into
// egress default-deny, which would cut all their other traffic: it is set to false for both
// directions, so the policy only subtracts the metadata endpoints. Deny rules win over every
// allow (CiliumNetworkPolicy or Kubernetes NetworkPolicy).
func buildCilium(opts *Options) *ciliumClusterwideNetworkPolicy {
	selector := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		// Only pods: the host, health and ingress endpoints carry no namespace label.
		{Key: ciliumNamespaceLabel, Operator: metav1.LabelSelectorOpExists},
	}}
	if len(opts.ExemptNamespaces) > 0 {
		selector.MatchExpressions = append(selector.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: ciliumNamespaceLabel, Operator: metav1.LabelSelectorOpNotIn, Values: opts.ExemptNamespaces,
		})
	}
	var deny []ciliumEgressDenyRule
	for _, g := range groupByPort(opts.Endpoints) {
		cidrs := make([]ciliumCIDRRule, len(g.Prefixes))
		for i, p := range g.Prefixes {
			cidrs[i] = ciliumCIDRRule{CIDR: p.String()}
		}
		deny = append(deny, ciliumEgressDenyRule{
			ToCIDRSet: cidrs,
			ToPorts:   []ciliumPortRule{{Ports: []ciliumPortProtocol{{Port: strconv.Itoa(int(g.Port)), Protocol: string(g.Protocol)}}}},
		})
	}
	description := "Denies pods outside the exempt namespaces the cloud instance metadata endpoints: " + strings.Join(endpointNames(credentials(opts.Endpoints)), ", ")
	return &ciliumClusterwideNetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumClusterwideNetworkPolicy"},
		Metadata: objectMeta(PolicyName, "", description),
		Spec: ciliumPolicySpec{
			Description:       description,
			EndpointSelector:  selector,
			EnableDefaultDeny: ciliumDefaultDeny{Egress: false, Ingress: false},
			EgressDeny:        deny,
		},
	}
}

func (out *Output) addCilium(opts *Options) {
	out.Manifests = append(out.Manifests, Manifest{Layer: Cilium, Object: buildCilium(opts), Comment: `CiliumClusterwideNetworkPolicy: egressDeny for the metadata endpoints (exact address,
protocol, port). enableDefaultDeny is false for both directions: without it, a policy with
egress rules puts every pod it selects into egress default-deny. Requires Cilium 1.16 or
later (older versions drop enableDefaultDeny and would cut all other egress: do not apply
there). Deny rules win over every allow. hostNetwork pods are not covered (see the admission
and node layers); Cilium enforces this at the pod, so eBPF host routing does not bypass it.`})
}
