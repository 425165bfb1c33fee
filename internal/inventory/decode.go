package inventory

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory/awsv1alpha1"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// The apiVersions a ClusterNetworkPolicy is read at. network-policy-api v0.3.0 serves both with
// identical schemas (CHANGELOG.md, v0.3.0), so both decode into the v1beta1 type.
const (
	ClusterNetworkPolicyV1Alpha2 = "policy.networking.k8s.io/v1alpha2"
	ClusterNetworkPolicyV1Beta1  = "policy.networking.k8s.io/v1beta1"
)

// decoded is the result of decoding one document: an object, a skip or a problem.
type decoded struct {
	obj     any
	source  Source
	skipped *Skipped
	problem *Problem
	// kindless is set when the document has no apiVersion or kind of its own.
	kindless bool
}

// kindKey is "apiVersion/Kind".
type kindKey struct{ apiVersion, kind string }

// newObject maps the kinds imdsguard evaluates to their official Go types.
var newObject = map[kindKey]func() any{
	{"v1", "Namespace"}:                       func() any { return &corev1.Namespace{} },
	{"v1", "Pod"}:                             func() any { return &corev1.Pod{} },
	{"v1", "Node"}:                            func() any { return &corev1.Node{} },
	{"v1", "ServiceAccount"}:                  func() any { return &corev1.ServiceAccount{} },
	{"v1", "ReplicationController"}:           func() any { return &corev1.ReplicationController{} },
	{"apps/v1", "Deployment"}:                 func() any { return &appsv1.Deployment{} },
	{"apps/v1", "StatefulSet"}:                func() any { return &appsv1.StatefulSet{} },
	{"apps/v1", "DaemonSet"}:                  func() any { return &appsv1.DaemonSet{} },
	{"apps/v1", "ReplicaSet"}:                 func() any { return &appsv1.ReplicaSet{} },
	{"batch/v1", "Job"}:                       func() any { return &batchv1.Job{} },
	{"batch/v1", "CronJob"}:                   func() any { return &batchv1.CronJob{} },
	{"networking.k8s.io/v1", "NetworkPolicy"}: func() any { return &networkingv1.NetworkPolicy{} },
	{"policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy"}:         func() any { return &anpv1alpha1.AdminNetworkPolicy{} },
	{"policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy"}: func() any { return &anpv1alpha1.BaselineAdminNetworkPolicy{} },
	{ClusterNetworkPolicyV1Alpha2, "ClusterNetworkPolicy"}:              func() any { return &cnpv1beta1.ClusterNetworkPolicy{} },
	{ClusterNetworkPolicyV1Beta1, "ClusterNetworkPolicy"}:               func() any { return &cnpv1beta1.ClusterNetworkPolicy{} },
	{awsv1alpha1.GroupVersion, "ClusterNetworkPolicy"}:                  func() any { return &awsv1alpha1.ClusterNetworkPolicy{} },
	{calicov3.GroupVersion, "GlobalNetworkPolicy"}:                      func() any { return &calicov3.GlobalNetworkPolicy{} },
	{calicov3.GroupVersion, "NetworkPolicy"}:                            func() any { return &calicov3.NetworkPolicy{} },
	{calicov3.GroupVersion, "Tier"}:                                     func() any { return &calicov3.Tier{} },
	{calicov3.GroupVersion, "GlobalNetworkSet"}:                         func() any { return &calicov3.GlobalNetworkSet{} },
	{calicov3.GroupVersion, "NetworkSet"}:                               func() any { return &calicov3.NetworkSet{} },
	{calicov3.StorageGroupVersion, "GlobalNetworkPolicy"}:               func() any { return &calicov3.GlobalNetworkPolicy{} },
	{calicov3.StorageGroupVersion, "NetworkPolicy"}:                     func() any { return &calicov3.NetworkPolicy{} },
	{calicov3.StorageGroupVersion, "Tier"}:                              func() any { return &calicov3.Tier{} },
	{calicov3.StorageGroupVersion, "GlobalNetworkSet"}:                  func() any { return &calicov3.GlobalNetworkSet{} },
	{calicov3.StorageGroupVersion, "NetworkSet"}:                        func() any { return &calicov3.NetworkSet{} },
	{ciliumv2.GroupVersion, "CiliumNetworkPolicy"}:                      func() any { return &ciliumv2.CiliumNetworkPolicy{} },
	{ciliumv2.GroupVersion, "CiliumClusterwideNetworkPolicy"}:           func() any { return &ciliumv2.CiliumClusterwideNetworkPolicy{} },
	// Policy engine configuration (engineconfig.go).
	{"v1", "ConfigMap"}:                      func() any { return &corev1.ConfigMap{} },
	{OperatorGroupVersion, "Installation"}:   func() any { return &InstallationObject{} },
	{EKSGroupVersion, "NodeClass"}:           func() any { return &NodeClassObject{} },
	{KarpenterGroupVersion, "EC2NodeClass"}:  func() any { return &EC2NodeClassObject{} },
	{KarpenterCoreGroupVersion, "NodeClaim"}: func() any { return &NodeClaimObject{} },
}

