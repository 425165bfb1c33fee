package agent_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/sandbox"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The agent's service account as deploy/agent/rbac.yaml creates it, and the user extra that
// carries the node of the pod its token is bound to (KEP-4193, ServiceAccountTokenPodNodeInfo).
const (
	agentServiceAccount = "system:serviceaccount:imdsguard-system:imdsguard-agent"
	nodeNameExtra       = "authentication.kubernetes.io/node-name"
)

// installAgentAccess applies deploy/agent's RBAC and node restriction policy.
func installAgentAccess(t *testing.T, ctx context.Context, cp *kubetest.ControlPlane) {
	t.Helper()
	objs, err := kubetest.DecodeFiles(filepath.Join("..", "..", "deploy", "agent", "rbac.yaml"), filepath.Join("..", "..", "deploy", "agent", "node-restriction.yaml"))
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
}

// asAgent returns a client acting as the agent's service account, with its pod on node (no
// node-name extra when node is empty), impersonated by the admin.
func asAgent(t *testing.T, cp *kubetest.ControlPlane, node string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config("admin"))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentServiceAccount}
	if node != "" {
		cfg.Impersonate.Extra = map[string][]string{nodeNameExtra: {node}}
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requireImpersonation checks that the harness's admin may impersonate the agent's service
// account with a node-name extra (it is in system:masters): otherwise every denial below would
// prove nothing.
func requireImpersonation(t *testing.T, ctx context.Context, c kubernetes.Interface) {
	t.Helper()
	for _, attrs := range []authorizationv1.ResourceAttributes{
		{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "imdsguard-system", Name: "imdsguard-agent"},
		{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: nodeNameExtra},
	} {
		review, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !review.Status.Allowed {
			t.Fatalf("the test admin may not %s %s/%s: %s", attrs.Verb, attrs.Resource, attrs.Subresource, review.Status.Reason)
		}
	}
}

// testNode is a Node with labels, annotations and taints of others, and the startup taint.
func testNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{"topology.kubernetes.io/zone": "eu-west-1a"},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec: corev1.NodeSpec{
			ProviderID: "aws:///eu-west-1a/i-0sandbox",
			Taints: []corev1.Taint{
				{Key: startupTaint.Key, Effect: startupTaint.Effect},
				{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
			},
		},
	}
}

