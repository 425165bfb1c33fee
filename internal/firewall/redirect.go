package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"unsafe"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"

	"golang.org/x/sys/unix"
)

// Filter mode sends pods' connections to the instance metadata services of the clouds that
// have a request policy (FilterClouds) to a filtering proxy the agent serves on the node. The
// redirect is a DNAT in nat chains of our own table: on the prerouting hook for pods on the
// pod network, on the output hook for hostNetwork pods (matched by the kubelet's pods cgroup,
// like the drop rules), with the same exemptions as the drop rules. What the proxy sees comes
// from OriginalDestination; its own upstream connections carry ProxyMark (MarkedDialer) and
// pass both the redirect and the drop rules.
//
// Fail-closed, by construction:
//   - the redirected destinations keep their drop rules on the forward, output and
//     postrouting hooks: a packet that escapes the redirect (a connection conntrack knew
//     before the switch) is dropped, never forwarded to the metadata service;
//   - a redirected connection goes to a local address: with nothing listening there the
//     kernel answers the SYN with a reset (connection refused);
//   - a redirected packet that is not delivered locally (the proxy's address missing from the
//     node) is dropped on the postrouting hook rather than routed off the node.

// FilterClouds are the clouds whose metadata service the filtering proxy has a request policy
// for. The other clouds' endpoints, and every other credential-bearing endpoint of these
// clouds (Azure WireServer), stay dropped in Filter mode.
var FilterClouds = []endpoint.Cloud{endpoint.AWS, endpoint.GCP, endpoint.Azure}

// metadataServiceNames are the catalogue's names of FilterClouds' instance metadata services,
// as endpoint.Select names them for one cloud at a time.
var metadataServiceNames = []string{"aws-imds", "aws-imds-ipv6", "gcp-metadata", "azure-imds"}

// gceMetadataAltPort is the GCE metadata server's second HTTP port. Kubernetes' own GCE node
// set-up sends pod traffic to 169.254.169.254:8080, as well as port 80, to its metadata
// concealment proxy ("metadata-concealment: bridge traffic to metadata server goes to metadata
// proxy", DNAT to 169.254.169.252:987 next to port 80's 169.254.169.252:988), because the
// metadata server answers there too: kubernetes/kubernetes,
// cluster/gce/gci/configure-helper.sh, function config-ip-firewall.
const gceMetadataAltPort = 8080

// filterable holds the destinations Filter mode redirects: the catalogue's metadata services
// of FilterClouds, and the GCE metadata server's second port.
var filterable = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range FilterClouds {
		for _, ep := range endpoint.Select([]endpoint.Cloud{c}) {
			if slices.Contains(metadataServiceNames, ep.Name) {
				m[ep.Destination()] = true
				if c == endpoint.GCP {
					m[gceAltEndpoint(ep).Destination()] = true
				}
			}
		}
	}
	return m
}()

// gceAltEndpoint is the GCE metadata server on its second port.
func gceAltEndpoint(gce endpoint.Endpoint) endpoint.Endpoint {
	return endpoint.Endpoint{
		Name:        "gcp-metadata-8080",
		Clouds:      []endpoint.Cloud{endpoint.GCP},
		Address:     gce.Address,
		Protocol:    corev1.ProtocolTCP,
		Port:        gceMetadataAltPort,
		Hostnames:   gce.Hostnames,
		Role:        endpoint.Credentials,
		Description: "GCE metadata server on its second HTTP port (redirected with port 80 by Kubernetes' GCE scripts)",
	}
}

// Filterable reports whether Filter mode redirects ep to the proxy: a credential-bearing TCP
// endpoint that is one of FilterClouds' instance metadata services.
func Filterable(ep endpoint.Endpoint) bool {
	if ep.Role != endpoint.Credentials || !filterable[ep.Destination()] {
		return false
	}
	return slices.ContainsFunc(ep.Clouds, func(c endpoint.Cloud) bool { return slices.Contains(FilterClouds, c) })
}