// clusterScoped kinds have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "AdminNetworkPolicy": true, "BaselineAdminNetworkPolicy": true, "ClusterNetworkPolicy": true,
	"GlobalNetworkPolicy": true, "Tier": true, "GlobalNetworkSet": true, "CiliumClusterwideNetworkPolicy": true,
	"Installation": true, "NodeClass": true, "EC2NodeClass": true, "NodeClaim": true,
}

// evaluatedKinds maps the kinds imdsguard evaluates to the apiVersion to suggest when one is read
// in an apiVersion that is not supported, to tell "unsupported version" from "not evaluated".
var evaluatedKinds = func() map[string]string {
	m := map[string]string{}
	for k := range newObject {
		// Engine configuration kinds of other groups (a NodeClass of another provider) are
		// simply not evaluated.
		if k.apiVersion == OperatorGroupVersion || k.apiVersion == EKSGroupVersion || k.apiVersion == KarpenterGroupVersion || k.apiVersion == KarpenterCoreGroupVersion {
			continue
		}
		if k.apiVersion != calicov3.GroupVersion && k.apiVersion != calicov3.StorageGroupVersion && k.apiVersion != awsv1alpha1.GroupVersion {
			m[k.kind] = k.apiVersion
		}
	}
	m["ClusterNetworkPolicy"] = ClusterNetworkPolicyV1Beta1 + " or " + ClusterNetworkPolicyV1Alpha2
	m["GlobalNetworkPolicy"], m["Tier"] = calicov3.GroupVersion, calicov3.GroupVersion
	m["GlobalNetworkSet"], m["NetworkSet"] = calicov3.GroupVersion, calicov3.GroupVersion
	return m
}()

// suggestedVersion returns the supported apiVersion of a kind read in an unsupported one:
// Calico's group for Calico versions (projectcalico.org/v1, crd.projectcalico.org/v2), the
// Kubernetes one otherwise.
func suggestedVersion(apiVersion, kind string) (string, bool) {
	want, known := evaluatedKinds[kind]
	group, _, _ := strings.Cut(apiVersion, "/")
	if strings.HasSuffix(group, "projectcalico.org") &&
		(kind == "NetworkPolicy" || kind == "GlobalNetworkPolicy" || kind == "Tier" || kind == "GlobalNetworkSet" || kind == "NetworkSet") {
		return calicov3.GroupVersion + " or " + calicov3.StorageGroupVersion, true
	}
	if group == awsGroup && kind == "ClusterNetworkPolicy" {
		return awsv1alpha1.GroupVersion, true
	}
	return want, known
}

// awsGroup is the API group of the AWS VPC CNI's network policy kinds.
const awsGroup = "networking.k8s.aws"

