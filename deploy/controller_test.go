package deploy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/controller"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// cluster returns the shared control plane with the policy CRDs installed, so the controller
// watches (and needs permissions for) every optional kind.
func cluster(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp := controlPlane.Get(t)
	if err := kubetest.InstallCRDs(testContext(t), cp.Config("admin"), kubetest.AdminNetworkPolicy, kubetest.ClusterNetworkPolicy, kubetest.Calico, kubetest.Cilium); err != nil {
		t.Fatal(err)
	}
	return cp
}

// applyManifests server-side applies objects as admin: their namespaces first, then everything
// as a dry run (the server validates and admits each object), then for real.
func applyManifests(t *testing.T, cp *kubetest.ControlPlane, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := testContext(t)
	a, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	var namespaces []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		}
	}
	if err := a.Apply(ctx, namespaces, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, objs, true); err != nil {
		t.Fatalf("server-side dry run: %v", err)
	}
	if err := a.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
}

// serviceAccount is how the API server sees a pod of the Deployment.
func serviceAccount(ns, name string) rest.ImpersonationConfig {
	return rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// forbidden records every request the API server refused.
type forbidden struct {
	mu   sync.Mutex
	seen []string
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (f *forbidden) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			f.mu.Lock()
			f.seen = append(f.seen, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
		}
		return resp, err
	})
}

func (f *forbidden) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(f.seen)))
}

