package generate

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/policy"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
)

// These tests prove the generated objects against a real kube-apiserver: the server accepts
// them, the admission policy rejects what it must, and a live audit of a cluster with the
// policies applied finds every targeted pod denied and nobody's egress widened.

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

// liveExample starts (once) the shared control plane with every policy CRD and the example
// cluster applied.
func liveExample(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), kubetest.AdminNetworkPolicy, kubetest.ClusterNetworkPolicy, kubetest.Calico, kubetest.Cilium, kubetest.Karpenter); err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.DecodeFiles(exampleDir)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, cp, objs, false)
	return cp
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func apply(t *testing.T, cp *kubetest.ControlPlane, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	applier, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(testContext(t), objs, dryRun); err != nil {
		t.Fatal(err)
	}
}

// manifests renders the generated Kubernetes objects as the command would and decodes them
// back, so the server sees exactly the bytes a user applies.
func manifests(t *testing.T, out *Output) []*unstructured.Unstructured {
	t.Helper()
	data, err := RenderManifests(out.Manifests, YAML, "")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.Decode(data)
	if err != nil {
		t.Fatalf("generated YAML does not decode: %v\n%s", err, data)
	}
	if len(objs) != len(out.Manifests) {
		t.Fatalf("rendered %d objects, decoded %d", len(out.Manifests), len(objs))
	}
	return objs
}

func readCluster(t *testing.T, cp *kubetest.ControlPlane) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.LoadCluster(testContext(t), cp.Config("admin"), inventory.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("live read has problems: %v", inv.Problems)
	}
	return inv
}

// TestGeneratedPoliciesProvedOnTheAPIServer generates every Kubernetes layer for the live
// example cluster, has the real API server validate and store the objects, then audits the
// cluster live again: every targeted pod and workload is denied every credential endpoint, and
// no verdict for any other destination or endpoint went from denied to allowed.
func TestGeneratedPoliciesProvedOnTheAPIServer(t *testing.T) {
	cp := liveExample(t)
	all := eps(endpoint.All, endpoint.ECS)
	before := readCluster(t, cp)

	opts := DefaultOptions(all)
	opts.Inventory = before
	opts.Layers = []Layer{NetworkPolicy, ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium, Admission}
	out, err := Generate(opts)
	if err != nil {
		t.Fatalf("generate for the live cluster: %v", err)
	}
	if len(out.Refusals) == 0 {
		t.Fatal("the example cluster has egress-isolated namespaces: the NetworkPolicy layer must refuse them")
	}
	objs := manifests(t, out)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, want := range []string{"NetworkPolicy", "ClusterNetworkPolicy", "AdminNetworkPolicy", "Tier", "GlobalNetworkPolicy", "CiliumClusterwideNetworkPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if kinds[want] == 0 {
			t.Errorf("no %s generated (got %v)", want, kinds)
		}
	}
	apply(t, cp, objs, true) // server-side dry run: validated and admitted, nothing stored
	apply(t, cp, objs, false)
	after := readCluster(t, cp)
	for _, kind := range []string{"NetworkPolicy", "AdminNetworkPolicy"} {
		if kinds[kind] == 0 {
			continue
		}
		var stored int
		switch kind {
		case "NetworkPolicy":
			for _, p := range after.NetworkPolicies {
				if p.Policy.Labels[ManagedByLabel] == ManagedBy {
					stored++
				}
			}
		case "AdminNetworkPolicy":
			for _, p := range after.AdminNetworkPolicies {
				if p.Policy.Labels[ManagedByLabel] == ManagedBy {
					stored++
				}
			}
		}
		if stored != kinds[kind] {
			t.Errorf("the live cluster holds %d generated %ss, want %d", stored, kind, kinds[kind])
		}
	}

	probes := Probes(all)
	checked := append(slices.Clone(all), probes...)
	was, now := audit.Run(before, checked), audit.Run(after, checked)
	index := map[string]int{}
	for i := range was.Subjects {
		index[was.Subjects[i].Ref().String()] = i
	}
	scope := Scope{ExemptNamespaces: opts.ExemptNamespaces}
	var protected int
	for i := range now.Subjects {
		s := &now.Subjects[i]
		j, ok := index[s.Ref().String()]
		if !ok {
			t.Errorf("%s appeared in the cluster", s.Ref())
			continue
		}
		ps := policy.Subject{Namespace: s.Namespace, Labels: s.Meta.Labels, HostNetwork: s.Spec.HostNetwork}
		if scope.Protects(ps) {
			protected++
		}
		for k, ep := range checked {
			v0, v1 := was.Verdict(j, k), now.Verdict(i, k)
			switch {
			case ep.Role == endpoint.Credentials && scope.Protects(ps) && v1.Allowed:
				t.Errorf("%s still reaches %s: %s", s.Ref(), ep, v1.DecidedBy)
			case !v0.Allowed && v1.Allowed:
				t.Errorf("%s was denied %s and is now allowed (%s): generated policies widened egress", s.Ref(), ep, v1.DecidedBy)
			case ep.Role == endpoint.KeepReachable && v0.Allowed && !v1.Allowed:
				t.Errorf("%s could reach %s and is now denied (%s): generated policies broke it", s.Ref(), ep, v1.DecidedBy)
			}
		}
	}
	if protected == 0 {
		t.Fatal("no subject in scope: the check proved nothing")
	}
}

