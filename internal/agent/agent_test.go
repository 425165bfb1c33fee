package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeBackend keeps the "kernel" state in memory; tamper changes it as another process would.
// Like nftables, it counts transactions in the state's generation.
type fakeBackend struct {
	mu       sync.Mutex
	state    *firewall.State
	gen      uint32
	replaced int
	events   []string
	// exempt records the exempt addresses of each replacement.
	exempt []int
	// afterReplace runs right after a replacement, as a process slipping a change in would.
	afterReplace func(f *fakeBackend)
}

func (f *fakeBackend) Name() string { return "fake" }

func (f *fakeBackend) Read(context.Context) (*firewall.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		return &firewall.State{Generation: f.gen}, nil
	}
	st := *f.state
	st.Generation = f.gen
	return &st, nil
}

func (f *fakeBackend) Replace(_ context.Context, _ firewall.Config, rs *firewall.Ruleset) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replaced++
	f.gen++
	f.events = append(f.events, "replace")
	elements := map[string]int{}
	for _, e := range rs.Elements {
		elements[e.Set]++
	}
	f.exempt = append(f.exempt, len(rs.Elements))
	f.state = &firewall.State{Present: true, Fingerprint: rs.Script(), Rules: rs.RuleCounts(), Elements: elements}
	if f.afterReplace != nil {
		f.afterReplace(f)
	}
	return nil
}

// tamper changes the table's structure, as another process editing a rule would.
func (f *fakeBackend) tamper() {
	f.gen++
	f.state.Fingerprint = "edited by someone else"
}

func (f *fakeBackend) Matches(st *firewall.State, rs *firewall.Ruleset) bool { return st.Matches(rs) }
func (f *fakeBackend) Delete(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.state = nil
	return nil
}

type fakeTainter struct{ b *fakeBackend }

func (t *fakeTainter) RemoveTaint(context.Context, string, Taint) (bool, error) {
	t.b.events = append(t.b.events, "untaint")
	return true, nil
}

func newTestAgent(t *testing.T, b *fakeBackend, opts Options) *Agent {
	t.Helper()
	opts.Backend = b
	if opts.Endpoints == nil {
		opts.Endpoints = endpoint.Select([]endpoint.Cloud{endpoint.AWS})
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = t.TempDir()
	}
	a, err := New(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSyncAppliesOnceThenOnlyOnDrift(t *testing.T) {
	b := &fakeBackend{}
	a := newTestAgent(t, b, Options{})
	ctx := context.Background()
	if a.Ready() {
		t.Fatal("ready before the first sync")
	}
	for range 3 {
		if err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Ready() || b.replaced != 1 {
		t.Fatalf("ready=%v replaced=%d, want ready after one replacement", a.Ready(), b.replaced)
	}
	if a.metrics.repairs.Load() != 0 {
		t.Fatal("first application counted as a repair")
	}
	b.tamper()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_ = b.Delete(ctx) // table deleted
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if b.replaced != 3 || a.metrics.repairs.Load() != 2 {
		t.Fatalf("replaced=%d repairs=%d, want 3 and 2", b.replaced, a.metrics.repairs.Load())
	}
}

func TestStartupTaintRemovedOnlyAfterTheRulesAreIn(t *testing.T) {
	b := &fakeBackend{}
	a := newTestAgent(t, b, Options{Nodes: nil, NodeName: "node-1", Taint: Taint{Key: "imdsguard.io/agent-not-ready", Effect: corev1.TaintEffectNoSchedule}})
	a.opts.Nodes = &fakeTainter{b: b}
	a.tainted = true
	for range 2 {
		if err := a.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.events) != 2 || b.events[0] != "replace" || b.events[1] != "untaint" {
		t.Fatalf("events = %v, want [replace untaint]", b.events)
	}
}

func TestKubeRemoveTaintKeepsOtherTaints(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{
		{Key: "imdsguard.io/agent-not-ready", Effect: corev1.TaintEffectNoSchedule},
		{Key: "imdsguard.io/agent-not-ready", Effect: corev1.TaintEffectNoExecute},
		{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
	}}}
	k := &Kube{Client: fake.NewClientset(node), NodeName: "node-1"}
	ctx := context.Background()
	taint := Taint{Key: "imdsguard.io/agent-not-ready", Effect: corev1.TaintEffectNoSchedule}
	removed, err := k.RemoveTaint(ctx, "node-1", taint)
	if err != nil || !removed {
		t.Fatalf("RemoveTaint = %v, %v", removed, err)
	}
	got, err := k.Client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Taints) != 2 || got.Spec.Taints[0].Effect != corev1.TaintEffectNoExecute || got.Spec.Taints[1].Key != "dedicated" {
		t.Fatalf("taints after removal = %v", got.Spec.Taints)
	}
	if removed, err := k.RemoveTaint(ctx, "node-1", taint); err != nil || removed {
		t.Fatalf("second RemoveTaint = %v, %v; want false, nil", removed, err)
	}
}

func TestSelectorsExemptAndAllowPods(t *testing.T) {
	root := t.TempDir()
	uid := "11111111-2222-3333-4444-555555555555"
	podDir := filepath.Join(root, "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pods := []Pod{
		{Namespace: "kube-system", Name: "aws-lbc-1", ServiceAccount: "aws-load-balancer-controller", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}},
		{Namespace: "kube-system", Name: "coredns-1", ServiceAccount: "coredns", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.8")}},
		{Namespace: "kube-system", Name: "aws-node-x", ServiceAccount: "aws-node", UID: uid, HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}},
		{Namespace: "default", Name: "web", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}},
	}
	a := newTestAgent(t, &fakeBackend{}, Options{
		CgroupRoot:       root,
		Pods:             staticPods(pods),
		Exempt:           []PodSelector{{Namespace: "kube-system", ServiceAccount: "aws-load-balancer-controller"}},
		AllowHostNetwork: []PodSelector{{Namespace: "kube-system", ServiceAccount: "aws-node"}},
	})
	cfg, err := a.desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ExemptPodIPs) != 1 || cfg.ExemptPodIPs[0] != netip.MustParseAddr("10.0.0.7") {
		t.Errorf("exempt = %v, want only the load balancer controller", cfg.ExemptPodIPs)
	}
	if cfg.PodsCgroup != "kubepods.slice" {
		t.Errorf("pods cgroup = %q, want kubepods.slice detected", cfg.PodsCgroup)
	}
	want := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice"
	if len(cfg.AllowedHostNetworkPods) != 1 || cfg.AllowedHostNetworkPods[0].Path != want {
		t.Errorf("allowed hostNetwork pods = %v, want aws-node at %s", cfg.AllowedHostNetworkPods, want)
	}
}

