package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFiveThousandNamespacesCreatedAtOnce: on a control plane of its own, 5,000 namespaces
// created at once are all protected, each with exactly the generated policy. (hack/bench-
// controller.sh times the same with the shipped rate limits.)
func TestFiveThousandNamespacesCreatedAtOnce(t *testing.T) {
	const total = 5000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	c := cp.Client("admin")
	startController(t, testConfig(cp, ModeNetworkPolicy))

	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total || failed.Load() != nil {
					return
				}
				if _, err := c.CoreV1().Namespaces().Create(ctx, namespace(fmt.Sprintf("scale-%04d", i)), metav1.CreateOptions{}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}

	var protected int
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := c.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{LabelSelector: generate.ManagedByLabel + "=" + generate.ManagedBy})
		if err != nil {
			t.Fatal(err)
		}
		protected = 0
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Namespace, "scale-") && list.Items[i].Name == generate.PolicyName && isGenerated(t, &list.Items[i]) {
				protected++
			}
		}
		if protected == total {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%d of %d namespaces protected after 3 minutes", protected, total)
}
