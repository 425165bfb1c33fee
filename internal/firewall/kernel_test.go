package firewall_test

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

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
