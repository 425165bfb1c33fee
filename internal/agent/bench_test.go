package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/sandbox"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// generation is one kernel ruleset transaction as `nft monitor` reports it: the changes, then
// "# new generation N by process PID (COMM)".
type generation struct {
	at      time.Time // when the monitor printed the closing line
	pid     int
	changes []string
}

var generationLine = regexp.MustCompile(`^# new generation \d+ by process (\d+)`)

// watchGenerations runs `nft monitor` on the node and sends every transaction on the returned
// channel, stamped when its last line was read. It is the benchmark's clock: the tamper and the
// repair are both kernel commits seen by the same reader, so the interval between them is the
// time the node was without its rules, free of the cost of starting the tamper command.
func watchGenerations(tb testing.TB, s *sandbox.Sandbox) <-chan generation {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.NodeCommand(ctx, "nft", "monitor")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	out := make(chan generation, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var changes []string
		for sc.Scan() {
			line := sc.Text()
			m := generationLine.FindStringSubmatch(line)
			if m == nil {
				changes = append(changes, line)
				continue
			}
			pid, _ := strconv.Atoi(m[1])
			select {
			case out <- generation{at: time.Now(), pid: pid, changes: changes}:
			default: // nobody is reading: the benchmark has failed already
			}
			changes = nil
		}
	}()
	tb.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		<-done
	})
	// nft monitor subscribes before it prints anything; give it a moment to do so.
	time.Sleep(100 * time.Millisecond)
	return out
}

// tamper is one way another process breaks the agent's table.
type tamper struct {
	name   string
	script func(tb testing.TB, s *sandbox.Sandbox) string
}

var handleOfIMDSDrop = regexp.MustCompile(`drop comment "imds: deny pods" # handle (\d+)`)

var tampers = []tamper{
	{"delete table", func(testing.TB, *sandbox.Sandbox) string { return "delete table inet imdsguard" }},
	{"flush table", func(testing.TB, *sandbox.Sandbox) string { return "flush table inet imdsguard" }},
	{"flush chain", func(testing.TB, *sandbox.Sandbox) string { return "flush chain inet imdsguard forward" }},
	{"delete rule", func(tb testing.TB, s *sandbox.Sandbox) string {
		out, err := s.NodeRun(context.Background(), "", "nft", "-a", "list", "chain", "inet", "imdsguard", "forward")
		if err != nil {
			tb.Fatal(err)
		}
		m := handleOfIMDSDrop.FindStringSubmatch(out)
		if m == nil {
			tb.Fatalf("no handle for the IMDS drop in:\n%s", out)
		}
		return "delete rule inet imdsguard forward handle " + m[1]
	}},
}

