package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Addresses of the sandbox's own test hosts, all from the documentation ranges and all inside
// namespaces the sandbox creates. The cloud's addresses are the node's gateway; anything that
// listens on them in the cloud namespace is an ordinary destination beyond the node (a bulk
// receiver for throughput, say).
var (
	NodeIPv4  = netip.MustParseAddr("192.0.2.10")
	NodeIPv6  = netip.MustParseAddr("2001:db8:1::10")
	CloudIPv4 = netip.MustParseAddr("192.0.2.1")
	CloudIPv6 = netip.MustParseAddr("2001:db8:1::1")
)

// CNI says how a pod is wired to the node.
type CNI string

const (
	// VPCCNI wires a pod like the AWS VPC CNI: a host veth named eni*, a /32 (and /128) route
	// to the pod on it, proxy ARP, and the pod's default route via 169.254.1.1.
	VPCCNI CNI = "vpc-cni"
	// Bridge wires a pod like the bridge plugin: a veth enslaved to cni0, the pod in cni0's
	// subnet with the bridge as its gateway.
	Bridge CNI = "bridge"
	// BranchENI wires a pod like the AWS VPC CNI's security groups for pods: a host veth named
	// vlan*, and the pod's traffic routed by source (an ip rule and a table of its own) out of
	// the branch ENI's own interface, vlan.eth.N, rather than the node's eth0. This is the case
	// the EKS guide blocks with `-t mangle -A POSTROUTING -o vlan+`.
	BranchENI CNI = "branch-eni"
)

// Sandbox is a node in network namespaces: a cloud namespace serving the metadata endpoints
// (Emulator), a node namespace that routes for pods, and pod namespaces. Names are unique per
// sandbox, so tests run in parallel and repeatedly; everything is removed in t.Cleanup.
type Sandbox struct {
	ID    string
	Cloud *Netns
	Node  *Netns
	IMDS  *Emulator

	mnt        *mountNamespace
	cgroupRoot string // cgroup2 mount point in the test's own mount namespace
	cgroupBase string // this sandbox's cgroup, relative to the cgroup2 root
	pods       int
}

// RequireRoot skips the test when not running as root, with the reason. Everything else the
// sandbox needs (ip, nsenter, unshare, nft, iptables, cgroup v2) is installed by
// hack/node-deps.sh; when it is missing the sandbox fails rather than skips.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network-namespace sandbox tests need root (CI runs them as root)")
	}
}

// New builds a sandbox: cloud and node namespaces, routes both ways, the emulator, and the
// node's private mount namespace with cgroup2 at /sys/fs/cgroup.
func New(t testing.TB) *Sandbox {
	t.Helper()
	RequireRoot(t)
	for _, tool := range []string{"ip", "nsenter", "unshare", "nft", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("sandbox needs %s on PATH (install with hack/node-deps.sh): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := &Sandbox{ID: randomID()}
	s.Cloud = s.addNetns(t, ctx, "cloud")
	s.Node = s.addNetns(t, ctx, "node")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("sandbox %s: %v", s.ID, err)
		}
	}
	must(s.Node.Sysctl(ctx, map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}))
	must(s.Node.IP(ctx, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s.Cloud.Name))
	for _, c := range [][]string{
		{"addr", "add", prefix(NodeIPv4, 24), "dev", "eth0"},
		{"addr", "add", prefix(NodeIPv6, 64), "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", CloudIPv4.String()},
		{"-6", "route", "add", "default", "via", CloudIPv6.String()},
		{"link", "add", "cni0", "type", "bridge"},
		{"addr", "add", "203.0.113.1/24", "dev", "cni0"},
		{"addr", "add", "2001:db8:200::1/64", "dev", "cni0", "nodad"},
		{"link", "set", "cni0", "up"},
	} {
		must(s.Node.IP(ctx, c...))
	}
	for _, c := range [][]string{
		{"addr", "add", prefix(CloudIPv4, 24), "dev", "eth0"},
		{"addr", "add", prefix(CloudIPv6, 64), "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
		{"addr", "add", prefix(IMDSv4, 32), "dev", "lo"},
		{"addr", "add", prefix(WireServer, 32), "dev", "lo"},
		{"addr", "add", prefix(PodIdentityV4, 32), "dev", "lo"},
		{"addr", "add", prefix(IMDSv6, 128), "dev", "lo", "nodad"},
		{"addr", "add", prefix(PodIdentityV6, 128), "dev", "lo", "nodad"},
		{"route", "add", "198.51.100.0/24", "via", NodeIPv4.String()},
		{"route", "add", "203.0.113.0/24", "via", NodeIPv4.String()},
		{"-6", "route", "add", "2001:db8:100::/64", "via", NodeIPv6.String()},
		{"-6", "route", "add", "2001:db8:200::/64", "via", NodeIPv6.String()},
	} {
		must(s.Cloud.IP(ctx, c...))
	}
	emu, err := startEmulator(s.Cloud)
	must(err)
	s.IMDS = emu
	t.Cleanup(emu.Close)

	root, err := Cgroup2Root()
	must(err)
	s.cgroupRoot = root
	s.cgroupBase = "imdsguard-sbx-" + s.ID
	must(os.MkdirAll(filepath.Join(root, s.PodsCgroup(), "kubepods-besteffort.slice"), 0o750))
	t.Cleanup(func() {
		if err := removeCgroupTree(filepath.Join(root, s.cgroupBase)); err != nil {
			t.Errorf("sandbox %s cleanup: %v", s.ID, err)
		}
	})
	mnt, err := newMountNamespace(ctx)
	must(err)
	s.mnt = mnt
	t.Cleanup(mnt.Close)
	return s
}

