package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// controlPlane is a real kube-apiserver and etcd, started by the first test that needs one.
var controlPlane = kubetest.NewShared(kubetest.Options{})

// agentEnv turns the re-executed test binary into `imdsguard`: the agent runs as a real
// process (it must survive and be killed like one) without a separate build.
const agentEnv = "IMDSGUARD_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	sandbox.RunHelperIfRequested()
	runFilterAgentIfRequested()
	if os.Getenv(agentEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
		stop()
		os.Exit(code)
	}
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

// agentProcess is `imdsguard agent` running on a sandbox node.
type agentProcess struct {
	t   testing.TB
	s   *sandbox.Sandbox
	cmd *exec.Cmd
	out *syncBuffer
	err chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// imdsguard runs the CLI on the node and returns its output.
func imdsguard(t testing.TB, s *sandbox.Sandbox, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := imdsguardCommand(t, ctx, s, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("imdsguard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// agentBinaryEnv names another imdsguard binary to run instead of the test binary: the
// benchmarks compare builds side by side with it (hack/bench-agent.sh).
const agentBinaryEnv = "IMDSGUARD_BENCH_AGENT"

// imdsguardCommand returns `imdsguard args...` on the node: the test binary re-executed as the
// CLI, or the binary named by $IMDSGUARD_BENCH_AGENT.
func imdsguardCommand(t testing.TB, ctx context.Context, s *sandbox.Sandbox, args ...string) *exec.Cmd {
	t.Helper()
	exe := os.Getenv(agentBinaryEnv)
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := s.NodeCommand(ctx, append([]string{exe}, args...)...)
	cmd.Env = append(os.Environ(), agentEnv+"=1")
	return cmd
}

// startAgent starts the agent on the node with the sandbox's endpoints, without the Kubernetes
// API, and waits until it is ready.
func startAgent(t testing.TB, s *sandbox.Sandbox, extra ...string) *agentProcess {
	t.Helper()
	return startAgentWith(t, s, nil, append([]string{"--no-kubernetes"}, extra...)...)
}

// startAgentWith starts the agent with args after the common ones and env added to the
// environment, and waits until it is ready.
func startAgentWith(t testing.TB, s *sandbox.Sandbox, env []string, extra ...string) *agentProcess {
	t.Helper()
	p := launchAgent(t, s, env, extra...)
	p.waitReady()
	return p
}

// launchAgent starts the agent like startAgentWith without waiting for it to be ready.
func launchAgent(t testing.TB, s *sandbox.Sandbox, env []string, extra ...string) *agentProcess {
	t.Helper()
	return launchAgentInCgroup(t, s, "", env, extra...)
}

// launchAgentInCgroup starts the agent like launchAgent, in the cgroup at cgroupDir (an
// absolute path; "" for the test's own), as the kubelet starts a pod's container in its pod
// cgroup.
func launchAgentInCgroup(t testing.TB, s *sandbox.Sandbox, cgroupDir string, env []string, extra ...string) *agentProcess {
	t.Helper()
	p := &agentProcess{t: t, s: s, out: &syncBuffer{}, err: make(chan error, 1)}
	p.cmd = imdsguardCommand(t, context.Background(), s, append([]string{"agent", "--cloud", "aws,azure,gcp", "--listen", "127.0.0.1:9808", "--log-level", "debug"}, extra...)...)
	p.cmd.Env = append(p.cmd.Env, env...)
	if cgroupDir != "" {
		dir, err := os.Open(cgroupDir)
		if err != nil {
			t.Fatalf("open cgroup: %v", err)
		}
		defer dir.Close()
		p.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// nsenter execs the agent, so the process we signal is the agent itself.
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { p.err <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("agent output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *agentProcess) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.err:
			p.err <- err
			p.t.Fatalf("agent exited before it was ready: %v\n%s", err, p.out.String())
		default:
		}
		if code, _ := p.get("/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("agent not ready after 20s:\n%s", p.out.String())
}

// get fetches a path from the agent's HTTP server inside the node namespace.
func (p *agentProcess) get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: p.s.Node.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9808"+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metric returns the value of the first sample whose line starts with prefix, or -1.
func (p *agentProcess) metric(prefix string) float64 {
	_, body := p.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			f, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// stop signals the agent and waits for it to exit.
func (p *agentProcess) stop(sig syscall.Signal) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.err:
		p.err <- err
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("agent did not exit on %v", sig)
	}
}

func nodeTable(t testing.TB, s *sandbox.Sandbox) string {
	t.Helper()
	out, err := s.NodeRun(context.Background(), "", "nft", "list", "table", "inet", firewall.TableName)
	if err != nil {
		return ""
	}
	return out
}

// TestAgentAppliesAndFailsClosed: the agent blocks pods and lets the node through; killed with
// SIGKILL or stopped with SIGTERM it leaves the rules in place; uninstall removes them.
func TestAgentAppliesAndFailsClosed(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	blocked := func(when string) {
		t.Helper()
		sandbox.Verify(t,
			sandbox.FetchCheck(when+": pod", pod.NS.Fetch, sandbox.AWSCredentials, false),
			sandbox.FetchCheck(when+": pod", pod.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
			sandbox.FetchCheck(when+": node", s.Node.Fetch, sandbox.AWSCredentials, true),
		)
	}
	a := startAgent(t, s)
	blocked("agent running")
	if err := a.stop(syscall.SIGKILL); err == nil {
		t.Fatal("agent exited cleanly on SIGKILL?")
	}
	blocked("after SIGKILL")

	b := startAgent(t, s)
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("agent on SIGTERM: %v", err)
	}
	if !strings.Contains(b.out.String(), "the firewall stays in place") {
		t.Errorf("agent did not say it leaves the firewall in place:\n%s", b.out.String())
	}
	blocked("after SIGTERM")

	imdsguard(t, s, "agent", "uninstall")
	if nodeTable(t, s) != "" {
		t.Fatal("table still present after uninstall")
	}
	sandbox.Verify(t, sandbox.FetchCheck("after uninstall: pod", pod.NS.Fetch, sandbox.AWSCredentials, true))
}

// TestAgentRepairsDrift: whatever another process does to our table — delete it, flush it,
// flush a chain, delete a rule, slip an accept in — the agent notices through nft monitor
// (the periodic resync is set to an hour here) and restores it, and counts each repair.
func TestAgentRepairsDrift(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.Bridge)
	a := startAgent(t, s, "--resync", "1h")
	want := nodeTable(t, s)
	ctx := context.Background()
	handle := regexp.MustCompile(`drop comment "imds: deny pods" # handle (\d+)`)
	tampers := []struct {
		name   string
		script func() string
	}{
		{"delete table", func() string { return "delete table inet imdsguard" }},
		{"flush table", func() string { return "flush table inet imdsguard" }},
		{"flush forward chain", func() string { return "flush chain inet imdsguard forward" }},
		{"insert accept", func() string { return "insert rule inet imdsguard forward accept" }},
		{"delete the IPv4 IMDS drop", func() string {
			out, err := s.NodeRun(ctx, "", "nft", "-a", "list", "chain", "inet", "imdsguard", "forward")
			if err != nil {
				t.Fatal(err)
			}
			m := handle.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no handle for the IMDS drop in:\n%s", out)
			}
			return "delete rule inet imdsguard forward handle " + m[1]
		}},
	}
	var restore []time.Duration
	for i, tamper := range tampers {
		if _, err := s.NodeRun(ctx, tamper.script()+"\n", "nft", "-f", "-"); err != nil {
			t.Fatalf("%s: %v", tamper.name, err)
		}
		start := time.Now()
		for nodeTable(t, s) != want {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: table not restored after 10s:\n%s", tamper.name, nodeTable(t, s))
			}
			time.Sleep(5 * time.Millisecond)
		}
		restore = append(restore, time.Since(start))
		deadline := time.Now().Add(5 * time.Second)
		for a.metric("imdsguard_repairs_total") < float64(i+1) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := a.metric("imdsguard_repairs_total"); got != float64(i+1) {
			t.Errorf("%s: imdsguard_repairs_total = %v, want %d", tamper.name, got, i+1)
		}
	}
	t.Logf("restore times after tampering: %v", restore)
	sandbox.Verify(t, sandbox.FetchCheck("pod after repairs", pod.NS.Fetch, sandbox.AWSCredentials, false))
}

// TestAgentRestartsLeakNothing: the agent restarted 50 times (killed with SIGKILL and SIGTERM
// in turn) while a pod opens connections to IMDS without pause: not one gets through. The
// prober proves it can see a gap: once the table is uninstalled it gets through at once.
func TestAgentRestartsLeakNothing(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	first := startAgent(t, s)
	if err := first.stop(syscall.SIGKILL); err == nil {
		t.Fatal("agent exited cleanly on SIGKILL?")
	}

	ctx, cancel := context.WithCancel(context.Background())
	var leaked, attempts atomic.Int64
	var wg sync.WaitGroup
	for _, target := range []netip.AddrPort{netip.AddrPortFrom(sandbox.IMDSv4, 80), netip.AddrPortFrom(sandbox.IMDSv6, 80)} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					attempts.Add(1)
					if pod.NS.Connect(ctx, target, 50*time.Millisecond) == nil {
						leaked.Add(1)
					}
				}
			}()
		}
	}
	const restarts = 50
	for i := range restarts {
		p := startAgent(t, s)
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		_ = p.stop(sig)
	}
	cancel()
	wg.Wait()
	if n := leaked.Load(); n != 0 {
		t.Fatalf("%d of %d connections reached IMDS during %d restarts", n, attempts.Load(), restarts)
	}
	t.Logf("%d connection attempts during %d restarts, none reached IMDS", attempts.Load(), restarts)

	imdsguard(t, s, "agent", "uninstall")
	if err := pod.NS.Connect(context.Background(), netip.AddrPortFrom(sandbox.IMDSv4, 80), time.Second); err != nil {
		t.Fatalf("the prober cannot connect even without rules, so it proves nothing: %v", err)
	}
}

