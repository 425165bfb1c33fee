// Package inventory loads the Kubernetes objects imdsguard evaluates: namespaces, pods,
// workloads (their pod templates), service accounts and egress policies, each remembered with
// the file and document it came from.
//
// The loader never stops at the first bad document: every document that cannot be used becomes
// a Problem naming its file and position, and the rest is loaded. Callers decide what a partial
// inventory means; they must never present it as complete.
package inventory

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory/awsv1alpha1"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Source is where an object was read: a file (or "<stdin>"), the 1-based document within it,
// and the 1-based item within a List document (0 when the document is not a List).
type Source struct {
	File     string `json:"file"`
	Document int    `json:"document"`
	Item     int    `json:"item,omitempty"`
	// Line is the 1-based line where the document starts.
	Line int `json:"line,omitempty"`
}

func (s Source) String() string {
	if s.File == "" {
		return ""
	}
	if s.Document == 0 {
		if s.Line > 0 {
			return fmt.Sprintf("%s:%d", s.File, s.Line) // a position in a file that is not a manifest (infrastructure code)
		}
		return s.File
	}
	at := ""
	if s.Line > 0 {
		at = fmt.Sprintf(" (line %d)", s.Line)
	}
	if s.Item > 0 {
		return fmt.Sprintf("%s: document %d%s, item %d", s.File, s.Document, at, s.Item)
	}
	return fmt.Sprintf("%s: document %d%s", s.File, s.Document, at)
}

// ObjectRef names one Kubernetes object and where it was read.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source    Source `json:"source,omitzero"`
}

