package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// Served says which optional policy APIs the cluster serves: the safety rule must see every
// policy that could restrict egress, so each one served is watched.
type Served struct {
	AdminNetworkPolicy bool
	// Calico is the Calico API group version served (projectcalico.org/v3 preferred, else the
	// crd.projectcalico.org/v1 storage CRDs); empty when none is.
	Calico schema.GroupVersion
	Cilium bool
	// ClusterNetworkPolicy is the policy.networking.k8s.io version ClusterNetworkPolicy is read
	// at (v1beta1 preferred, else v1alpha2); empty when neither is served.
	ClusterNetworkPolicy schema.GroupVersion
	// AWSClusterNetworkPolicy is set when networking.k8s.aws/v1alpha1 ClusterNetworkPolicy (the
	// AWS VPC CNI's own kind) is served.
	AWSClusterNetworkPolicy bool
}

// The optional group versions.
var (
	anpGroupVersion     = schema.GroupVersion{Group: "policy.networking.k8s.io", Version: "v1alpha1"}
	calicoGroupVersions = []schema.GroupVersion{{Group: "projectcalico.org", Version: "v3"}, {Group: "crd.projectcalico.org", Version: "v1"}}
	ciliumGroupVersion  = schema.GroupVersion{Group: "cilium.io", Version: "v2"}
	// cnpGroupVersions are ClusterNetworkPolicy's versions, preferred first (network-policy-api
	// v0.3.0 serves both with identical schemas; v0.2.x only v1alpha2).
	cnpGroupVersions   = []schema.GroupVersion{{Group: "policy.networking.k8s.io", Version: "v1beta1"}, {Group: "policy.networking.k8s.io", Version: "v1alpha2"}}
	awsCNPGroupVersion = schema.GroupVersion{Group: "networking.k8s.aws", Version: "v1alpha1"}
)

// watchedKind is one kind of object the networkpolicy mode's safety rule reads.
type watchedKind struct {
	object     client.Object
	list       client.ObjectList
	namespaced bool
	// workload kinds and pods only matter for their labels and templates.
	workload bool
}

func unstructuredKind(gv schema.GroupVersion, kind string, namespaced bool) watchedKind {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gv.WithKind(kind))
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gv.WithKind(kind + "List"))
	return watchedKind{object: obj, list: list, namespaced: namespaced}
}

// watchedKinds lists what the safety rule reads in a cluster serving the given APIs.
func watchedKinds(served Served) []watchedKind {
	kinds := []watchedKind{
		{object: &corev1.Pod{}, list: &corev1.PodList{}, namespaced: true, workload: true},
		{object: &appsv1.Deployment{}, list: &appsv1.DeploymentList{}, namespaced: true, workload: true},
		{object: &appsv1.ReplicaSet{}, list: &appsv1.ReplicaSetList{}, namespaced: true, workload: true},
		{object: &appsv1.StatefulSet{}, list: &appsv1.StatefulSetList{}, namespaced: true, workload: true},
		{object: &appsv1.DaemonSet{}, list: &appsv1.DaemonSetList{}, namespaced: true, workload: true},
		{object: &batchv1.Job{}, list: &batchv1.JobList{}, namespaced: true, workload: true},
		{object: &batchv1.CronJob{}, list: &batchv1.CronJobList{}, namespaced: true, workload: true},
		{object: &corev1.ReplicationController{}, list: &corev1.ReplicationControllerList{}, namespaced: true, workload: true},
		{object: &networkingv1.NetworkPolicy{}, list: &networkingv1.NetworkPolicyList{}, namespaced: true},
	}
	if served.AdminNetworkPolicy {
		kinds = append(kinds,
			watchedKind{object: &anpv1alpha1.AdminNetworkPolicy{}, list: &anpv1alpha1.AdminNetworkPolicyList{}},
			watchedKind{object: &anpv1alpha1.BaselineAdminNetworkPolicy{}, list: &anpv1alpha1.BaselineAdminNetworkPolicyList{}})
	}
	if !served.Calico.Empty() {
		kinds = append(kinds,
			unstructuredKind(served.Calico, "Tier", false),
			unstructuredKind(served.Calico, "GlobalNetworkPolicy", false),
			unstructuredKind(served.Calico, "NetworkPolicy", true))
	}
	// A Baseline tier ClusterNetworkPolicy is overridden by any NetworkPolicy, as a BANP is: the
	// safety rule must see them.
	if !served.ClusterNetworkPolicy.Empty() {
		kinds = append(kinds, unstructuredKind(served.ClusterNetworkPolicy, "ClusterNetworkPolicy", false))
	}
	if served.AWSClusterNetworkPolicy {
		kinds = append(kinds, unstructuredKind(awsCNPGroupVersion, "ClusterNetworkPolicy", false))
	}
	if served.Cilium {
		kinds = append(kinds,
			unstructuredKind(ciliumGroupVersion, "CiliumClusterwideNetworkPolicy", false),
			unstructuredKind(ciliumGroupVersion, "CiliumNetworkPolicy", true))
	}
	return kinds
}

// gatherNamespace reads, from the cache, every object the safety rule needs for a namespace:
// its own pods, workloads and policies, and the cluster-wide policies.
func gatherNamespace(ctx context.Context, c client.Reader, kinds []watchedKind, ns string) ([]runtime.Object, error) {
	var out []runtime.Object
	for _, k := range kinds {
		list := k.list.DeepCopyObject().(client.ObjectList)
		var opts []client.ListOption
		if k.namespaced {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			return nil, fmt.Errorf("list %T: %w", k.list, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, fmt.Errorf("read %T: %w", k.list, err)
		}
		out = append(out, items...)
	}
	return out, nil
}