// TestAgentBlocksHostNetworkPodsOnceTheCgroupExists: started before the kubelet made its pods
// cgroup (nft cannot load a rule naming a missing cgroup), the agent applies the forward rules
// at once and adds the hostNetwork rules when the cgroup appears; an allowed hostNetwork pod
// (by UID) and the node's daemons keep reaching IMDS.
func TestAgentBlocksHostNetworkPodsOnceTheCgroupExists(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	allowed := s.AddHostNetworkPod(t)
	a := startAgent(t, s, "--resync", "200ms",
		"--pods-cgroup", s.PodsCgroup()+"/not-yet",
		"--allow-host-network-pod-uid", allowed.UID)
	if got := a.metric("imdsguard_hostnetwork_protection"); got != 0 {
		t.Errorf("imdsguard_hostnetwork_protection = %v before the cgroup exists, want 0", got)
	}
	sandbox.Verify(t, sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, false))
	a.stop(syscall.SIGKILL)

	a = startAgent(t, s, "--resync", "200ms", "--allow-host-network-pod-uid", allowed.UID, "--pods-cgroup", s.PodsCgroup())
	attacker := s.AddHostNetworkPod(t)
	if got := a.metric("imdsguard_hostnetwork_protection"); got != 1 {
		t.Errorf("imdsguard_hostnetwork_protection = %v, want 1", got)
	}
	sandbox.Verify(t,
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.AWSCredentialsIPv6, false),
		sandbox.FetchCheck("allowed hostNetwork pod", allowed.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("node daemon", s.FetchAsNodeDaemon, sandbox.AWSCredentials, true),
	)
}

