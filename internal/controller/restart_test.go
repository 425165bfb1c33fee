package controller

import (
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/generate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAPIServerRestart(t *testing.T) {
	cp := cluster(t)
	admin := cp.Client("admin")
	ctx := testContext(t)
	const home = "imdsguard-restart"
	createNamespace(t, admin, home)
	createNamespace(t, admin, "rs-before")
	cfg := testConfig(cp, ModeNetworkPolicy)
	cfg.Namespace = home
	// Leader election as deployed: an outage shorter than the renew deadline must not stop
	// the leader (a longer one does, and the pod restarts).
	cfg.LeaderElection = true
	cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 30*time.Second, 20*time.Second, 2*time.Second
	r := startReplica(t, cfg)
	eventually(t, "the controller elected", 20*time.Second, func() (bool, string) { return elected(r.Controller), "" })
	waitProtected(t, admin, "rs-before")

	cp.StopAPIServer()
	time.Sleep(2 * time.Second) // watches break, requests fail
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("a namespace created after the restart is protected", func(t *testing.T) {
		createNamespace(t, admin, "rs-after")
		waitProtected(t, admin, "rs-after")
	})

	t.Run("a managed policy deleted after the restart is restored", func(t *testing.T) {
		if err := admin.NetworkingV1().NetworkPolicies("rs-before").Delete(ctx, generate.PolicyName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitProtected(t, admin, "rs-before")
	})

	t.Run("the controller kept running, and leading", func(t *testing.T) {
		if !elected(r.Controller) {
			t.Fatal("not elected")
		}
		if h := holder(t, admin, home); h == "" {
			t.Error("the Lease has no holder")
		}
	})
}