// BenchmarkRestoreAfterTamper measures how long the node is without its rules when another
// process deletes the table, flushes it, flushes the forward chain or deletes the IMDS drop,
// each in turn: from the tamper's kernel commit to the agent's restoring commit, both as `nft
// monitor` on the node reports them. One operation is one tamper event; the events are spaced
// so that each finds the agent idle. Reports p50, p99 and max in milliseconds. The periodic
// resync is an hour: every repair comes from the change monitor. The agent is the test binary
// run as the CLI, or $IMDSGUARD_BENCH_AGENT; with $IMDSGUARD_BENCH_SAMPLES set, every restore
// time (ms) is appended to that file, for pooling across runs.
//
//	go test -run '^$' -bench RestoreAfterTamper -benchtime 200x ./internal/agent/
func BenchmarkRestoreAfterTamper(b *testing.B) {
	s := sandbox.New(b)
	a := startAgent(b, s, "--resync", "1h", "--pods-cgroup", s.PodsCgroup())
	want := nodeTable(b, s)
	gens := watchGenerations(b, s)
	ctx := context.Background()
	var restore []time.Duration
	byKind := map[string][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(150 * time.Millisecond) // the agent's own check after its last repair is over
		for len(gens) > 0 {
			<-gens
		}
		tp := tampers[i%len(tampers)]
		script := tp.script(b, s)
		b.StartTimer()

		cmd := s.NodeCommand(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script + "\n")
		if out, err := runPID(cmd); err != nil {
			b.Fatalf("%s: %v: %s", tp.name, err, out)
		}
		var tampered time.Time
		deadline := time.After(10 * time.Second)
		for {
			var g generation
			select {
			case g = <-gens:
			case <-deadline:
				b.Fatalf("%s: no restoring transaction within 10s:\n%s", tp.name, a.out.String())
			}
			if g.pid == cmd.Process.Pid {
				tampered = g.at
				continue
			}
			if !tampered.IsZero() && slices.Contains(g.changes, "add table inet imdsguard") {
				restore = append(restore, g.at.Sub(tampered))
				byKind[tp.name] = append(byKind[tp.name], g.at.Sub(tampered))
				break
			}
		}
	}
	b.StopTimer()
	time.Sleep(150 * time.Millisecond)
	if got := nodeTable(b, s); got != want {
		b.Fatalf("table after %d repairs differs from the one the agent applied:\n%s\nwant:\n%s", b.N, got, want)
	}
	if got := a.metric("imdsguard_repairs_total"); got != float64(b.N) {
		b.Errorf("imdsguard_repairs_total = %v after %d tamper events", got, b.N)
	}
	reportPercentiles(b, restore)
	for _, tp := range tampers {
		v := byKind[tp.name]
		slices.Sort(v)
		if len(v) > 0 {
			b.Logf("%-12s %3d restores: p50 %v, max %v", tp.name, len(v), v[len(v)/2].Round(10*time.Microsecond), v[len(v)-1].Round(10*time.Microsecond))
		}
	}
	if path := os.Getenv("IMDSGUARD_BENCH_SAMPLES"); path != "" && b.N > 1 {
		var out strings.Builder
		for _, d := range restore {
			fmt.Fprintf(&out, "%.3f\n", float64(d.Microseconds())/1000)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		_, err = f.WriteString(out.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// runPID runs cmd; its process ID stays readable afterwards.
func runPID(cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return []byte(out.String()), err
}

func reportPercentiles(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	b.ReportMetric(ms(at(0.50)), "p50-ms")
	b.ReportMetric(ms(at(0.99)), "p99-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
	b.Logf("%d restores: p50 %v, p99 %v, max %v", len(ds), at(0.50), at(0.99), ds[len(ds)-1])
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on every Linux ABI.
const clockTicks = 100

// procCPU returns a process's user plus system CPU time, all threads.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest) // f[0] is field 3 (state)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procStatusKB returns a /proc/<pid>/status field in kB (VmRSS, VmHWM).
func procStatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// BenchmarkAgentIdle measures the agent at rest as the DaemonSet runs it: against a real API
// server (its node, 30 pods on it, exemptions selected by namespace and service account, the
// pod watch open), its table in place, the default 30 s resync. After start-up settles, it
// samples the process for IMDSGUARD_BENCH_IDLE_SECONDS (default 30): CPU (user + system, from
// /proc/<pid>/stat) as a share of one CPU, and resident memory (VmRSS, largest sample; VmHWM,
// the peak since start). The standby nft it keeps is reported apart. One operation is one
// measurement.
//
//	go test -run '^$' -bench AgentIdle -benchtime 1x ./internal/agent/
func BenchmarkAgentIdle(b *testing.B) {
	window := time.Duration(benchEnv(b, "IMDSGUARD_BENCH_IDLE_SECONDS", 30)) * time.Second
	cp := controlPlane.Get(b)
	ctx := context.Background()
	c := cp.Client("admin")
	s := sandbox.New(b)
	id := suffix()
	node, ns := "node-"+id, "bench-"+id
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for i := range 30 {
		sa := "app"
		if i%10 == 0 {
			sa = "exempt"
		}
		apiPod{namespace: ns, name: fmt.Sprintf("pod-%d", i), node: node, serviceAccount: sa,
			ips: []netip.Addr{netip.AddrFrom4([4]byte{10, 9, 0, byte(i + 1)})}}.create(b, ctx, c)
	}
	config := filepath.Join(b.TempDir(), "agent.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("mode: enforce\nexempt:\n  - namespace: %s\n    serviceAccount: exempt\npodsCgroup: %s\n", ns, s.PodsCgroup())), 0o600); err != nil {
		b.Fatal(err)
	}
	kubeconfig := agentKubeconfig(b, cp, s, "admin")
	for range b.N {
		a := startAgentWith(b, s, nil, "--config", config, "--kubeconfig", kubeconfig, "--node-name", node, "--log-level", "info")
		pid := a.cmd.Process.Pid
		time.Sleep(3 * time.Second) // start-up: first syncs, the pod list, the standby nft
		cpu0, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var rss, anon, file, standby int64
		for time.Since(start) < window {
			time.Sleep(time.Second)
			kb, err := procStatusKB(pid, "VmRSS")
			if err != nil {
				b.Fatalf("agent gone: %v\n%s", err, a.out.String())
			}
			if kb > rss {
				rss = kb
				anon, _ = procStatusKB(pid, "RssAnon")
				file, _ = procStatusKB(pid, "RssFile")
			}
			var kids int64
			for _, child := range children(pid) {
				if kb, err := procStatusKB(child, "VmRSS"); err == nil {
					kids += kb
				}
			}
			standby = max(standby, kids)
		}
		cpu1, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		hwm, err := procStatusKB(pid, "VmHWM")
		if err != nil {
			b.Fatal(err)
		}
		if got := a.metric(`imdsguard_syncs_total{result="ok"}`); got < 1 {
			b.Fatalf("the agent did not sync: %v\n%s", got, a.out.String())
		}
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MiB")
		b.ReportMetric(float64(anon)/1024, "anon-MiB")
		b.ReportMetric(float64(file)/1024, "file-MiB")
		b.ReportMetric(float64(standby)/1024, "children-rss-MiB")
		b.Logf("agent %s: %v CPU in %v, VmRSS ≤ %d kB, VmHWM %d kB, children %d kB", a.cmd.Path, cpu1-cpu0, elapsed.Round(time.Millisecond), rss, hwm, standby)
		_ = a.stop(syscall.SIGTERM)
	}
}

func benchEnv(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
