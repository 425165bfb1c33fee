package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// resourceOf maps the managed kinds to their resources.
func resourceOf(u *unstructured.Unstructured) schema.GroupVersionResource {
	gv := u.GroupVersionKind().GroupVersion()
	return gv.WithResource(map[string]string{
		"AdminNetworkPolicy":             "adminnetworkpolicies",
		"ClusterNetworkPolicy":           "clusternetworkpolicies",
		"Tier":                           "tiers",
		"GlobalNetworkPolicy":            "globalnetworkpolicies",
		"CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicies",
	}[u.GetKind()])
}

func TestClusterWideModes(t *testing.T) {
	cp := cluster(t)
	admin := cp.Client("admin")
	dyn, err := dynamic.NewForConfig(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	for _, mode := range []Mode{ModeClusterNetworkPolicy, ModeAdminNetworkPolicy, ModeCalico, ModeCilium} {
		t.Run(string(mode), func(t *testing.T) {
			exempt := "cw-" + string(mode) + "-exempt"
			createNamespace(t, admin, exempt, "imdsguard.io/metadata-access", "allow")
			c := startController(t, testConfig(cp, mode))
			if c.Mode != mode {
				t.Fatalf("mode %s, want %s", c.Mode, mode)
			}
			// The desired objects, for the namespaces as they are now.
			desired := func() []*unstructured.Unstructured {
				list, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				d, err := DecideCluster(mode, pointers(list.Items), testOptions())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(d.Exempt, exempt) {
					t.Fatalf("the labelled namespace %s is not exempt: %v", exempt, d.Exempt)
				}
				return d.Desired
			}
			inPlace := func(what string) {
				t.Helper()
				want := desired()
				eventually(t, what, 20*time.Second, func() (bool, string) {
					for _, w := range want {
						got, err := dyn.Resource(resourceOf(w)).Get(ctx, w.GetName(), metav1.GetOptions{})
						if err != nil {
							return false, err.Error()
						}
						if !Matches(w, got) {
							return false, objectName(w) + " differs"
						}
					}
					return true, ""
				})
			}
			inPlace("the cluster-wide policy in place, the labelled namespace exempt")
			// The reconciler records the status after its writes: wait for it, not only for them.
			eventually(t, "status counts the exempt and protected namespaces", 10*time.Second, func() (bool, string) {
				got := c.Status.Counts()
				return got[Exempt] >= 2 && got[Protected] >= 1, fmt.Sprint(got)
			})

			// The deny is the last object: the one that matters most.
			last := desired()[len(desired())-1]
			res := dyn.Resource(resourceOf(last))
			obj, err := res.Get(ctx, last.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case ModeAdminNetworkPolicy:
				_ = unstructured.SetNestedField(obj.Object, int64(999), "spec", "priority")
			case ModeCalico:
				_ = unstructured.SetNestedField(obj.Object, "all()", "spec", "selector")
			case ModeCilium:
				_ = unstructured.SetNestedField(obj.Object, "edited", "spec", "description")
			}
			if _, err := res.Update(ctx, obj, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
				t.Fatal(err)
			}
			inPlace("the edited policy restored")
			if err := res.Delete(ctx, last.GetName(), metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			inPlace("the deleted policy restored")

			// Removing the label brings the namespace under the policy.
			patch := []byte(`{"metadata":{"labels":{"imdsguard.io/metadata-access":null}}}`)
			if _, err := admin.CoreV1().Namespaces().Patch(ctx, exempt, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the unlabelled namespace protected", 20*time.Second, func() (bool, string) {
				e, ok := c.Status.Get(exempt)
				return ok && e.State == Protected, string(e.State)
			})
		})
	}
}

func TestClusterWideModeLeavesForeignObjectsAlone(t *testing.T) {
	cp := cluster(t)
	dyn, err := dynamic.NewForConfig(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	d, err := DecideCluster(ModeCilium, nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	res := dyn.Resource(resourceOf(d.Desired[0]))
	_ = res.Delete(ctx, d.Desired[0].GetName(), metav1.DeleteOptions{})
	eventually(t, "the earlier policy gone", 10*time.Second, func() (bool, string) {
		_, err := res.Get(ctx, d.Desired[0].GetName(), metav1.GetOptions{})
		return apierrors.IsNotFound(err), ""
	})
	foreign := d.Desired[0].DeepCopy()
	foreign.SetLabels(map[string]string{"team": "network"})
	foreign, err = res.Create(ctx, foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := res.Delete(ctx, foreign.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	})
	startController(t, testConfig(cp, ModeCilium))
	time.Sleep(3 * time.Second)
	now, err := res.Get(ctx, foreign.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.GetResourceVersion() != foreign.GetResourceVersion() {
		t.Errorf("a CiliumClusterwideNetworkPolicy without the ownership label was written: labels %v", now.GetLabels())
	}
}

func TestAutoModePicksTheStrongestLayerServed(t *testing.T) {
	cp := cluster(t)
	c := startController(t, testConfig(cp, ModeAuto))
	if c.Mode != ModeClusterNetworkPolicy || !strings.Contains(c.ModeReason, "ClusterNetworkPolicy") {
		t.Errorf("auto chose %s (%s), want clusternetworkpolicy on a cluster serving ClusterNetworkPolicy, AdminNetworkPolicy, Calico and Cilium", c.Mode, c.ModeReason)
	}
}
