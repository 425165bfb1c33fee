package inventory

import (
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	anpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
)

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

var crdsOnce sync.Once

// cluster returns the shared control plane with every policy CRD installed.
func cluster(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp := controlPlane.Get(t)
	var err error
	crdsOnce.Do(func() {
		err = kubetest.InstallCRDs(context.Background(), cp.Config("admin"), kubetest.AdminNetworkPolicy, kubetest.ClusterNetworkPolicy, kubetest.AWSClusterNetworkPolicy, kubetest.Cilium, kubetest.Calico)
	})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// podOf is a minimal pod.
func podOf(ns, name string, labels map[string]string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

// TestLoadClusterReadsEveryKindPageByPage: a live cluster yields the same kinds as manifests,
// read across many small pages, with pods resolved to their Deployment through the ReplicaSet.
func TestLoadClusterReadsEveryKindPageByPage(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	c := cp.Client("admin")
	const ns = "live-kinds"
	must[*corev1.Namespace](t)(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": "shop"}}}, metav1.CreateOptions{}))
	labels := map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: "5d8f7"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podOf(ns, "", nil, nil).Spec}
	dep := must[*appsv1.Deployment](t)(c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, metav1.CreateOptions{}))
	rs := must[*appsv1.ReplicaSet](t)(c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f7", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr(true)}}},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, metav1.CreateOptions{}))
	const pods = 7
	for i := range pods {
		owner := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true)}
		must[*corev1.Pod](t)(c.CoreV1().Pods(ns).Create(ctx, podOf(ns, "web-5d8f7-"+string(rune('a'+i)), labels, owner), metav1.CreateOptions{}))
	}
	must[*corev1.ServiceAccount](t)(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/web"}}}, metav1.CreateOptions{}))
	must[*networkingv1.NetworkPolicy](t)(c.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-egress"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
	}, metav1.CreateOptions{}))
	anp := must[*anpclient.Clientset](t)(anpclient.NewForConfig(cp.Config("admin")))
	must[*anpv1alpha1.AdminNetworkPolicy](t)(anp.PolicyV1alpha1().AdminNetworkPolicies().Create(ctx, &anpv1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "live-kinds-deny-imds"},
		Spec: anpv1alpha1.AdminNetworkPolicySpec{
			Priority: 10,
			Subject:  anpv1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}},
			Egress: []anpv1alpha1.AdminNetworkPolicyEgressRule{{Name: "imds", Action: anpv1alpha1.AdminNetworkPolicyRuleActionDeny,
				To: []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"169.254.169.254/32"}}}}},
		},
	}, metav1.CreateOptions{}))
	must[*corev1.Node](t)(c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "live-kinds-node"},
		Spec: corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0"}}, metav1.CreateOptions{}))

	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{PageSize: 2, Name: "kubetest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 {
		t.Fatalf("admin read has gaps: %v", inv.Gaps)
	}
	if inv.Cluster != "kubetest" || inv.ServerVersion != kubetest.KubernetesVersion {
		t.Errorf("cluster %q version %q, want kubetest %s", inv.Cluster, inv.ServerVersion, kubetest.KubernetesVersion)
	}
	if n := inv.Namespaces[ns]; n == nil || n.Synthesized || n.Labels["team"] != "shop" || n.Labels[corev1.LabelMetadataName] != ns {
		t.Errorf("namespace %s = %+v, want declared with labels team=shop and %s", ns, n, corev1.LabelMetadataName)
	}
	var got int
	for _, p := range inv.Pods {
		if p.Pod.Namespace != ns {
			continue
		}
		got++
		if p.Workload != (WorkloadRef{Kind: "Deployment", Name: "web"}) {
			t.Errorf("pod %s workload %+v, want Deployment web", p.Pod.Name, p.Workload)
		}
		if len(p.Pod.ManagedFields) != 0 {
			t.Errorf("pod %s keeps managedFields", p.Pod.Name)
		}
	}
	if got != pods {
		t.Errorf("read %d pods in %s across pages of 2, want %d", got, ns, pods)
	}
	var kinds []string
	for _, w := range inv.Workloads {
		if w.Namespace == ns {
			kinds = append(kinds, w.Kind+"/"+w.Name)
		}
	}
	if !slices.Equal(kinds, []string{"Deployment/web"}) {
		t.Errorf("workloads in %s: %v, want only Deployment/web (its ReplicaSet folded in)", ns, kinds)
	}
	if sa := inv.ServiceAccount(ns, "web"); sa == nil || sa.ServiceAccount.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Errorf("service account %s/web not read with its annotation: %+v", ns, sa)
	}
	if !slices.ContainsFunc(inv.NetworkPolicies, func(p *NetworkPolicy) bool { return p.Policy.Namespace == ns && p.Policy.Name == "deny-egress" }) {
		t.Error("NetworkPolicy deny-egress not read")
	}
	if !slices.ContainsFunc(inv.AdminNetworkPolicies, func(p *AdminNetworkPolicy) bool { return p.Policy.Name == "live-kinds-deny-imds" }) {
		t.Error("AdminNetworkPolicy not read")
	}
	if !slices.ContainsFunc(inv.Nodes, func(n *Node) bool { return n.ProviderID == "aws:///eu-west-1a/i-0123456789abcdef0" }) {
		t.Errorf("node provider ID not read: %+v", inv.Nodes)
	}
}

