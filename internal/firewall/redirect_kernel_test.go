package firewall_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// addProxyInterface gives the node the proxy's addresses on lo, as the agent does.
func addProxyInterface(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	ctx := context.Background()
	for _, c := range [][]string{
		{"addr", "add", netip.PrefixFrom(firewall.DefaultProxyIPv4.Addr(), 32).String(), "dev", firewall.ProxyInterface, "scope", "host"},
		{"addr", "add", netip.PrefixFrom(firewall.DefaultProxyIPv6.Addr(), 128).String(), "dev", firewall.ProxyInterface, "nodad", "preferred_lft", "0"},
	} {
		if err := s.Node.IP(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
}

// warmUp resolves the neighbours on a pod's path (the VPC CNI's gateway answers by proxy ARP,
// which the kernel delays by up to 0.8 s, proxy_delay) and the node's path to the cloud, with
// connections to the EKS Pod Identity agent, which no rule touches: a probe's first SYN lost
// to neighbour resolution costs a one-second retransmission, close to the probe's timeout.
func warmUp(t *testing.T, s *sandbox.Sandbox, pods ...*sandbox.Pod) {
	t.Helper()
	ctx := context.Background()
	for _, a := range []netip.Addr{sandbox.PodIdentityV4, sandbox.PodIdentityV6} {
		if err := s.Node.Connect(ctx, netip.AddrPortFrom(a, 80), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			if err := p.NS.Connect(ctx, netip.AddrPortFrom(a, 80), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func filterConfig(s *sandbox.Sandbox) firewall.Config {
	return firewall.Config{
		Endpoints: endpoints(), Mode: firewall.Filter, PodsCgroup: s.PodsCgroup(),
		ProxyIPv4: firewall.DefaultProxyIPv4, ProxyIPv6: firewall.DefaultProxyIPv6,
	}
}

// testProxy is the smallest proxy: it answers every request with the original destination
// it learnt, or, for paths under /latest/meta-data/placement/, forwards the request to that
// destination over a marked connection (the proxy's upstream).
type testProxy struct {
	s         *sandbox.Sandbox
	listeners []net.Listener
	wg        sync.WaitGroup
}

func startTestProxy(t *testing.T, s *sandbox.Sandbox) *testProxy {
	t.Helper()
	p := &testProxy{s: s}
	for _, a := range []netip.AddrPort{firewall.DefaultProxyIPv4, firewall.DefaultProxyIPv6} {
		l, err := s.Node.Listen("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		p.listeners = append(p.listeners, l)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go p.serve(c.(*net.TCPConn))
			}
		}()
	}
	t.Cleanup(p.stop)
	return p
}

func (p *testProxy) stop() {
	for _, l := range p.listeners {
		_ = l.Close()
	}
	p.wg.Wait()
}

func (p *testProxy) serve(c *net.TCPConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	orig, err := firewall.OriginalDestination(c)
	if err != nil {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(err.Error()), err)
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	body := "orig=" + orig.String()
	if strings.HasPrefix(req.URL.Path, "/latest/meta-data/placement/") {
		var up net.Conn
		err := p.s.Node.Do(func() error {
			var derr error
			up, derr = firewall.MarkedDialer(&net.Dialer{Timeout: 3 * time.Second}).Dial("tcp", orig.String())
			return derr
		})
		if err != nil {
			body = "upstream: " + err.Error()
		} else {
			defer up.Close()
			_ = up.SetDeadline(time.Now().Add(2 * time.Second))
			req.Header.Set("Connection", "close")
			if err := req.Write(up); err == nil {
				resp, err := http.ReadResponse(bufio.NewReader(up), req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					body = "upstream " + resp.Status + ": " + string(b)
				}
			}
		}
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func want(r sandbox.Request, w string) sandbox.Request {
	r.Want = w
	return r
}

// TestFilterRedirectsToTheProxy: in filter mode pods and hostNetwork pods reach the proxy,
// which learns the metadata address they meant; the proxy's marked connections and the node's
// daemons reach the metadata service; WireServer stays dropped; DNS on 169.254.169.254:53 and
// the EKS Pod Identity agent are untouched.
func TestFilterRedirectsToTheProxy(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	bridged := s.AddPod(t, sandbox.Bridge)
	hn := s.AddHostNetworkPod(t)
	addProxyInterface(t, s)
	startTestProxy(t, s)
	applyNFT(t, s, filterConfig(s))
	warmUp(t, s, pod, bridged)
	before := s.IMDS.IMDSRequests()

	gce8080 := sandbox.Request{Method: http.MethodGet, URL: "http://169.254.169.254:8080/computeMetadata/v1/project/project-id", Header: map[string]string{"Metadata-Flavor": "Google"}}
	region := sandbox.Request{Method: http.MethodGet, URL: "http://169.254.169.254/latest/meta-data/placement/region"}
	regionIPv6 := sandbox.Request{Method: http.MethodGet, URL: "http://[fd00:ec2::254]/latest/meta-data/placement/region"}
	marked := sandbox.AWSCredentials
	marked.Mark = firewall.ProxyMark

	var checks []sandbox.Check
	for _, p := range []*sandbox.Pod{pod, bridged} {
		who := string(p.CNI) + " pod"
		checks = append(checks,
			sandbox.FetchCheck(who, p.NS.Fetch, want(sandbox.AWSCredentials, "orig=169.254.169.254:80"), true),
			sandbox.FetchCheck(who, p.NS.Fetch, want(sandbox.AWSCredentialsIPv6, "orig=[fd00:ec2::254]:80"), true),
			sandbox.FetchCheck(who, p.NS.Fetch, want(gce8080, "orig=169.254.169.254:8080"), true),
			sandbox.FetchCheck(who+" through the proxy's marked upstream", p.NS.Fetch, want(region, "upstream 200 OK: eu-west-1"), true),
			sandbox.FetchCheck(who+" through the proxy's marked upstream", p.NS.Fetch, want(regionIPv6, "upstream 200 OK: eu-west-1"), true),
			sandbox.FetchCheck(who, p.NS.Fetch, sandbox.WireServerGoalState, false),
			sandbox.FetchCheck(who, p.NS.Fetch, sandbox.WireServerHostPlugin, false),
			sandbox.FetchCheck(who, p.NS.Fetch, sandbox.PodIdentity, true),
			sandbox.FetchCheck(who, p.NS.Fetch, sandbox.PodIdentityIPv6, true),
		)
		for _, network := range []string{"udp", "tcp"} {
			checks = append(checks,
				sandbox.Reaches(who+" DNS over "+network+" to 169.254.169.254:53", func(ctx context.Context) error {
					return p.NS.DNSAt(ctx, network, netip.AddrPortFrom(sandbox.IMDSv4, 53))
				}),
				sandbox.Reaches(who+" DNS over "+network+" to 168.63.129.16:53", func(ctx context.Context) error { return p.NS.DNS(ctx, network) }))
		}
	}
	checks = append(checks,
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, want(sandbox.AWSCredentials, "orig=169.254.169.254:80"), true),
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, want(sandbox.AWSCredentialsIPv6, "orig=[fd00:ec2::254]:80"), true),
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, sandbox.WireServerGoalState, false),
		sandbox.FetchCheck("hostNetwork pod with the proxy's mark", hn.Fetch, marked, true),
		sandbox.FetchCheck("node daemon", s.FetchAsNodeDaemon, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("node", s.Node.Fetch, sandbox.AWSCredentialsIPv6, true),
	)
	sandbox.Verify(t, checks...)

	// Reached the emulator: 2 pods × 2 forwarded region requests, the marked hostNetwork
	// request, the node daemon's and the node's. Nothing else.
	if got := s.IMDS.IMDSRequests() - before; got != 7 {
		t.Errorf("the emulator saw %d requests, want 7 (4 through the proxy's upstream, 3 from the node)", got)
	}
	st := readState(t, s)
	for name, n := range st.Counters {
		if strings.HasPrefix(name, string(firewall.RedirectOutput)+".") && n > 2 {
			t.Errorf("counter %s = %d: more than the hostNetwork pod's two requests were redirected (the marked ones must not be)", name, n)
		}
	}
}

func readState(t *testing.T, s *sandbox.Sandbox) *firewall.State {
	t.Helper()
	var st *firewall.State
	if err := s.Node.Do(func() error {
		var err error
		st, err = (&firewall.NFTables{}).Read(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFilterFailsClosed: with nothing listening on the proxy's address, a redirected
// connection is refused at once, and the metadata service sees nothing.
func TestFilterFailsClosed(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	hn := s.AddHostNetworkPod(t)
	addProxyInterface(t, s)
	applyNFT(t, s, filterConfig(s))
	warmUp(t, s, pod)
	before := s.IMDS.IMDSRequests()
	ctx := context.Background()
	for _, addr := range []netip.AddrPort{netip.AddrPortFrom(sandbox.IMDSv4, 80), netip.AddrPortFrom(sandbox.IMDSv6, 80), netip.AddrPortFrom(sandbox.IMDSv4, 8080)} {
		start := time.Now()
		err := pod.NS.Connect(ctx, addr, 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("pod connect %s with the proxy down: %v, want connection refused", addr, err)
		} else if d := time.Since(start); d > time.Second {
			t.Errorf("pod connect %s: refused only after %s", addr, d)
		}
	}
	sandbox.Verify(t,
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("hostNetwork pod", hn.Fetch, sandbox.AWSCredentialsIPv6, false),
	)
	if got := s.IMDS.IMDSRequests() - before; got != 0 {
		t.Errorf("the emulator saw %d requests with the proxy down, want none", got)
	}
}

// TestModeSwitchCutsEstablishedConnections: a pod's keep-alive connection to the metadata
// service, opened in observe mode, is cut by the switch to filter mode (one nft transaction,
// then the conntrack entries deleted): its next request never reaches the emulator.
func TestModeSwitchCutsEstablishedConnections(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	addProxyInterface(t, s)
	startTestProxy(t, s)
	// Conntrack tracks a namespace's connections once something there uses it; on a node,
	// kube-proxy always does. Our observe ruleset does not, so play kube-proxy.
	kubeProxy := "table inet kubeproxylike {\n chain forward { type filter hook forward priority 0; policy accept; ct state invalid drop; }\n}\n"
	if _, err := s.NodeRun(context.Background(), kubeProxy, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	observe := filterConfig(s)
	observe.Mode = firewall.Observe
	applyNFT(t, s, observe)
	warmUp(t, s, pod)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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

	filter := filterConfig(s)
	applyNFT(t, s, filter)
	var cut int
	if err := s.Node.Do(func() error {
		var err error
		cut, err = firewall.CutConnections(filter.Denied())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cut < 1 {
		t.Errorf("CutConnections deleted %d entries, want the pod's connection", cut)
	}
	before := s.IMDS.IMDSRequests()
	if body, err := get(); err == nil {
		t.Errorf("after the switch the established connection still answers: %q", body)
	}
	if got := s.IMDS.IMDSRequests() - before; got != 0 {
		t.Errorf("after the switch the emulator saw %d requests on the old connection", got)
	}
}