func (s *Sandbox) addNetns(t testing.TB, ctx context.Context, role string) *Netns {
	t.Helper()
	n := &Netns{Name: "igsb-" + s.ID + "-" + role}
	if _, err := run(exec.CommandContext(ctx, "ip", "netns", "add", n.Name), ""); err != nil { // #nosec G204 -- generated name
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() {
		if _, err := run(exec.Command("ip", "netns", "del", n.Name), ""); err != nil { // #nosec G204 -- generated name
			t.Errorf("sandbox cleanup: %v", err)
		}
	})
	// No duplicate address detection: addresses are usable at once.
	if err := n.Sysctl(ctx, map[string]string{"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	if err := n.IP(ctx, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	return n
}

// PodsCgroup is this sandbox's kubelet pods cgroup, relative to the cgroup2 root, systemd
// style: "imdsguard-sbx-ID/kubepods.slice". Give it to the firewall as Config.PodsCgroup.
func (s *Sandbox) PodsCgroup() string { return s.cgroupBase + "/kubepods.slice" }

// NodeCommand returns a command running args on the node: its network namespace and the
// private mount namespace where /sys/fs/cgroup is the cgroup2 hierarchy (as nft needs it).
func (s *Sandbox) NodeCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append( // #nosec G204 -- test harness commands
		[]string{"--net=" + s.Node.Path(), "--mount=" + s.mnt.Path(), "--"}, args...)...)
}

// NodeRun runs args on the node (see NodeCommand) with stdin, returning standard output.
func (s *Sandbox) NodeRun(ctx context.Context, stdin string, args ...string) (string, error) {
	return run(s.NodeCommand(ctx, args...), stdin)
}

// Pod is a pod namespace wired to the node.
type Pod struct {
	Name      string
	CNI       CNI
	NS        *Netns
	HostIface string
	IPv4      netip.Addr
	IPv6      netip.Addr
}