func TestFindPodCgroupCgroupfs(t *testing.T) {
	root := t.TempDir()
	uid := "aaaaaaaa-0000-0000-0000-000000000001"
	if err := os.MkdirAll(filepath.Join(root, "kubepods", "besteffort", "pod"+uid), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := DetectPodsCgroup(root); got != "kubepods" {
		t.Fatalf("DetectPodsCgroup = %q", got)
	}
	if got, ok := FindPodCgroup(root, "kubepods", uid); !ok || got != "kubepods/besteffort/pod"+uid {
		t.Fatalf("FindPodCgroup = %q, %v", got, ok)
	}
	if _, ok := FindPodCgroup(root, "kubepods", "../etc"); ok {
		t.Fatal("a UID with a path in it was resolved")
	}
}

type staticPods []Pod

func (s staticPods) ListPods(context.Context) ([]Pod, error) { return s, nil }

// TestBootstrapScriptIsCurrent keeps deploy/agent/bootstrap.sh's embedded ruleset in step with
// the generator (`imdsguard agent rules --cloud aws`).
func TestBootstrapScriptIsCurrent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "agent", "bootstrap.sh"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "<<'RULES'\n")
	embedded, _, ok2 := strings.Cut(rest, "RULES\n")
	if !ok || !ok2 {
		t.Fatal("bootstrap.sh has no RULES heredoc")
	}
	want, err := firewall.NFTScript(firewall.Config{Endpoints: endpoint.Select([]endpoint.Cloud{endpoint.AWS})})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, embedded); diff != "" {
		t.Errorf("deploy/agent/bootstrap.sh is stale; regenerate its rules with `imdsguard agent rules --cloud aws` (-want +got):\n%s", diff)
	}
}

type failingPods struct{ calls int }

func (f *failingPods) ListPods(context.Context) ([]Pod, error) {
	f.calls++
	if f.calls == 1 {
		return []Pod{{Namespace: "kube-system", Name: "lbc", ServiceAccount: "lbc", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}}}, nil
	}
	return nil, errors.New("apiserver unreachable")
}

// TestRepairDoesNotWaitForTheAPI: with the API down, the agent still repairs the table, with
// the exemptions it knew last.
func TestRepairDoesNotWaitForTheAPI(t *testing.T) {
	b := &fakeBackend{}
	a := newTestAgent(t, b, Options{Pods: &failingPods{}, Exempt: []PodSelector{{Namespace: "kube-system"}}})
	ctx := context.Background()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_ = b.Delete(ctx)
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("sync with the API down: %v", err)
	}
	if b.state == nil || b.state.Elements[firewall.SetExemptIPv4] != 1 || a.metrics.repairs.Load() != 1 {
		t.Fatalf("table not repaired with the last known exemption: %+v", b.state)
	}
}