// refKind names a kind in object references: Calico's NetworkPolicy is told from Kubernetes' by
// its group, as kubectl does ("NetworkPolicy.projectcalico.org").
func refKind(apiVersion, kind string) string {
	if kind == "NetworkPolicy" && (apiVersion == calicov3.GroupVersion || apiVersion == calicov3.StorageGroupVersion) {
		return CalicoNetworkPolicyKind
	}
	if kind == "ClusterNetworkPolicy" && apiVersion == awsv1alpha1.GroupVersion {
		return AWSClusterNetworkPolicyKind
	}
	return kind
}

// AWSClusterNetworkPolicyKind is how object references name the AWS VPC CNI's
// ClusterNetworkPolicy, told from network-policy-api's by its group.
const AWSClusterNetworkPolicyKind = "ClusterNetworkPolicy.networking.k8s.aws"

// CalicoNetworkPolicyKind is how object references name a Calico NetworkPolicy.
const CalicoNetworkPolicyKind = "NetworkPolicy.projectcalico.org"

func decodeDoc(doc rawDoc) decoded {
	if doc.problem != nil {
		return decoded{source: doc.source, problem: doc.problem}
	}
	var head struct{ APIVersion, Kind string }
	var err error
	head.APIVersion, head.Kind, err = sniff(doc.data)
	if err != nil {
		field, msg := decodeError(err)
		return decoded{source: doc.source, problem: &Problem{Source: doc.source, Field: field, Message: "not a Kubernetes object: " + msg}}
	}
	if head.APIVersion == "" {
		head.APIVersion = doc.listAPIVersion
	}
	if head.Kind == "" {
		head.Kind = doc.listKind
	}
	if head.APIVersion == "" || head.Kind == "" {
		return decoded{source: doc.source, kindless: true, problem: &Problem{Source: doc.source, Message: "not a Kubernetes object: apiVersion and kind are required"}}
	}
	newObj, ok := newObject[kindKey{head.APIVersion, head.Kind}]
	if ok && head.APIVersion == "v1" && head.Kind == "ConfigMap" {
		// Only the ConfigMaps that configure a policy engine are read.
		if _, engine := engineConfigMapName(doc.data); !engine {
			return decoded{source: doc.source, skipped: &Skipped{Source: doc.source, APIVersion: head.APIVersion, Kind: head.Kind, Reason: "kind not evaluated by imdsguard"}}
		}
	}
	if !ok {
		reason := "kind not evaluated by imdsguard"
		if want, known := suggestedVersion(head.APIVersion, head.Kind); known {
			reason = fmt.Sprintf("apiVersion %s is not supported for %s (use %s)", head.APIVersion, head.Kind, want)
		}
		return decoded{source: doc.source, skipped: &Skipped{Source: doc.source, APIVersion: head.APIVersion, Kind: head.Kind, Reason: reason}}
	}
	obj := newObj()
	if err := unmarshal(doc.data, obj); err != nil {
		// Decoding goes on past a type error, so the object can usually still be named.
		meta := obj.(metav1.Object)
		ref := &ObjectRef{Kind: refKind(head.APIVersion, head.Kind), Namespace: meta.GetNamespace(), Name: meta.GetName(), Source: doc.source}
		field, msg := decodeError(err)
		return decoded{source: doc.source, problem: &Problem{Source: doc.source, Object: ref, Field: field, Message: "cannot decode " + head.Kind + ": " + msg}}
	}
	meta := obj.(metav1.Object)
	if meta.GetName() == "" {
		return decoded{source: doc.source, problem: &Problem{Source: doc.source, Object: &ObjectRef{Kind: refKind(head.APIVersion, head.Kind), Source: doc.source}, Field: "metadata.name", Message: "name is required"}}
	}
	if clusterScoped[head.Kind] {
		meta.SetNamespace("")
	} else if meta.GetNamespace() == "" {
		meta.SetNamespace(metav1.NamespaceDefault)
	}
	return decoded{obj: obj, source: doc.source}
}

