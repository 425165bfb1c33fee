package generate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// namespaceNameLabel is the label the API server sets on every namespace to its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// exceptNamespaces selects every namespace but the exempt ones.
func exceptNamespaces(exempt []string) *metav1.LabelSelector {
	if len(exempt) == 0 {
		return &metav1.LabelSelector{}
	}
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: namespaceNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: exempt},
	}}
}

// buildAdminNetworkPolicy denies every credential endpoint, by exact address, protocol and
// port, for every pod outside the exempt namespaces. A Deny cannot widen anything, and it is
// decided before any NetworkPolicy, so namespace owners cannot undo it.
func buildAdminNetworkPolicy(opts *Options) *anpv1alpha1.AdminNetworkPolicy {
	var egress []anpv1alpha1.AdminNetworkPolicyEgressRule
	for _, g := range groupByPort(opts.Endpoints) {
		networks := make([]anpv1alpha1.CIDR, len(g.Prefixes))
		for i, p := range g.Prefixes {
			networks[i] = anpv1alpha1.CIDR(p.String())
		}
		ports := []anpv1alpha1.AdminNetworkPolicyPort{{PortNumber: &anpv1alpha1.Port{Protocol: g.Protocol, Port: g.Port}}}
		egress = append(egress, anpv1alpha1.AdminNetworkPolicyEgressRule{
			Name:   fmt.Sprintf("deny-metadata-%s-%d", strings.ToLower(string(g.Protocol)), g.Port),
			Action: anpv1alpha1.AdminNetworkPolicyRuleActionDeny,
			To:     []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Networks: networks}},
			Ports:  &ports,
		})
	}
	return &anpv1alpha1.AdminNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1alpha1", Kind: "AdminNetworkPolicy"},
		ObjectMeta: objectMeta(PolicyName, "", "Denies every pod outside the exempt namespaces the cloud instance metadata endpoints: "+strings.Join(endpointNames(credentials(opts.Endpoints)), ", ")),
		Spec: anpv1alpha1.AdminNetworkPolicySpec{
			Priority: opts.AdminPriority,
			Subject:  anpv1alpha1.AdminNetworkPolicySubject{Namespaces: exceptNamespaces(opts.ExemptNamespaces)},
			Egress:   egress,
		},
	}
}

func adminNetworkPolicyComment(opts *Options) string {
	exempt := "none"
	if len(opts.ExemptNamespaces) > 0 {
		exempt = strings.Join(opts.ExemptNamespaces, ", ")
	}
	return fmt.Sprintf(`AdminNetworkPolicy: the preferred layer where the network plugin implements it
(policy.networking.k8s.io/v1alpha1, e.g. OVN-Kubernetes, Antrea, Calico, kube-network-policies).
A Deny cannot widen anyone's egress, and it is decided before every NetworkPolicy.
Only the exact address, protocol and port of each endpoint is denied: the EKS Pod Identity
agent and Azure DNS stay reachable. Exempt namespaces: %s.
Priority %d: an AdminNetworkPolicy with a lower number that allows these endpoints would win.`, exempt, opts.AdminPriority)
}
