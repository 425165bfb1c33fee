package firewall_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// nodeNFT returns an NFTables whose nft runs on the sandbox's node. Its Read and Monitor work in
// the calling thread's network namespace: call them inside s.Node.Do.
func nodeNFT(s *sandbox.Sandbox) *firewall.NFTables {
	return &firewall.NFTables{Command: s.NodeCommand(context.Background(), "nft").Args}
}

func readNode(t *testing.T, s *sandbox.Sandbox, n *firewall.NFTables) *firewall.State {
	t.Helper()
	var st *firewall.State
	err := s.Node.Do(func() error {
		var err error
		st, err = n.Read(context.Background())
		return err
	})
	if err != nil {
		t.Fatalf("read over netlink: %v", err)
	}
	return st
}

func build(t *testing.T, cfg firewall.Config) *firewall.Ruleset {
	t.Helper()
	rs, err := firewall.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// nftCounter reads a named counter's packets with `nft --json`: the reference the netlink reader
// is compared with.
func nftCounter(t *testing.T, s *sandbox.Sandbox, name string) uint64 {
	t.Helper()
	out, err := s.NodeRun(context.Background(), "", "nft", "--json", "list", "counter", "inet", firewall.TableName, name)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets
		}
	}
	t.Fatalf("no counter %s in %s", name, out)
	return 0
}

var imdsDropHandle = regexp.MustCompile(`drop comment "imds: deny pods" # handle (\d+)`)

