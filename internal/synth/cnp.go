package synth

import (
	"fmt"
	"math/rand/v2"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// engineImage is the policy engine the cluster runs when it holds ClusterNetworkPolicies:
// Calico v3.32, which enforces them (and no longer AdminNetworkPolicy), so engine detection and
// the Calico engine's kube-admin and kube-baseline tiers are both exercised.
const engineImage = "quay.io/calico/node:v3.32.1"

// clusterNetworkPolicies returns ClusterNetworkPolicies ClusterNetworkPolicies, about one in
// four in the Baseline tier, the rest in the Admin tier; each selects the namespaces of one team,
// or one workload's pods in them, and denies the metadata addresses, passes in-cluster
// addresses, accepts web traffic, or (Baseline) denies everything but DNS. Priorities repeat:
// with more than 1,001 policies per tier they must, and ties are reported. They draw from their
// own random source, so the rest of the cluster is the same with or without them.
func (g *generator) clusterNetworkPolicies() []any {
	if g.cfg.ClusterNetworkPolicies == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0xc4b))
	tcp := func(port int32) []cnpv1beta1.ClusterNetworkPolicyProtocol {
		return []cnpv1beta1.ClusterNetworkPolicyProtocol{{TCP: &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1beta1.Port{Number: port}}}}
	}
	networks := func(cidrs ...string) []cnpv1beta1.ClusterNetworkPolicyEgressPeer {
		out := make([]cnpv1beta1.CIDR, len(cidrs))
		for i, c := range cidrs {
			out[i] = cnpv1beta1.CIDR(c)
		}
		return []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: out}}
	}
	out := []any{g.engineDaemonSet()}
	for i := range g.cfg.ClusterNetworkPolicies {
		ns := &g.nss[rng.IntN(len(g.nss))]
		subject := cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": ns.team}}}
		if len(ns.workloads) > 0 && rng.IntN(2) == 0 {
			w := &ns.workloads[rng.IntN(len(ns.workloads))]
			subject = cnpv1beta1.ClusterNetworkPolicySubject{Pods: &cnpv1beta1.NamespacedPod{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": ns.team}},
				PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{w.labelKey: w.app}},
			}}
		}
		spec := cnpv1beta1.ClusterNetworkPolicySpec{Tier: cnpv1beta1.AdminTier, Priority: int32(rng.IntN(1001)), Subject: subject}
		if i%4 == 3 {
			spec.Tier = cnpv1beta1.BaselineTier
			spec.Egress = []cnpv1beta1.ClusterNetworkPolicyEgressRule{
				{Name: "accept-dns", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionAccept, To: networks("0.0.0.0/0"),
					Protocols: []cnpv1beta1.ClusterNetworkPolicyProtocol{{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1beta1.Port{Number: 53}}}}},
				{Name: "deny-rest", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionDeny, To: networks("0.0.0.0/0", "::/0")},
			}
		} else {
			switch rng.IntN(3) {
			case 0:
				spec.Egress = []cnpv1beta1.ClusterNetworkPolicyEgressRule{{Name: "deny-metadata", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionDeny,
					To: networks("169.254.169.254/32", "fd00:ec2::254/128"), Protocols: tcp(80)}}
			case 1:
				spec.Egress = []cnpv1beta1.ClusterNetworkPolicyEgressRule{{Name: "pass-cluster", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionPass,
					To: networks("10.0.0.0/8")}}
			default:
				spec.Egress = []cnpv1beta1.ClusterNetworkPolicyEgressRule{{Name: "accept-web", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionAccept,
					To: networks("0.0.0.0/0"), Protocols: tcp(443)}}
			}
		}
		out = append(out, &cnpv1beta1.ClusterNetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1beta1", Kind: "ClusterNetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp-%d", i)},
			Spec:       spec,
		})
	}
	return out
}

// engineDaemonSet is Calico's calico-node DaemonSet as a manifest install puts it in
// kube-system: what policy engine detection reads.
func (g *generator) engineDaemonSet() *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": "calico-node"}
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "calico-node", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{HostNetwork: true, ServiceAccountName: "calico-node",
					Containers: []corev1.Container{{Name: "calico-node", Image: engineImage}}},
			},
		},
	}
}