// builder accumulates decoded objects into an Inventory.
type builder struct {
	inv    *Inventory
	stream *stream
	seen   map[string]Source // kind/namespace/name → where it was first read
	// index of objects by key, to replace duplicates in place
	pods     map[string]int
	work     map[string]int
	netpols  map[string]int
	anps     map[string]int
	banps    map[string]int
	cnps     map[string]int
	foreign  map[string]int         // Calico and Cilium policies and tiers, by kind/namespace/name
	ownerOf  map[string]WorkloadRef // "ReplicaSet/ns/name" → its controller
	declared map[string]bool
}

func newBuilder() *builder {
	return &builder{
		inv: &Inventory{
			Namespaces:       map[string]*Namespace{},
			ServiceAccounts:  map[string]*ServiceAccount{},
			EngineConfigMaps: map[string]*ConfigMap{},
		},
		seen:     map[string]Source{},
		pods:     map[string]int{},
		work:     map[string]int{},
		netpols:  map[string]int{},
		anps:     map[string]int{},
		banps:    map[string]int{},
		cnps:     map[string]int{},
		foreign:  map[string]int{},
		ownerOf:  map[string]WorkloadRef{},
		declared: map[string]bool{},
	}
}

func (b *builder) problem(p Problem) { b.inv.Problems = append(b.inv.Problems, p) }

// duplicate records that an object was read twice and reports whether it was.
func (b *builder) duplicate(kind, namespace, name string, src Source) bool {
	key := kind + "/" + namespace + "/" + name
	if first, ok := b.seen[key]; ok {
		ref := ObjectRef{Kind: kind, Namespace: namespace, Name: name}
		b.inv.Warnings = append(b.inv.Warnings, fmt.Sprintf("%s read twice (%s and %s): the later one is used, as kubectl apply would", ref, first, src))
		b.seen[key] = src
		return true
	}
	b.seen[key] = src
	return false
}