// TestLoadClusterForbiddenIsAGap: a resource the user may not list is a gap naming the resource
// and what it leaves unchecked; the rest is read; nodes are optional (a warning).
func TestLoadClusterForbiddenIsAGap(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	c := cp.Client("admin")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "live-partial"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "replicationcontrollers"}, Verbs: []string{"list"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: []string{"list"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"list"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list"}},
		{APIGroups: []string{"policy.networking.k8s.io"}, Resources: []string{"adminnetworkpolicies", "baselineadminnetworkpolicies", "clusternetworkpolicies"}, Verbs: []string{"list"}},
		{APIGroups: []string{"projectcalico.org", "crd.projectcalico.org"}, Resources: []string{"tiers", "globalnetworkpolicies", "networkpolicies", "globalnetworksets", "networksets"}, Verbs: []string{"list"}},
		{APIGroups: []string{"cilium.io"}, Resources: []string{"ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"amazon-vpc-cni", "cilium-config", "antrea-config"}, Verbs: []string{"get"}},
		{APIGroups: []string{"networking.k8s.aws"}, Resources: []string{"clusternetworkpolicies"}, Verbs: []string{"list"}},
	}}
	must[*rbacv1.ClusterRole](t)(c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}))
	must[*rbacv1.ClusterRoleBinding](t)(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "live-partial"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "viewer"}},
	}, metav1.CreateOptions{}))
	t.Cleanup(func() {
		_ = c.RbacV1().ClusterRoleBindings().Delete(context.Background(), "live-partial", metav1.DeleteOptions{})
	})

	var inv *Inventory
	// RBAC changes reach the authorizer's cache within moments: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		inv, err = LoadCluster(ctx, cp.Config("viewer"), ClusterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(inv.Gaps, func(g Gap) bool { return g.Resource == "namespaces" }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var resources []string
	for _, g := range inv.Gaps {
		resources = append(resources, g.Resource)
		if !strings.HasPrefix(g.Reason, "forbidden: ") || g.Affects == "" {
			t.Errorf("gap %+v: want a forbidden reason and what it affects", g)
		}
	}
	if want := []string{"serviceaccounts", "pods"}; !slices.Equal(resources, want) {
		t.Errorf("gaps for %v, want %v", resources, want)
	}
	if !slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.HasPrefix(w, "nodes could not be read (forbidden)") }) {
		t.Errorf("no warning about unreadable nodes in %q", inv.Warnings)
	}
	if len(inv.Namespaces) == 0 {
		t.Error("namespaces were readable but none was read")
	}
}