// runController runs the controller in this process as the ServiceAccount of
// deploy/controller, until stop is called or the test ends.
func runController(t *testing.T, cp *kubetest.ControlPlane, mode controller.Mode, as rest.ImpersonationConfig, ns string, denied *forbidden) (stop func()) {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config("admin"))
	cfg.Impersonate = as
	cfg.Wrap(denied.wrap)
	// What the command reads at start to detect the policy engine, with the same identity.
	if _, err := inventory.LoadEngineEvidence(context.Background(), cfg); err != nil {
		t.Fatalf("detect the policy engine as the ServiceAccount: %v", err)
	}
	opts := controller.DefaultOptions(endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
	opts.Mode = mode
	opts.Namespace = ns
	opts.StatusInterval = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	c, err := controller.New(ctx, controller.Config{
		Options: opts, Rest: cfg, MetricsAddr: "0", ProbeAddr: "0",
		LeaderElection: true, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		SkipNameValidation: true, Log: logr.Discard(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, 20*time.Second)
	defer cancelSync()
	if !c.Manager.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		t.Fatalf("the controller's caches did not sync: forbidden requests %v", denied.list())
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("controller stopped with an error: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, limit, last)
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.CoreV1().Namespaces().Create(testContext(t), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func managedPolicy(t *testing.T, c kubernetes.Interface, ns string) *networkingv1.NetworkPolicy {
	t.Helper()
	np, err := c.NetworkingV1().NetworkPolicies(ns).Get(testContext(t), generate.PolicyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return np
}

// allowed asks the API server whether a user may do something.
func allowed(t *testing.T, c kubernetes.Interface, as rest.ImpersonationConfig, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: as.UserName, Groups: as.Groups, ResourceAttributes: &attrs,
	}}
	got, err := c.AuthorizationV1().SubjectAccessReviews().Create(testContext(t), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status.Allowed
}

func TestControllerManifestsGrantEnoughAndNoMore(t *testing.T) {
	cp := cluster(t)
	admin := cp.Client("admin")
	ctx := testContext(t)
	objs, err := kubetest.DecodeFiles("controller")
	if err != nil {
		t.Fatal(err)
	}
	applyManifests(t, cp, objs)
	as := serviceAccount("imdsguard-system", "imdsguard-controller")

	createNamespace(t, admin, "rbac-plain", nil)
	createNamespace(t, admin, "rbac-exempt", map[string]string{"imdsguard.io/metadata-access": "allow"})
	createNamespace(t, admin, "rbac-isolated", nil)
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-egress", Namespace: "rbac-isolated"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
	}
	if _, err := admin.NetworkingV1().NetworkPolicies("rbac-isolated").Create(ctx, deny, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("networkpolicy mode runs with the ServiceAccount's permissions alone", func(t *testing.T) {
		denied := &forbidden{}
		stop := runController(t, cp, controller.ModeNetworkPolicy, as, "imdsguard-system", denied)
		eventually(t, "rbac-plain protected", 20*time.Second, func() (bool, string) {
			return managedPolicy(t, admin, "rbac-plain") != nil, ""
		})
		eventually(t, "the status ConfigMap written", 10*time.Second, func() (bool, string) {
			cm, err := admin.CoreV1().ConfigMaps("imdsguard-system").Get(ctx, controller.StatusConfigMapName, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(cm.Data["refused"], "rbac-isolated:") && strings.Contains(cm.Data["exempt"], "rbac-exempt\n"), cm.Data["summary"]
		})
		eventually(t, "a Refused event for rbac-isolated", 10*time.Second, func() (bool, string) {
			list, err := admin.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
				FieldSelector: "involvedObject.kind=Namespace,involvedObject.name=rbac-isolated,reason=" + controller.ReasonRefused,
			})
			return err == nil && len(list.Items) > 0, ""
		})
		// Exempting a protected namespace deletes the policy: the delete permission.
		patch := []byte(`{"metadata":{"labels":{"imdsguard.io/metadata-access":"allow"}}}`)
		if _, err := admin.CoreV1().Namespaces().Patch(ctx, "rbac-plain", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "rbac-plain's policy removed", 10*time.Second, func() (bool, string) {
			return managedPolicy(t, admin, "rbac-plain") == nil, ""
		})
		// An edited policy is repaired: the patch permission.
		createNamespace(t, admin, "rbac-edited", nil)
		var np *networkingv1.NetworkPolicy
		eventually(t, "rbac-edited protected", 10*time.Second, func() (bool, string) {
			np = managedPolicy(t, admin, "rbac-edited")
			return np != nil, ""
		})
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
		if _, err := admin.NetworkingV1().NetworkPolicies("rbac-edited").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "rbac-edited repaired", 10*time.Second, func() (bool, string) {
			now := managedPolicy(t, admin, "rbac-edited")
			return now != nil && len(now.Spec.Egress) > 1, ""
		})
		lease, err := admin.CoordinationV1().Leases("imdsguard-system").Get(ctx, controller.LeaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the Lease: %v", err)
		}
		if h := lease.Spec.HolderIdentity; h == nil || *h == "" {
			t.Errorf("the Lease has no holder")
		}
		stop()
		if got := denied.list(); len(got) > 0 {
			t.Errorf("requests the ClusterRole and Role do not allow: %v", got)
		}
	})

	for _, mode := range []controller.Mode{controller.ModeClusterNetworkPolicy, controller.ModeAdminNetworkPolicy, controller.ModeCalico, controller.ModeCilium} {
		t.Run(string(mode)+" mode runs with the ServiceAccount's permissions alone", func(t *testing.T) {
			denied := &forbidden{}
			stop := runController(t, cp, mode, as, "imdsguard-system", denied)
			eventually(t, "the cluster-wide policy written", 20*time.Second, func() (bool, string) {
				data := ""
				cm, err := admin.CoreV1().ConfigMaps("imdsguard-system").Get(ctx, controller.StatusConfigMapName, metav1.GetOptions{})
				if err == nil {
					data = cm.Data["summary"]
				}
				return strings.Contains(data, "mode: "+string(mode)) && strings.Contains(data, "protected: "), data
			})
			stop()
			if got := denied.list(); len(got) > 0 {
				t.Errorf("requests the ClusterRole and Role do not allow: %v", got)
			}
		})
	}

	t.Run("the ServiceAccount cannot do what the controller never does", func(t *testing.T) {
		for _, attrs := range []authorizationv1.ResourceAttributes{
			{Verb: "get", Resource: "secrets", Namespace: "rbac-plain"},
			{Verb: "list", Resource: "secrets"},
			{Verb: "list", Resource: "configmaps"},
			{Verb: "patch", Resource: "namespaces", Name: "rbac-plain"},
			{Verb: "update", Resource: "pods", Namespace: "rbac-plain"},
			{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: "rbac-plain"},
			{Verb: "update", Group: "networking.k8s.io", Resource: "networkpolicies", Namespace: "rbac-plain"},
			{Verb: "patch", Resource: "configmaps", Namespace: "imdsguard-system", Name: "imdsguard-agent"},
			{Verb: "create", Resource: "configmaps", Namespace: "rbac-plain"},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "imdsguard-system", Name: "other"},
			{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		} {
			if allowed(t, admin, as, attrs) {
				t.Errorf("allowed: %+v", attrs)
			}
		}
	})
}
