package controller

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

func testOptions() *Options {
	o := DefaultOptions(endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
	return &o
}

// Builders with modifiers, for the objects a decision reads.

func namespace(name string, labels ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	for i := 0; i+1 < len(labels); i += 2 {
		ns.Labels[labels[i]] = labels[i+1]
	}
	return ns
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}}}
}

func denyAllEgress(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
	}
}

func ingressOnly(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

func baselineDenyEgress() *anpv1alpha1.BaselineAdminNetworkPolicy {
	return &anpv1alpha1.BaselineAdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: anpv1alpha1.BaselineAdminNetworkPolicySpec{
			Subject: anpv1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []anpv1alpha1.BaselineAdminNetworkPolicyEgressRule{{
				Name: "deny-all", Action: anpv1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				To: []anpv1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"0.0.0.0/0"}}},
			}},
		},
	}
}

// generated is what `imdsguard generate --layer networkpolicy` produces for one namespace.
func generated(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	o := testOptions()
	g := o.generateOptions(generate.NetworkPolicy)
	inv, err := inventory.FromObjects([]runtime.Object{namespace(ns)})
	if err != nil {
		t.Fatal(err)
	}
	g.Inventory = inv
	out, err := generate.Generate(g)
	if err != nil {
		t.Fatal(err)
	}
	u, err := toUnstructured(out.Manifests[0].Object)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDecideNamespace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ns         *corev1.Namespace
		objs       []runtime.Object
		want       State
		reasonHas  []string
		wantPolicy bool
	}{
		{name: "a namespace without egress policies is protected with generate's policy",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web")}, want: Protected, wantPolicy: true},
		{name: "an ingress-only NetworkPolicy isolates no egress: protected",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web"), ingressOnly("shop", "ingress")}, want: Protected, wantPolicy: true},
		{name: "a namespace listed as exempt is exempt",
			ns: namespace("kube-system"), want: Exempt, reasonHas: []string{"listed"}},
		{name: "a namespace labelled exempt is exempt",
			ns: namespace("legacy", "imdsguard.io/metadata-access", "allow"), want: Exempt, reasonHas: []string{"imdsguard.io/metadata-access=allow"}},
		{name: "another value of the exemption label does not exempt",
			ns: namespace("legacy", "imdsguard.io/metadata-access", "deny"), want: Protected, wantPolicy: true},
		{name: "an egress NetworkPolicy isolating pods refuses the namespace: the policy would widen their egress",
			ns: namespace("payments"), objs: []runtime.Object{pod("payments", "checkout"), denyAllEgress("payments", "default-deny-egress")},
			want: Refused, reasonHas: []string{"payments/default-deny-egress", "widen", "adminnetworkpolicy"}},
		{name: "an egress NetworkPolicy refuses the namespace even before it has pods",
			ns: namespace("empty"), objs: []runtime.Object{denyAllEgress("empty", "default-deny-egress")},
			want: Refused, reasonHas: []string{"every pod they will select"}},
		{name: "a NetworkPolicy with the managed name that imdsguard does not own refuses the namespace",
			ns: namespace("shop"), objs: []runtime.Object{ingressOnly("shop", generate.PolicyName)},
			want: Refused, reasonHas: []string{"did not generate"}},
		{name: "a BaselineAdminNetworkPolicy restricting egress refuses the namespace",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web"), baselineDenyEgress()},
			want: Refused, reasonHas: []string{"BaselineAdminNetworkPolicy default"}},
		{name: "a Baseline tier ClusterNetworkPolicy restricting egress refuses the namespace, as the informer cache hands it over (unstructured)",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web"), clusterNetworkPolicy("policy.networking.k8s.io/v1beta1", "Baseline")},
			want: Refused, reasonHas: []string{"Baseline tier ClusterNetworkPolicy cnp-deny-all"}},
		{name: "an AWS Baseline tier ClusterNetworkPolicy refuses the namespace too",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web"), clusterNetworkPolicy("networking.k8s.aws/v1alpha1", "Baseline")},
			want: Refused, reasonHas: []string{"Baseline tier ClusterNetworkPolicy cnp-deny-all"}},
		{name: "an Admin tier ClusterNetworkPolicy, which no NetworkPolicy overrides, does not refuse the namespace",
			ns: namespace("shop"), objs: []runtime.Object{pod("shop", "web"), clusterNetworkPolicy("policy.networking.k8s.io/v1alpha2", "Admin")},
			want: Protected, wantPolicy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideNamespace(tc.ns, tc.objs, testOptions())
			if d.State != tc.want {
				t.Fatalf("state %s (%s), want %s", d.State, d.Reason, tc.want)
			}
			for _, s := range tc.reasonHas {
				if !strings.Contains(d.Reason, s) {
					t.Errorf("reason %q does not mention %q", d.Reason, s)
				}
			}
			if (d.Desired != nil) != tc.wantPolicy {
				t.Fatalf("desired policy %v, want one: %v", d.Desired, tc.wantPolicy)
			}
			if d.Desired != nil {
				if diff := cmp.Diff(generated(t, tc.ns.Name).Object, d.Desired.Object); diff != "" {
					t.Errorf("the managed policy is not generate's (-generate +controller):\n%s", diff)
				}
			}
		})
	}
}

