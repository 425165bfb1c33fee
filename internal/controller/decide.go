package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// State is what the controller did for a namespace.
type State string

// The states of a namespace.
const (
	// Protected: the managed layer denies the namespace's pods the metadata endpoints.
	Protected State = "protected"
	// Exempt: the namespace is left alone on purpose (listed, or labelled).
	Exempt State = "exempt"
	// Refused: the managed NetworkPolicy would widen egress there; a deny-capable layer must
	// protect it instead.
	Refused State = "refused"
)

// NamespaceDecision is what the networkpolicy mode wants for one namespace.
type NamespaceDecision struct {
	Namespace string
	State     State
	// Reason says why a namespace is exempt or refused.
	Reason string
	// Desired is the managed NetworkPolicy; nil when none may exist in the namespace.
	Desired *unstructured.Unstructured
}

// DecideNamespace decides the networkpolicy mode for one namespace from the objects the
// safety rule needs: the namespace's pods, workloads and NetworkPolicies (its Calico and Cilium
// policies, where served) and the cluster-wide policies (AdminNetworkPolicies,
// BaselineAdminNetworkPolicies, Calico and Cilium clusterwide policies). The policy and the
// refusal are generate's, for that namespace alone.
func DecideNamespace(ns *corev1.Namespace, objs []runtime.Object, opts *Options) NamespaceDecision {
	d := NamespaceDecision{Namespace: ns.Name}
	switch {
	case slices.Contains(opts.ExemptNamespaces, ns.Name):
		d.State, d.Reason = Exempt, "listed as an exempt namespace"
		return d
	case opts.exemptByLabel(ns.Labels):
		d.State, d.Reason = Exempt, fmt.Sprintf("labelled %s=%s", opts.ExemptLabelKey, opts.ExemptLabelValue)
		return d
	}
	refuse := func(reason string) NamespaceDecision {
		d.State, d.Reason = Refused, reason
		return d
	}
	inv, err := inventory.FromObjects(append([]runtime.Object{ns}, objs...))
	if err != nil {
		return refuse(fmt.Sprintf("the namespace's objects could not be read: %v", err))
	}
	g := opts.generateOptions(generate.NetworkPolicy)
	g.Inventory = inv
	g.Namespaces = []string{ns.Name}
	g.ExemptNamespaces = nil
	out, err := generate.Generate(g)
	if err != nil {
		var verr *generate.VerificationError
		if errors.As(err, &verr) {
			return refuse(fmt.Sprintf("the NetworkPolicy would not do what it must here: %v", err))
		}
		return refuse(fmt.Sprintf("cannot decide whether a NetworkPolicy is safe here: %v", err))
	}
	for _, r := range out.Refusals {
		if r.Namespace == ns.Name {
			return refuse(r.String())
		}
	}
	for _, m := range out.Manifests {
		u, err := toUnstructured(m.Object)
		if err != nil {
			return refuse(fmt.Sprintf("the generated NetworkPolicy cannot be encoded: %v", err))
		}
		if u.GetNamespace() == ns.Name {
			d.State, d.Desired = Protected, u
			return d
		}
	}
	return refuse("generate produced no NetworkPolicy for this namespace")
}

// ClusterDecision is what a cluster-wide mode wants.
type ClusterDecision struct {
	// Exempt are the namespaces the cluster-wide policy leaves out, sorted: the listed ones
	// and those labelled exempt.
	Exempt []string
	// Protected are the other namespaces, sorted.
	Protected []string
	// Desired are the objects to keep in place, in apply order (a Calico Tier before its
	// policy).
	Desired []*unstructured.Unstructured
}