// TestAgentObserveModeCountsAndLogs: observe mode lets pods through, counts would-drops per
// endpoint and per source, and logs each new source once.
func TestAgentObserveModeCountsAndLogs(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.Bridge)
	exempt := s.AddPod(t, sandbox.Bridge)
	a := startAgent(t, s, "--mode", "observe", "--resync", "100ms", "--exempt-pod-ip", exempt.IPv4.String())
	sandbox.Verify(t,
		sandbox.FetchCheck("pod in observe mode", pod.NS.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("pod in observe mode", pod.NS.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("exempt pod", exempt.NS.Fetch, sandbox.AWSCredentials, true),
	)
	source := fmt.Sprintf("imdsguard_source_packets_total{source=%q", pod.IPv4)
	deadline := time.Now().Add(5 * time.Second)
	for a.metric(source) <= 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := a.metric(`imdsguard_would_drop_packets_total{endpoint="imds",destination="169.254.169.254:80/TCP",hook="forward"}`); got <= 0 {
		t.Errorf("would-drop counter for imds = %v, want > 0", got)
	}
	if got := a.metric(source); got <= 0 {
		t.Errorf("%s} = %v, want > 0", source, got)
	}
	if got := a.metric(fmt.Sprintf("imdsguard_source_packets_total{source=%q", exempt.IPv4)); got != -1 {
		t.Errorf("the exempt pod was counted: %v", got)
	}
	if n := strings.Count(a.out.String(), "observe mode: not dropped"); n != 1 {
		t.Errorf("observe-mode log lines for the pod = %d, want exactly 1:\n%s", n, a.out.String())
	}
	if !strings.Contains(a.out.String(), "source="+pod.IPv4.String()) {
		t.Errorf("the log does not name the source %s", pod.IPv4)
	}
	if code, _ := a.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
}

// TestAgentIPTablesFallback: with the iptables backend the pod is blocked, an ACCEPT inserted
// above our jump opens the path only until the next resync re-asserts the jump, and uninstall
// removes the chains.
func TestAgentIPTablesFallback(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	a := startAgent(t, s, "--backend", "iptables", "--resync", "200ms", "--pods-cgroup", s.PodsCgroup())
	ctx := context.Background()
	sandbox.Verify(t,
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
		sandbox.FetchCheck("node", s.Node.Fetch, sandbox.AWSCredentials, true),
	)
	if nodeTable(t, s) != "" {
		t.Error("the iptables backend created the nftables table")
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := s.NodeRun(ctx, "", tool, "-I", "FORWARD", "1", "-j", "ACCEPT"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := s.NodeRun(ctx, "", "iptables", "-S", "FORWARD")
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(out, "\n"); len(lines) > 1 && lines[1] == "-A FORWARD -j "+firewall.IPTablesForwardChain {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jump not re-asserted at the top of FORWARD:\n%s\n%s", out, a.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sandbox.Verify(t, sandbox.FetchCheck("pod after the jump is re-asserted", pod.NS.Fetch, sandbox.AWSCredentials, false))
	a.stop(syscall.SIGKILL)
	imdsguard(t, s, "agent", "uninstall")
	sandbox.Verify(t, sandbox.FetchCheck("pod after uninstall", pod.NS.Fetch, sandbox.AWSCredentials, true))
}

// TestBootstrapRulesAdoptedWithoutGap: the rules `imdsguard agent rules` prints load before the
// kubelet (and the agent) start; the agent then adopts the table.
func TestBootstrapRulesAdoptedWithoutGap(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	script := imdsguard(t, s, "agent", "rules", "--cloud", "aws,azure,gcp")
	if _, err := s.NodeRun(context.Background(), script, "nft", "-f", "-"); err != nil {
		t.Fatalf("load boot rules: %v", err)
	}
	sandbox.Verify(t, sandbox.FetchCheck("pod before the agent runs", pod.NS.Fetch, sandbox.AWSCredentials, false))
	a := startAgent(t, s, "--pods-cgroup", s.PodsCgroup())
	if got := a.metric("imdsguard_repairs_total"); got != 0 {
		t.Errorf("adopting the boot table counted as a repair: %v", got)
	}
	if !strings.Contains(nodeTable(t, s), "socket cgroupv2") {
		t.Error("the agent did not add the hostNetwork rules when adopting the boot table")
	}
}

// TestAgentDetectsCiliumHostRouting: the agent tells Cilium's host routing mode from the
// node_config.h Cilium renders in its state directory, also when Cilium appears after the agent
// started: eBPF host routing (pod traffic bypasses the forward rules) and an unreadable
// configuration are logged as errors, legacy routing is not. Cilium creates the
// cilium_host/cilium_net veth pair; here the test does.
func TestAgentDetectsCiliumHostRouting(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	state := t.TempDir()
	a := startAgent(t, s, "--resync", "100ms", "--cilium-state-dir", state)
	if got := a.metric("imdsguard_cilium_detected"); got != 0 {
		t.Errorf("imdsguard_cilium_detected = %v without Cilium, want 0", got)
	}
	routing := func(mode string) string { return fmt.Sprintf("imdsguard_cilium_host_routing{mode=%q}", mode) }
	expect := func(mode, log string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for a.metric(routing(mode)) != 1 || !strings.Contains(a.out.String(), log) {
			if time.Now().After(deadline) {
				t.Fatalf("mode %s not reported (metric %v, log line %q):\n%s", mode, a.metric(routing(mode)), log, a.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := a.metric("imdsguard_cilium_detected"); got != 1 {
			t.Errorf("imdsguard_cilium_detected = %v with Cilium, want 1", got)
		}
	}
	if err := s.Node.IP(context.Background(), "link", "add", "cilium_host", "type", "veth", "peer", "name", "cilium_net"); err != nil {
		t.Fatal(err)
	}
	expect("unknown", `level=ERROR msg="Cilium detected (cilium_host), but its datapath configuration is not readable here`)
	nodeConfig := filepath.Join(state, "globals", "node_config.h")
	if err := os.MkdirAll(filepath.Dir(nodeConfig), 0o750); err != nil {
		t.Fatal(err)
	}
	write := func(defines string) {
		t.Helper()
		if err := os.WriteFile(nodeConfig, []byte("#ifndef __NODE_CONFIG__\n#define __NODE_CONFIG__\n"+defines+"#endif\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("#define ENABLE_IPV4 1\n#define ENABLE_HOST_ROUTING 1\n")
	expect("bpf", `level=ERROR msg="Cilium uses eBPF host routing: pod traffic bypasses netfilter`)
	write("#define ENABLE_IPV4 1\n")
	expect("legacy", `level=INFO msg="Cilium uses legacy host routing`)
	if got := a.metric(routing("bpf")); got != -1 {
		t.Errorf("the bpf mode is still reported after the switch to legacy: %v", got)
	}
}
