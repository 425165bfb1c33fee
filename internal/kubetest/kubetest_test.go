package kubetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// TestControlPlane starts the real control plane, checks the users' permissions, installs every
// CRD set and restarts the API server.
func TestControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest"}}
	if _, err := cp.Client("admin").CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin cannot create a namespace: %v", err)
	}
	_, err = cp.Client("nobody").CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("user nobody listing namespaces: got %v, want Forbidden", err)
	}

	if err := InstallCRDs(ctx, cp.Config("admin"), AdminNetworkPolicy, Cilium, Calico); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cp.Config("admin"))
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "policy.networking.k8s.io", Version: "v1alpha1", Resource: "adminnetworkpolicies"},
		{Group: "policy.networking.k8s.io", Version: "v1alpha1", Resource: "baselineadminnetworkpolicies"},
		{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"},
		{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"},
		{Group: "projectcalico.org", Version: "v3", Resource: "globalnetworkpolicies"},
		{Group: "projectcalico.org", Version: "v3", Resource: "networkpolicies"},
		{Group: "projectcalico.org", Version: "v3", Resource: "tiers"},
	} {
		if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("%s not served after InstallCRDs: %v", gvr, err)
		}
	}

	path, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != cp.URL {
		t.Errorf("kubeconfig server %q, want %q", cfg.Host, cp.URL)
	}

	cp.StopAPIServer()
	if _, err := cp.Client("admin").CoreV1().Namespaces().Get(ctx, "kubetest", metav1.GetOptions{}); err == nil {
		t.Fatal("the API server answered while stopped")
	}
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client("admin").CoreV1().Namespaces().Get(ctx, "kubetest", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace lost across an API server restart: %v", err)
	}
}

// TestCalicoFallbackCRDs: our own Calico schema, used when Calico's CRDs are not beside the
// repository, loads into the API server, accepts a documented GlobalNetworkPolicy and rejects
// an unknown rule action.
func TestCalicoFallbackCRDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	files, err := filepath.Glob("testdata/calico/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("fallback CRDs: %v %v", files, err)
	}
	if err := InstallCRDFiles(ctx, cp.Config("admin"), files...); err != nil {
		t.Fatal(err)
	}
	gnp := func(action string) []*unstructured.Unstructured {
		objs, err := Decode([]byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-metadata}
spec:
  order: 100
  selector: all()
  types: [Egress]
  egress:
  - action: ` + action + `
    protocol: TCP
    destination: {nets: [169.254.169.254/32], ports: [80]}
  - action: Pass
`))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	applier, err := NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, gnp("Deny"), false); err != nil {
		t.Errorf("a documented GlobalNetworkPolicy was rejected: %v", err)
	}
	if err := applier.Apply(ctx, gnp("Reject"), true); err == nil {
		t.Error("a rule with action Reject was accepted")
	}
}