// TestChangeRightAfterOursIsNotTakenForOurs: a change committed between our replacement and the
// read that fingerprints it must not become the reference later reads are compared with: the
// sync fails, the next one replaces the table again, and a later tamper is still caught.
func TestChangeRightAfterOursIsNotTakenForOurs(t *testing.T) {
	b := &fakeBackend{}
	a := newTestAgent(t, b, Options{})
	ctx := context.Background()
	b.afterReplace = func(f *fakeBackend) {
		f.tamper()
		f.afterReplace = nil
	}
	if err := a.Sync(ctx); err == nil {
		t.Fatal("sync trusted a table changed right after its replacement")
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if b.replaced != 2 || b.state.Fingerprint == "edited by someone else" {
		t.Fatalf("replaced=%d fingerprint=%q: want the table replaced again", b.replaced, b.state.Fingerprint)
	}
	b.tamper()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if b.replaced != 3 || a.metrics.repairs.Load() != 1 {
		t.Fatalf("replaced=%d repairs=%d: a later tamper went unnoticed", b.replaced, a.metrics.repairs.Load())
	}
}

// fakeWatcher is a PodWatcher whose first list arrives when release is closed.
type fakeWatcher struct {
	pods    []Pod
	release chan struct{}
}

func (w *fakeWatcher) synced() bool {
	select {
	case <-w.release:
		return true
	default:
		return false
	}
}

func (w *fakeWatcher) ListPods(context.Context) ([]Pod, error) {
	if !w.synced() {
		return nil, ErrPodsNotSynced
	}
	return w.pods, nil
}

func (w *fakeWatcher) PodsSynced() bool { return w.synced() }

func (w *fakeWatcher) WatchPods(ctx context.Context, changed chan<- struct{}) error {
	select {
	case <-w.release:
		notify(changed)
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

// TestRestartKeepsExemptionsWhileThePodsLoad: a restarted agent (a table in place) waits for its
// pod list before replacing the table, so exempt pods keep their exemption; on a node without a
// table the rules go in at once, and the exemptions follow with the pod list.
func TestRestartKeepsExemptionsWhileThePodsLoad(t *testing.T) {
	exempt := []Pod{{Namespace: "kube-system", Name: "lbc", ServiceAccount: "lbc", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}}}
	for _, tc := range []struct {
		name       string
		tableThere bool
		want       []int // exempt addresses in each replacement
	}{
		{"restart with a table in place", true, []int{1}},
		{"first start without a table", false, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBackend{}
			if tc.tableThere {
				b.state = &firewall.State{Present: true, Fingerprint: "left by the previous agent"}
			}
			w := &fakeWatcher{pods: exempt, release: make(chan struct{})}
			a := newTestAgent(t, b, Options{Pods: w, Exempt: []PodSelector{{Namespace: "kube-system"}}, ResyncInterval: time.Hour})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			time.Sleep(100 * time.Millisecond) // the pod list is late
			close(w.release)
			deadline := time.Now().Add(5 * time.Second)
			for {
				b.mu.Lock()
				got := slices.Clone(b.exempt)
				b.mu.Unlock()
				if len(got) >= len(tc.want) || time.Now().After(deadline) {
					cancel()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, tc.want) {
						t.Errorf("exempt addresses per replacement = %v, want %v", got, tc.want)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestCiliumRoutingFromNodeConfig(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   CiliumRouting
	}{
		{"#define ENABLE_IPV4 1\n#define ENABLE_HOST_ROUTING 1\n", CiliumBPFHostRouting},
		{"#define ENABLE_HOST_ROUTING\n", CiliumBPFHostRouting},
		{"  #  define\tENABLE_HOST_ROUTING 1\n", CiliumBPFHostRouting},
		{"#define ENABLE_IPV4 1\n", CiliumLegacyRouting},
		{"#define ENABLE_HOST_ROUTING_EXTRA 1\n", CiliumLegacyRouting},
		{"// #define ENABLE_HOST_ROUTING 1\n", CiliumLegacyRouting},
		{"#undef ENABLE_HOST_ROUTING\n", CiliumLegacyRouting},
	} {
		if got := ciliumRouting([]byte(tc.header)); got != tc.want {
			t.Errorf("ciliumRouting(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}