func (b *builder) add(d decoded) {
	switch {
	case d.problem != nil:
		b.problem(*d.problem)
		return
	case d.skipped != nil:
		b.inv.Skipped = append(b.inv.Skipped, *d.skipped)
		return
	case d.obj == nil:
		return
	}
	src := d.source
	switch o := d.obj.(type) {
	case *corev1.Namespace:
		b.duplicate("Namespace", "", o.Name, src)
		b.inv.Namespaces[o.Name] = &Namespace{Name: o.Name, Labels: namespaceLabels(o.Name, o.Labels), Source: src}
		b.declared[o.Name] = true
	case *corev1.Pod:
		p := &Pod{Pod: o, Source: src}
		upsert(b, &b.inv.Pods, b.pods, "Pod", o.Namespace, o.Name, src, p)
	case *corev1.Node:
		if !b.duplicate("Node", "", o.Name, src) {
			b.inv.Nodes = append(b.inv.Nodes, nodeOf(o, src))
		}
	case *corev1.ServiceAccount:
		b.duplicate("ServiceAccount", o.Namespace, o.Name, src)
		b.inv.ServiceAccounts[o.Namespace+"/"+o.Name] = &ServiceAccount{ServiceAccount: o, Source: src}
	case *networkingv1.NetworkPolicy:
		upsert(b, &b.inv.NetworkPolicies, b.netpols, "NetworkPolicy", o.Namespace, o.Name, src, &NetworkPolicy{Policy: o, Source: src})
	case *anpv1alpha1.AdminNetworkPolicy:
		upsert(b, &b.inv.AdminNetworkPolicies, b.anps, "AdminNetworkPolicy", "", o.Name, src, &AdminNetworkPolicy{Policy: o, Source: src})
	case *anpv1alpha1.BaselineAdminNetworkPolicy:
		upsert(b, &b.inv.BaselineAdminNetworkPolicies, b.banps, "BaselineAdminNetworkPolicy", "", o.Name, src, &BaselineAdminNetworkPolicy{Policy: o, Source: src})
	case *cnpv1beta1.ClusterNetworkPolicy:
		apiVersion := o.APIVersion
		if apiVersion == "" {
			apiVersion = ClusterNetworkPolicyV1Beta1 // a typed object from an informer cache
		}
		upsert(b, &b.inv.ClusterNetworkPolicies, b.cnps, "ClusterNetworkPolicy", "", o.Name, src, &ClusterNetworkPolicy{Policy: o, APIVersion: apiVersion, Source: src})
	case *awsv1alpha1.ClusterNetworkPolicy:
		upsert(b, &b.inv.AWSClusterNetworkPolicies, b.foreign, AWSClusterNetworkPolicyKind, "", o.Name, src, &AWSClusterNetworkPolicy{Policy: o, Source: src})
	case *cnpv1alpha2.ClusterNetworkPolicy:
		// A typed object from an informer cache at v1alpha2: the schemas are identical, so a
		// JSON round trip converts it.
		beta, err := clusterNetworkPolicyV1Beta1(o)
		if err != nil {
			b.problem(Problem{Source: src, Object: &ObjectRef{Kind: "ClusterNetworkPolicy", Name: o.Name, Source: src}, Message: err.Error()})
			return
		}
		upsert(b, &b.inv.ClusterNetworkPolicies, b.cnps, "ClusterNetworkPolicy", "", o.Name, src, &ClusterNetworkPolicy{Policy: beta, APIVersion: ClusterNetworkPolicyV1Alpha2, Source: src})
	case *calicov3.GlobalNetworkPolicy:
		upsert(b, &b.inv.CalicoGlobalNetworkPolicies, b.foreign, "GlobalNetworkPolicy", "", o.Name, src, &CalicoGlobalNetworkPolicy{Policy: o, Source: src})
	case *calicov3.NetworkPolicy:
		upsert(b, &b.inv.CalicoNetworkPolicies, b.foreign, CalicoNetworkPolicyKind, o.Namespace, o.Name, src, &CalicoNetworkPolicy{Policy: o, Source: src})
	case *calicov3.Tier:
		upsert(b, &b.inv.CalicoTiers, b.foreign, "Tier", "", o.Name, src, &CalicoTier{Tier: o, Source: src})
	case *calicov3.GlobalNetworkSet:
		upsert(b, &b.inv.CalicoGlobalNetworkSets, b.foreign, "GlobalNetworkSet", "", o.Name, src, &CalicoGlobalNetworkSet{Set: o, Source: src})
	case *calicov3.NetworkSet:
		upsert(b, &b.inv.CalicoNetworkSets, b.foreign, "NetworkSet", o.Namespace, o.Name, src, &CalicoNetworkSet{Set: o, Source: src})
	case *ciliumv2.CiliumNetworkPolicy:
		upsert(b, &b.inv.CiliumNetworkPolicies, b.foreign, "CiliumNetworkPolicy", o.Namespace, o.Name, src, &CiliumNetworkPolicy{Policy: o, Source: src})
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		upsert(b, &b.inv.CiliumClusterwideNetworkPolicies, b.foreign, "CiliumClusterwideNetworkPolicy", "", o.Name, src, &CiliumClusterwideNetworkPolicy{Policy: o, Source: src})
	case *corev1.ConfigMap:
		if !isEngineConfigMap(o.Namespace, o.Name) {
			return // typed objects (FromObjects) skip decodeDoc's filter
		}
		b.duplicate("ConfigMap", o.Namespace, o.Name, src)
		b.inv.EngineConfigMaps[o.Namespace+"/"+o.Name] = configMapOf(o, src)
	case *InstallationObject:
		upsert(b, &b.inv.CalicoInstallations, b.foreign, "Installation", "", o.Name, src, &CalicoInstallation{Installation: o, Source: src})
	case *NodeClassObject:
		upsert(b, &b.inv.EKSNodeClasses, b.foreign, "NodeClass", "", o.Name, src, &EKSNodeClass{NodeClass: o, Source: src})
	case *EC2NodeClassObject:
		upsert(b, &b.inv.EC2NodeClasses, b.foreign, "EC2NodeClass", "", o.Name, src, &EC2NodeClass{NodeClass: o, Source: src})
	case *NodeClaimObject:
		if field, msg := nodeClaimProblem(o); field != "" {
			b.problem(Problem{Source: src, Object: &ObjectRef{Kind: "NodeClaim", Name: o.Name, Source: src}, Field: field, Message: msg})
			return
		}
		upsert(b, &b.inv.NodeClaims, b.foreign, "NodeClaim", "", o.Name, src, &NodeClaim{NodeClaim: o, Source: src})
	default:
		w, ok := workloadOf(d.obj)
		if !ok {
			return
		}
		w.Source = src
		if w.Owner != nil {
			b.ownerOf[w.Kind+"/"+w.Namespace+"/"+w.Name] = *w.Owner
		}
		upsert(b, &b.inv.Workloads, b.work, w.Kind, w.Namespace, w.Name, src, w)
	}
}