func mergePatch(t *testing.T, ctx context.Context, c kubernetes.Interface, node, patch string) error {
	t.Helper()
	_, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// withoutStartupTaint returns the taints but the startup taint.
func withoutStartupTaint(taints []corev1.Taint) []corev1.Taint {
	return slices.DeleteFunc(slices.Clone(taints), func(t corev1.Taint) bool { return t.Key == startupTaint.Key })
}

// TestNodeRestrictionPolicyKeepsTheAgentToItsNode applies deploy/agent's RBAC and
// ValidatingAdmissionPolicy to a real API server and acts as the agent's service account with its
// pod on node-a: publishing its state on node-a and removing its startup taint there succeed;
// the same on node-b, any label, any other annotation, any other taint, any other spec field,
// and a token without the node-name extra are denied. Another service account bound to the same
// ClusterRole may still patch node-b: the denials come from the policy, not from RBAC.
func TestNodeRestrictionPolicyKeepsTheAgentToItsNode(t *testing.T) {
	t.Parallel()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	admin := cp.Client("admin")
	requireImpersonation(t, ctx, admin)
	installAgentAccess(t, ctx, cp)
	id := suffix()
	nodeA, nodeB := "node-a-"+id, "node-b-"+id
	var created *corev1.Node
	for _, n := range []string{nodeA, nodeB} {
		c, err := admin.CoreV1().Nodes().Create(ctx, testNode(n), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n == nodeA {
			created = c // with the taints the API server's admission added
		}
	}
	agentA := asAgent(t, cp, nodeA)
	state := `{"metadata":{"annotations":{"imdsguard.io/agent-state":"{}"}}}`

	// The policy takes effect once the API server has loaded it: until then RBAC alone would
	// let the agent write node-b.
	eventually(t, "the policy denying the agent node-b", 30*time.Second, func() bool {
		return apierrors.IsForbidden(mergePatch(t, ctx, agentA, nodeB, state))
	})

	k := &agent.Kube{Client: agentA, NodeName: nodeA}
	published := layer.AgentState{Node: nodeA, Mode: "enforce", Synced: time.Now().UTC().Truncate(time.Second), Generation: 1}
	if err := k.PublishState(ctx, published); err != nil {
		t.Fatalf("publish on its own node: %v", err)
	}
	removed, err := k.RemoveTaint(ctx, nodeA, startupTaint)
	if err != nil || !removed {
		t.Fatalf("remove the startup taint from its own node: %v, %v", removed, err)
	}
	other := published
	other.Node = nodeB
	if err := k.PublishState(ctx, other); err == nil || !strings.Contains(err.Error(), "only the Node its pod runs on") {
		t.Errorf("publish on node-b: %v, want denied by the policy", err)
	}

	denied := []struct{ what, patch string }{
		{"a label", `{"metadata":{"labels":{"topology.kubernetes.io/zone":"eu-west-1b"}}}`},
		{"a new label", `{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`},
		{"another annotation", `{"metadata":{"annotations":{"node.alpha.kubernetes.io/ttl":"30"}}}`},
		{"a new annotation", `{"metadata":{"annotations":{"example.com/owner":"me"}}}`},
		{"another taint removed", `{"spec":{"taints":[]}}`},
		{"a taint added", `{"spec":{"taints":[{"key":"dedicated","value":"infra","effect":"NoSchedule"},{"key":"evil","effect":"NoSchedule"}]}}`},
		{"the node cordoned", `{"spec":{"unschedulable":true}}`},
		{"a finalizer", `{"metadata":{"finalizers":["example.com/keep"]}}`},
	}
	for _, d := range denied {
		if err := mergePatch(t, ctx, agentA, nodeA, d.patch); !apierrors.IsForbidden(err) {
			t.Errorf("the agent changed %s of its own node: %v, want denied", d.what, err)
		}
	}
	if err := mergePatch(t, ctx, asAgent(t, cp, ""), nodeA, state); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "only the Node its pod runs on") {
		t.Errorf("a token without the node-name extra published: %v, want denied", err)
	}

	got, err := admin.CoreV1().Nodes().Get(ctx, nodeA, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := testNode(nodeA)
	if diff := cmp.Diff(want.Labels, got.Labels); diff != "" {
		t.Errorf("labels of node-a (-want +got):\n%s", diff)
	}
	ann := maps.Clone(got.Annotations)
	value := ann[layer.AgentStateAnnotation]
	delete(ann, layer.AgentStateAnnotation)
	if diff := cmp.Diff(want.Annotations, ann); diff != "" {
		t.Errorf("other annotations of node-a (-want +got):\n%s", diff)
	}
	if s, err := layer.DecodeAgentState(value); err != nil || s.Node != nodeA {
		t.Errorf("node-a's state annotation %q: %v", value, err)
	}
	if diff := cmp.Diff(withoutStartupTaint(created.Spec.Taints), got.Spec.Taints); diff != "" {
		t.Errorf("taints of node-a: want only the startup taint removed (-want +got):\n%s", diff)
	}
	if got.Spec.ProviderID != want.Spec.ProviderID || got.Spec.Unschedulable {
		t.Errorf("spec of node-a changed: %+v", got.Spec)
	}
	b, err := admin.CoreV1().Nodes().Get(ctx, nodeB, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Annotations[layer.AgentStateAnnotation]; ok {
		// Written before the policy was loaded, by the readiness loop above: take it away and
		// check the denial leaves it away.
		if err := mergePatch(t, ctx, admin, nodeB, `{"metadata":{"annotations":{"imdsguard.io/agent-state":null}}}`); err != nil {
			t.Fatal(err)
		}
	}
	if err := mergePatch(t, ctx, agentA, nodeB, state); err == nil {
		t.Error("the agent of node-a wrote node-b")
	}

	// The same ClusterRole for a service account the policy does not name: RBAC lets it write
	// node-b, so the denials above are the policy's.
	grantAgentRole(t, ctx, cp, "system:serviceaccount:other:not-the-agent")
	cfg := rest.CopyConfig(cp.Config("admin"))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:other:not-the-agent", Extra: map[string][]string{nodeNameExtra: {nodeA}}}
	unrestricted, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The API server's authorizer learns of the new binding through its informer: wait for it.
	var rbacErr error
	eventually(t, "RBAC to allow the other service account to patch node-b", 30*time.Second, func() bool {
		rbacErr = mergePatch(t, ctx, unrestricted, nodeB, `{"metadata":{"labels":{"example.com/rbac-check":"yes"}}}`)
		return rbacErr == nil
	})
	// But only the agent writes the state: another identity may not forge it, on any node, and
	// may remove it.
	forged := `{"metadata":{"annotations":{"imdsguard.io/agent-state":"{\"version\":1,\"mode\":\"enforce\"}"}}}`
	eventually(t, "the policy denying others the state annotation", 30*time.Second, func() bool {
		err := mergePatch(t, ctx, unrestricted, nodeB, forged)
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "only the imdsguard agent writes")
	})
	if err := mergePatch(t, ctx, unrestricted, nodeA, `{"metadata":{"annotations":{"imdsguard.io/agent-state":null}}}`); err != nil {
		t.Errorf("another identity could not remove the agent's state from node-a: %v", err)
	}
}

// agentServiceAccountKubeconfig writes a kubeconfig for the agent on node: the admin's token,
// impersonating the agent's service account with its pod's node-name extra (what a pod-bound
// token carries), reaching the API server through a proxy on the sandbox node.
func agentServiceAccountKubeconfig(t *testing.T, cp *kubetest.ControlPlane, s *sandbox.Sandbox, node string) string {
	t.Helper()
	path := agentKubeconfig(t, cp, s, "admin")
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	auth := cfg.AuthInfos["admin"]
	auth.Impersonate = agentServiceAccount
	auth.ImpersonateUserExtra = map[string][]string{nodeNameExtra: {node}}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeState reads and decodes the node's agent-state annotation; nil while there is none.
func nodeState(t *testing.T, ctx context.Context, c kubernetes.Interface, node string) (*corev1.Node, *layer.AgentState) {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	value, ok := n.Annotations[layer.AgentStateAnnotation]
	if !ok {
		return n, nil
	}
	s, err := layer.DecodeAgentState(value)
	if err != nil {
		t.Fatalf("node %s: %v", node, err)
	}
	return n, s
}

// TestAgentPublishesItsStateOnItsNode runs `imdsguard agent` on a sandbox node as the agent's
// service account, under deploy/agent's RBAC and node restriction policy, in a hostNetwork pod's
// cgroup (as in the DaemonSet) with enforce mode and the pods cgroup matched, against an
// instance with IMDSv2 required and hop limit 2. The annotation it publishes decodes and says
// so: enforce, both AWS IMDS addresses dropped, hostNetwork pods covered, a generation, a recent
// sync, and the measurement (401, IPv6 answered, hop limit 2), which its own output rules did
// not drop because its pod cgroup passes them (--pod-uid). The node's labels, other annotations
// and other taints are untouched. Without --pod-uid the same agent's measurement is dropped by
// its own rules: nothing answers it.
func TestAgentPublishesItsStateOnItsNode(t *testing.T) {
	t.Parallel()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	admin := cp.Client("admin")
	installAgentAccess(t, ctx, cp)
	s := sandbox.New(t)
	s.IMDS.SetAWS(sandbox.AWSOptions{TokensRequired: true, HopLimit: 2})
	node := "node-" + suffix()
	if _, err := admin.CoreV1().Nodes().Create(ctx, testNode(node), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := nodeState(t, ctx, admin, node)

	self := s.AddHostNetworkPod(t)
	root, err := sandbox.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := agentServiceAccountKubeconfig(t, cp, s, node)
	args := []string{"--cloud", "aws", "--kubeconfig", kubeconfig, "--node-name", node, "--backend", "nftables",
		"--mode", "enforce", "--pods-cgroup", s.PodsCgroup(), "--startup-taint", startupTaint.String()}
	a := launchAgentInCgroup(t, s, filepath.Join(root, self.Cgroup), nil, append(args, "--pod-uid", self.UID)...)
	a.waitReady()

	// The agent publishes its state, then removes its startup taint: wait for both.
	var st *layer.AgentState
	eventually(t, "the state with a measurement on the node, and the startup taint removed", 30*time.Second, func() bool {
		var n *corev1.Node
		n, st = nodeState(t, ctx, admin, node)
		return st != nil && st.Instance != nil && !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == startupTaint.Key })
	})
	if st.Node != node || st.Mode != "enforce" || !st.HostNetworkCovered || st.Generation < 1 || time.Since(st.Synced) > time.Minute {
		t.Errorf("state = %+v", st)
	}
	if !slices.Contains(st.Dropped, netip.AddrPortFrom(sandbox.IMDSv4, 80).String()+"/TCP") || !slices.Contains(st.Dropped, netip.AddrPortFrom(sandbox.IMDSv6, 80).String()+"/TCP") {
		t.Errorf("dropped = %v, want both AWS IMDS addresses", st.Dropped)
	}
	ipv6 := true
	want := layer.InstanceMeasurement{Measured: st.Instance.Measured, V1Status: 401, IPv6: &ipv6, HopLimit: 2}
	if diff := cmp.Diff(want, *st.Instance); diff != "" {
		t.Errorf("measurement (-want +got):\n%s\nagent output:\n%s", diff, a.out.String())
	}

	after, _ := nodeState(t, ctx, admin, node)
	if diff := cmp.Diff(before.Labels, after.Labels); diff != "" {
		t.Errorf("labels changed (-before +after):\n%s", diff)
	}
	ann := maps.Clone(after.Annotations)
	delete(ann, layer.AgentStateAnnotation)
	if diff := cmp.Diff(before.Annotations, ann); diff != "" {
		t.Errorf("other annotations changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(withoutStartupTaint(before.Spec.Taints), after.Spec.Taints); diff != "" {
		t.Errorf("taints: want only the startup taint removed (-want +got):\n%s", diff)
	}
	if after.Spec.ProviderID != before.Spec.ProviderID {
		t.Errorf("provider ID changed: %q", after.Spec.ProviderID)
	}
	if n := a.metric("imdsguard_state_publish_errors_total"); n != 0 {
		t.Errorf("imdsguard_state_publish_errors_total = %v", n)
	}
	_ = a.stop(syscall.SIGTERM)

	// The negative control: the agent in the same pod cgroup, without knowing its pod, drops
	// its own measurement.
	b := launchAgentInCgroup(t, s, filepath.Join(root, self.Cgroup), nil, args...)
	b.waitReady()
	eventually(t, "a measurement without the self exemption", 30*time.Second, func() bool {
		_, st = nodeState(t, ctx, admin, node)
		return st != nil && st.Instance != nil && st.Instance.Measured.After(want.Measured)
	})
	if st.Instance.V1Status != 0 || st.Instance.HopLimit != 0 {
		t.Errorf("without --pod-uid the agent's own requests got through its rules: %+v\n%s", st.Instance, b.out.String())
	}
	if !strings.Contains(fmt.Sprint(b.out.String()), "instance metadata service measured") {
		t.Errorf("no measurement logged:\n%s", b.out.String())
	}
}
