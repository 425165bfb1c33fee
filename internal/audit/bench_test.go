//go:build linux || darwin

package audit_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/synth"
)

// benchPodsEnv sizes the synthetic cluster the benchmarks read; namespaces and policies scale
// with it (synth.Scaled). The default is the full 100,000-pod cluster.
const benchPodsEnv = "IMDSGUARD_BENCH_PODS"

// benchCalicoEnv adds Calico policies to the synthetic cluster (synth.Config.CalicoPolicies).
const benchCalicoEnv = "IMDSGUARD_BENCH_CALICO"

// benchCiliumEnv adds Cilium policies to the synthetic cluster (synth.Config.CiliumPolicies).
const benchCiliumEnv = "IMDSGUARD_BENCH_CILIUM"

// benchNodesEnv adds Nodes, in 20 Karpenter node pools, to the synthetic cluster
// (synth.Config.Nodes).
const benchNodesEnv = "IMDSGUARD_BENCH_NODES"

// benchInput is the synthetic cluster, generated once per test process.
var benchInput struct {
	once  sync.Once
	dir   string
	path  string
	size  int64
	stats synth.Stats
	err   error
}

// TestMain removes the generated cluster when the benchmarks are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchInput.dir != "" {
		os.RemoveAll(benchInput.dir)
	}
	os.Exit(code)
}

// clusterFile returns the path of the synthetic cluster, generating it on first use.
func clusterFile(b *testing.B) (string, int64, synth.Stats) {
	b.Helper()
	benchInput.once.Do(func() {
		benchInput.err = generateCluster()
	})
	if benchInput.err != nil {
		b.Fatal(benchInput.err)
	}
	return benchInput.path, benchInput.size, benchInput.stats
}

func generateCluster() error {
	pods := synth.DefaultPods
	if s := os.Getenv(benchPodsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("%s=%q: want a positive number of pods", benchPodsEnv, s)
		}
		pods = n
	}
	dir, err := os.MkdirTemp("", "imdsguard-bench-")
	if err != nil {
		return fmt.Errorf("create input directory: %w", err)
	}
	benchInput.dir = dir
	path := filepath.Join(dir, "cluster.json")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create input: %w", err)
	}
	cfg := synth.Scaled(pods)
	if s := os.Getenv(benchCalicoEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want a number of Calico policies", benchCalicoEnv, s)
		}
		cfg.CalicoPolicies = n
	}
	if s := os.Getenv(benchCiliumEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want a number of Cilium policies", benchCiliumEnv, s)
		}
		cfg.CiliumPolicies = n
	}
	if s := os.Getenv(benchNodesEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want a number of nodes", benchNodesEnv, s)
		}
		cfg.Nodes, cfg.NodePools = n, min(n, 20)
	}
	stats, err := synth.Generate(f, cfg)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	if err != nil {
		return fmt.Errorf("generate %d-pod cluster: %w", pods, err)
	}
	benchInput.path, benchInput.size, benchInput.stats = path, stats.Bytes, stats
	return nil
}

// load reads the cluster and fails the benchmark if any of it could not be used.
func load(b *testing.B, path string) *inventory.Inventory {
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		b.Fatalf("load %s: %v", path, err)
	}
	if len(inv.Problems) > 0 {
		b.Fatalf("load %s: %d problems, first: %v", path, len(inv.Problems), inv.Problems[0])
	}
	return inv
}

// cpuTime returns the CPU time, user and system, the process has used so far. On a shared
// machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time used since start, per op, as cpu-ms/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// perSecond reports n items per op as a rate.
func perSecond(b *testing.B, n int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/s, unit)
	}
}

// BenchmarkDecode measures inventory.Load of the cluster file: reading, splitting the List and
// decoding every item into its Kubernetes type.
func BenchmarkDecode(b *testing.B) {
	path, size, stats := clusterFile(b)
	b.SetBytes(size)
	b.ReportAllocs()
	var inv *inventory.Inventory
	cpu := cpuTime()
	for b.Loop() {
		inv = load(b, path)
	}
	reportCPU(b, cpu)
	if len(inv.Pods) != stats.Pods {
		b.Fatalf("loaded %d pods, generated %d", len(inv.Pods), stats.Pods)
	}
	perSecond(b, stats.Pods, "pods/s")
}

// BenchmarkEvaluate measures policy evaluation alone: compiling the policies and deciding every
// endpoint of every cloud for every pod and workload template (in the order audit.Run uses).
func BenchmarkEvaluate(b *testing.B) {
	path, _, stats := clusterFile(b)
	inv := load(b, path)
	eps := endpoint.Select([]endpoint.Cloud{endpoint.All})
	subjects := audit.Subjects(inv)
	ps := make([]policy.Subject, len(subjects))
	for i, s := range subjects {
		ps[i] = policy.Subject{Namespace: s.Namespace, Labels: s.Meta.Labels, HostNetwork: s.Spec.HostNetwork, ServiceAccount: s.Spec.ServiceAccountName}
	}
	b.ReportAllocs()
	var verdicts [][]policy.Verdict
	cpu := cpuTime()
	for b.Loop() {
		model := policy.Compile(inv)
		verdicts = model.EvaluateAll(ps, eps)
	}
	reportCPU(b, cpu)
	reachable := 0
	for _, row := range verdicts {
		for _, v := range row {
			if v.Allowed {
				reachable++
			}
		}
	}
	perSecond(b, stats.Pods, "pods/s")
	perSecond(b, len(ps), "subjects/s")
	b.ReportMetric(float64(len(verdicts)), "exposures")
	b.ReportMetric(float64(reachable), "reachable")
}

// BenchmarkAudit measures what "imdsguard audit --output json" does after parsing flags:
// load, evaluate and derive findings (audit.Run), write the JSON report. The time of each phase
// is reported as load-ms/op, run-ms/op and write-ms/op; the CPU time of all three as cpu-ms/op.
func BenchmarkAudit(b *testing.B) {
	path, size, stats := clusterFile(b)
	eps := endpoint.Select([]endpoint.Cloud{endpoint.All})
	b.SetBytes(size)
	b.ReportAllocs()
	var loadTime, runTime, writeTime time.Duration
	var report *audit.Report
	cpu := cpuTime()
	for b.Loop() {
		t0 := time.Now()
		inv := load(b, path)
		t1 := time.Now()
		report = audit.Run(inv, eps)
		t2 := time.Now()
		if err := report.WriteJSON(io.Discard, "bench"); err != nil {
			b.Fatalf("write report: %v", err)
		}
		t3 := time.Now()
		loadTime += t1.Sub(t0)
		runTime += t2.Sub(t1)
		writeTime += t3.Sub(t2)
	}
	reportCPU(b, cpu)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	perSecond(b, stats.Pods, "pods/s")
	b.ReportMetric(float64(report.Exposures()), "exposures")
	b.ReportMetric(float64(len(report.Findings)), "findings")
	b.ReportMetric(ms(loadTime), "load-ms/op")
	b.ReportMetric(ms(runTime), "run-ms/op")
	b.ReportMetric(ms(writeTime), "write-ms/op")
}