// DecideCluster decides a cluster-wide mode (adminnetworkpolicy, calico, cilium) from the
// namespaces and their labels. A deny cannot widen anything, so nothing is refused.
func DecideCluster(mode Mode, namespaces []*corev1.Namespace, opts *Options) (ClusterDecision, error) {
	var d ClusterDecision
	exempt := slices.Clone(opts.ExemptNamespaces)
	for _, ns := range namespaces {
		if ns.DeletionTimestamp != nil {
			continue
		}
		if slices.Contains(opts.ExemptNamespaces, ns.Name) || opts.exemptByLabel(ns.Labels) {
			exempt = append(exempt, ns.Name)
			continue
		}
		d.Protected = append(d.Protected, ns.Name)
	}
	slices.Sort(exempt)
	d.Exempt = slices.Compact(exempt)
	slices.Sort(d.Protected)
	g := opts.generateOptions(generate.Layer(mode))
	g.ExemptNamespaces = d.Exempt
	out, err := generate.Generate(g)
	if err != nil {
		return ClusterDecision{}, fmt.Errorf("generate the %s layer: %w", mode, err)
	}
	for _, m := range out.Manifests {
		u, err := toUnstructured(m.Object)
		if err != nil {
			return ClusterDecision{}, fmt.Errorf("encode the %s layer: %w", mode, err)
		}
		d.Desired = append(d.Desired, u)
	}
	return d, nil
}

// Action is a write the controller makes.
type Action string

// The actions.
const (
	None   Action = ""
	Apply  Action = "apply"
	Delete Action = "delete"
)

// Write is one planned change to one object.
type Write struct {
	Action Action
	// Object is the desired object for Apply, the current one for Delete.
	Object *unstructured.Unstructured
	// Current is the object the plan was made against (nil: absent). A write only succeeds if
	// the object is still that one: created only where none exists, applied and deleted with
	// its resourceVersion as a precondition, so an object someone else put in its place in
	// the meantime is never taken over.
	Current *unstructured.Unstructured
	// Why says what made the write necessary.
	Why string
}

// Plan compares a desired object (nil: none may exist) with the current one (nil: absent)
// and returns the write that brings the cluster to the desired state. Objects without the
// ownership label are never written.
func Plan(desired, current *unstructured.Unstructured) Write {
	switch {
	case desired == nil && current != nil && Owned(current):
		return Write{Action: Delete, Object: current, Current: current, Why: "no managed policy may exist here"}
	case desired == nil:
		return Write{}
	case current == nil:
		return Write{Action: Apply, Object: desired, Why: "missing"}
	case !Owned(current):
		return Write{}
	case !Matches(desired, current):
		return Write{Action: Apply, Object: desired, Current: current, Why: "changed by someone else"}
	}
	return Write{}
}

// Owned reports whether an object carries the ownership label.
func Owned(obj *unstructured.Unstructured) bool {
	return obj.GetLabels()[generate.ManagedByLabel] == generate.ManagedBy
}

// Matches reports whether current holds everything desired says: its labels, annotations and
// spec (lists exactly, maps at least). Fields the API server adds (defaults, metadata) do not
// count as changes.
func Matches(desired, current *unstructured.Unstructured) bool {
	for _, field := range [][]string{{"metadata", "labels"}, {"metadata", "annotations"}, {"spec"}} {
		want, _, _ := unstructured.NestedFieldNoCopy(desired.Object, field...)
		got, _, _ := unstructured.NestedFieldNoCopy(current.Object, field...)
		if !contains(got, want) {
			return false
		}
	}
	return true
}

// contains reports whether got holds want: maps key by key, lists element by element with the
// same length, scalars equal (numbers compared as float64: JSON decoding and the converter
// disagree on int64 and float64).
func contains(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return len(w) == 0 && got == nil
		}
		for k, v := range w {
			if !contains(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return len(w) == 0 && got == nil
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	if wn, ok := number(want); ok {
		gn, ok := number(got)
		return ok && gn == wn
	}
	return reflect.DeepEqual(got, want)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	}
	return 0, false
}

// toUnstructured encodes a generated object (typed, or generate's own Calico and Cilium
// structs) as the JSON the API server is sent, without the empty creationTimestamp.
func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

// objectName names an object in logs and events: Kind namespace/name.
func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + " " + u.GetName()
	}
	return u.GetKind() + " " + strings.Join([]string{u.GetNamespace(), u.GetName()}, "/")
}
