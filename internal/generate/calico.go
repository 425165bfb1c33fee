package generate

import (
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Calico objects, projectcalico.org/v3, as Calico v3.32's CRDs define them. The module
// with Calico's API types is not served by the module proxy, so the few fields used are
// declared here.

// CalicoTierName is the Calico tier the deny policy lives in.
const CalicoTierName = "imdsguard"

// CalicoTierOrder puts the tier before the default tier (order 1,000,000, Kubernetes
// NetworkPolicies and untiered Calico policies) and before the kube-admin tier (order 1,000,
// AdminNetworkPolicies), so no allow anywhere else is consulted before the deny.
const CalicoTierOrder = 500

// calicoPolicyName is the GlobalNetworkPolicy's name: Calico requires policies outside the
// default tier to be named "<tier>.<name>".
const calicoPolicyName = CalicoTierName + ".deny-metadata"

type calicoTier struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            calicoTierSpec    `json:"spec"`
}

type calicoTierSpec struct {
	Order         float64 `json:"order"`
	DefaultAction string  `json:"defaultAction"`
}

type calicoGlobalNetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            calicoPolicySpec  `json:"spec"`
}

type calicoPolicySpec struct {
	Tier     string       `json:"tier"`
	Order    float64      `json:"order"`
	Selector string       `json:"selector"`
	Types    []string     `json:"types"`
	Egress   []calicoRule `json:"egress"`
}

type calicoRule struct {
	Action      string            `json:"action"`
	Protocol    string            `json:"protocol,omitempty"`
	IPVersion   int               `json:"ipVersion,omitempty"`
	Destination *calicoEntityRule `json:"destination,omitempty"`
}

type calicoEntityRule struct {
	Nets  []string `json:"nets,omitempty"`
	Ports []int32  `json:"ports,omitempty"`
}

// calicoSelector selects the workload endpoints (pods) outside the exempt namespaces. Host
// endpoints carry no namespace label, so has() keeps them out: denying the node itself its
// metadata would break the kubelet and the CNI.
func calicoSelector(exempt []string) string {
	sel := "has(projectcalico.org/namespace)"
	if len(exempt) == 0 {
		return sel
	}
	quoted := make([]string, len(exempt))
	for i, ns := range exempt {
		quoted[i] = strconv.Quote(ns)
	}
	return sel + " && projectcalico.org/namespace not in {" + strings.Join(quoted, ", ") + "}"
}

// buildCalico returns the Tier and the GlobalNetworkPolicy. In a tier, traffic that a policy
// selecting the endpoint does not act on is dropped at the end of the tier unless the tier's
// defaultAction is Pass. So the policy ends with an explicit Pass rule matching everything,
// and the tier's defaultAction is Pass as well: every connection that is not to a metadata
// endpoint goes on, unchanged, to the next tier, Kubernetes NetworkPolicies and profiles.
func buildCalico(opts *Options) (*calicoTier, *calicoGlobalNetworkPolicy) {
	tier := &calicoTier{
		TypeMeta: metav1.TypeMeta{APIVersion: "projectcalico.org/v3", Kind: "Tier"},
		Metadata: objectMeta(CalicoTierName, "", "imdsguard's tier: denies the cloud instance metadata endpoints, passes everything else to the next tier"),
		Spec:     calicoTierSpec{Order: CalicoTierOrder, DefaultAction: "Pass"},
	}
	var egress []calicoRule
	for _, g := range groupByPort(opts.Endpoints) {
		// Calico refuses a rule mixing IPv4 and IPv6 nets: one rule per family.
		for _, family := range []struct {
			ipv6    bool
			version int
		}{{false, 4}, {true, 6}} {
			nets := g.family(family.ipv6)
			if len(nets) == 0 {
				continue
			}
			egress = append(egress, calicoRule{
				Action:      "Deny",
				Protocol:    string(g.Protocol),
				IPVersion:   family.version,
				Destination: &calicoEntityRule{Nets: prefixStrings(nets), Ports: []int32{g.Port}},
			})
		}
	}
	egress = append(egress, calicoRule{Action: "Pass"})
	gnp := &calicoGlobalNetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "projectcalico.org/v3", Kind: "GlobalNetworkPolicy"},
		Metadata: objectMeta(calicoPolicyName, "", "Denies pods outside the exempt namespaces the cloud instance metadata endpoints: "+strings.Join(endpointNames(credentials(opts.Endpoints)), ", ")),
		Spec: calicoPolicySpec{
			Tier:     CalicoTierName,
			Order:    100,
			Selector: calicoSelector(opts.ExemptNamespaces),
			Types:    []string{"Egress"},
			Egress:   egress,
		},
	}
	return tier, gnp
}

func (out *Output) addCalico(opts *Options) {
	tier, gnp := buildCalico(opts)
	out.Manifests = append(out.Manifests,
		Manifest{Layer: Calico, Object: tier, Comment: fmt.Sprintf(`Calico tier %q, order %d: before the kube-admin tier (1,000, AdminNetworkPolicies) and
the default tier (1,000,000, Kubernetes NetworkPolicies), so no allow elsewhere is consulted first.
defaultAction Pass: traffic the tier's policies do not act on goes on to the next tier
instead of being dropped (Calico's default for a tier is Deny).`, CalicoTierName, CalicoTierOrder)},
		Manifest{Layer: Calico, Object: gnp, Comment: `Calico GlobalNetworkPolicy: Deny the metadata endpoints (exact address, protocol, port; one
rule per address family), then Pass everything else to the next tier, so no other traffic is
affected and Kubernetes NetworkPolicies keep deciding it. Pods only: host endpoints and
hostNetwork pods are not selected (see the admission and node layers).`})
}
