package engine_test

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/engine"
)

func ExampleParse() {
	for _, spec := range []string{"calico@3.31.2", "calico@3.32.1", "aws-vpc-cni", "cilium@1.18"} {
		e, err := engine.Parse(spec)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(e.String())
	}
	_, err := engine.Parse("flannel")
	fmt.Println(err)
	// Output:
	// Calico v3.31.2 (calico semantics): enforces NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, Calico
	// Calico v3.32.1 (calico semantics): enforces NetworkPolicy, ClusterNetworkPolicy, Calico
	// AWS VPC CNI (kubernetes semantics): enforces NetworkPolicy
	// Cilium v1.18 (cilium semantics): enforces NetworkPolicy, Cilium
	// policy engine "flannel": unknown engine "flannel": known engines are aws-vpc-cni, eks-auto-mode, calico, canal, cilium, gke-dataplane-v2, antrea, kube-network-policies, ovn-kubernetes, kube-router, weave-net, azure-npm
}