func TestDecideNamespaceOwnPolicyIsNotAReasonToRefuse(t *testing.T) {
	own := &networkingv1.NetworkPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(generated(t, "shop").Object, own); err != nil {
		t.Fatal(err)
	}
	d := DecideNamespace(namespace("shop"), []runtime.Object{pod("shop", "web"), own}, testOptions())
	if d.State != Protected {
		t.Fatalf("state %s (%s), want protected", d.State, d.Reason)
	}
}

func unstructuredObj(apiVersion, kind, ns, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "spec": spec}}
	u.SetName(name)
	u.SetNamespace(ns)
	u.SetLabels(labels)
	return u
}

func TestPlan(t *testing.T) {
	owned := map[string]string{generate.ManagedByLabel: generate.ManagedBy}
	desired := unstructuredObj("networking.k8s.io/v1", "NetworkPolicy", "shop", generate.PolicyName, owned,
		map[string]any{"policyTypes": []any{"Egress"}, "egress": []any{map[string]any{"ports": []any{map[string]any{"port": int64(53)}}}}})
	defaulted := desired.DeepCopy()
	defaulted.SetResourceVersion("7")
	_ = unstructured.SetNestedField(defaulted.Object, map[string]any{}, "spec", "podSelector")
	edited := desired.DeepCopy()
	_ = unstructured.SetNestedSlice(edited.Object, []any{map[string]any{}}, "spec", "egress")
	widened := desired.DeepCopy()
	_ = unstructured.SetNestedSlice(widened.Object, []any{map[string]any{"ports": []any{map[string]any{"port": int64(53)}}}, map[string]any{}}, "spec", "egress")
	relabelled := desired.DeepCopy()
	relabelled.SetLabels(map[string]string{"team": "shop"})
	foreign := relabelled.DeepCopy()

	for _, tc := range []struct {
		name             string
		desired, current *unstructured.Unstructured
		want             Action
	}{
		{"a missing managed policy is applied", desired, nil, Apply},
		{"a managed policy as desired, with server defaults, is left alone", desired, defaulted, None},
		{"a managed policy whose rule was edited is applied again", desired, edited, Apply},
		{"a managed policy with an extra rule is applied again", desired, widened, Apply},
		{"a policy of the same name without the ownership label is never written", desired, foreign, None},
		{"a managed policy where none may exist is deleted", nil, desired, Delete},
		{"a foreign policy where none may exist is not deleted", nil, foreign, None},
		{"nothing desired and nothing there: nothing to do", nil, nil, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Plan(tc.desired, tc.current); got.Action != tc.want {
				t.Errorf("Plan = %q (%s), want %q", got.Action, got.Why, tc.want)
			}
		})
	}
}