// TestLoadClusterCalicoAndCilium: Calico tiers, policies and network sets and Cilium policies
// are read from the cluster through the same decoder as manifests, with no gap.
func TestLoadClusterCalicoAndCilium(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	objs := must[[]*unstructured.Unstructured](t)(kubetest.Decode([]byte(`apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: live-security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: live-security.deny-imds}
spec:
  tier: live-security
  selector: all()
  types: [Egress]
  egress:
  - action: Deny
    protocol: TCP
    destination: {nets: [169.254.169.254/32]}
  - action: Pass
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: live-deny-imds}
spec:
  endpointSelector: {}
  enableDefaultDeny: {egress: false, ingress: false}
  egressDeny:
  - toCIDR: [169.254.169.254/32]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: live-metadata-endpoints
  labels: {role: metadata}
spec:
  nets: [169.254.169.254/32, "fd00:ec2::254/128"]
---
apiVersion: v1
kind: Namespace
metadata: {name: live-calico}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: external-database
  namespace: live-calico
  labels: {role: db}
spec:
  nets: [198.51.100.0/28, 203.0.113.0/24]
  allowedEgressDomains: [db.example.com]
`)))
	applier := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin")))
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}

	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 {
		t.Errorf("gaps %v, want none", inv.Gaps)
	}
	if !slices.ContainsFunc(inv.CalicoTiers, func(tr *CalicoTier) bool { return tr.Tier.Name == "live-security" }) {
		t.Error("Calico Tier not read")
	}
	if !slices.ContainsFunc(inv.CalicoGlobalNetworkPolicies, func(p *CalicoGlobalNetworkPolicy) bool { return p.Policy.Name == "live-security.deny-imds" }) {
		t.Error("Calico GlobalNetworkPolicy not read")
	}
	if !slices.ContainsFunc(inv.CiliumClusterwideNetworkPolicies, func(p *CiliumClusterwideNetworkPolicy) bool { return p.Policy.Name == "live-deny-imds" }) {
		t.Error("CiliumClusterwideNetworkPolicy not read")
	}
	i := slices.IndexFunc(inv.CalicoGlobalNetworkSets, func(g *CalicoGlobalNetworkSet) bool { return g.Set.Name == "live-metadata-endpoints" })
	if i < 0 {
		t.Errorf("Calico GlobalNetworkSet not read: %d read", len(inv.CalicoGlobalNetworkSets))
	} else if g := inv.CalicoGlobalNetworkSets[i].Set; g.Namespace != "" || g.Labels["role"] != "metadata" ||
		!slices.Equal(g.Spec.Nets, []string{"169.254.169.254/32", "fd00:ec2::254/128"}) || len(g.ManagedFields) != 0 {
		t.Errorf("Calico GlobalNetworkSet read as namespace %q, labels %v, nets %v, %d managedFields", g.Namespace, g.Labels, g.Spec.Nets, len(g.ManagedFields))
	}
	i = slices.IndexFunc(inv.CalicoNetworkSets, func(n *CalicoNetworkSet) bool { return n.Set.Name == "external-database" })
	if i < 0 {
		t.Errorf("Calico NetworkSet not read: %d read", len(inv.CalicoNetworkSets))
	} else if n := inv.CalicoNetworkSets[i].Set; n.Namespace != "live-calico" || n.Labels["role"] != "db" ||
		!slices.Equal(n.Spec.Nets, []string{"198.51.100.0/28", "203.0.113.0/24"}) || !slices.Equal(n.Spec.AllowedEgressDomains, []string{"db.example.com"}) {
		t.Errorf("Calico NetworkSet read as namespace %q, labels %v, nets %v, domains %v", n.Namespace, n.Labels, n.Spec.Nets, n.Spec.AllowedEgressDomains)
	}
	if ns := inv.Namespaces["live-calico"]; ns == nil || ns.Synthesized {
		t.Errorf("namespace live-calico = %+v, want read from the cluster", ns)
	}
}

