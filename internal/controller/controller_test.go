package controller

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// These tests run the controller against a real kube-apiserver with the AdminNetworkPolicy,
// Calico and Cilium CRDs installed, so every optional watch is exercised too.

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

// cluster returns the shared control plane, with the policy CRDs and the controller's
// namespace in place.
func cluster(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), kubetest.AdminNetworkPolicy, kubetest.ClusterNetworkPolicy, kubetest.AWSClusterNetworkPolicy, kubetest.Calico, kubetest.Cilium); err != nil {
		t.Fatal(err)
	}
	createNamespace(t, cp.Client("admin"), "imdsguard-system")
	return cp
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is a controller configuration for the test control plane: no metrics or probe
// listeners, no leader election, fast status updates.
func testConfig(cp *kubetest.ControlPlane, mode Mode) Config {
	o := *testOptions()
	o.Mode = mode
	o.StatusInterval = 200 * time.Millisecond
	return Config{Options: o, Rest: cp.Config("admin"), MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true, Log: logr.Discard()}
}

// startController runs a controller until the test ends.
func startController(t *testing.T, cfg Config) *Controller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	// Stopping a manager before its caches have synced leaves it spinning
	// (controller-runtime's runnable group waits for them): wait here.
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !c.Manager.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		t.Fatal("the controller's caches did not sync within a minute")
	}
	// Nor before its controllers have started: the manager closes Elected once every runnable
	// group has started (with leader election, once this replica leads).
	select {
	case <-c.Manager.Elected():
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("the controller's runnables did not start within two minutes")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("controller stopped with an error: %v", err)
		}
	})
	return c
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string, labels ...string) {
	t.Helper()
	ns := namespace(name, labels...)
	if _, err := c.CoreV1().Namespaces().Create(testContext(t), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the time is up.
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

// managedPolicy returns the managed NetworkPolicy of a namespace, nil when there is none.
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

// isGenerated reports whether a NetworkPolicy in the cluster holds what generate produces for
// its namespace.
func isGenerated(t *testing.T, np *networkingv1.NetworkPolicy) bool {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(np)
	if err != nil {
		t.Fatal(err)
	}
	return Matches(generated(t, np.Namespace), &unstructured.Unstructured{Object: m})
}

func waitProtected(t *testing.T, c kubernetes.Interface, ns string) *networkingv1.NetworkPolicy {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	eventually(t, "namespace "+ns+" protected by generate's NetworkPolicy", 20*time.Second, func() (bool, string) {
		np = managedPolicy(t, c, ns)
		return np != nil && isGenerated(t, np), "policy: " + describe(np)
	})
	return np
}

func waitUnprotected(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	eventually(t, "managed NetworkPolicy removed from "+ns, 20*time.Second, func() (bool, string) {
		np := managedPolicy(t, c, ns)
		return np == nil, describe(np)
	})
}

func describe(np *networkingv1.NetworkPolicy) string {
	if np == nil {
		return "none"
	}
	return np.ResourceVersion + " " + np.Spec.String()
}

// statusConfigMap returns the status ConfigMap's data.
func statusConfigMap(t *testing.T, c kubernetes.Interface) map[string]string {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps("imdsguard-system").Get(testContext(t), StatusConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data
}

// events returns the messages of the Events about a namespace with a reason.
func eventMessages(t *testing.T, c kubernetes.Interface, ns, reason string) []string {
	t.Helper()
	list, err := c.CoreV1().Events(metav1.NamespaceAll).List(testContext(t), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Namespace,involvedObject.name=" + ns + ",reason=" + reason,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Message)
	}
	return out
}

func TestNetworkPolicyModeProtectsEveryNamespace(t *testing.T) {
	cp := cluster(t)
	admin := cp.Client("admin")
	ctx := testContext(t)
	createNamespace(t, admin, "np-existing")
	c := startController(t, testConfig(cp, ModeNetworkPolicy))
	if c.Mode != ModeNetworkPolicy {
		t.Fatalf("mode %s, want networkpolicy", c.Mode)
	}

	t.Run("a namespace that existed before the controller started is protected", func(t *testing.T) {
		waitProtected(t, admin, "np-existing")
	})

	t.Run("a new namespace is protected within seconds", func(t *testing.T) {
		start := time.Now()
		createNamespace(t, admin, "np-new")
		np := waitProtected(t, admin, "np-new")
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("took %s", took)
		}
		managers := map[string]bool{}
		for _, f := range np.ManagedFields {
			managers[f.Manager] = true
		}
		if !managers[FieldManager] || len(managers) != 1 {
			t.Errorf("field managers %v, want only %s", managers, FieldManager)
		}
	})

	t.Run("the exempt label removes the managed policy, and removing the label restores it", func(t *testing.T) {
		createNamespace(t, admin, "np-exempt")
		waitProtected(t, admin, "np-exempt")
		patch := []byte(`{"metadata":{"labels":{"imdsguard.io/metadata-access":"allow"}}}`)
		if _, err := admin.CoreV1().Namespaces().Patch(ctx, "np-exempt", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUnprotected(t, admin, "np-exempt")
		eventually(t, "status says exempt", 10*time.Second, func() (bool, string) {
			data := statusConfigMap(t, admin)
			return strings.Contains(data["exempt"], "np-exempt\n"), data["exempt"]
		})
		patch = []byte(`{"metadata":{"labels":{"imdsguard.io/metadata-access":null}}}`)
		if _, err := admin.CoreV1().Namespaces().Patch(ctx, "np-exempt", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitProtected(t, admin, "np-exempt")
	})

	t.Run("an edited managed policy is restored", func(t *testing.T) {
		np := waitProtected(t, admin, "np-new")
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}} // allow everything, metadata included
		if _, err := admin.NetworkingV1().NetworkPolicies("np-new").Update(ctx, np, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		waitProtected(t, admin, "np-new")
		eventually(t, "a Repaired event", 10*time.Second, func() (bool, string) {
			return len(eventMessages(t, admin, "np-new", ReasonRepaired)) > 0, ""
		})
	})

	t.Run("a deleted managed policy is restored", func(t *testing.T) {
		waitProtected(t, admin, "np-new")
		if err := admin.NetworkingV1().NetworkPolicies("np-new").Delete(ctx, generate.PolicyName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitProtected(t, admin, "np-new")
	})

	t.Run("a namespace whose pods are egress-isolated is refused, with an Event and a status entry", func(t *testing.T) {
		createNamespace(t, admin, "np-isolated")
		deny := denyAllEgress("np-isolated", "default-deny-egress")
		deny, err := admin.NetworkingV1().NetworkPolicies("np-isolated").Create(ctx, deny, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().Pods("np-isolated").Create(ctx, testPod("np-isolated", "checkout"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a Refused event", 20*time.Second, func() (bool, string) {
			msgs := eventMessages(t, admin, "np-isolated", ReasonRefused)
			return slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "np-isolated/default-deny-egress") }), strings.Join(msgs, "; ")
		})
		eventually(t, "status says refused and why", 10*time.Second, func() (bool, string) {
			data := statusConfigMap(t, admin)
			return strings.Contains(data["refused"], "np-isolated: networkpolicy layer refused namespace np-isolated: egress policies govern this namespace"), data["refused"]
		})
		if np := managedPolicy(t, admin, "np-isolated"); np != nil {
			t.Errorf("a managed policy was written in a refused namespace: %s", describe(np))
		}
		now, err := admin.NetworkingV1().NetworkPolicies("np-isolated").Get(ctx, deny.Name, metav1.GetOptions{})
		if err != nil || now.ResourceVersion != deny.ResourceVersion {
			t.Errorf("the namespace's own policy was touched: %v, resourceVersion %s → %s", err, deny.ResourceVersion, now.ResourceVersion)
		}
	})

	t.Run("a protected namespace that becomes isolated loses the managed policy, which would widen it", func(t *testing.T) {
		createNamespace(t, admin, "np-later")
		waitProtected(t, admin, "np-later")
		if _, err := admin.NetworkingV1().NetworkPolicies("np-later").Create(ctx, denyAllEgress("np-later", "lockdown"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUnprotected(t, admin, "np-later")
		eventually(t, "a Refused event", 10*time.Second, func() (bool, string) {
			return len(eventMessages(t, admin, "np-later", ReasonRefused)) > 0, ""
		})
	})

	t.Run("a protected namespace that a Baseline tier ClusterNetworkPolicy starts to restrict loses the managed policy, which would override it", func(t *testing.T) {
		createNamespace(t, admin, "np-cnp")
		waitProtected(t, admin, "np-cnp")
		objs, err := kubetest.Decode([]byte(`apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: np-cnp-baseline}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: np-cnp}}}
  egress:
  - {name: deny-internal, action: Deny, to: [{networks: [10.0.0.0/8]}]}
`))
		if err != nil {
			t.Fatal(err)
		}
		applier, err := kubetest.NewApplier(cp.Config("admin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := applier.Apply(ctx, objs, false); err != nil {
			t.Fatal(err)
		}
		waitUnprotected(t, admin, "np-cnp")
		eventually(t, "a Refused event naming the ClusterNetworkPolicy", 10*time.Second, func() (bool, string) {
			msgs := eventMessages(t, admin, "np-cnp", ReasonRefused)
			return slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "np-cnp-baseline") }), strings.Join(msgs, "; ")
		})
	})

	t.Run("a same-named policy imdsguard does not own is never touched", func(t *testing.T) {
		// Exempt while the foreign policy is created, so the controller cannot get there first.
		createNamespace(t, admin, "np-foreign", "imdsguard.io/metadata-access", "allow")
		foreign := ingressOnly("np-foreign", generate.PolicyName)
		foreign, err := admin.NetworkingV1().NetworkPolicies("np-foreign").Create(ctx, foreign, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		patch := []byte(`{"metadata":{"labels":{"imdsguard.io/metadata-access":null}}}`)
		if _, err := admin.CoreV1().Namespaces().Patch(ctx, "np-foreign", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a Refused event", 20*time.Second, func() (bool, string) {
			return len(eventMessages(t, admin, "np-foreign", ReasonRefused)) > 0, ""
		})
		// A reconcile after the refusal: the namespace changes, the decision is made again.
		patch = []byte(`{"metadata":{"labels":{"team":"a"}}}`)
		if _, err := admin.CoreV1().Namespaces().Patch(ctx, "np-foreign", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		now := managedPolicy(t, admin, "np-foreign")
		if now == nil || now.ResourceVersion != foreign.ResourceVersion || len(now.ManagedFields) != 1 {
			t.Errorf("the foreign policy was touched: %s", describe(now))
		}
	})

	t.Run("metrics count namespaces by state", func(t *testing.T) {
		counts := c.Status.Counts()
		if counts[Protected] < 3 || counts[Refused] < 3 || counts[Exempt] < 1 {
			t.Errorf("counts %v", counts)
		}
	})
}

func testPod(ns, name string) *corev1.Pod {
	p := pod(ns, name)
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}
	return p
}
