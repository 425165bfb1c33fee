package generate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// ClusterNetworkPolicyAPIVersions are the policy.networking.k8s.io versions of
// ClusterNetworkPolicy the layer can write: v1beta1 from network-policy-api v0.3.0 (its
// storage version), v1alpha2 from v0.2.0 (still served by v0.3.x). The schemas are identical
// (network-policy-api CHANGELOG, v0.3.0).
var ClusterNetworkPolicyAPIVersions = []string{"policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"}

// buildClusterNetworkPolicy denies every credential endpoint, by exact address, protocol and
// port, for every pod outside the exempt namespaces, in the Admin tier: decided before every
// NetworkPolicy, so namespace owners cannot undo it, and a Deny cannot widen anything.
// apiVersion is one of ClusterNetworkPolicyAPIVersions (v1beta1 when empty).
func buildClusterNetworkPolicy(opts *Options, apiVersion string) *cnpv1beta1.ClusterNetworkPolicy {
	if apiVersion == "" {
		apiVersion = ClusterNetworkPolicyAPIVersions[0]
	}
	var egress []cnpv1beta1.ClusterNetworkPolicyEgressRule
	for _, g := range groupByPort(opts.Endpoints) {
		networks := make([]cnpv1beta1.CIDR, len(g.Prefixes))
		for i, p := range g.Prefixes {
			networks[i] = cnpv1beta1.CIDR(p.String())
		}
		port := &cnpv1beta1.Port{Number: g.Port}
		var proto cnpv1beta1.ClusterNetworkPolicyProtocol
		switch g.Protocol {
		case "UDP":
			proto.UDP = &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}
		case "SCTP":
			proto.SCTP = &cnpv1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}
		default:
			proto.TCP = &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
		}
		egress = append(egress, cnpv1beta1.ClusterNetworkPolicyEgressRule{
			Name:      fmt.Sprintf("deny-metadata-%s-%d", strings.ToLower(string(g.Protocol)), g.Port),
			Action:    cnpv1beta1.ClusterNetworkPolicyRuleActionDeny,
			To:        []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: networks}},
			Protocols: []cnpv1beta1.ClusterNetworkPolicyProtocol{proto},
		})
	}
	return &cnpv1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiVersion, Kind: "ClusterNetworkPolicy"},
		ObjectMeta: objectMeta(PolicyName, "", "Denies every pod outside the exempt namespaces the cloud instance metadata endpoints: "+strings.Join(endpointNames(credentials(opts.Endpoints)), ", ")),
		Spec: cnpv1beta1.ClusterNetworkPolicySpec{
			Tier:     cnpv1beta1.AdminTier,
			Priority: opts.AdminPriority,
			Subject:  cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: exceptNamespaces(opts.ExemptNamespaces)},
			Egress:   egress,
		},
	}
}

func clusterNetworkPolicyComment(opts *Options) string {
	exempt := "none"
	if len(opts.ExemptNamespaces) > 0 {
		exempt = strings.Join(opts.ExemptNamespaces, ", ")
	}
	return fmt.Sprintf(`ClusterNetworkPolicy, Admin tier: the preferred layer where the network plugin enforces it
(policy.networking.k8s.io, which replaced AdminNetworkPolicy v1alpha1; e.g. Calico v3.32 and later).
A Deny cannot widen anyone's egress, and the Admin tier is decided before every NetworkPolicy.
Only the exact address, protocol and port of each endpoint is denied: the EKS Pod Identity
agent and Azure DNS stay reachable. Exempt namespaces: %s.
Priority %d: an Admin-tier ClusterNetworkPolicy with a lower number that accepts these endpoints would win.`, exempt, opts.AdminPriority)
}
