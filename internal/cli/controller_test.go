package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/generate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestControllerUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"controller", "--mode", "iptables"},
		{"controller", "--exempt-label", "no-value"},
		{"controller", "--cloud", "mars"},
		{"controller", "--exempt-namespace", "Not_A_Name"},
		{"controller", "--kube-api-qps", "0"},
	} {
		code, _, stderr := run(t, "", args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", args, code, ExitUsage, stderr)
		}
	}
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the controller's logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url) //nolint:gosec // a loopback address the test chose
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestControllerCommand runs `imdsguard controller` against the real API server: it protects
// a new namespace, serves its probes and metrics, and stops cleanly.
func TestControllerCommand(t *testing.T) {
	cp := controlPlane.Get(t)
	kubeconfig, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := cp.Client("admin")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range []string{"imdsguard-system", "cli-controller"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	metricsAddr, probeAddr := freeAddress(t), freeAddress(t)
	runCtx, stop := context.WithCancel(ctx)
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(runCtx, []string{"controller", "--kubeconfig", kubeconfig, "--mode", "networkpolicy", "--cloud", "aws",
			"--namespace", "imdsguard-system", "--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms",
			"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr},
			Streams{In: strings.NewReader(""), Out: io.Discard, Err: stderr})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := admin.NetworkingV1().NetworkPolicies("cli-controller").Get(ctx, generate.PolicyName, metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace cli-controller not protected within 30s: %v\nlog:\n%s", err, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := get("http://" + probeAddr + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, body := get("http://" + probeAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := get("http://" + metricsAddr + "/metrics")
	for _, want := range []string{`imdsguard_controller_namespaces{state="protected"}`, `imdsguard_controller_mode{mode="networkpolicy"} 1`,
		`controller_runtime_reconcile_total{controller="namespace"`, `controller_runtime_reconcile_time_seconds_bucket{controller="namespace"`,
		`imdsguard_controller_writes_total{action="apply",kind="NetworkPolicy"}`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
	lease, err := admin.CoordinationV1().Leases("imdsguard-system").Get(ctx, "imdsguard-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("no leader election Lease held: %v", err)
	}
	stop()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after cancel; log:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the controller did not stop within 30s of its context ending")
	}
	for _, want := range []string{"mode chosen", "starting controller"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestControllerFailsFast runs `imdsguard controller` against the real API server where it
// cannot work: it stops at once with its own message and the exit code of the cause, instead
// of retrying leader election forever.
func TestControllerFailsFast(t *testing.T) {
	cp := controlPlane.Get(t)
	kubeconfig, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := cp.Client("admin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fail-fast-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		sentence string
		args     []string
		want     int
		says     string
	}{
		{"a namespace that does not exist is named, with the way to create it", []string{"--namespace", "imdsguard-nowhere"}, ExitUsage,
			"namespace imdsguard-nowhere does not exist, so the controller cannot write the status ConfigMap imdsguard-status there: create it (kubectl create namespace imdsguard-nowhere"},
		{"without leader election the namespace is still checked", []string{"--namespace", "imdsguard-nowhere", "--leader-elect=false"}, ExitUsage,
			"namespace imdsguard-nowhere does not exist"},
		{"a probe address in use is a runtime failure", []string{"--namespace", "fail-fast-system", "--health-probe-bind-address", busy.Addr().String()}, ExitRuntime,
			"address already in use"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			args := append([]string{"controller", "--kubeconfig", kubeconfig, "--mode", "networkpolicy", "--cloud", "aws",
				"--metrics-bind-address", "0"}, tc.args...)
			if !slices.Contains(args, "--health-probe-bind-address") {
				args = append(args, "--health-probe-bind-address", "0")
			}
			done := make(chan struct{})
			var code int
			var stdout, stderr string
			go func() {
				defer close(done)
				code, stdout, stderr = run(t, "", args...)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the controller did not stop within 30s")
			}
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s", code, tc.want, stderr)
			}
			if line := errorLine(t, stderr); !strings.Contains(line, tc.says) {
				t.Errorf("error %q does not say %q", line, tc.says)
			}
			if strings.Contains(stderr, "--help") || stdout != "" {
				t.Errorf("a failure that is not a usage error points to the usage, or output was written:\n%s%s", stdout, stderr)
			}
		})
	}
	if _, err := admin.CoordinationV1().Leases("imdsguard-nowhere").Get(ctx, "imdsguard-controller", metav1.GetOptions{}); err == nil {
		t.Error("the check created a Lease: it must only dry-run")
	}
}