func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Problem is a document or object that could not be used, and why.
type Problem struct {
	Source Source `json:"source"`
	// Object is set when the document decoded far enough to name its object.
	Object *ObjectRef `json:"object,omitempty"`
	// Field is the offending field path, when known (e.g. "spec.egress[0].to[1].ipBlock.cidr").
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Source.String())
	if p.Object != nil {
		b.WriteString(": " + p.Object.String())
	}
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// Skipped is a document of a kind imdsguard does not evaluate.
type Skipped struct {
	Source     Source `json:"source"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Reason     string `json:"reason"`
}

// Namespace is a namespace and whether it was declared or only referenced.
type Namespace struct {
	Name   string
	Labels map[string]string
	// Synthesized namespaces were referenced by objects but not declared in the input; they
	// carry only the kubernetes.io/metadata.name label the API server sets on every namespace.
	Synthesized bool
	Source      Source
}

// WorkloadRef names the controller a pod belongs to (or the pod itself when it has none).
type WorkloadRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Pod is a pod read from the input.
type Pod struct {
	Pod    *corev1.Pod
	Source Source
	// Workload is the top-level controller owning the pod, resolved through ReplicaSets and
	// Jobs present in the input; {Pod, name} for a bare pod.
	Workload WorkloadRef
}

// Workload is a controller with a pod template.
type Workload struct {
	Kind      string
	Namespace string
	Name      string
	Template  corev1.PodTemplateSpec
	// Owner is the workload's controlling owner (a Deployment for a ReplicaSet, a CronJob for a
	// Job), when it has one.
	Owner  *WorkloadRef
	Source Source
}

// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy read from the input.
type NetworkPolicy struct {
	Policy *networkingv1.NetworkPolicy
	Source Source
}

// AdminNetworkPolicy is a policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy.
type AdminNetworkPolicy struct {
	Policy *anpv1alpha1.AdminNetworkPolicy
	Source Source
}

// BaselineAdminNetworkPolicy is a policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy.
type BaselineAdminNetworkPolicy struct {
	Policy *anpv1alpha1.BaselineAdminNetworkPolicy
	Source Source
}

// ClusterNetworkPolicy is a policy.networking.k8s.io ClusterNetworkPolicy, read at v1alpha2 or
// v1beta1 and kept as the v1beta1 type: network-policy-api v0.3.0 serves both versions with
// identical schemas (its CHANGELOG.md: "The v1beta1 and v1alpha2 schemas are identical, so no
// conversion webhook is required").
type ClusterNetworkPolicy struct {
	Policy *cnpv1beta1.ClusterNetworkPolicy
	// APIVersion is the apiVersion the object was read at ("policy.networking.k8s.io/v1alpha2"
	// or ".../v1beta1").
	APIVersion string
	Source     Source
}

// AWSClusterNetworkPolicy is the AWS VPC CNI's own networking.k8s.aws/v1alpha1
// ClusterNetworkPolicy.
type AWSClusterNetworkPolicy struct {
	Policy *awsv1alpha1.ClusterNetworkPolicy
	Source Source
}

// CalicoGlobalNetworkPolicy is a Calico GlobalNetworkPolicy (projectcalico.org/v3 or
// crd.projectcalico.org/v1).
type CalicoGlobalNetworkPolicy struct {
	Policy *calicov3.GlobalNetworkPolicy
	Source Source
}

// CalicoNetworkPolicy is a namespaced Calico NetworkPolicy (projectcalico.org/v3 or
// crd.projectcalico.org/v1).
type CalicoNetworkPolicy struct {
	Policy *calicov3.NetworkPolicy
	Source Source
}

// CalicoGlobalNetworkSet is a Calico GlobalNetworkSet.
type CalicoGlobalNetworkSet struct {
	Set    *calicov3.GlobalNetworkSet
	Source Source
}

// CalicoNetworkSet is a namespaced Calico NetworkSet.
type CalicoNetworkSet struct {
	Set    *calicov3.NetworkSet
	Source Source
}

// CalicoTier is a Calico Tier.
type CalicoTier struct {
	Tier   *calicov3.Tier
	Source Source
}

// CiliumNetworkPolicy is a namespaced cilium.io/v2 CiliumNetworkPolicy.
type CiliumNetworkPolicy struct {
	Policy *ciliumv2.CiliumNetworkPolicy
	Source Source
}

// CiliumClusterwideNetworkPolicy is a cilium.io/v2 CiliumClusterwideNetworkPolicy.
type CiliumClusterwideNetworkPolicy struct {
	Policy *ciliumv2.CiliumClusterwideNetworkPolicy
	Source Source
}

// ServiceAccount is a service account read from the input.
type ServiceAccount struct {
	ServiceAccount *corev1.ServiceAccount
	Source         Source
}

// Inventory is everything loaded, in a deterministic order.
type Inventory struct {
	Namespaces                   map[string]*Namespace
	Pods                         []*Pod
	Workloads                    []*Workload
	ServiceAccounts              map[string]*ServiceAccount // key: namespace/name
	NetworkPolicies              []*NetworkPolicy
	AdminNetworkPolicies         []*AdminNetworkPolicy
	BaselineAdminNetworkPolicies []*BaselineAdminNetworkPolicy
	// ClusterNetworkPolicies are policy.networking.k8s.io ClusterNetworkPolicies (both tiers),
	// in input order.
	ClusterNetworkPolicies []*ClusterNetworkPolicy
	// AWSClusterNetworkPolicies are networking.k8s.aws ClusterNetworkPolicies, in input order.
	AWSClusterNetworkPolicies []*AWSClusterNetworkPolicy
	// Calico and Cilium policies, in input order.
	CalicoGlobalNetworkPolicies      []*CalicoGlobalNetworkPolicy
	CalicoNetworkPolicies            []*CalicoNetworkPolicy
	CalicoTiers                      []*CalicoTier
	CalicoGlobalNetworkSets          []*CalicoGlobalNetworkSet
	CalicoNetworkSets                []*CalicoNetworkSet
	CiliumNetworkPolicies            []*CiliumNetworkPolicy
	CiliumClusterwideNetworkPolicies []*CiliumClusterwideNetworkPolicy
	// Nodes are read for their cloud provider only.
	Nodes []*Node
	// Policy engine configuration (engineconfig.go): the engine ConfigMaps by namespace/name,
	// Tigera operator Installations and EKS Auto Mode NodeClasses.
	EngineConfigMaps    map[string]*ConfigMap
	CalicoInstallations []*CalicoInstallation
	EKSNodeClasses      []*EKSNodeClass
	// EC2NodeClasses are Karpenter's EC2NodeClasses: the instance metadata options of the
	// nodes Karpenter launches (package layer).
	EC2NodeClasses []*EC2NodeClass
	// NodeClaims are Karpenter's NodeClaims that name an EC2NodeClass: they join a node
	// (status.providerID) to its class when the node lacks the class label (package layer).
	NodeClaims []*NodeClaim

	// Cluster names the cluster the inventory was read from (empty for manifests), and
	// ServerVersion is its API server's version.
	Cluster       string
	ServerVersion string
	// ClusterNetworkPolicyAPIVersion is, for a live cluster, the preferred apiVersion at which it
	// serves ClusterNetworkPolicy ("policy.networking.k8s.io/v1beta1"); empty when it serves none
	// or the input is manifests.
	ClusterNetworkPolicyAPIVersion string
	// Gaps are resources that could not be read from the cluster: the inventory is incomplete.
	Gaps []Gap
	// Problems are documents or objects that could not be used.
	Problems []Problem
	// Skipped are documents of kinds imdsguard does not evaluate.
	Skipped []Skipped
	// Warnings are facts about the input a reader should know (synthesized namespaces,
	// duplicate objects).
	Warnings []string
	// Files and Documents count what was read.
	Files     int
	Documents int
}

// Objects returns how many objects were loaded (namespaces declared, pods, workloads, service
// accounts, policies and policy engine configuration).
func (inv *Inventory) Objects() int {
	n := len(inv.Pods) + len(inv.Workloads) + len(inv.ServiceAccounts) + len(inv.NetworkPolicies) +
		len(inv.AdminNetworkPolicies) + len(inv.BaselineAdminNetworkPolicies) + len(inv.ClusterNetworkPolicies) + len(inv.AWSClusterNetworkPolicies) +
		len(inv.CalicoGlobalNetworkPolicies) + len(inv.CalicoNetworkPolicies) + len(inv.CalicoTiers) +
		len(inv.CalicoGlobalNetworkSets) + len(inv.CalicoNetworkSets) +
		len(inv.CiliumNetworkPolicies) + len(inv.CiliumClusterwideNetworkPolicies) +
		len(inv.EngineConfigMaps) + len(inv.CalicoInstallations) + len(inv.EKSNodeClasses) + len(inv.EC2NodeClasses) + len(inv.NodeClaims)
	for _, ns := range inv.Namespaces {
		if !ns.Synthesized {
			n++
		}
	}
	return n
}

// NamespaceNames returns the namespace names, sorted.
func (inv *Inventory) NamespaceNames() []string {
	names := make([]string, 0, len(inv.Namespaces))
	for n := range inv.Namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ServiceAccount returns the service account ns/name, or nil when it is not in the input.
func (inv *Inventory) ServiceAccount(namespace, name string) *ServiceAccount {
	if name == "" {
		name = "default"
	}
	return inv.ServiceAccounts[namespace+"/"+name]
}
