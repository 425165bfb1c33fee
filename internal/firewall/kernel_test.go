package firewall_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.RunHelperIfRequested()
	os.Exit(m.Run())
}

// endpoints are the sandbox clouds' endpoints: AWS and Azure (GCP shares 169.254.169.254:80).
func endpoints() []endpoint.Endpoint {
	return endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.Azure, endpoint.GCP})
}

func applyNFT(t *testing.T, s *sandbox.Sandbox, cfg firewall.Config) {
	t.Helper()
	script, err := firewall.NFTScript(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NodeRun(context.Background(), script, "nft", "-f", "-"); err != nil {
		t.Fatalf("load ruleset: %v\n%s", err, script)
	}
}

// TestNFTScriptLoadsInTheKernel checks every catalogue endpoint, both modes, with cgroups, with
// the real nft: first `nft -c`, then loaded twice (replacing itself).
func TestNFTScriptLoadsInTheKernel(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	hn := s.AddHostNetworkPod(t)
	ctx := context.Background()
	for _, mode := range []firewall.Mode{firewall.Enforce, firewall.Observe} {
		cfg := firewall.Config{
			Endpoints:              endpoint.Select([]endpoint.Cloud{endpoint.All, endpoint.ECS}),
			Mode:                   mode,
			PodsCgroup:             s.PodsCgroup(),
			AllowedHostNetworkPods: []firewall.PodCgroup{{UID: hn.UID, Path: hn.Cgroup}},
			ExemptPodIPs:           []netip.Addr{netip.MustParseAddr("198.51.100.99"), netip.MustParseAddr("2001:db8:100::99")},
		}
		script, err := firewall.NFTScript(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.NodeRun(ctx, script, "nft", "-c", "-f", "-"); err != nil {
			t.Fatalf("%s: nft -c: %v", mode, err)
		}
		for range 2 {
			if _, err := s.NodeRun(ctx, script, "nft", "-f", "-"); err != nil {
				t.Fatalf("%s: nft -f: %v", mode, err)
			}
		}
		out, err := s.NodeRun(ctx, "", "nft", "list", "table", "inet", firewall.TableName)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `socket cgroupv2 level 2 "`+s.PodsCgroup()+`"`) {
			t.Errorf("%s: the listed table lacks the pods cgroup rule:\n%s", mode, out)
		}
	}
}

// TestPodsBlockedNodeAllowed is the core promise, with real packets: pods on either kind of
// CNI cannot reach any credential endpoint over IPv4 or IPv6, while Azure DNS, the EKS Pod
// Identity agent, the node itself and its daemons keep working.
func TestPodsBlockedNodeAllowed(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pods := []*sandbox.Pod{s.AddPod(t, sandbox.VPCCNI), s.AddPod(t, sandbox.Bridge)}
	applyNFT(t, s, firewall.Config{Endpoints: endpoints(), PodsCgroup: s.PodsCgroup()})

	var checks []sandbox.Check
	for _, p := range pods {
		who := string(p.CNI) + " pod"
		for _, req := range []sandbox.Request{sandbox.AWSCredentials, sandbox.AWSCredentialsIPv6, sandbox.AWSToken, sandbox.GCPToken, sandbox.AzureToken, sandbox.WireServerGoalState, sandbox.WireServerHostPlugin} {
			checks = append(checks, sandbox.FetchCheck(who, p.NS.Fetch, req, false))
		}
		for _, req := range []sandbox.Request{sandbox.PodIdentity, sandbox.PodIdentityIPv6} {
			checks = append(checks, sandbox.FetchCheck(who, p.NS.Fetch, req, true))
		}
		for _, network := range []string{"udp", "tcp"} {
			checks = append(checks, sandbox.Reaches(who+" DNS over "+network+" to 168.63.129.16:53", func(ctx context.Context) error { return p.NS.DNS(ctx, network) }))
		}
	}
	for _, req := range []sandbox.Request{sandbox.AWSCredentials, sandbox.AWSCredentialsIPv6, sandbox.WireServerGoalState} {
		checks = append(checks,
			sandbox.FetchCheck("node", s.Node.Fetch, req, true),
			sandbox.FetchCheck("node daemon", s.FetchAsNodeDaemon, req, true))
	}
	sandbox.Verify(t, checks...)
}

// TestAcceptElsewhereDoesNotReopen plays another CNI: an ACCEPT at the top of iptables'
// FORWARD chain (as Calico inserts its jump) and an nftables table of its own accepting
// everything at a higher priority than ours. Neither can undo our drop.
func TestAcceptElsewhereDoesNotReopen(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	applyNFT(t, s, firewall.Config{Endpoints: endpoints()})
	ctx := context.Background()
	for _, cmd := range [][]string{
		{"iptables", "-I", "FORWARD", "1", "-j", "ACCEPT"},
		{"ip6tables", "-I", "FORWARD", "1", "-j", "ACCEPT"},
	} {
		if _, err := s.NodeRun(ctx, "", cmd...); err != nil {
			t.Fatal(err)
		}
	}
	other := "table inet othercni {\n chain allow { type filter hook forward priority -300; policy accept; accept; }\n}\n"
	if _, err := s.NodeRun(ctx, other, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	sandbox.Verify(t,
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.PodIdentity, true),
	)
}

// TestHostNetworkPodsBlockedByCgroup: processes in the node's network namespace are told apart
// by cgroup. A hostNetwork pod is blocked, an allowed hostNetwork pod (aws-node, say) and the
// node's own daemons pass.
func TestHostNetworkPodsBlockedByCgroup(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	attacker := s.AddHostNetworkPod(t)
	allowed := s.AddHostNetworkPod(t)
	applyNFT(t, s, firewall.Config{
		Endpoints:              endpoints(),
		PodsCgroup:             s.PodsCgroup(),
		AllowedHostNetworkPods: []firewall.PodCgroup{{UID: allowed.UID, Path: allowed.Cgroup}},
	})
	sandbox.Verify(t,
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.AWSCredentialsIPv6, false),
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.WireServerGoalState, false),
		sandbox.FetchCheck("hostNetwork pod", attacker.Fetch, sandbox.PodIdentity, true),
		sandbox.FetchCheck("allowed hostNetwork pod", allowed.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("allowed hostNetwork pod", allowed.Fetch, sandbox.AWSCredentialsIPv6, true),
		sandbox.FetchCheck("node daemon", s.FetchAsNodeDaemon, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("node daemon", s.FetchAsNodeDaemon, sandbox.AWSCredentialsIPv6, true),
	)
}

// TestExemptPodPasses: an exempt pod's addresses (both families) pass, its neighbour does not.
func TestExemptPodPasses(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	exempt, other := s.AddPod(t, sandbox.VPCCNI), s.AddPod(t, sandbox.VPCCNI)
	applyNFT(t, s, firewall.Config{Endpoints: endpoints(), ExemptPodIPs: []netip.Addr{exempt.IPv4, exempt.IPv6}})
	sandbox.Verify(t,
		sandbox.FetchCheck("exempt pod", exempt.NS.Fetch, sandbox.AWSCredentials, true),
		sandbox.FetchCheck("exempt pod", exempt.NS.Fetch, sandbox.AWSCredentialsIPv6, true),
		sandbox.FetchCheck("other pod", other.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("other pod", other.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
	)
}

// TestObserveModeCountsButDoesNotDrop: in observe mode pods still reach IMDS, and the named
// counter and the seen set record them.
func TestObserveModeCountsButDoesNotDrop(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.Bridge)
	applyNFT(t, s, firewall.Config{Endpoints: endpoints(), Mode: firewall.Observe})
	sandbox.Verify(t, sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, true))
	ctx := context.Background()
	counter, err := s.NodeRun(ctx, "", "nft", "list", "counter", "inet", firewall.TableName, "forward.imds")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(counter, "packets 0 ") {
		t.Errorf("observe mode did not count:\n%s", counter)
	}
	seen, err := s.NodeRun(ctx, "", "nft", "list", "set", "inet", firewall.TableName, firewall.SetSeenIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(seen, pod.IPv4.String()) {
		t.Errorf("observe mode did not remember the source %s:\n%s", pod.IPv4, seen)
	}
}

// TestBranchENIPodsBlockedInPostrouting: a pod with security groups (branch ENI: host veth
// vlan*, its traffic routed out of vlan.eth.N) is blocked, and an exempt one passes. The
// postrouting chain — the EKS guide's `-o vlan+` rule — blocks it on its own: with the forward
// chain flushed, the ordinary pod gets through (so the flush took effect) while the branch-ENI
// pod is still dropped, and counted on the postrouting hook.
func TestBranchENIPodsBlockedInPostrouting(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	branch, exempt, ordinary := s.AddPod(t, sandbox.BranchENI), s.AddPod(t, sandbox.BranchENI), s.AddPod(t, sandbox.VPCCNI)
	applyNFT(t, s, firewall.Config{Endpoints: endpoints(), ExemptPodIPs: []netip.Addr{exempt.IPv4, exempt.IPv6}})
	all := func(when string, ordinaryReaches bool) {
		t.Helper()
		sandbox.Verify(t,
			sandbox.FetchCheck(when+": branch-ENI pod", branch.NS.Fetch, sandbox.AWSCredentials, false),
			sandbox.FetchCheck(when+": branch-ENI pod", branch.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
			sandbox.FetchCheck(when+": branch-ENI pod", branch.NS.Fetch, sandbox.WireServerGoalState, false),
			sandbox.FetchCheck(when+": branch-ENI pod", branch.NS.Fetch, sandbox.PodIdentity, true),
			sandbox.FetchCheck(when+": exempt branch-ENI pod", exempt.NS.Fetch, sandbox.AWSCredentials, true),
			sandbox.FetchCheck(when+": exempt branch-ENI pod", exempt.NS.Fetch, sandbox.AWSCredentialsIPv6, true),
			sandbox.FetchCheck(when+": ordinary pod", ordinary.NS.Fetch, sandbox.AWSCredentials, ordinaryReaches),
		)
	}
	all("all chains", false)
	ctx := context.Background()
	if _, err := s.NodeRun(ctx, "flush chain inet imdsguard forward\n", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	all("forward chain flushed", true)
	for _, name := range []string{"postrouting.imds", "postrouting.aws-imds-ipv6"} {
		if got := nftCounter(t, s, name); got == 0 {
			t.Errorf("counter %s = 0: the branch-ENI pod's packets did not meet the postrouting rule", name)
		}
	}
}

// BenchmarkForwarding measures TCP bulk throughput from a pod to a host beyond the node (one
// stream, through the node's forward and postrouting hooks), with the agent's ruleset loaded and
// without any, in back-to-back pairs whose order flips each time, so that drift in the machine's
// load falls on both sides. Reports the median of each side in MB/s and the median of the
// pairs' ratios (with / without; the target is ≥ 0.97), which is what a shared, noisy machine
// measures best. One operation is the whole comparison.
//
//	go test -run '^$' -bench Forwarding -benchtime 1x ./internal/firewall/
//
// IMDSGUARD_BENCH_PAIRS (default 15) and IMDSGUARD_BENCH_SECONDS (default 1) set the number of
// pairs and the length of each transfer.
func BenchmarkForwarding(b *testing.B) {
	s := sandbox.New(b)
	pod := s.AddPod(b, sandbox.VPCCNI)
	hn := s.AddHostNetworkPod(b)
	pairs, seconds := benchEnv(b, "IMDSGUARD_BENCH_PAIRS", 15), benchEnv(b, "IMDSGUARD_BENCH_SECONDS", 1)
	script, err := firewall.NFTScript(firewall.Config{
		Endpoints:              endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.Azure, endpoint.GCP}),
		PodsCgroup:             s.PodsCgroup(),
		AllowedHostNetworkPods: []firewall.PodCgroup{{UID: hn.UID, Path: hn.Cgroup}},
		ExemptPodIPs:           []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rules := func(on bool) {
		b.Helper()
		in := "add table inet imdsguard\ndelete table inet imdsguard\n"
		if on {
			in = script
		}
		if _, err := s.NodeRun(ctx, in, "nft", "-f", "-"); err != nil {
			b.Fatal(err)
		}
	}
	l, err := s.Cloud.Listen("tcp", netip.AddrPortFrom(sandbox.CloudIPv4, 5201).String())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var with, without, ratios []float64
	for range b.N {
		with, without, ratios = with[:0], without[:0], ratios[:0]
		for i := range pairs {
			order := []bool{false, true}
			if i%2 == 1 {
				order = []bool{true, false}
			}
			var pair [2]float64
			for _, on := range order {
				rules(on)
				mbps := bulk(b, pod.NS, l, time.Duration(seconds)*time.Second)
				if on {
					with, pair[1] = append(with, mbps), mbps
				} else {
					without, pair[0] = append(without, mbps), mbps
				}
			}
			ratios = append(ratios, pair[1]/pair[0])
		}
	}
	b.ReportMetric(medianOf(with), "with-MB/s")
	b.ReportMetric(medianOf(without), "without-MB/s")
	b.ReportMetric(medianOf(ratios), "ratio")
	sorted := slices.Clone(ratios)
	slices.Sort(sorted)
	b.ReportMetric(sorted[len(sorted)/4], "ratio-p25")
	b.ReportMetric(sorted[(3*len(sorted))/4], "ratio-p75")
	b.Logf("MB/s with rules %.0f", with)
	b.Logf("MB/s without    %.0f", without)
	b.Logf("ratios          %.3f", ratios)
}

// bulk sends from ns to the listener for d and returns the receiver's rate in MB/s.
func bulk(b *testing.B, ns *sandbox.Netns, l net.Listener, d time.Duration) float64 {
	b.Helper()
	type result struct {
		bytes   int64
		elapsed time.Duration
		err     error
	}
	got := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		var start time.Time
		for {
			m, err := c.Read(buf)
			if m > 0 && start.IsZero() {
				start = time.Now()
			}
			n += int64(m)
			if err != nil {
				got <- result{bytes: n, elapsed: time.Since(start)}
				return
			}
		}
	}()
	conn, err := ns.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = conn.Close()
	r := <-got
	if r.err != nil {
		b.Fatal(r.err)
	}
	return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
