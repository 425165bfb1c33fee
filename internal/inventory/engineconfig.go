package inventory

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Policy engine configuration: the objects that say whether a cluster's policy engine is on and
// which policy kinds it enforces (package engine reads them). Only these are kept; other
// ConfigMaps are skipped like any kind imdsguard does not evaluate.

// EngineConfigMapRef names a ConfigMap that configures a policy engine.
type EngineConfigMapRef struct {
	Namespace, Name string
}

func (r EngineConfigMapRef) String() string { return r.Namespace + "/" + r.Name }

// EngineConfigMaps are the ConfigMaps read for policy engine detection, from manifests and, by
// name (never by listing every ConfigMap), from a live cluster.
var EngineConfigMaps = []EngineConfigMapRef{
	// AWS VPC CNI: enable-network-policy-controller (EKS, EKS Auto Mode).
	// https://docs.aws.amazon.com/eks/latest/userguide/auto-net-pol.html
	{Namespace: metav1.NamespaceSystem, Name: "amazon-vpc-cni"},
	// Cilium agent configuration: enable-policy, enable-k8s-networkpolicy.
	// https://docs.cilium.io/en/stable/security/policy/intro/
	{Namespace: metav1.NamespaceSystem, Name: "cilium-config"},
	// Antrea: antrea-controller.conf featureGates.AdminNetworkPolicy.
	// https://github.com/antrea-io/antrea/blob/main/docs/admin-network-policy.md
	{Namespace: metav1.NamespaceSystem, Name: "antrea-config"},
}

// isEngineConfigMap reports whether namespace/name is one of EngineConfigMaps.
func isEngineConfigMap(namespace, name string) bool {
	for _, r := range EngineConfigMaps {
		if r.Namespace == namespace && r.Name == name {
			return true
		}
	}
	return false
}

// ConfigMap is a policy engine's ConfigMap (one of EngineConfigMaps).
type ConfigMap struct {
	Namespace string
	Name      string
	Data      map[string]string
	Source    Source
}

// ConfigMap returns the engine ConfigMap namespace/name, or nil when it is not in the input.
func (inv *Inventory) ConfigMap(namespace, name string) *ConfigMap {
	return inv.EngineConfigMaps[namespace+"/"+name]
}

// The Tigera operator's Installation and EKS Auto Mode's NodeClass, decoded into the few fields
// imdsguard reads (the Go modules that define them are not used: the operator's pulls in much of
// Calico, and EKS publishes none).
const (
	// OperatorGroupVersion is the Tigera operator's API group version.
	OperatorGroupVersion = "operator.tigera.io/v1"
	// EKSGroupVersion is EKS Auto Mode's API group version.
	EKSGroupVersion = "eks.amazonaws.com/v1"
)

// InstallationObject is an operator.tigera.io/v1 Installation, as decoded.
// https://docs.tigera.io/calico/latest/reference/installation/api
type InstallationObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              InstallationSpec   `json:"spec,omitempty"`
	Status            InstallationStatus `json:"status,omitempty"`
}

// InstallationStatus holds the Installation status fields engine detection reads.
// https://github.com/tigera/operator/blob/master/api/v1/installation_types.go
type InstallationStatus struct {
	// CalicoVersion is the version of Calico the operator runs ("v3.32.1").
	CalicoVersion string `json:"calicoVersion,omitempty"`
	// Variant is the variant running: Calico, CalicoEnterprise or TigeraSecureEnterprise.
	Variant string `json:"variant,omitempty"`
}

// InstallationSpec holds the Installation fields engine detection reads.
type InstallationSpec struct {
	// Variant is Calico, or CalicoEnterprise or TigeraSecureEnterprise (Calico Enterprise).
	Variant string `json:"variant,omitempty"`
	// CNI is the CNI plugin Calico runs with: Calico, or AmazonVPC, AzureVNET, GKE (Calico for
	// policy only).
	CNI *struct {
		Type string `json:"type,omitempty"`
	} `json:"cni,omitempty"`
	// CalicoNetwork.LinuxDataplane is Iptables, BPF, Nftables or VPP.
	CalicoNetwork *struct {
		LinuxDataplane string `json:"linuxDataplane,omitempty"`
	} `json:"calicoNetwork,omitempty"`
}

// CalicoInstallation is a Tigera operator Installation read from the input.
type CalicoInstallation struct {
	Installation *InstallationObject
	Source       Source
}

// NodeClassObject is an eks.amazonaws.com/v1 NodeClass (EKS Auto Mode), as decoded.
// https://docs.aws.amazon.com/eks/latest/userguide/create-node-class.html
type NodeClassObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NodeClassSpec `json:"spec,omitempty"`
}

// NodeClassSpec holds the NodeClass fields engine detection reads.
type NodeClassSpec struct {
	// NetworkPolicy is the default for pods no policy selects: DefaultAllow or DefaultDeny.
	NetworkPolicy string `json:"networkPolicy,omitempty"`
	// NetworkPolicyEventLogs is Enabled or Disabled.
	NetworkPolicyEventLogs string `json:"networkPolicyEventLogs,omitempty"`
}

// EKSNodeClass is an EKS Auto Mode NodeClass read from the input.
type EKSNodeClass struct {
	NodeClass *NodeClassObject
	Source    Source
}

// configMapOf keeps what imdsguard reads of an engine ConfigMap.
func configMapOf(cm *corev1.ConfigMap, src Source) *ConfigMap {
	return &ConfigMap{Namespace: cm.Namespace, Name: cm.Name, Data: cm.Data, Source: src}
}

// engineConfigMapName reads the namespace and name of a ConfigMap document without decoding the
// rest, so ConfigMaps that configure no policy engine are skipped as before. An empty namespace
// is the default namespace, as for every other namespaced object.
func engineConfigMapName(data []byte) (EngineConfigMapRef, bool) {
	var head struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := unmarshal(data, &head); err != nil {
		return EngineConfigMapRef{}, false
	}
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ref := EngineConfigMapRef{Namespace: ns, Name: head.Metadata.Name}
	return ref, isEngineConfigMap(ref.Namespace, ref.Name)
}
