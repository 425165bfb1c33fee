package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/sandbox"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// startupTaint is the taint the tests register nodes with.
var startupTaint = agent.Taint{Key: "imdsguard.io/agent-not-ready", Effect: corev1.TaintEffectNoSchedule}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createNamespace(t *testing.T, ctx context.Context, c kubernetes.Interface, name string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// apiPod describes a Pod object as the kubelet would leave it: scheduled to node, with a status
// (set through the status subresource, as there is no kubelet here).
type apiPod struct {
	namespace, name, node, serviceAccount string
	hostNetwork                           bool
	phase                                 corev1.PodPhase
	ips                                   []netip.Addr
}

// create creates the pod and sets its status; it returns the server's object.
func (p apiPod) create(t testing.TB, ctx context.Context, c kubernetes.Interface) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: p.name},
		Spec: corev1.PodSpec{
			NodeName:           p.node,
			ServiceAccountName: p.serviceAccount,
			HostNetwork:        p.hostNetwork,
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	created, err := c.CoreV1().Pods(p.namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.namespace, p.name, err)
	}
	phase := p.phase
	if phase == "" {
		phase = corev1.PodRunning
	}
	created.Status.Phase = phase
	for _, ip := range p.ips {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(p.ips) > 0 {
		created.Status.PodIP = p.ips[0].String()
	}
	updated, err := c.CoreV1().Pods(p.namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of pod %s/%s: %v", p.namespace, p.name, err)
	}
	return updated
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// equalAddrs lets cmp compare netip.Addr values.
var equalAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestKubeRemoveTaintAgainstAPIServer: against a real API server, RemoveTaint removes the
// startup taint (that key and effect only): the same key with another effect, other taints and
// labels survive, even while others update the node at the same time; a second call finds
// nothing to remove; a missing node is an error.
func TestKubeRemoveTaintAgainstAPIServer(t *testing.T) {
	t.Parallel()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	c := cp.Client("admin")
	name := "node-" + suffix()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"topology.kubernetes.io/zone": "eu-west-1a"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
			{Key: startupTaint.Key, Value: "true", Effect: corev1.TaintEffectNoSchedule},
			{Key: startupTaint.Key, Effect: corev1.TaintEffectNoExecute},
			{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule},
		}},
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Other writers label the node while the taint is removed: RemoveTaint's update must not
	// drop their changes, nor they its.
	const writers = 4
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				patch := fmt.Sprintf(`{"metadata":{"labels":{"writer-%d-%d":"x"}}}`, i, j)
				if _, err := c.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Errorf("label the node: %v", err)
				}
			}
		}()
	}
	k := &agent.Kube{Client: c, NodeName: name}
	removed, err := k.RemoveTaint(ctx, name, startupTaint)
	wg.Wait()
	if err != nil || !removed {
		t.Fatalf("RemoveTaint = %v, %v; want true, nil", removed, err)
	}
	got, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Taint{
		{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
		{Key: startupTaint.Key, Effect: corev1.TaintEffectNoExecute},
		{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(want, got.Spec.Taints); diff != "" {
		t.Errorf("taints after removal (-want +got):\n%s", diff)
	}
	if n := len(got.Labels); n != 1+writers*5 {
		t.Errorf("node has %d labels, want %d: a concurrent update was lost", n, 1+writers*5)
	}
	if removed, err := k.RemoveTaint(ctx, name, startupTaint); err != nil || removed {
		t.Errorf("second RemoveTaint = %v, %v; want false, nil", removed, err)
	}
	if _, err := k.RemoveTaint(ctx, "no-such-node-"+suffix(), startupTaint); !apierrors.IsNotFound(err) {
		t.Errorf("RemoveTaint on a missing node: %v, want NotFound", err)
	}
}

// TestKubeListsAndWatchesPodsOnItsNode: ListPods returns the pods scheduled to this node (field
// selector spec.nodeName) that have not finished, with their addresses (both families), service
// account, UID and host network; once WatchPods runs, the same list comes from the watch, and the
// changes that matter to the firewall — a pod's address assigned, a pod deleted or added on this
// node — are reported, while others (a label, a pod on another node) are not.
func TestKubeListsAndWatchesPodsOnItsNode(t *testing.T) {
	t.Parallel()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	c := cp.Client("admin")
	ns, node, other := "ns-"+suffix(), "node-"+suffix(), "node-"+suffix()
	createNamespace(t, ctx, c, ns)
	web := apiPod{namespace: ns, name: "web", node: node, ips: []netip.Addr{addr("10.1.0.5"), addr("fd00:1::5")}}.create(t, ctx, c)
	hostNet := apiPod{namespace: ns, name: "aws-node", node: node, serviceAccount: "aws-node", hostNetwork: true, ips: []netip.Addr{addr("192.0.2.10")}}.create(t, ctx, c)
	pending := apiPod{namespace: ns, name: "pending", node: node, phase: corev1.PodPending}.create(t, ctx, c)
	apiPod{namespace: ns, name: "done", node: node, phase: corev1.PodSucceeded, ips: []netip.Addr{addr("10.1.0.6")}}.create(t, ctx, c)
	apiPod{namespace: ns, name: "failed", node: node, phase: corev1.PodFailed, ips: []netip.Addr{addr("10.1.0.7")}}.create(t, ctx, c)
	apiPod{namespace: ns, name: "elsewhere", node: other, ips: []netip.Addr{addr("10.2.0.5")}}.create(t, ctx, c)

	want := []agent.Pod{
		{Namespace: ns, Name: "aws-node", UID: string(hostNet.UID), ServiceAccount: "aws-node", HostNetwork: true, IPs: []netip.Addr{addr("192.0.2.10")}},
		{Namespace: ns, Name: "pending", UID: string(pending.UID)},
		{Namespace: ns, Name: "web", UID: string(web.UID), IPs: []netip.Addr{addr("10.1.0.5"), addr("fd00:1::5")}},
	}
	sortPods := func(ps []agent.Pod) []agent.Pod {
		slices.SortFunc(ps, func(a, b agent.Pod) int { return strings.Compare(a.Name, b.Name) })
		return ps
	}
	k := &agent.Kube{Client: c, NodeName: node}
	listed, err := k.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, sortPods(listed), equalAddrs); diff != "" {
		t.Errorf("ListPods without a watch (-want +got):\n%s", diff)
	}

	watching := &agent.Kube{Client: c, NodeName: node}
	changed := make(chan struct{}, 1)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		// As the agent does: resume the watch when it ends (an API server under load answers
		// some watches with "too large resource version", to be retried).
		defer close(done)
		for wctx.Err() == nil {
			if err := watching.WatchPods(wctx, changed); err != nil {
				t.Logf("WatchPods: %v", err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	if _, err := watching.ListPods(ctx); err != nil && !errors.Is(err, agent.ErrPodsNotSynced) {
		t.Fatalf("ListPods before the first list: %v", err)
	}
	expect := func(what string, report bool) {
		t.Helper()
		wait := 10 * time.Second
		if !report {
			wait = 500 * time.Millisecond
		}
		select {
		case <-changed:
			if !report {
				t.Errorf("%s: reported, but it does not change the firewall", what)
			}
		case <-time.After(wait):
			if report {
				t.Errorf("%s: not reported within %v", what, wait)
			}
		}
	}
	expect("the first list", true)
	if !watching.PodsSynced() {
		t.Fatal("not synced after the first list was reported")
	}
	listed, err = watching.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, sortPods(listed), equalAddrs); diff != "" {
		t.Errorf("ListPods from the watch (-want +got):\n%s", diff)
	}

	pending.Status.Phase = corev1.PodRunning
	pending.Status.PodIP = "10.1.0.8"
	pending.Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.8"}}
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pending, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("an address assigned", true)
	if _, err := c.CoreV1().Pods(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"version":"2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("a label changed", false)
	apiPod{namespace: ns, name: "elsewhere-2", node: other, ips: []netip.Addr{addr("10.2.0.6")}}.create(t, ctx, c)
	expect("a pod on another node", false)
	if err := c.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	expect("a pod deleted", true)
	apiPod{namespace: ns, name: "late", node: node, serviceAccount: "batch", ips: []netip.Addr{addr("10.1.0.9")}}.create(t, ctx, c)
	expect("a pod added", true)
	// Created, then given its address: two events; wait for the second.
	want2 := []string{"aws-node=[192.0.2.10]", "late=[10.1.0.9]", "pending=[10.1.0.8]"}
	var names []string
	eventually(t, "the watched list to catch up", 10*time.Second, func() bool {
		listed, err := watching.ListPods(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, p := range listed {
			names = append(names, p.Name+"="+fmt.Sprint(p.IPs))
		}
		return slices.Equal(names, want2)
	})
}

// apiProxy forwards connections from 127.0.0.1 in the node's network namespace to the API
// server on the host's loopback, and returns the node-side address.
func apiProxy(t testing.TB, s *sandbox.Sandbox, target string) string {
	t.Helper()
	l, err := s.Node.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					_ = pair[0].Close()
					_ = pair[1].Close()
				}()
			}
		}
	}()
	return l.Addr().String()
}

// agentKubeconfig writes a kubeconfig for user, reaching the API server through a proxy on the
// node.
func agentKubeconfig(t testing.TB, cp *kubetest.ControlPlane, s *sandbox.Sandbox, user string) string {
	t.Helper()
	path, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	proxy := apiProxy(t, s, strings.TrimPrefix(cp.URL, "https://"))
	for _, cluster := range cfg.Clusters {
		cluster.Server = "https://" + proxy
	}
	cfg.CurrentContext = user
	out := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// grantAgentRole binds the agent's ClusterRole from deploy/agent/rbac.yaml to user.
func grantAgentRole(t *testing.T, ctx context.Context, cp *kubetest.ControlPlane, user string) {
	t.Helper()
	objs, err := kubetest.DecodeFiles(filepath.Join("..", "..", "deploy", "agent", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" {
			role = append(role, o)
		}
	}
	if len(role) != 1 {
		t.Fatalf("deploy/agent/rbac.yaml holds %d ClusterRoles, want 1", len(role))
	}
	applier, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, role, false); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "imdsguard-agent-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role[0].GetName()},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := cp.Client("admin").RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// connects reports whether ns opens a TCP connection to IMDS within a short timeout.
func connects(ns *sandbox.Netns) bool {
	return ns.Connect(context.Background(), netip.AddrPortFrom(sandbox.IMDSv4, 80), 300*time.Millisecond) == nil
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentAgainstAPIServer runs `imdsguard agent` on a sandbox node against a real API server,
// with only the permissions deploy/agent/rbac.yaml grants:
//   - the startup taint stays while the rules cannot be applied, and goes (alone) once they are;
//   - exemptions by namespace and service account reach the kernel as the pods' addresses, for
//     pods on this node only; an allowed hostNetwork pod passes by its UID's cgroup;
//   - a pod added or deleted in the API changes the firewall at once (the periodic resync is an
//     hour here: the pod watch drives it);
//   - blocked sources are named by namespace and pod in the metrics and the log.
func TestAgentAgainstAPIServer(t *testing.T) {
	t.Parallel()
	cp := controlPlane.Get(t)
	ctx := testContext(t)
	c := cp.Client("admin")
	s := sandbox.New(t)
	id := suffix()
	node, shop, system := "node-"+id, "shop-"+id, "system-"+id
	grantAgentRole(t, ctx, cp, "nobody")
	createNamespace(t, ctx, c, shop)
	createNamespace(t, ctx, c, system)
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: startupTaint.Key, Value: "true", Effect: startupTaint.Effect},
			{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	web, lbc, elsewhere, late := s.AddPod(t, sandbox.VPCCNI), s.AddPod(t, sandbox.VPCCNI), s.AddPod(t, sandbox.Bridge), s.AddPod(t, sandbox.Bridge)
	apiPod{namespace: shop, name: "web", node: node, ips: []netip.Addr{web.IPv4, web.IPv6}}.create(t, ctx, c)
	apiPod{namespace: system, name: "lbc", node: node, serviceAccount: "aws-load-balancer-controller", ips: []netip.Addr{lbc.IPv4, lbc.IPv6}}.create(t, ctx, c)
	// The same service account on another node: not this agent's pod, not exempt here.
	apiPod{namespace: system, name: "lbc-elsewhere", node: "node-other-" + id, serviceAccount: "aws-load-balancer-controller", ips: []netip.Addr{elsewhere.IPv4}}.create(t, ctx, c)
	awsNodePod := apiPod{namespace: system, name: "aws-node", node: node, serviceAccount: "aws-node", hostNetwork: true, ips: []netip.Addr{sandbox.NodeIPv4}}.create(t, ctx, c)
	awsNode := s.AddHostNetworkPodUID(t, string(awsNodePod.UID))
	attacker := s.AddHostNetworkPod(t)

	config := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`mode: enforce
exempt:
  - namespace: %[1]s
    serviceAccount: aws-load-balancer-controller
allowHostNetwork:
  - namespace: %[1]s
    serviceAccount: aws-node
podsCgroup: %[2]s
resyncInterval: 1h
startupTaint: %[3]s
`, system, s.PodsCgroup(), startupTaint)), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := agentKubeconfig(t, cp, s, "nobody")
	args := []string{"--config", config, "--kubeconfig", kubeconfig, "--node-name", node, "--backend", "nftables"}
	taints := func() []corev1.Taint {
		t.Helper()
		n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Spec.Taints
	}
	hasStartupTaint := func() bool {
		return slices.ContainsFunc(taints(), func(tt corev1.Taint) bool { return tt.Key == startupTaint.Key })
	}

	// Without nft the rules cannot go in: the agent must keep the taint (and stay unready).
	broken := launchAgent(t, s, []string{"PATH=/nonexistent"}, args...)
	eventually(t, "a failed sync without nft", 20*time.Second, func() bool { return strings.Contains(broken.out.String(), "sync failed") })
	time.Sleep(500 * time.Millisecond)
	if code, _ := broken.get("/readyz"); code == 200 {
		t.Error("ready without a firewall")
	}
	if !hasStartupTaint() {
		t.Fatalf("the startup taint was removed although no rule is in place:\n%s", broken.out.String())
	}
	_ = broken.stop(syscall.SIGKILL)

	a := startAgentWith(t, s, nil, args...)
	// Catch the moment the taint goes: the table must be in the kernel then.
	eventually(t, "the startup taint removed", 20*time.Second, func() bool { return !hasStartupTaint() })
	if table := nodeTable(t, s); !strings.Contains(table, `drop comment "imds: deny pods"`) {
		t.Errorf("the taint went, but the rules are not in; table:\n%s", table)
	}
	out := a.out.String()
	if applied, removed := strings.Index(out, "firewall applied"), strings.Index(out, "startup taint removed"); applied < 0 || removed < applied {
		t.Errorf("log order: firewall applied at %d, taint removed at %d:\n%s", applied, removed, out)
	}
	// The API server's TaintNodesByCondition admission added node.kubernetes.io/not-ready to
	// the new node; it and "dedicated" must survive.
	if left := taints(); hasStartupTaint() || !slices.ContainsFunc(left, func(tt corev1.Taint) bool { return tt.Key == "dedicated" }) {
		t.Errorf("taints after the agent started: %v; want the startup taint gone and the others kept", left)
	}

	sandbox.Verify(t,
		sandbox.FetchCheck("web pod", web.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("web pod", web.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
		sandbox.FetchCheck("exempt pod (namespace and service account)", lbc.NS.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("exempt pod (namespace and service account)", lbc.NS.Fetch, sandbox.AWSCredentialsIPv6, true),
		sandbox.FetchCheck("pod whose exempt namesake runs on another node", elsewhere.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("allowed hostNetwork pod (aws-node)", awsNode.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("other hostNetwork pod", attacker.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("pod not yet in the API", late.NS.Fetch, sandbox.AWSCredentials, false),
	)

	// A new exempt pod in the API is let through without waiting for a resync; the sync it
	// triggers also reads who tried the endpoints above.
	apiPod{namespace: system, name: "lbc-2", node: node, serviceAccount: "aws-load-balancer-controller", ips: []netip.Addr{late.IPv4}}.create(t, ctx, c)
	eventually(t, "the pod added in the API exempted", 10*time.Second, func() bool { return connects(late.NS) })
	webSource := fmt.Sprintf(`imdsguard_source_packets_total{source=%q,namespace=%q,pod="web"}`, web.IPv4, shop)
	eventually(t, "the web pod named in the metrics", 10*time.Second, func() bool { return a.metric(webSource) > 0 })
	if want := fmt.Sprintf("source=%s mode=enforce namespace=%s pod=web", web.IPv4, shop); !strings.Contains(a.out.String(), want) {
		t.Errorf("the log does not name the blocked pod (%q):\n%s", want, a.out.String())
	}

	// Deleted from the API, the exempt pod loses its exemption.
	if err := c.CoreV1().Pods(system).Delete(ctx, "lbc", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod's exemption withdrawn", 10*time.Second, func() bool { return !connects(lbc.NS) })
	if got := a.metric("imdsguard_repairs_total"); got != 0 {
		t.Errorf("imdsguard_repairs_total = %v: pod changes are not repairs", got)
	}
}
