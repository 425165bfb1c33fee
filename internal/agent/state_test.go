package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// recordingPublisher records every published state; the first failures calls fail.
type recordingPublisher struct {
	mu        sync.Mutex
	failures  int
	published []layer.AgentState
	attempts  int
}

func (p *recordingPublisher) PublishState(_ context.Context, s layer.AgentState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.failures > 0 {
		p.failures--
		return errors.New("the API server is away")
	}
	p.published = append(p.published, s)
	return nil
}

func (p *recordingPublisher) states() []layer.AgentState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]layer.AgentState(nil), p.published...)
}

// fixedMeasurer returns the same measurement every time and counts the calls.
type fixedMeasurer struct {
	mu    sync.Mutex
	calls int
	m     layer.InstanceMeasurement
}

func (f *fixedMeasurer) MeasureInstance(context.Context) (*layer.InstanceMeasurement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	m := f.m
	m.Measured = time.Now()
	return &m, nil
}

func (f *fixedMeasurer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAgentPublishesItsState: once the rules are in, the agent publishes its mode, the
// addresses it drops (each once), hostNetwork coverage, the ruleset generation, the sync time
// and the instance measurement; a failed publication is retried and never stops the agent; a
// ruleset replacement (a repair) is published at once and measured again; and with nothing
// changing it republishes on its interval, so the state never looks stale.
func TestAgentPublishesItsState(t *testing.T) {
	root := t.TempDir()
	pub := &recordingPublisher{failures: 2}
	ipv6 := true
	meas := &fixedMeasurer{m: layer.InstanceMeasurement{V1Status: 401, IPv6: &ipv6, HopLimit: 1}}
	b := &fakeBackend{}
	a := newTestAgent(t, b, Options{
		Endpoints:       endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.GCP}),
		Mode:            firewall.Enforce,
		CgroupRoot:      root,
		PodsCgroup:      "-",
		NodeName:        "node-a",
		State:           pub,
		Instance:        meas,
		ResyncInterval:  time.Hour,
		PublishInterval: 300 * time.Millisecond,
		MeasureInterval: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	waitFor(t, "a state with the measurement published", func() bool {
		ss := pub.states()
		return len(ss) > 0 && ss[len(ss)-1].Instance != nil
	})
	s := pub.states()[len(pub.states())-1]
	want := []string{"169.254.169.254:80/TCP", "[fd00:ec2::254]:80/TCP"}
	if s.Node != "node-a" || s.Mode != "enforce" || s.HostNetworkCovered || s.Generation != 1 || s.Synced.IsZero() {
		t.Errorf("state = %+v", s)
	}
	if len(s.Dropped) != len(want) || s.Dropped[0] != want[0] || s.Dropped[1] != want[1] {
		t.Errorf("dropped = %v, want %v (169.254.169.254:80/TCP once, for AWS and GCP alike)", s.Dropped, want)
	}
	if s.Instance.V1Status != 401 || s.Instance.HopLimit != 1 || s.Instance.IPv6 == nil || !*s.Instance.IPv6 {
		t.Errorf("instance = %+v", s.Instance)
	}
	if value, err := layer.EncodeAgentState(s); err != nil {
		t.Error(err)
	} else if _, err := layer.DecodeAgentState(value); err != nil {
		t.Errorf("the published state does not decode: %v", err)
	}
	if got := a.metrics.statePublishErrors.Load(); got != 2 {
		t.Errorf("imdsguard_state_publish_errors_total = %d, want the 2 failures", got)
	}

	// A repair replaces the ruleset: a new generation, published without waiting, measured
	// again.
	measured := meas.count()
	b.mu.Lock()
	b.tamper()
	b.mu.Unlock()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "generation 2 published", func() bool {
		ss := pub.states()
		return ss[len(ss)-1].Generation == 2
	})
	waitFor(t, "a measurement after the ruleset changed", func() bool { return meas.count() > measured })

	// Nothing changes: the state is still republished on the interval, with a fresh sync time
	// after each sync.
	n := len(pub.states())
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a republication on the interval", func() bool { return len(pub.states()) > n })
	last := pub.states()[len(pub.states())-1]
	if !last.Synced.After(s.Synced) {
		t.Errorf("republished sync time %v, not after %v", last.Synced, s.Synced)
	}
}

// TestSelfPodCgroupIsLetThrough: the agent's own pod (SelfPodUID) gets an accept rule in the
// output chain like an allowed hostNetwork pod, so its own requests to the metadata service
// are not dropped by the cgroup rule that drops hostNetwork pods.
func TestSelfPodCgroupIsLetThrough(t *testing.T) {
	root := t.TempDir()
	uid := "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	if err := os.MkdirAll(filepath.Join(root, "kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee.slice"), 0o750); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, &fakeBackend{}, Options{CgroupRoot: root, SelfPodUID: uid})
	cfg, err := a.desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AllowedHostNetworkPods) != 1 || cfg.AllowedHostNetworkPods[0].UID != uid {
		t.Fatalf("allowed hostNetwork pods = %v, want the agent's own pod", cfg.AllowedHostNetworkPods)
	}
	without := newTestAgent(t, &fakeBackend{}, Options{CgroupRoot: root})
	if cfg, _ := without.desired(context.Background()); len(cfg.AllowedHostNetworkPods) != 0 {
		t.Fatalf("without SelfPodUID: allowed %v", cfg.AllowedHostNetworkPods)
	}
}
