package inventory

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/imdsguard/imdsguard/internal/kubetest"
)

// TestLoadEngineConfig: the ConfigMaps that configure a policy engine, Tigera operator
// Installations and EKS Auto Mode NodeClasses are read; every other ConfigMap is skipped as
// before, even one that would not decode.
func TestLoadEngineConfig(t *testing.T) {
	inv := loadString(t, "engines.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: amazon-vpc-cni, namespace: kube-system}
data: {enable-network-policy-controller: "true"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config}
data: {enable-policy: never}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings, namespace: kube-system}
data: {password: 42}
---
apiVersion: operator.tigera.io/v1
kind: Installation
metadata: {name: default, namespace: ignored}
spec:
  variant: Calico
  cni: {type: AmazonVPC}
  calicoNetwork: {linuxDataplane: BPF}
---
apiVersion: eks.amazonaws.com/v1
kind: NodeClass
metadata: {name: deny}
spec: {networkPolicy: DefaultDeny, networkPolicyEventLogs: Enabled, role: MyNodeRole}
---
apiVersion: karpenter.k8s.aws/v1
kind: NodeClass
metadata: {name: other-group}
`)
	if len(inv.Problems) != 0 {
		t.Fatalf("problems: %v", inv.Problems)
	}
	cm := inv.ConfigMap("kube-system", "amazon-vpc-cni")
	if cm == nil || cm.Data["enable-network-policy-controller"] != "true" || cm.Source.Document != 1 {
		t.Errorf("amazon-vpc-cni = %+v, want read with its data from document 1", cm)
	}
	if len(inv.EngineConfigMaps) != 1 {
		t.Errorf("engine ConfigMaps %v, want only kube-system/amazon-vpc-cni (cilium-config without a namespace is in default)", inv.EngineConfigMaps)
	}
	var skipped []string
	for _, s := range inv.Skipped {
		skipped = append(skipped, s.Kind+": "+s.Reason)
	}
	want := []string{"ConfigMap: kind not evaluated by imdsguard", "ConfigMap: kind not evaluated by imdsguard", "NodeClass: kind not evaluated by imdsguard"}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	if len(inv.CalicoInstallations) != 1 {
		t.Fatalf("%d Installations, want 1", len(inv.CalicoInstallations))
	}
	in := inv.CalicoInstallations[0].Installation
	if in.Namespace != "" || in.Spec.Variant != "Calico" || in.Spec.CNI == nil || in.Spec.CNI.Type != "AmazonVPC" ||
		in.Spec.CalicoNetwork == nil || in.Spec.CalicoNetwork.LinuxDataplane != "BPF" {
		t.Errorf("Installation read as %+v", in)
	}
	if len(inv.EKSNodeClasses) != 1 || inv.EKSNodeClasses[0].NodeClass.Spec.NetworkPolicy != "DefaultDeny" {
		t.Errorf("NodeClasses %+v, want one with networkPolicy DefaultDeny", inv.EKSNodeClasses)
	}
}

// TestLoadClusterEngineConfigMaps: a live cluster's engine ConfigMaps are read by name; one the
// credentials may not get is a gap naming it, and the others are still read.
func TestLoadClusterEngineConfigMaps(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	objs := must[[]*unstructured.Unstructured](t)(kubetest.Decode([]byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config, namespace: kube-system}
data: {enable-policy: always}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: antrea-config, namespace: kube-system}
data: {antrea-controller.conf: "featureGates: {AdminNetworkPolicy: true}"}
`)))
	applier := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin")))
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	c := cp.Client("admin")
	t.Cleanup(func() {
		for _, name := range []string{"cilium-config", "antrea-config"} {
			_ = c.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})

	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm := inv.ConfigMap("kube-system", "cilium-config"); cm == nil || cm.Data["enable-policy"] != "always" {
		t.Errorf("cilium-config = %+v, want read", cm)
	}
	if inv.ConfigMap("kube-system", "amazon-vpc-cni") != nil {
		t.Error("amazon-vpc-cni read, but it does not exist")
	}

	// A user who may get cilium-config only.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "engine-partial"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cilium-config"}, Verbs: []string{"get"}},
	}}
	must[*rbacv1.Role](t)(c.RbacV1().Roles("kube-system").Create(ctx, role, metav1.CreateOptions{}))
	must[*rbacv1.RoleBinding](t)(c.RbacV1().RoleBindings("kube-system").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "engine-partial"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "nobody"}},
	}, metav1.CreateOptions{}))
	t.Cleanup(func() {
		_ = c.RbacV1().RoleBindings("kube-system").Delete(context.Background(), "engine-partial", metav1.DeleteOptions{})
		_ = c.RbacV1().Roles("kube-system").Delete(context.Background(), "engine-partial", metav1.DeleteOptions{})
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if inv, err = LoadCluster(ctx, cp.Config("nobody"), ClusterOptions{}); err != nil {
			t.Fatal(err)
		}
		if inv.ConfigMap("kube-system", "cilium-config") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // RBAC reaches the authorizer's cache within moments
	}
	if inv.ConfigMap("kube-system", "cilium-config") == nil {
		t.Error("cilium-config not read with get permission on it")
	}
	var engineGaps []string
	for _, g := range inv.Gaps {
		if strings.HasPrefix(g.Resource, "configmaps ") {
			engineGaps = append(engineGaps, g.Resource)
			if !strings.HasPrefix(g.Reason, "forbidden: ") || !strings.Contains(g.Affects, "policy engine") {
				t.Errorf("gap %+v: want a forbidden reason and what it affects", g)
			}
		}
	}
	// amazon-vpc-cni does not exist, but only a user who may get it can learn that.
	if want := []string{"configmaps kube-system/amazon-vpc-cni", "configmaps kube-system/antrea-config"}; !slices.Equal(engineGaps, want) {
		t.Errorf("ConfigMap gaps %v, want %v", engineGaps, want)
	}
}

// TestFromObjectsEngineConfig: objects from an informer cache keep only the engine ConfigMaps,
// and decode Installations and NodeClasses as manifests do.
func TestFromObjectsEngineConfig(t *testing.T) {
	nodeClass := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "eks.amazonaws.com/v1", "kind": "NodeClass",
		"metadata": map[string]any{"name": "default"},
		"spec":     map[string]any{"networkPolicy": "DefaultAllow"},
	}}
	inv, err := FromObjects([]runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cilium-config"}, Data: map[string]string{"enable-policy": "never"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}, Data: map[string]string{"Corefile": "."}},
		nodeClass,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.EngineConfigMaps) != 1 || inv.ConfigMap("kube-system", "cilium-config") == nil {
		t.Errorf("engine ConfigMaps %v, want only kube-system/cilium-config", inv.EngineConfigMaps)
	}
	if len(inv.EKSNodeClasses) != 1 || inv.EKSNodeClasses[0].NodeClass.Spec.NetworkPolicy != "DefaultAllow" {
		t.Errorf("NodeClasses %+v, want default with DefaultAllow", inv.EKSNodeClasses)
	}
}