// filterExtras are the destinations Filter mode adds to the denied endpoints: the GCE metadata
// server's second port when the GCE metadata server is among them and the port is not.
func filterExtras(denied []endpoint.Endpoint) []endpoint.Endpoint {
	for _, ep := range denied {
		if ep.HasCloud(endpoint.GCP) && Filterable(ep) && ep.Port == 80 {
			alt := gceAltEndpoint(ep)
			if slices.ContainsFunc(denied, func(d endpoint.Endpoint) bool { return d.Destination() == alt.Destination() }) {
				return nil
			}
			return []endpoint.Endpoint{alt}
		}
	}
	return nil
}

// Where the proxy listens by default: dedicated addresses the agent adds to the node's
// loopback interface (ProxyInterface), not 127.0.0.1 and not the node's own address:
//   - a DNAT on the prerouting hook to 127.0.0.0/8 needs net.ipv4.conf.*.route_localnet=1,
//     which opens every localhost-bound service of the node to its pods; any other address on
//     lo is an ordinary local destination, delivered without that sysctl. Kubernetes' own GCE
//     node set-up does the same for its metadata concealment proxy: `ip addr add dev lo
//     169.254.169.252/32 scope host`, then DNAT to 169.254.169.252:988
//     (kubernetes/kubernetes, cluster/gce/gci/configure-helper.sh, config-ip-firewall);
//   - lo always exists (a dummy interface needs the dummy kernel module, which minimal node
//     kernels lack);
//   - the node's address changes between nodes and may be shared by other hostNetwork
//     listeners; a dedicated address and port collide with nothing.
//
// 169.254.88.254 is outside the link-local addresses clouds and add-ons use (169.254.169.254,
// .169.253 AWS DNS, .169.123 AWS time, .169.252 GKE's metadata proxies, .169.250 Rancher's
// metadata, 169.254.170.0/24 ECS and EKS Pod Identity, 169.254.20.10 NodeLocal DNSCache,
// 169.254.1.1 Calico's and the VPC CNI's pod gateway). IPv6 has no such range that DNAT can
// use (link-local needs a zone), so the IPv6 address is from a unique local prefix of our own
// (RFC 4193).
var (
	DefaultProxyIPv4 = netip.AddrPortFrom(netip.MustParseAddr("169.254.88.254"), ProxyPort)
	DefaultProxyIPv6 = netip.AddrPortFrom(netip.MustParseAddr("fd69:6d64:7367::254"), ProxyPort)
)

// ProxyPort is the proxy's default port, above 1024 so listening needs no privilege of its own.
const ProxyPort = 8988

// ProxyInterface is the interface that holds the proxy's addresses.
const ProxyInterface = "lo"

// ProxyMark is the packet mark (SO_MARK) of the proxy's upstream connections: marked packets
// pass the redirect and the drop rules, so the proxy reaches the metadata service itself.
//
// A mark rather than a cgroup of its own: the proxy runs inside the agent's process, in the
// agent's pod cgroup (a cgroup v2 holds whole processes, not sockets), so only a per-socket
// property tells its upstream connections from the agent's other requests; setting SO_MARK
// needs CAP_NET_ADMIN, which the agent has and pods do not, and a pod in its own network
// namespace cannot carry a mark to the node (the kernel clears the mark when a packet crosses
// namespaces, skb_scrub_packet). The rules match this one bit, 0x2000, which the marks of
// kube-proxy (0x4000, 0x8000), Cilium (0x0f00 and the upper 16 bits), Calico (upper 16 bits
// by default), the AWS VPC CNI (0x80) and Istio (0x539) leave alone.
const ProxyMark uint32 = 0x2000

// markMatch is the nft expression matching ProxyMark.
var markMatch = fmt.Sprintf("meta mark & 0x%x == 0x%x", ProxyMark, ProxyMark)