// loadAsAuditor binds the shipped audit ClusterRole (deploy/rbac) to the user "auditor" and
// reads the cluster as that user, retrying until the binding reaches the authorizer (it leaves
// no gap) or 30 seconds have passed.
func loadAsAuditor(t *testing.T, cp *kubetest.ControlPlane) *Inventory {
	t.Helper()
	ctx := testContext(t)
	objs := must[[]*unstructured.Unstructured](t)(kubetest.DecodeFiles("../../deploy/rbac/audit-clusterrole.yaml"))
	objs = append(objs, must[[]*unstructured.Unstructured](t)(kubetest.Decode([]byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: imdsguard-audit}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: imdsguard-audit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: auditor}]
`)))...)
	if err := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin"))).Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		inv, err := LoadCluster(ctx, cp.Config("auditor"), ClusterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Gaps) == 0 || time.Now().After(deadline) {
			return inv
		}
		time.Sleep(200 * time.Millisecond) // RBAC reaches the authorizer's cache within moments
	}
}

// TestLoadClusterAuditClusterRoleIsEnough: the shipped least-privilege ClusterRole reads
// everything: no gap, no warning about nodes.
func TestLoadClusterAuditClusterRoleIsEnough(t *testing.T) {
	inv := loadAsAuditor(t, cluster(t))
	if len(inv.Gaps) != 0 {
		t.Errorf("the audit ClusterRole leaves gaps: %v", inv.Gaps)
	}
	if slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.Contains(w, "forbidden") }) {
		t.Errorf("the audit ClusterRole leaves forbidden reads: %q", inv.Warnings)
	}
}

// TestLoadClusterAdminNetworkPolicyVersions: a cluster without the ANP group is complete (a
// warning says none can exist); one serving the group at another version is not.
func TestLoadClusterAdminNetworkPolicyVersions(t *testing.T) {
	ctx := testContext(t)
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()

	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 || !slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.Contains(w, "AdminNetworkPolicy CRDs not installed") }) {
		t.Fatalf("without ANP CRDs: gaps %v, warnings %q; want no gap and a warning", inv.Gaps, inv.Warnings)
	}

	files := must[[]string](t)(kubetest.CRDFiles(kubetest.AdminNetworkPolicy))
	objs := must[[]*unstructured.Unstructured](t)(kubetest.DecodeFiles(files...))
	dir := t.TempDir()
	var paths []string
	for _, o := range objs {
		versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
		for _, v := range versions {
			v.(map[string]any)["name"] = "v1alpha2"
		}
		if err := unstructured.SetNestedSlice(o.Object, versions, "spec", "versions"); err != nil {
			t.Fatal(err)
		}
		data := must[[]byte](t)(o.MarshalJSON())
		path := dir + "/" + o.GetName() + ".json"
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	if err := kubetest.InstallCRDFiles(ctx, cp.Config("admin"), paths...); err != nil {
		t.Fatal(err)
	}
	inv, err = LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 2 || !strings.Contains(inv.Gaps[0].Reason, "only at v1alpha2") {
		t.Fatalf("with ANP served only at v1alpha2: gaps %v, want two naming the version", inv.Gaps)
	}
}

// TestLoadClusterErrors: a server that cannot be used at all is an error that says why, within
// the request timeout.
func TestLoadClusterErrors(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)

	closed := must[net.Listener](t)(net.Listen("tcp", "127.0.0.1:0"))
	closedAddr := closed.Addr().String()
	_ = closed.Close()
	// A server that accepts connections and never answers.
	silent := must[net.Listener](t)(net.Listen("tcp", "127.0.0.1:0"))
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	badToken := cp.Config("admin")
	badToken.BearerToken = "expired-or-revoked"

	tests := []struct {
		name string
		cfg  *rest.Config
		want string
	}{
		{"unreachable", &rest.Config{Host: "https://" + closedAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, Timeout: 5 * time.Second}, "cannot reach the API server"},
		{"bad token", badToken, "rejected the credentials (401 Unauthorized)"},
		{"silent server", &rest.Config{Host: "https://" + silent.Addr().String(), TLSClientConfig: rest.TLSClientConfig{Insecure: true}, Timeout: time.Second}, "did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := time.Now()
			_, err := LoadCluster(ctx, tt.cfg, ClusterOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if d := time.Since(started); d > 20*time.Second {
				t.Errorf("took %s: time-outs must bound the failure", d)
			}
		})
	}
}