// AddPod creates a pod namespace wired with cni.
func (s *Sandbox) AddPod(t testing.TB, cni CNI) *Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.pods++
	n := s.pods + 10
	p := &Pod{Name: fmt.Sprintf("pod%d", s.pods), CNI: cni}
	p.NS = s.addNetns(t, ctx, p.Name)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("sandbox %s pod %s: %v", s.ID, p.Name, err)
		}
	}
	switch cni {
	case VPCCNI:
		p.HostIface = fmt.Sprintf("eni%s%d", s.ID[:4], s.pods)
		p.IPv4 = netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", n))
		p.IPv6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:100::%x", n))
		must(s.Node.IP(ctx, "link", "add", p.HostIface, "type", "veth", "peer", "name", "eth0", "netns", p.NS.Name))
		must(s.Node.Sysctl(ctx, map[string]string{"net.ipv4.conf." + p.HostIface + ".proxy_arp": "1"}))
		for _, c := range [][]string{
			{"addr", "add", "fe80::1/64", "dev", p.HostIface, "nodad"},
			{"link", "set", p.HostIface, "up"},
			{"route", "add", prefix(p.IPv4, 32), "dev", p.HostIface, "scope", "link"},
			{"-6", "route", "add", prefix(p.IPv6, 128), "dev", p.HostIface},
		} {
			must(s.Node.IP(ctx, c...))
		}
		for _, c := range [][]string{
			{"addr", "add", prefix(p.IPv4, 32), "dev", "eth0"},
			{"addr", "add", prefix(p.IPv6, 128), "dev", "eth0", "nodad"},
			{"link", "set", "eth0", "up"},
			{"route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
			{"route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
			{"-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"},
		} {
			must(p.NS.IP(ctx, c...))
		}
	case BranchENI:
		s.addBranchENIPod(t, ctx, p, n)
	case Bridge:
		p.HostIface = fmt.Sprintf("veth%s%d", s.ID[:4], s.pods)
		p.IPv4 = netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", n))
		p.IPv6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:200::%x", n))
		must(s.Node.IP(ctx, "link", "add", p.HostIface, "type", "veth", "peer", "name", "eth0", "netns", p.NS.Name))
		must(s.Node.IP(ctx, "link", "set", p.HostIface, "master", "cni0", "up"))
		for _, c := range [][]string{
			{"addr", "add", prefix(p.IPv4, 24), "dev", "eth0"},
			{"addr", "add", prefix(p.IPv6, 64), "dev", "eth0", "nodad"},
			{"link", "set", "eth0", "up"},
			{"route", "add", "default", "via", "203.0.113.1"},
			{"-6", "route", "add", "default", "via", "2001:db8:200::1"},
		} {
			must(p.NS.IP(ctx, c...))
		}
	default:
		t.Fatalf("unknown CNI %q", cni)
	}
	return p
}

// addBranchENIPod wires p as a branch-ENI pod: a link of its own to the cloud (vlan.eth.N on the
// node, trunkN in the cloud, addresses from 198.18.N.0/24 and 2001:db8:18:N::/64), a host veth
// vlan*, and policy routing that sends the pod's traffic out of vlan.eth.N. On EKS vlan.eth.N is
// an 802.1Q interface on the trunk ENI; here it is a veth pair with the same name, because what
// the firewall sees is the egress interface's name and the route, and not every kernel that
// runs the tests has 802.1Q.
func (s *Sandbox) addBranchENIPod(t testing.TB, ctx context.Context, p *Pod, n int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("sandbox %s pod %s: %v", s.ID, p.Name, err)
		}
	}
	vlan := fmt.Sprintf("vlan.eth.%d", n)
	trunkNode4, trunkCloud4 := fmt.Sprintf("198.18.%d.10", n), fmt.Sprintf("198.18.%d.1", n)
	trunkNode6, trunkCloud6 := fmt.Sprintf("2001:db8:18:%x::10", n), fmt.Sprintf("2001:db8:18:%x::1", n)
	table := fmt.Sprint(100 + n)
	p.HostIface = fmt.Sprintf("vlan%s%d", s.ID[:4], s.pods)
	p.IPv4 = netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", n))
	p.IPv6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:100::%x", n))

	cloudLink := fmt.Sprintf("trunk%d", n)
	for _, c := range [][]string{
		{"link", "add", vlan, "type", "veth", "peer", "name", cloudLink, "netns", s.Cloud.Name},
		{"addr", "add", trunkNode4 + "/24", "dev", vlan},
		{"addr", "add", trunkNode6 + "/64", "dev", vlan, "nodad"},
		{"link", "set", vlan, "up"},
		{"link", "add", p.HostIface, "type", "veth", "peer", "name", "eth0", "netns", p.NS.Name},
	} {
		must(s.Node.IP(ctx, c...))
	}
	must(s.Node.Sysctl(ctx, map[string]string{"net.ipv4.conf." + p.HostIface + ".proxy_arp": "1"}))
	for _, c := range [][]string{
		{"addr", "add", "fe80::1/64", "dev", p.HostIface, "nodad"},
		{"link", "set", p.HostIface, "up"},
		{"route", "add", prefix(p.IPv4, 32), "dev", p.HostIface, "scope", "link"},
		{"-6", "route", "add", prefix(p.IPv6, 128), "dev", p.HostIface},
		{"rule", "add", "from", p.IPv4.String(), "lookup", table},
		{"-6", "rule", "add", "from", p.IPv6.String(), "lookup", table},
		{"route", "add", "default", "via", trunkCloud4, "dev", vlan, "table", table},
		{"-6", "route", "add", "default", "via", trunkCloud6, "dev", vlan, "table", table},
	} {
		must(s.Node.IP(ctx, c...))
	}
	for _, c := range [][]string{
		{"addr", "add", trunkCloud4 + "/24", "dev", cloudLink},
		{"addr", "add", trunkCloud6 + "/64", "dev", cloudLink, "nodad"},
		{"link", "set", cloudLink, "up"},
		{"route", "add", prefix(p.IPv4, 32), "via", trunkNode4, "dev", cloudLink},
		{"-6", "route", "add", prefix(p.IPv6, 128), "via", trunkNode6, "dev", cloudLink},
	} {
		must(s.Cloud.IP(ctx, c...))
	}
	for _, c := range [][]string{
		{"addr", "add", prefix(p.IPv4, 32), "dev", "eth0"},
		{"addr", "add", prefix(p.IPv6, 128), "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
		{"route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
		{"-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"},
	} {
		must(p.NS.IP(ctx, c...))
	}
}

// HostNetworkPod is a hostNetwork pod: its processes share the node's network namespace and
// live in a pod cgroup below the sandbox's kubepods.slice.
type HostNetworkPod struct {
	UID string
	// Cgroup is the pod's cgroup relative to the cgroup2 root.
	Cgroup string
	s      *Sandbox
}

// AddHostNetworkPod creates a BestEffort pod cgroup, as the kubelet's systemd driver names it,
// for a pod with a random UID.
func (s *Sandbox) AddHostNetworkPod(t testing.TB) *HostNetworkPod {
	t.Helper()
	return s.AddHostNetworkPodUID(t, newUID())
}

// AddHostNetworkPodUID creates the pod cgroup of the pod with uid, e.g. a Pod object's UID from
// an API server.
func (s *Sandbox) AddHostNetworkPodUID(t testing.TB, uid string) *HostNetworkPod {
	t.Helper()
	p := &HostNetworkPod{
		UID:    uid,
		Cgroup: s.PodsCgroup() + "/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice",
		s:      s,
	}
	if err := os.Mkdir(filepath.Join(s.cgroupRoot, p.Cgroup), 0o750); err != nil {
		t.Fatalf("sandbox: hostNetwork pod cgroup: %v", err)
	}
	return p
}

// SetIMDSHopLimit makes the cloud answer from the IMDS addresses with IP TTL (hop limit) n, as
// EC2 does with HttpPutResponseHopLimit; 0 restores the default.
func (s *Sandbox) SetIMDSHopLimit(ctx context.Context, n int) error {
	script := "table inet imdsguard_sandbox_cloud\ndelete table inet imdsguard_sandbox_cloud\n"
	if n > 0 {
		script += fmt.Sprintf(`table inet imdsguard_sandbox_cloud {
	chain output {
		type filter hook output priority 0; policy accept;
		ip saddr %s tcp sport 80 ip ttl set %d
		ip6 saddr %s tcp sport 80 ip6 hoplimit set %d
	}
}
`, IMDSv4, n, IMDSv6, n)
	}
	_, err := s.Cloud.Run(ctx, script, "nft", "-f", "-")
	return err
}

func prefix(a netip.Addr, bits int) string { return netip.PrefixFrom(a, bits).String() }

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