// TestReadOverNetlink: the netlink reader sees exactly the table nft loaded — chains and their
// rules, exempt elements, counters (equal to what nft reports), sources in the seen sets — and
// its fingerprint ignores what the kernel changes on its own (counters, seen sets, handles after a
// reload) while catching every edit another process can make, including one that keeps the
// number of rules (a drop turned into an accept).
func TestReadOverNetlink(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	hn := s.AddHostNetworkPod(t)
	n := nodeNFT(s)
	ctx := context.Background()

	absent := readNode(t, s, n)
	if absent.Present {
		t.Fatal("table present before anything was loaded")
	}
	rs := build(t, firewall.Config{
		Endpoints:              endpoints(),
		PodsCgroup:             s.PodsCgroup(),
		AllowedHostNetworkPods: []firewall.PodCgroup{{UID: hn.UID, Path: hn.Cgroup}},
		ExemptPodIPs:           []netip.Addr{netip.MustParseAddr("198.51.100.99"), netip.MustParseAddr("2001:db8:100::99")},
	})
	if err := n.Replace(ctx, rs); err != nil {
		t.Fatal(err)
	}
	base := readNode(t, s, n)
	if !base.Present || !base.Matches(rs) {
		t.Fatalf("state does not match the ruleset just loaded: %+v", base)
	}
	if base.Generation != absent.Generation+1 {
		t.Errorf("generation %d after one transaction from %d", base.Generation, absent.Generation)
	}
	if diff := cmp.Diff(rs.RuleCounts(), base.Rules); diff != "" {
		t.Errorf("rules per chain (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{firewall.SetExemptIPv4: 1, firewall.SetExemptIPv6: 1}, base.Elements); diff != "" {
		t.Errorf("exempt elements (-want +got):\n%s", diff)
	}
	wantCounters := map[string]uint64{}
	for _, c := range rs.Counters {
		wantCounters[c.Name] = 0
	}
	if diff := cmp.Diff(wantCounters, base.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}

	sandbox.Verify(t,
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentials, false),
		sandbox.FetchCheck("pod", pod.NS.Fetch, sandbox.AWSCredentialsIPv6, false),
	)
	// A late retransmission may still be counted: nft read before and after brackets netlink.
	names := []string{"forward.imds", "forward.aws-imds-ipv6"}
	before := map[string]uint64{}
	for _, name := range names {
		before[name] = nftCounter(t, s, name)
	}
	counted := readNode(t, s, n)
	for _, name := range names {
		lo, hi, got := before[name], nftCounter(t, s, name), counted.Counters[name]
		if got == 0 || got < lo || got > hi {
			t.Errorf("counter %s: netlink %d, nft %d before and %d after (want > 0, in between)", name, got, lo, hi)
		}
	}
	if counted.Fingerprint != base.Fingerprint {
		t.Error("traffic changed the fingerprint")
	}
	if counted.Generation != base.Generation {
		t.Errorf("traffic changed the generation: %d -> %d", base.Generation, counted.Generation)
	}
	for _, ip := range []netip.Addr{pod.IPv4, pod.IPv6} {
		if counted.Seen[ip] == 0 {
			t.Errorf("seen sets lack the pod's %s: %v", ip, counted.Seen)
		}
	}
	if _, err := s.NodeRun(ctx, "flush set inet imdsguard seen_v4\n", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if got := readNode(t, s, n); got.Fingerprint != base.Fingerprint {
		t.Error("emptying a seen set (as its timeouts do) changed the fingerprint")
	}

	if err := n.Replace(ctx, rs); err != nil {
		t.Fatal(err)
	}
	reloaded := readNode(t, s, n)
	if reloaded.Fingerprint != base.Fingerprint {
		t.Error("reloading the same ruleset (new handles) changed the fingerprint")
	}
	if reloaded.Counters["forward.imds"] != 0 {
		t.Errorf("counters after a reload = %d, want 0 (the table is replaced)", reloaded.Counters["forward.imds"])
	}

	handle := func() string {
		out, err := s.NodeRun(ctx, "", "nft", "-a", "list", "chain", "inet", firewall.TableName, "forward")
		if err != nil {
			t.Fatal(err)
		}
		m := imdsDropHandle.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no IMDS drop in:\n%s", out)
		}
		return m[1]
	}
	for _, tamper := range []struct {
		name   string
		script func() string
	}{
		{"drop turned into accept", func() string {
			return `replace rule inet imdsguard forward handle ` + handle() + ` ip daddr 169.254.169.254 tcp dport 80 counter name "forward.imds" accept comment "imds: deny pods"`
		}},
		{"rule deleted", func() string { return "delete rule inet imdsguard forward handle " + handle() }},
		{"accept inserted", func() string { return "insert rule inet imdsguard forward accept" }},
		{"chain flushed", func() string { return "flush chain inet imdsguard output" }},
		{"exempt address added", func() string { return "add element inet imdsguard exempt_v4 { 198.51.100.11 }" }},
		{"exempt address swapped", func() string {
			return "delete element inet imdsguard exempt_v4 { 198.51.100.99 }\nadd element inet imdsguard exempt_v4 { 198.51.100.11 }"
		}},
		{"chain added", func() string { return "add chain inet imdsguard extra" }},
		{"set added", func() string { return "add set inet imdsguard extra { type ipv4_addr; }" }},
		{"counter added", func() string { return "add counter inet imdsguard extra" }},
		{"base chain policy changed", func() string {
			return "add chain inet imdsguard postrouting { type filter hook postrouting priority -10; policy drop; }"
		}},
	} {
		if err := n.Replace(ctx, rs); err != nil {
			t.Fatal(err)
		}
		before := readNode(t, s, n)
		if _, err := s.NodeRun(ctx, tamper.script()+"\n", "nft", "-f", "-"); err != nil {
			t.Fatalf("%s: %v", tamper.name, err)
		}
		after := readNode(t, s, n)
		if after.Fingerprint == before.Fingerprint {
			t.Errorf("%s: fingerprint unchanged", tamper.name)
		}
		if after.Generation == before.Generation {
			t.Errorf("%s: generation unchanged", tamper.name)
		}
	}
	if _, err := s.NodeRun(ctx, "delete table inet imdsguard\n", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if readNode(t, s, n).Present {
		t.Error("table reported present after it was deleted")
	}
}

// TestMonitorReportsChangesToTheTable: every transaction that touches table inet imdsguard —
// ours, an element added, a flush of the whole ruleset, the table deleted — is reported, and
// nothing else is: not another table, not a table of the same name in another family.
func TestMonitorReportsChangesToTheTable(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	n := nodeNFT(s)
	ctx, cancel := context.WithCancel(context.Background())
	ready, changed, done := make(chan struct{}), make(chan struct{}, 1), make(chan error, 1)
	go func() {
		done <- s.Node.Do(func() error { return n.Monitor(ctx, ready, changed) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("monitor: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("monitor: %v", err)
	}
	rs := build(t, firewall.Config{Endpoints: endpoints()})
	expect := func(what string, report bool, change func() error) {
		t.Helper()
		for len(changed) > 0 {
			<-changed
		}
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		wait := 5 * time.Second
		if !report {
			wait = 300 * time.Millisecond
		}
		select {
		case <-changed:
			if !report {
				t.Errorf("%s: reported, but it does not touch our table", what)
			}
		case <-time.After(wait):
			if report {
				t.Errorf("%s: not reported within %v", what, wait)
			}
		}
	}
	script := func(s2 string) func() error {
		return func() error { _, err := s.NodeRun(ctx, s2+"\n", "nft", "-f", "-"); return err }
	}
	expect("our replacement", true, func() error { return n.Replace(ctx, rs) })
	expect("another table", false, script("add table inet othercni\nadd chain inet othercni c"))
	expect("a table named imdsguard in the ip family", false, script("add table ip imdsguard\nadd chain ip imdsguard c"))
	expect("an exempt address added", true, script("add element inet imdsguard exempt_v4 { 198.51.100.11 }"))
	expect("flush ruleset", true, script("flush ruleset"))
	expect("our replacement", true, func() error { return n.Replace(ctx, rs) })
	expect("table deleted", true, script("delete table inet imdsguard"))
}

// TestStandbyReplace: with Standby, each Replace hands its script to an nft started ahead and
// starts the next one; a standby that died while waiting is replaced on the spot; Close ends it.
func TestStandbyReplace(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	n := nodeNFT(s)
	n.Standby = true
	t.Cleanup(n.Close)
	ctx := context.Background()
	rs := build(t, firewall.Config{Endpoints: endpoints()})
	var gens []uint32
	for i := range 3 {
		if i == 2 {
			firewall.KillStandbyForTest(t, n)
		}
		if err := n.Replace(ctx, rs); err != nil {
			t.Fatalf("replace %d: %v", i, err)
		}
		st := readNode(t, s, n)
		if !st.Matches(rs) {
			t.Fatalf("replace %d: table does not hold the ruleset", i)
		}
		gens = append(gens, st.Generation)
	}
	if gens[1] != gens[0]+1 || gens[2] != gens[1]+1 {
		t.Errorf("generations %v: want one transaction per Replace", gens)
	}
	if err := firewall.LoadForTest(n, ctx, "this is not nft\n"); err == nil {
		t.Error("a bad script loaded through the standby without an error")
	}
	firewall.CheckStandbyClosedForTest(t, n)
}
