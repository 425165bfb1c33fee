package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/synth"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/yaml"
)

// TestDecodingMatchesKubernetes decodes every object of a synthetic cluster and of the example
// cluster both with imdsguard's decoder and with the one the API server uses
// (k8s.io/apimachinery/pkg/util/json) into the official type, and requires identical objects:
// whole policies, namespaces and service accounts, and for pods and workload templates the
// fields the audit reads.
func TestDecodingMatchesKubernetes(t *testing.T) {
	var list bytes.Buffer
	if _, err := synth.Generate(&list, synth.Scaled(400)); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	var doc struct{ Items []json.RawMessage }
	if err := json.Unmarshal(list.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	items = append(items, doc.Items...)
	files, _ := filepath.Glob("../../examples/cluster/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for d := range yamlDocuments(data) {
			if isEmptyYAML(d) {
				continue
			}
			js, err := yaml.YAMLToJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, js)
		}
	}
	kinds := map[string]int{}
	for i, item := range items {
		apiVersion, kind, err := sniff(item)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		newObj, ok := newObject[kindKey{apiVersion, kind}]
		if !ok {
			continue
		}
		ours := newObj()
		if err := unmarshal(item, ours); err != nil {
			t.Fatalf("item %d (%s): %v", i, kind, err)
		}
		official, ok := officialTypes[kind]
		if !ok {
			continue // a CRD of a project whose Go module cannot be used (Karpenter): our own types
		}
		theirs := official()
		if err := utiljson.Unmarshal(item, theirs); err != nil {
			t.Fatalf("item %d (%s): Kubernetes' decoder: %v", i, kind, err)
		}
		want, got := any(theirs), ours
		switch o := theirs.(type) {
		case *corev1.Pod:
			g := ours.(*corev1.Pod)
			want = &corev1.Pod{TypeMeta: o.TypeMeta, ObjectMeta: readMeta(o.ObjectMeta), Spec: readSpec(o.Spec)}
			got = &corev1.Pod{TypeMeta: g.TypeMeta, ObjectMeta: readMeta(g.ObjectMeta), Spec: readSpec(g.Spec)}
		default:
			trimMeta(theirs)
			trimMeta(ours)
			if w, ok := workloadOf(theirs); ok {
				g, _ := workloadOf(ours)
				w.Template = corev1.PodTemplateSpec{ObjectMeta: readMeta(w.Template.ObjectMeta), Spec: readSpec(w.Template.Spec)}
				g.Template = corev1.PodTemplateSpec{ObjectMeta: readMeta(g.Template.ObjectMeta), Spec: readSpec(g.Template.Spec)}
				want, got = w, g
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("item %d (%s) decodes differently (-kubernetes +imdsguard):\n%s", i, kind, diff)
		}
		kinds[kind]++
	}
	for _, k := range []string{"Pod", "Deployment", "NetworkPolicy", "AdminNetworkPolicy", "Namespace", "ServiceAccount", "StatefulSet", "DaemonSet", "CronJob"} {
		if kinds[k] == 0 {
			t.Errorf("no %s compared", k)
		}
	}
}

// officialTypes are the official Go types of the evaluated kinds.
var officialTypes = map[string]func() any{
	"Namespace": func() any { return &corev1.Namespace{} }, "Pod": func() any { return &corev1.Pod{} },
	"Node":           func() any { return &corev1.Node{} },
	"ServiceAccount": func() any { return &corev1.ServiceAccount{} }, "ConfigMap": func() any { return &corev1.ConfigMap{} },
	"ReplicationController": func() any { return &corev1.ReplicationController{} },
	"Deployment":            func() any { return &appsv1.Deployment{} }, "StatefulSet": func() any { return &appsv1.StatefulSet{} },
	"DaemonSet": func() any { return &appsv1.DaemonSet{} }, "ReplicaSet": func() any { return &appsv1.ReplicaSet{} },
	"Job": func() any { return &batchv1.Job{} }, "CronJob": func() any { return &batchv1.CronJob{} },
	"NetworkPolicy":              func() any { return &networkingv1.NetworkPolicy{} },
	"AdminNetworkPolicy":         func() any { return &anpv1alpha1.AdminNetworkPolicy{} },
	"BaselineAdminNetworkPolicy": func() any { return &anpv1alpha1.BaselineAdminNetworkPolicy{} },
}

// readMeta and readSpec keep the fields the audit reads, written out independently of view.go.
func readMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations, OwnerReferences: m.OwnerReferences}
}

func readSpec(s corev1.PodSpec) corev1.PodSpec {
	keep := func(cs []corev1.Container) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args, Env: c.Env}
		}
		return out
	}
	var affinity *corev1.Affinity
	if s.Affinity != nil && s.Affinity.NodeAffinity != nil {
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution}}
	}
	return corev1.PodSpec{HostNetwork: s.HostNetwork, ServiceAccountName: s.ServiceAccountName, DeprecatedServiceAccount: s.DeprecatedServiceAccount,
		DNSPolicy: s.DNSPolicy, InitContainers: keep(s.InitContainers), Containers: keep(s.Containers),
		NodeName: s.NodeName, NodeSelector: s.NodeSelector, Affinity: affinity, Tolerations: s.Tolerations}
}

// trimMeta keeps the metadata fields the audit reads (timestamps and managedFields are skipped
// by the decoder).
func trimMeta(obj any) {
	field := reflect.ValueOf(obj).Elem().FieldByName("ObjectMeta")
	field.Set(reflect.ValueOf(readMeta(field.Interface().(metav1.ObjectMeta))))
}
