package kubetest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
