package kubetest

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
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
		{Group: "projectcalico.org", Version: "v3", Resource: "globalnetworksets"},
		{Group: "projectcalico.org", Version: "v3", Resource: "networksets"},
	} {
		if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("%s not served after InstallCRDs: %v", gvr, err)
		}
	}
	applier, err := NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, networkSets(t, "kubetest"), false); err != nil {
		t.Errorf("a documented GlobalNetworkSet or NetworkSet was rejected: %v", err)
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

// networkSets is a documented GlobalNetworkSet and NetworkSet (in namespace ns), as Calico's
// reference shows them.
func networkSets(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Decode([]byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: metadata-endpoints
  labels: {role: metadata}
spec:
  nets: [169.254.169.254/32, "fd00:ec2::254/128"]
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: external-database
  namespace: ` + ns + `
  labels: {role: db}
spec:
  nets: [198.51.100.0/28, 203.0.113.0/24]
  allowedEgressDomains: [db.example.com, "*.example.org"]
`))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// ownCalicoCRDs are the CRD files of testdata/calico.
var ownCalicoCRDs = []string{
	"projectcalico.org_globalnetworkpolicies.yaml",
	"projectcalico.org_globalnetworksets.yaml",
	"projectcalico.org_networkpolicies.yaml",
	"projectcalico.org_networksets.yaml",
	"projectcalico.org_tiers.yaml",
}

// TestCalicoCRDFiles: the Calico set is every CRD of ../shared/crds/calico plus, for each file
// of testdata/calico that folder does not hold, our own: each file name once, Calico's own
// preferred. Without the shared folder it is every testdata file.
func TestCalicoCRDFiles(t *testing.T) {
	own, err := filepath.Glob("testdata/calico/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range own {
		names = append(names, filepath.Base(f))
	}
	if !slices.Equal(names, ownCalicoCRDs) {
		t.Fatalf("testdata/calico holds %v, want %v", names, ownCalicoCRDs)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shared, err := filepath.Glob(filepath.Join(root, "..", "shared", "crds", "calico", "projectcalico.org_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inShared := map[string]bool{}
	for _, f := range shared {
		inShared[filepath.Base(f)] = true
	}
	files, err := CRDFiles(Calico)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		base := filepath.Base(f)
		if got[base] != "" {
			t.Errorf("%s installed twice: %s and %s", base, got[base], f)
		}
		got[base] = filepath.ToSlash(filepath.Dir(f))
	}
	want := map[string]bool{}
	for _, n := range append(names, slices.Collect(maps.Keys(inShared))...) {
		want[n] = true
	}
	if len(got) != len(want) {
		t.Errorf("Calico CRDs %v, want one each of %v", files, slices.Sorted(maps.Keys(want)))
	}
	for name := range want {
		dir, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s not in the Calico CRDs %v", name, files)
		case inShared[name] && !strings.HasSuffix(dir, "/shared/crds/calico"):
			t.Errorf("%s taken from %s, want Calico's own in ../shared/crds/calico", name, dir)
		case !inShared[name] && !strings.HasSuffix(dir, "/internal/kubetest/testdata/calico"):
			t.Errorf("%s taken from %s, want ours in testdata/calico", name, dir)
		}
	}
	t.Logf("%d Calico CRDs from ../shared/crds/calico, %d from testdata/calico", len(shared), len(files)-len(shared))
}

// TestCalicoFallbackCRDs: our own Calico schemas, used when Calico's CRDs are not beside the
// repository, load into the API server, accept a documented GlobalNetworkPolicy,
// GlobalNetworkSet and NetworkSet, and reject an unknown rule action.
func TestCalicoFallbackCRDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	files, err := filepath.Glob("testdata/calico/*.yaml")
	if err != nil || len(files) != len(ownCalicoCRDs) {
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
	if err := applier.Apply(ctx, networkSets(t, metav1.NamespaceDefault), false); err != nil {
		t.Errorf("a documented GlobalNetworkSet or NetworkSet was rejected: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(cp.Config("admin"))
	ns, err := dyn.Resource(schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "networksets"}).
		Namespace(metav1.NamespaceDefault).Get(ctx, "external-database", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nets, _, _ := unstructured.NestedStringSlice(ns.Object, "spec", "nets"); !slices.Equal(nets, []string{"198.51.100.0/28", "203.0.113.0/24"}) {
		t.Errorf("NetworkSet spec.nets stored as %v", nets)
	}
	if domains, _, _ := unstructured.NestedStringSlice(ns.Object, "spec", "allowedEgressDomains"); len(domains) != 2 {
		t.Errorf("NetworkSet spec.allowedEgressDomains stored as %v (pruned?)", domains)
	}
}
