package generate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// Layer names one kind of defence generate can produce.
type Layer string

// The layers, in the order they are generated and written.
const (
	// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy per namespace allowing all egress
	// except the credential endpoints. It only adds allowances, so it is refused wherever it
	// could widen egress; it needs the cluster's objects to decide that.
	NetworkPolicy Layer = "networkpolicy"
	// ClusterNetworkPolicy is a cluster-wide policy.networking.k8s.io ClusterNetworkPolicy
	// (v1beta1, or v1alpha2 where only that is served) with Deny rules in the Admin tier: it
	// cannot widen anything and namespace owners cannot override it. The preferred layer where
	// the cluster's network plugin enforces it (Calico v3.32 and later, among others).
	ClusterNetworkPolicy Layer = "clusternetworkpolicy"
	// AdminNetworkPolicy is a cluster-wide policy.networking.k8s.io/v1alpha1 Deny: it cannot
	// widen anything and namespace owners cannot override it. The preferred layer where the
	// cluster's network plugin implements it.
	AdminNetworkPolicy Layer = "adminnetworkpolicy"
	// Calico is a projectcalico.org/v3 Tier ordered before the default tier with a
	// GlobalNetworkPolicy that denies the endpoints and passes everything else on.
	Calico Layer = "calico"
	// Cilium is a cilium.io/v2 CiliumClusterwideNetworkPolicy with egressDeny rules that does
	// not put pods into default-deny.
	Cilium Layer = "cilium"
	// Admission is admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies rejecting
	// hostNetwork pods and pod templates outside allow-listed namespaces: no network policy
	// applies to hostNetwork pods.
	Admission Layer = "admission"
	// Node is the node firewall: an nftables script, iptables-restore input and a boot snippet
	// that loads them before the kubelet starts.
	Node Layer = "node"
	// EC2 is AWS instance metadata options: IMDSv2 required and a PUT response hop limit of 1,
	// as AWS CLI commands, launch template data, Terraform, eksctl and Karpenter settings.
	EC2 Layer = "ec2"
)

// Layers lists every layer in generation order.
var Layers = []Layer{NetworkPolicy, ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium, Admission, Node, EC2}

// denyCapable are the layers that can deny traffic whatever NetworkPolicies allow: the ones a
// refused namespace is pointed to.
var denyCapable = []Layer{ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium, Node}

// WritesFiles reports whether a layer produces scripts and configuration files rather than
// Kubernetes objects: they are written to an output directory, not to standard output.
func (l Layer) WritesFiles() bool { return l == Node || l == EC2 }

// selectsPods reports whether a layer is a network policy selecting pods: the layers exempt
// namespaces apply to.
func selectsPods(l Layer) bool {
	return l == NetworkPolicy || l == ClusterNetworkPolicy || l == AdminNetworkPolicy || l == Calico || l == Cilium
}

// ParseLayers parses --layer values: layer names, comma-separated or repeated, or "all". The
// result is deduplicated and in generation order. No value at all returns nil: the caller then
// uses DefaultLayers.
func ParseLayers(values []string) ([]Layer, error) {
	var out []Layer
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if name == "all" {
				out = append(out, Layers...)
				continue
			}
			l := Layer(name)
			if !slices.Contains(Layers, l) {
				return nil, fmt.Errorf("unknown layer %q (want %s or all)", name, layerList(Layers))
			}
			out = append(out, l)
		}
	}
	return sortLayers(out), nil
}

// DefaultLayers returns the layers that apply to the selected endpoints: every layer, and ec2
// only when an AWS endpoint is selected.
func DefaultLayers(eps []endpoint.Endpoint) []Layer {
	var out []Layer
	for _, l := range Layers {
		if l.applies(eps) {
			out = append(out, l)
		}
	}
	return out
}

// applies reports whether a layer makes sense for the selected endpoints.
func (l Layer) applies(eps []endpoint.Endpoint) bool {
	if l != EC2 {
		return true
	}
	return slices.ContainsFunc(eps, func(e endpoint.Endpoint) bool { return e.HasCloud(endpoint.AWS) })
}

// sortLayers returns the distinct layers of in, in generation order.
func sortLayers(in []Layer) []Layer {
	var out []Layer
	for _, l := range Layers {
		if slices.Contains(in, l) {
			out = append(out, l)
		}
	}
	return out
}

func layerList(ls []Layer) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = string(l)
	}
	return strings.Join(names, ", ")
}