// upsert appends an object, or replaces the earlier copy of a duplicate in place.
func upsert[T any](b *builder, list *[]T, index map[string]int, kind, namespace, name string, src Source, v T) {
	key := kind + "/" + namespace + "/" + name
	if b.duplicate(kind, namespace, name, src) {
		if i, ok := index[key]; ok {
			(*list)[i] = v
			return
		}
	}
	index[key] = len(*list)
	*list = append(*list, v)
}

// namespaceLabels returns a namespace's labels with kubernetes.io/metadata.name set, as the API
// server sets it on every namespace.
func namespaceLabels(name string, labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[corev1.LabelMetadataName] = name
	return out
}

// workloadOf extracts the pod template of a controller.
func workloadOf(obj any) (*Workload, bool) {
	var meta metav1.ObjectMeta
	var kind string
	var tmpl *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta, kind, tmpl = o.ObjectMeta, "Deployment", &o.Spec.Template
	case *appsv1.StatefulSet:
		meta, kind, tmpl = o.ObjectMeta, "StatefulSet", &o.Spec.Template
	case *appsv1.DaemonSet:
		meta, kind, tmpl = o.ObjectMeta, "DaemonSet", &o.Spec.Template
	case *appsv1.ReplicaSet:
		meta, kind, tmpl = o.ObjectMeta, "ReplicaSet", &o.Spec.Template
	case *batchv1.Job:
		meta, kind, tmpl = o.ObjectMeta, "Job", &o.Spec.Template
	case *batchv1.CronJob:
		meta, kind, tmpl = o.ObjectMeta, "CronJob", &o.Spec.JobTemplate.Spec.Template
	case *corev1.ReplicationController:
		meta, kind, tmpl = o.ObjectMeta, "ReplicationController", o.Spec.Template
	default:
		return nil, false
	}
	w := &Workload{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
	if tmpl != nil {
		w.Template = *tmpl
	}
	if ref := controllerRef(meta.OwnerReferences); ref != nil {
		w.Owner = &WorkloadRef{Kind: ref.Kind, Name: ref.Name}
	}
	return w, true
}

// controllerRef returns the owner reference marked as controller, or the only one. A reference
// without a kind or a name (the API server would refuse it) names no owner.
func controllerRef(refs []metav1.OwnerReference) *metav1.OwnerReference {
	var ref *metav1.OwnerReference
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			ref = &refs[i]
			break
		}
	}
	if ref == nil && len(refs) == 1 {
		ref = &refs[0]
	}
	if ref == nil || ref.Kind == "" || ref.Name == "" {
		return nil
	}
	return ref
}

