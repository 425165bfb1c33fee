package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/generate"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// replica is one controller process of several: it can be stopped before the test ends.
type replica struct {
	*Controller
	stop func()
}

// startReplica runs a controller with leader election; stop (also called at the end of the
// test) cancels it, which releases the Lease if it holds it.
func startReplica(t *testing.T, cfg Config) replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !c.Manager.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		t.Fatal("the controller's caches did not sync within a minute")
	}
	stopped := false
	stop := func() {
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
	return replica{Controller: c, stop: stop}
}

func elected(c *Controller) bool {
	select {
	case <-c.Manager.Elected():
		return true
	default:
		return false
	}
}

// policyWrites counts the changes to managed NetworkPolicies, in every namespace, from now on.
type policyWrites struct {
	w      watch.Interface
	events chan string
}

func watchPolicyWrites(t *testing.T, c kubernetes.Interface) *policyWrites {
	t.Helper()
	ctx := testContext(t)
	list, err := c.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).Watch(ctx, metav1.ListOptions{
		ResourceVersion: list.ResourceVersion,
		LabelSelector:   generate.ManagedByLabel + "=" + generate.ManagedBy,
	})
	if err != nil {
		t.Fatal(err)
	}
	pw := &policyWrites{w: w, events: make(chan string, 1000)}
	go func() {
		for ev := range w.ResultChan() {
			np, ok := ev.Object.(*networkingv1.NetworkPolicy)
			if !ok {
				continue
			}
			pw.events <- fmt.Sprintf("%s %s/%s rv %s", ev.Type, np.Namespace, np.Name, np.ResourceVersion)
		}
		close(pw.events)
	}()
	t.Cleanup(w.Stop)
	return pw
}

// during returns the writes seen over a window.
func (pw *policyWrites) during(window time.Duration) []string {
	var out []string
	deadline := time.After(window)
	for {
		select {
		case ev, ok := <-pw.events:
			if !ok {
				return append(out, "watch closed")
			}
			out = append(out, ev)
		case <-deadline:
			return out
		}
	}
}

func TestTwoReplicasOneLeaderNoFlapping(t *testing.T) {
	cp := cluster(t)
	admin := cp.Client("admin")
	ctx := testContext(t)
	const home = "imdsguard-ha"
	createNamespace(t, admin, home)
	for _, ns := range []string{"ha-a", "ha-b", "ha-c"} {
		createNamespace(t, admin, ns)
	}
	config := func() Config {
		cfg := testConfig(cp, ModeNetworkPolicy)
		cfg.Namespace = home
		cfg.LeaderElection = true
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 3*time.Second, 2*time.Second, 200*time.Millisecond
		return cfg
	}
	first := startReplica(t, config())
	second := startReplica(t, config())
	replicas := []replica{first, second}

	var leader, standby replica
	eventually(t, "a leader elected", 20*time.Second, func() (bool, string) {
		for i, r := range replicas {
			if elected(r.Controller) {
				leader, standby = r, replicas[1-i]
				return true, ""
			}
		}
		return false, "neither replica elected"
	})
	for _, ns := range []string{"ha-a", "ha-b", "ha-c"} {
		waitProtected(t, admin, ns)
	}

	t.Run("exactly one replica leads, and the Lease names it", func(t *testing.T) {
		time.Sleep(time.Second) // longer than the retry period: a second leader would have shown
		if elected(standby.Controller) {
			t.Fatal("both replicas are leaders")
		}
		lease, err := admin.CoordinationV1().Leases(home).Get(ctx, LeaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Fatalf("the Lease has no holder: %+v", lease.Spec)
		}
	})

	t.Run("the managed policies are not rewritten while nothing changes", func(t *testing.T) {
		writes := watchPolicyWrites(t, admin)
		if got := writes.during(3 * time.Second); len(got) > 0 {
			t.Errorf("managed NetworkPolicies written with nothing to repair: %v", got)
		}
	})

	t.Run("the standby takes over when the leader stops, without rewriting anything", func(t *testing.T) {
		before := holder(t, admin, home)
		writes := watchPolicyWrites(t, admin)
		leader.stop()
		eventually(t, "the standby elected", 10*time.Second, func() (bool, string) {
			return elected(standby.Controller), "holder " + holder(t, admin, home)
		})
		if after := holder(t, admin, home); after == before {
			t.Errorf("the Lease still names the stopped leader %s", before)
		}
		if got := writes.during(2 * time.Second); len(got) > 0 {
			t.Errorf("the new leader rewrote managed NetworkPolicies that were as desired: %v", got)
		}
		createNamespace(t, admin, "ha-after")
		waitProtected(t, admin, "ha-after")
		if got := writes.during(2 * time.Second); len(got) != 1 {
			t.Errorf("writes after a new namespace: %v, want exactly its policy's creation", got)
		}
	})
}

func holder(t *testing.T, c kubernetes.Interface, ns string) string {
	t.Helper()
	lease, err := c.CoordinationV1().Leases(ns).Get(testContext(t), LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}
