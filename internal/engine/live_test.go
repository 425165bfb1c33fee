package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/kubetest"
)

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

var crdsOnce sync.Once

// cluster returns the shared control plane with the Installation and NodeClass CRDs installed.
func cluster(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp := controlPlane.Get(t)
	var err error
	crdsOnce.Do(func() {
		var files []string
		files, err = filepath.Glob(filepath.Join("testdata", "crds", "*.yaml"))
		if err == nil {
			err = kubetest.InstallCRDFiles(context.Background(), cp.Config("admin"), files...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// applyFiles applies testdata files and returns a function that deletes what they created
// (namespaces stay: without a namespace controller they would never finish terminating).
func applyFiles(t *testing.T, ctx context.Context, cfg *rest.Config, files ...string) func() {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		o, err := kubetest.DecodeFiles(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	applier, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	return func() {
		disc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
		client, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue
			}
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("delete %s %s: %v", gvk.Kind, o.GetName(), err)
			}
			var res dynamic.ResourceInterface = client.Resource(m.Resource)
			if m.Scope.Name() == "namespace" {
				res = client.Resource(m.Resource).Namespace(o.GetNamespace())
			}
			if err := res.Delete(context.Background(), o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatalf("delete %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestDetectLive: each engine's objects applied to a real API server and read back by
// LoadCluster give the same detection as the manifest files, and the one each case wants.
func TestDetectLive(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	cfg := cp.Config("admin")
	for _, tc := range detectCases {
		t.Run(tc.file, func(t *testing.T) {
			cleanup := applyFiles(t, ctx, cfg, tc.file)
			defer cleanup()
			inv, err := inventory.LoadCluster(ctx, cfg, inventory.ClusterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Gaps) != 0 {
				t.Fatalf("gaps: %v", inv.Gaps)
			}
			live := Detect(inv)
			if diff := cmp.Diff(Detect(loadFile(t, tc.file)), live); diff != "" {
				t.Errorf("live detection differs from the files' (-files +live):\n%s", diff)
			}
			checkDetection(t, live, tc)
			// The controller reads only the engine evidence (workloads, not pods: in a cluster a
			// pod's DaemonSet exists): it must detect the same.
			if strings.Contains(tc.file, "pods-only") {
				return
			}
			evidence, err := inventory.LoadEngineEvidence(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(live.Enforcement, Detect(evidence).Enforcement); diff != "" {
				t.Errorf("detection from LoadEngineEvidence differs from LoadCluster's (-cluster +evidence):\n%s", diff)
			}
		})
	}
}

// TestDetectLiveAuditClusterRole: the shipped audit ClusterRole reads every engine
// configuration object (no gap, the same detection as an administrator), and still cannot read
// other ConfigMaps.
func TestDetectLiveAuditClusterRole(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	admin := cp.Config("admin")
	objs, err := kubetest.DecodeFiles("../../deploy/rbac/audit-clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	binding, err := kubetest.Decode([]byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: imdsguard-audit-engines}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: imdsguard-audit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: auditor}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-credentials, namespace: kube-system}
data: {password: hunter2}
`))
	if err != nil {
		t.Fatal(err)
	}
	applier, err := kubetest.NewApplier(admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, append(objs, binding...), false); err != nil {
		t.Fatal(err)
	}
	cleanup := applyFiles(t, ctx, admin, "eks-auto-mode.yaml", "calico-operator-only.yaml", "cilium-1.20-cluster-network-policy.yaml", "antrea-admin-network-policy.yaml")
	defer cleanup()

	want, err := inventory.LoadCluster(ctx, admin, inventory.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var inv *inventory.Inventory
	deadline := time.Now().Add(30 * time.Second)
	for {
		if inv, err = inventory.LoadCluster(ctx, cp.Config("auditor"), inventory.ClusterOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(inv.Gaps) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // RBAC reaches the authorizer's cache within moments
	}
	if len(inv.Gaps) != 0 {
		t.Errorf("the audit ClusterRole leaves gaps: %v", inv.Gaps)
	}
	if slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.Contains(w, "forbidden") }) {
		t.Errorf("the audit ClusterRole leaves forbidden reads: %q", inv.Warnings)
	}
	if len(inv.EngineConfigMaps) != 3 || len(inv.CalicoInstallations) != 1 || len(inv.EKSNodeClasses) != 1 {
		t.Errorf("read %d engine ConfigMaps, %d Installations, %d NodeClasses; want 3, 1, 1", len(inv.EngineConfigMaps), len(inv.CalicoInstallations), len(inv.EKSNodeClasses))
	}
	if diff := cmp.Diff(Detect(want), Detect(inv)); diff != "" {
		t.Errorf("the auditor's detection differs from the administrator's (-admin +auditor):\n%s", diff)
	}
	got := Detect(inv)
	var names []Name
	for _, e := range got.Engines {
		names = append(names, e.Name)
	}
	if wantNames := []Name{EKSAutoMode, Calico, Cilium, Antrea}; !slices.Equal(names, wantNames) {
		t.Errorf("engines %v, want %v", names, wantNames)
	}

	// Least privilege: other ConfigMaps stay unreadable, one by one and as a list.
	auditor := cp.Client("auditor")
	if _, err := auditor.CoreV1().ConfigMaps("kube-system").Get(ctx, "app-credentials", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("auditor get kube-system/app-credentials: %v, want forbidden", err)
	}
	if _, err := auditor.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("auditor list configmaps: %v, want forbidden", err)
	}
}