// TestAdmissionPolicyOnTheAPIServer: the generated ValidatingAdmissionPolicy makes the real API
// server reject hostNetwork pods and workloads outside the allowed namespaces and admit them
// inside.
func TestAdmissionPolicyOnTheAPIServer(t *testing.T) {
	cp := liveExample(t)
	ctx := testContext(t)
	opts := DefaultOptions(eps(endpoint.AWS))
	opts.Layers = []Layer{Admission}
	out, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, cp, manifests(t, out), false)
	c := cp.Client("admin")

	hostPod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
	}
	// The policy is enforced once the server has compiled it: wait for the first rejection.
	var err2 error
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		_, err2 = c.CoreV1().Pods("shop").Create(ctx, hostPod("shop", fmt.Sprintf("sniffer-%d", i)), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err2 != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !apierrors.IsInvalid(err2) && !apierrors.IsForbidden(err2) {
		t.Fatalf("a hostNetwork pod in shop was admitted (err %v)", err2)
	}
	if !strings.Contains(err2.Error(), "hostNetwork") {
		t.Errorf("the rejection does not say why: %v", err2)
	}
	if _, err := c.CoreV1().Pods("kube-system").Create(ctx, hostPod("kube-system", "node-agent"), metav1.CreateOptions{}); err != nil {
		t.Errorf("a hostNetwork pod in kube-system (allowed) was rejected: %v", err)
	}
	ordinary := hostPod("shop", "web-ordinary")
	ordinary.Spec.HostNetwork = false
	if _, err := c.CoreV1().Pods("shop").Create(ctx, ordinary, metav1.CreateOptions{}); err != nil {
		t.Errorf("an ordinary pod in shop was rejected: %v", err)
	}
	if err := rejectsHostNetworkDeployment(ctx, c); err != nil {
		t.Error(err)
	}
}

// rejectsHostNetworkDeployment checks the workload policy: a Deployment whose template uses
// hostNetwork is rejected outside the allowed namespaces.
func rejectsHostNetworkDeployment(ctx context.Context, c kubernetes.Interface) error {
	labels := map[string]string{"app": "sniffer"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "sniffer"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	_, err := c.AppsV1().Deployments("shop").Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return fmt.Errorf("a Deployment with a hostNetwork template in shop was admitted")
	}
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
		return fmt.Errorf("a hostNetwork Deployment in shop: unexpected error %w", err)
	}
	return nil
}