func TestDecideCluster(t *testing.T) {
	o := testOptions()
	d, err := DecideCluster(ModeAdminNetworkPolicy, []*corev1.Namespace{
		namespace("shop"), namespace("legacy", "imdsguard.io/metadata-access", "allow"), namespace("kube-system"), namespace("default"),
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kube-system", "legacy"}, d.Exempt); diff != "" {
		t.Errorf("exempt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default", "shop"}, d.Protected); diff != "" {
		t.Errorf("protected (-want +got):\n%s", diff)
	}
	if len(d.Desired) != 1 || d.Desired[0].GetKind() != "AdminNetworkPolicy" {
		t.Fatalf("desired %v, want one AdminNetworkPolicy", d.Desired)
	}
	values, _, _ := unstructured.NestedSlice(d.Desired[0].Object, "spec", "subject", "namespaces", "matchExpressions")
	if diff := cmp.Diff([]any{map[string]any{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []any{"kube-system", "legacy"}}}, values); diff != "" {
		t.Errorf("subject (-want +got):\n%s", diff)
	}

	for mode, kinds := range map[Mode][]string{
		ModeCalico: {"Tier", "GlobalNetworkPolicy"},
		ModeCilium: {"CiliumClusterwideNetworkPolicy"},
	} {
		d, err := DecideCluster(mode, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range d.Desired {
			got = append(got, u.GetKind())
			if !Owned(u) {
				t.Errorf("%s: %s lacks the ownership label", mode, objectName(u))
			}
		}
		if diff := cmp.Diff(kinds, got); diff != "" {
			t.Errorf("%s kinds (-want +got):\n%s", mode, diff)
		}
	}
}

func TestChooseMode(t *testing.T) {
	calico := schema.GroupVersion{Group: "projectcalico.org", Version: "v3"}
	calicoStorage := schema.GroupVersion{Group: "crd.projectcalico.org", Version: "v1"}
	for _, tc := range []struct {
		name   string
		want   Mode
		served Served
		got    Mode
	}{
		{"auto prefers ClusterNetworkPolicy over everything", ModeAuto, Served{ClusterNetworkPolicy: cnpGroupVersions[0], AdminNetworkPolicy: true, Calico: calico, Cilium: true}, ModeClusterNetworkPolicy},
		{"auto prefers AdminNetworkPolicy over Calico and Cilium", ModeAuto, Served{AdminNetworkPolicy: true, Calico: calico, Cilium: true}, ModeAdminNetworkPolicy},
		{"auto prefers Calico over Cilium", ModeAuto, Served{Calico: calico, Cilium: true}, ModeCalico},
		{"auto does not write Calico's storage CRDs", ModeAuto, Served{Calico: calicoStorage}, ModeNetworkPolicy},
		{"auto takes Cilium without the others", ModeAuto, Served{Cilium: true}, ModeCilium},
		{"auto falls back to NetworkPolicy", ModeAuto, Served{}, ModeNetworkPolicy},
		{"an explicit mode is kept", ModeNetworkPolicy, Served{AdminNetworkPolicy: true}, ModeNetworkPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := ChooseMode(tc.want, tc.served, nil)
			if err != nil || got != tc.got || why == "" {
				t.Errorf("ChooseMode = %s (%q, %v), want %s with a reason", got, why, err, tc.got)
			}
		})
	}
	// With the engine known, auto skips what it would not enforce, and a mode nothing would
	// enforce is refused.
	calico332 := &policy.Enforcement{Engine: "Calico v3.32.1", Semantics: policy.SemanticsCalico, Kinds: map[policy.Kind]policy.KindEnforcement{
		policy.KindNetworkPolicy: {Enforced: true}, policy.KindCalico: {Enforced: true},
		policy.KindAdminNetworkPolicy: {Reason: "Calico v3.32 enforces ClusterNetworkPolicy instead"}}}
	got, why, err := ChooseMode(ModeAuto, Served{AdminNetworkPolicy: true, Calico: calico}, calico332)
	if err != nil || got != ModeCalico || !strings.Contains(why, "Calico v3.32 enforces ClusterNetworkPolicy instead") {
		t.Errorf("auto on Calico v3.32 with ANP served = %s (%q, %v), want calico, saying why not adminnetworkpolicy", got, why, err)
	}
	calico332.Kinds[policy.KindClusterNetworkPolicy] = policy.KindEnforcement{Enforced: true}
	if got, _, err := ChooseMode(ModeAuto, Served{ClusterNetworkPolicy: cnpGroupVersions[1], AdminNetworkPolicy: true, Calico: calico}, calico332); err != nil || got != ModeClusterNetworkPolicy {
		t.Errorf("auto on Calico v3.32 with ClusterNetworkPolicy served = %s (%v), want clusternetworkpolicy", got, err)
	}
	if _, _, err := ChooseMode(ModeAdminNetworkPolicy, Served{AdminNetworkPolicy: true}, calico332); err == nil ||
		!strings.Contains(err.Error(), "Calico v3.32 enforces ClusterNetworkPolicy instead") || !strings.Contains(err.Error(), "(clusternetworkpolicy, calico, networkpolicy)") {
		t.Errorf("mode adminnetworkpolicy on Calico v3.32: %v, want a refusal naming the reason and the modes it enforces", err)
	}
	vpcOff := &policy.Enforcement{Engine: "AWS VPC CNI", Semantics: policy.SemanticsKubernetes, Kinds: map[policy.Kind]policy.KindEnforcement{
		policy.KindNetworkPolicy: {Reason: "the network policy agent is off"}}}
	if _, _, err := ChooseMode(ModeAuto, Served{}, vpcOff); err == nil || !strings.Contains(err.Error(), "the network policy agent is off") {
		t.Errorf("auto with nothing enforced: %v, want an error naming why", err)
	}
	if err := modeServed(ModeCalico, Served{Calico: calicoStorage}); err == nil {
		t.Error("mode calico accepted on a cluster without projectcalico.org/v3")
	}
}

func TestStatusConfigMapData(t *testing.T) {
	s := NewStatus(ModeNetworkPolicy)
	s.Set("shop", Entry{State: Protected})
	s.Set("payments", Entry{State: Refused, Reason: "egress NetworkPolicies govern this namespace"})
	s.Set("kube-system", Entry{State: Exempt, Reason: "listed"})
	s.Set("gone", Entry{State: Protected})
	s.Forget("gone")
	data, version := s.ConfigMapData()
	want := map[string]string{
		"summary":   "mode: networkpolicy\nprotected: 1\nexempt: 1\nrefused: 1\n",
		"protected": "shop\n",
		"exempt":    "kube-system\n",
		"refused":   "payments: egress NetworkPolicies govern this namespace\n",
	}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("ConfigMap data (-want +got):\n%s", diff)
	}
	s.Set("shop", Entry{State: Protected})
	if _, again := s.ConfigMapData(); again != version {
		t.Errorf("setting an unchanged entry changed the version from %d to %d", version, again)
	}
}

func TestParseExemptLabel(t *testing.T) {
	for in, ok := range map[string]bool{"imdsguard.io/metadata-access=allow": true, "": true, "team=": true, "novalue": false, "bad key=x": false} {
		if _, _, err := ParseExemptLabel(in); (err == nil) != ok {
			t.Errorf("ParseExemptLabel(%q) error %v, want ok %v", in, err, ok)
		}
	}
}

// clusterNetworkPolicy is a ClusterNetworkPolicy denying all IPv4 egress of every namespace, as
// the cache holds custom resources: unstructured.
func clusterNetworkPolicy(apiVersion, tier string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": "ClusterNetworkPolicy",
		"metadata": map[string]any{"name": "cnp-deny-all"},
		"spec": map[string]any{
			"tier": tier, "priority": int64(10),
			"subject": map[string]any{"namespaces": map[string]any{}},
			"egress": []any{map[string]any{"name": "deny-all", "action": "Deny",
				"to": []any{map[string]any{"networks": []any{"10.0.0.0/8"}}}}},
		},
	}}
	return u
}
