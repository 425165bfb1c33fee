// Command benchcontroller measures how long the controller takes to protect a cluster from
// scratch, for hack/bench-controller.sh: it starts a fresh test control plane, creates
// -namespaces namespaces at once, then starts the controller binary (the arguments after --,
// with KUBECONFIG pointing at the control plane) and times until every namespace holds the
// managed NetworkPolicy. It prints one line of figures:
//
//	namespaces=5000 seconds=12.34 peak_rss_kb=81234 cpu_seconds=20.1
//
// The peak RSS is the controller process's own high-water mark (VmHWM), read just before it
// is stopped with SIGTERM. Run it from the repository root after hack/kube-apiserver.sh:
//
//	go run ./hack/benchcontroller -namespaces 5000 -- bin/imdsguard controller --mode networkpolicy
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "benchcontroller: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	namespaces := flag.Int("namespaces", 5000, "namespaces to create before the controller starts")
	workers := flag.Int("workers", 32, "concurrent create requests")
	limit := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	command := flag.Args()
	if len(command) == 0 {
		return errors.New("usage: benchcontroller [flags] -- CONTROLLER-COMMAND")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()

	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		return err
	}
	defer cp.Stop()
	admin := cp.Client("admin")
	start := time.Now()
	if err := createNamespaces(ctx, admin, "imdsguard-system", *namespaces, *workers); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %d namespaces in %s\n", *namespaces, time.Since(start).Round(time.Millisecond))
	kubeconfig, err := cp.Kubeconfig()
	if err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, command[0], command[1:]...) //nolint:gosec // the benchmark runs the command it is given
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=imdsguard-system")
	log, err := os.CreateTemp("", "benchcontroller-*.log")
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", command[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	want := *namespaces // the controller's own namespace is protected too, but not counted
	var took time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for took == 0 {
		select {
		case err := <-exited:
			return fmt.Errorf("the controller exited (log %s): %w", log.Name(), err)
		case <-ctx.Done():
			return fmt.Errorf("not all namespaces protected within %s; the controller's log is %s", *limit, log.Name())
		case <-tick.C:
		}
		n, err := protected(ctx, admin)
		if err != nil {
			continue // the API server is busy; ask again
		}
		if n >= want {
			took = time.Since(start)
		}
	}
	rss, cpu, err := usage(cmd.Process.Pid)
	if err != nil {
		return err
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		return fmt.Errorf("the controller did not exit cleanly on SIGTERM: %w (log %s)", err, log.Name())
	}
	_ = os.Remove(log.Name())
	fmt.Printf("namespaces=%d seconds=%.2f peak_rss_kb=%d cpu_seconds=%.2f\n", *namespaces, took.Seconds(), rss, cpu)
	return nil
}

// createNamespaces creates the controller's namespace and n others, bench-00001 ..., with
// workers requests in flight.
func createNamespaces(ctx context.Context, c kubernetes.Interface, home string, n, workers int) error {
	names := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for name := range names {
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
				if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("create namespace %s: %w", name, err)
					return
				}
			}
		})
	}
	go func() {
		defer close(names)
		names <- home
		for i := 1; i <= n; i++ {
			select {
			case names <- fmt.Sprintf("bench-%05d", i):
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return <-errs
}

// protected counts the managed NetworkPolicies outside the controller's namespace.
func protected(ctx context.Context, c kubernetes.Interface) (int, error) {
	list, err := c.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		LabelSelector:   generate.ManagedByLabel + "=" + generate.ManagedBy,
		ResourceVersion: "0", // from the watch cache: cheap, and at most moments old
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, np := range list.Items {
		if np.Name == generate.PolicyName && strings.HasPrefix(np.Namespace, "bench-") {
			n++
		}
	}
	return n, nil
}

// usage reads a process's peak resident set (KiB) and CPU time (s) from /proc.
func usage(pid int) (rssKB int64, cpuSeconds float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			rssKB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces) start at state; utime and stime
	// are the 14th and 15th fields of the line.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	fields := strings.Fields(rest)
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return rssKB, (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}