// finish synthesizes referenced namespaces, resolves pod owners and folds templates owned by
// another workload in the input (a Deployment's ReplicaSets, a CronJob's Jobs) into their
// owner, so each template is evaluated once.
func (b *builder) finish() {
	inv := b.inv
	reference := func(ns string, src Source, what string) {
		if ns == "" {
			return
		}
		if _, ok := inv.Namespaces[ns]; ok {
			return
		}
		inv.Namespaces[ns] = &Namespace{Name: ns, Labels: namespaceLabels(ns, nil), Synthesized: true, Source: src}
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("namespace %q is not declared in the input (first referenced by %s at %s): assumed to exist with only the label %s=%s", ns, what, src, corev1.LabelMetadataName, ns))
	}
	for _, p := range inv.Pods {
		reference(p.Pod.Namespace, p.Source, "Pod "+p.Pod.Name)
	}
	for _, w := range inv.Workloads {
		reference(w.Namespace, w.Source, w.Kind+" "+w.Name)
	}
	for _, np := range inv.NetworkPolicies {
		reference(np.Policy.Namespace, np.Source, "NetworkPolicy "+np.Policy.Name)
	}
	for _, np := range inv.CalicoNetworkPolicies {
		reference(np.Policy.Namespace, np.Source, CalicoNetworkPolicyKind+" "+np.Policy.Name)
	}
	for _, ns := range inv.CalicoNetworkSets {
		reference(ns.Set.Namespace, ns.Source, "NetworkSet "+ns.Set.Name)
	}
	for _, np := range inv.CiliumNetworkPolicies {
		reference(np.Policy.Namespace, np.Source, "CiliumNetworkPolicy "+np.Policy.Name)
	}
	for _, key := range sortedKeys(inv.ServiceAccounts) {
		sa := inv.ServiceAccounts[key]
		reference(sa.ServiceAccount.Namespace, sa.Source, "ServiceAccount "+sa.ServiceAccount.Name)
	}

	present := map[string]bool{}
	for _, w := range inv.Workloads {
		present[w.Kind+"/"+w.Namespace+"/"+w.Name] = true
	}
	kept := inv.Workloads[:0]
	for _, w := range inv.Workloads {
		if w.Owner != nil && present[w.Owner.Kind+"/"+w.Namespace+"/"+w.Owner.Name] {
			continue
		}
		kept = append(kept, w)
	}
	inv.Workloads = kept

	for _, p := range inv.Pods {
		p.Workload = b.resolveOwner(p.Pod, present)
	}
}

// resolveOwner finds the top-level workload of a pod: through a ReplicaSet to its Deployment and
// through a Job to its CronJob, using the objects in the input and, when the intermediate object
// is absent, the naming convention of the controller that creates it.
func (b *builder) resolveOwner(pod *corev1.Pod, present map[string]bool) WorkloadRef {
	ref := controllerRef(pod.OwnerReferences)
	if ref == nil {
		return WorkloadRef{Kind: "Pod", Name: pod.Name}
	}
	owner := WorkloadRef{Kind: ref.Kind, Name: ref.Name}
	if up, ok := b.ownerOf[owner.Kind+"/"+pod.Namespace+"/"+owner.Name]; ok {
		return up
	}
	switch owner.Kind {
	case "ReplicaSet":
		if hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
			if name, ok := strings.CutSuffix(owner.Name, "-"+hash); ok && present["Deployment/"+pod.Namespace+"/"+name] {
				return WorkloadRef{Kind: "Deployment", Name: name}
			}
		}
	case "Job":
		if i := strings.LastIndexByte(owner.Name, '-'); i > 0 && present["CronJob/"+pod.Namespace+"/"+owner.Name[:i]] {
			return WorkloadRef{Kind: "CronJob", Name: owner.Name[:i]}
		}
	}
	return owner
}

// clusterNetworkPolicyV1Beta1 converts a v1alpha2 ClusterNetworkPolicy to v1beta1 (identical
// schemas, network-policy-api v0.3.0 CHANGELOG.md).
func clusterNetworkPolicyV1Beta1(in *cnpv1alpha2.ClusterNetworkPolicy) (*cnpv1beta1.ClusterNetworkPolicy, error) {
	data, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("convert ClusterNetworkPolicy %s to v1beta1: %w", in.Name, err)
	}
	out := &cnpv1beta1.ClusterNetworkPolicy{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("convert ClusterNetworkPolicy %s to v1beta1: %w", in.Name, err)
	}
	out.APIVersion = ClusterNetworkPolicyV1Alpha2
	return out, nil
}