// MarkedDialer returns a dialer whose sockets carry ProxyMark, for the proxy's connections to
// the metadata service. base may be nil; its Control function, if any, runs first. Setting the
// mark needs CAP_NET_ADMIN; without it every dial fails, never an unmarked connection that
// would loop back into the proxy.
func MarkedDialer(base *net.Dialer) *net.Dialer {
	d := &net.Dialer{}
	if base != nil {
		*d = *base //nolint:govet // a copy of the caller's settings
	}
	prev := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if prev != nil {
			if err := prev(network, address, c); err != nil {
				return err
			}
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(ProxyMark))
		}); err != nil {
			return fmt.Errorf("set SO_MARK: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("set SO_MARK 0x%x (needs CAP_NET_ADMIN): %w", ProxyMark, serr)
		}
		return nil
	}
	return d
}

// ErrNotRedirected is returned by OriginalDestination for a connection conntrack did not
// translate: a client that connected to the proxy's address directly.
var ErrNotRedirected = errors.New("connection was not redirected")

// OriginalDestination returns the address a redirected client connected to, before the DNAT:
// the metadata service it meant. It asks conntrack through getsockopt SO_ORIGINAL_DST
// (IPv4, linux/netfilter_ipv4.h: `#define SO_ORIGINAL_DST 80`, level SOL_IP) or
// IP6T_SO_ORIGINAL_DST (IPv6, linux/netfilter_ipv6/ip6_tables.h: `#define IP6T_SO_ORIGINAL_DST
// 80`, level SOL_IPV6); both answer from the conntrack entry (net/netfilter/
// nf_conntrack_proto.c, getorigdst and ipv6_getorigdst), so they work with nftables' DNAT as
// with iptables'. The answer is a sockaddr_in or sockaddr_in6. A connection that was not
// translated yields ErrNotRedirected: the proxy must refuse it.
func OriginalDestination(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	local, _ := c.LocalAddr().(*net.TCPAddr)
	ipv6 := local != nil && local.IP.To4() == nil
	var dst netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if ipv6 {
			var sa unix.RawSockaddrInet6
			size := uint32(unix.SizeofSockaddrInet6)
			serr = getsockopt(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst, unsafe.Pointer(&sa), &size) // #nosec G103 -- the kernel fills a sockaddr_in6 of this size
			if serr == nil {
				dst = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), ntohs(sa.Port))
			}
			return
		}
		var sa unix.RawSockaddrInet4
		size := uint32(unix.SizeofSockaddrInet4)
		serr = getsockopt(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST, unsafe.Pointer(&sa), &size) // #nosec G103 -- the kernel fills a sockaddr_in of this size
		if serr == nil {
			dst = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
		}
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	if errors.Is(serr, unix.ENOENT) {
		return netip.AddrPort{}, ErrNotRedirected
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: getsockopt: %w", serr)
	}
	// conntrack answers with the reply tuple's source for an untranslated connection on some
	// kernels rather than ENOENT: that is the proxy's own address.
	if local != nil && dst == local.AddrPort() {
		return netip.AddrPort{}, ErrNotRedirected
	}
	return dst, nil
}

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h, which
// x/sys/unix does not define.
const ip6tSoOriginalDst = 80

// getsockopt is getsockopt(2) with a caller's buffer: x/sys/unix has no wrapper for socket
// options that answer a socket address.
func getsockopt(fd, level, opt int, val unsafe.Pointer, size *uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), uintptr(unsafe.Pointer(size)), 0) // #nosec G103 -- getsockopt(2) takes the buffer's and the length's addresses
	if errno != 0 {
		return errno
	}
	return nil
}

// ntohs converts a port in network byte order, as a sockaddr holds it.
func ntohs(p uint16) uint16 {
	return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, p))
}

// validProxy checks a proxy address of the given family.
func validProxy(a netip.AddrPort, ipv4 bool) error {
	switch {
	case !a.IsValid() || a.Port() == 0:
		return fmt.Errorf("%q is not an address and port", a)
	case a.Addr().Zone() != "":
		return fmt.Errorf("%s: a zone cannot be a DNAT target", a)
	case a.Addr().Is4() != ipv4 || a.Addr().Is4In6():
		return fmt.Errorf("%s: wrong address family", a)
	case a.Addr().IsLoopback():
		return fmt.Errorf("%s: a loopback address needs route_localnet for pods' traffic; use an address on a dummy interface", a)
	case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
		return fmt.Errorf("%s: not a unicast address", a)
	}
	return nil
}
