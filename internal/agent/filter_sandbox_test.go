package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/proxy"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// filterAgentEnv turns the re-executed test binary into an agent in filter mode with
// echoProxy as its proxy, publishing its state to the file named by the variable.
const filterAgentEnv = "IMDSGUARD_TEST_FILTER_AGENT"

// echoProxy answers every request with the original destination of its connection.
type echoProxy struct{}

func (echoProxy) Serve(ctx context.Context, ln4, ln6 net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln4.Close(); _ = ln6.Close() })
	defer stop()
	errs := make(chan error, 2)
	for _, l := range []net.Listener{ln4, ln6} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					errs <- err
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					body := "not redirected"
					if orig, err := firewall.OriginalDestination(c.(*net.TCPConn)); err == nil {
						body = "orig=" + orig.String()
					}
					if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
						return
					}
					_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}()
			}
		}()
	}
	err := errors.Join(<-errs, <-errs)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// fileState publishes the agent's state to a file.
type fileState string

func (f fileState) PublishState(_ context.Context, s layer.AgentState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(string(f), b, 0o600)
}

func runFilterAgentIfRequested() {
	path := os.Getenv(filterAgentEnv)
	if path == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eps := endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.Azure, endpoint.GCP})
	var p agent.Proxy = echoProxy{}
	var filterSrv *proxy.Server
	if os.Getenv(filterAgentEnv+"_REAL_PROXY") != "" {
		// The real proxy, as imdsguard agent --mode filter builds it.
		srv, err := proxy.ForFirewall(firewall.Config{Endpoints: eps, Mode: firewall.Filter,
			ProxyIPv4: firewall.DefaultProxyIPv4, ProxyIPv6: firewall.DefaultProxyIPv6}, filter.Settings{}, nil,
			slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		p, filterSrv = srv, srv
	}
	a, err := agent.New(agent.Options{
		Endpoints:  eps,
		Mode:       firewall.Filter,
		Proxy:      p,
		PodsCgroup: os.Getenv(filterAgentEnv + "_PODS_CGROUP"),
		Listen:     "127.0.0.1:9808",
		Backend:    &agent.NFTablesBackend{NFT: &firewall.NFTables{}},
		State:      fileState(path),
		NodeName:   "sandbox-node",
	}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if filterSrv != nil {
		filterSrv.Clients = a
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// launchFilterAgent starts the agent in filter mode on the node, with the echo proxy, and waits
// until it is ready.
func launchFilterAgent(t *testing.T, s *sandbox.Sandbox, statePath string) *agentProcess {
	return launchFilterAgentWith(t, s, statePath)
}

// launchFilterAgentWith starts the agent in filter mode with extra environment variables.
func launchFilterAgentWith(t *testing.T, s *sandbox.Sandbox, statePath string, env ...string) *agentProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{t: t, s: s, out: &syncBuffer{}, err: make(chan error, 1)}
	p.cmd = s.NodeCommand(context.Background(), exe)
	p.cmd.Env = append(append(os.Environ(), filterAgentEnv+"="+statePath, filterAgentEnv+"_PODS_CGROUP="+s.PodsCgroup()), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("agent output:\n%s", p.out.String())
		}
	})
	p.waitReady()
	return p
}

// TestFilterModeAgent: the agent, switched from observe to filter mode, opens its proxy's
// listeners, redirects pods and hostNetwork pods to them, cuts a pod's connection established
// under observe mode, and publishes mode "filter" with only the destinations it still drops.
// Once it is killed, the redirect stays and pods' connections are refused.
func TestFilterModeAgent(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	hn := s.AddHostNetworkPod(t)
	ctx := context.Background()

	// A previous agent in observe mode, and kube-proxy's conntrack use.
	script, err := firewall.NFTScript(firewall.Config{Endpoints: endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.Azure, endpoint.GCP}), Mode: firewall.Observe})
	if err != nil {
		t.Fatal(err)
	}
	kubeProxy := "table inet kubeproxylike {\n chain forward { type filter hook forward priority 0; policy accept; ct state invalid drop; }\n}\n"
	if _, err := s.NodeRun(ctx, kubeProxy+script, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// Resolve the pod's and the node's neighbours first (proxy ARP answers late), through the
	// EKS Pod Identity agent, which no rule touches.
	for _, a := range []netip.Addr{sandbox.PodIdentityV4, sandbox.PodIdentityV6} {
		for _, connect := range []func(context.Context, netip.AddrPort, time.Duration) error{pod.NS.Connect, s.Node.Connect} {
			if err := connect(ctx, netip.AddrPortFrom(a, 80), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn, err := pod.NS.DialContext(ctx, "tcp", "169.254.169.254:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	get := func() (string, error) {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(conn, "GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(); err != nil || body != "eu-west-1" {
		t.Fatalf("observe mode: %q, %v; want the emulator's answer", body, err)
	}

	statePath := filepath.Join(t.TempDir(), "state.json")
	a := launchFilterAgent(t, s, statePath)
	before := s.IMDS.IMDSRequests()
	if body, err := get(); err == nil {
		t.Errorf("after the switch to filter mode the established connection still answers: %q", body)
	}
	if !strings.Contains(a.out.String(), "cut connections established to the metadata endpoints") {
		t.Errorf("the agent did not report cutting the established connection")
	}
	sandbox.Verify(t,
		sandbox.FetchCheck("pod", pod.NS.Fetch, want(sandbox.AWSCredentials, "orig=169.254.169.254:80"), true),
		sandbox.FetchCheck("pod", pod.NS.Fetch, want(sandbox.AWSCredentialsIPv6, "orig=[fd00:ec2::254]:80"), true),
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, want(sandbox.AWSCredentials, "orig=169.254.169.254:80"), true),
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.WireServerGoalState, false),
	)
	if got := s.IMDS.IMDSRequests() - before; got != 0 {
		t.Errorf("the emulator saw %d requests in filter mode, want none (the proxy answers itself)", got)
	}

	var st layer.AgentState
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(statePath)
		if err == nil && json.Unmarshal(b, &st) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no state published: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Mode != "filter" {
		t.Errorf("published mode %q, want filter", st.Mode)
	}
	for _, d := range []string{"169.254.169.254:80/TCP", "[fd00:ec2::254]:80/TCP", "169.254.169.254:8080/TCP"} {
		if slices.Contains(st.Dropped, d) {
			t.Errorf("published dropped %v lists the redirected %s", st.Dropped, d)
		}
	}
	if !slices.Contains(st.Dropped, "168.63.129.16:80/TCP") {
		t.Errorf("published dropped %v lacks WireServer", st.Dropped)
	}

	// Killed: the redirect stays, nothing listens, pods are refused.
	a.stop(syscall.SIGKILL)
	err = pod.NS.Connect(ctx, netip.AddrPortFrom(sandbox.IMDSv4, 80), 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("pod connect with the agent killed: %v, want connection refused", err)
	}
	if got := s.IMDS.IMDSRequests() - before; got != 0 {
		t.Errorf("the emulator saw %d requests, want none", got)
	}
}

func want(r sandbox.Request, w string) sandbox.Request {
	r.Want = w
	return r
}
