package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/layer"
	"golang.org/x/sys/unix"
)

// InstanceMeasurer measures the instance metadata service from the node.
type InstanceMeasurer interface {
	// MeasureInstance always returns a measurement; the error says what could not be
	// measured (it is logged, the rest is still published).
	MeasureInstance(ctx context.Context) (*layer.InstanceMeasurement, error)
}

// The EC2 instance metadata service's addresses
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html).
var (
	ec2IMDSv4 = netip.AddrPortFrom(netip.MustParseAddr("169.254.169.254"), 80)
	ec2IMDSv6 = netip.AddrPortFrom(netip.MustParseAddr("fd00:ec2::254"), 80)
)

// HasAWSIMDS reports whether the endpoints hold the EC2 instance metadata service
// (169.254.169.254:80 on behalf of AWS): only then does the agent measure the instance.
func HasAWSIMDS(eps []endpoint.Endpoint) bool {
	for _, ep := range eps {
		if ep.HasCloud(endpoint.AWS) && ep.Address == ec2IMDSv4.Addr() && ep.Port == int32(ec2IMDSv4.Port()) {
			return true
		}
	}
	return false
}

// IMDSProbe measures what the EC2 instance metadata service does for the node, with three
// requests from the node's own network namespace:
//   - GET /latest/meta-data/ without a token: 200 (HttpTokens optional), 401 (required) or 403
//     (HttpEndpoint disabled), 0 when nothing answered;
//   - the same on fd00:ec2::254: whether the IPv6 endpoint answers at all;
//   - PUT /latest/api/token: the IPv4 TTL of the response, which EC2 sets to
//     HttpPutResponseHopLimit and no router decrements on the way to the node.
//
// The TTL is read with a raw IPv4 socket of protocol TCP, opened (and connected to
// 169.254.169.254, so the kernel hands it only that address's segments) before the PUT: Linux
// gives every raw socket bound to a protocol a copy of each incoming packet of that protocol,
// IP header included, before TCP takes it (raw(7)). Of those copies the probe takes the first
// segment from port 80 to its own connection's port that carries data: the response. The other
// means are worse: IP_RECVTTL reports the TTL only to datagram and raw sockets, never through a
// TCP stream; counters per TTL value in nftables would change the ruleset the agent keeps and
// watches (each measurement a ruleset change) and count every process's packets; an AF_PACKET
// capture sees every frame of every interface. The raw socket needs CAP_NET_RAW, which the
// DaemonSet grants already (for the iptables fallback).
//
// The probe's sockets belong to the agent process, so they carry the agent's cgroup: the output
// rules drop only sockets below the kubelet's pods cgroup, and the agent lets its own pod's
// cgroup through (Options.SelfPodUID), so the measurement is never dropped by the agent's
// rules. On a plain host the agent is not below the pods cgroup at all.
type IMDSProbe struct {
	// Do runs fn where the probe's sockets are to be opened: tests pass a network namespace's
	// Do; nil runs fn here.
	Do func(fn func() error) error
	// Timeout bounds each request; default 2s.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

var _ InstanceMeasurer = (*IMDSProbe)(nil)

// MeasureInstance implements InstanceMeasurer.
func (p *IMDSProbe) MeasureInstance(ctx context.Context) (*layer.InstanceMeasurement, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	m := &layer.InstanceMeasurement{Measured: now().UTC()}
	var errs []error

	v1, err := p.exchange(ctx, ec2IMDSv4, metadataRequest(ec2IMDSv4), false)
	if err == nil {
		m.V1Status = v1.status
	}
	v6, err := p.exchange(ctx, ec2IMDSv6, metadataRequest(ec2IMDSv6), false)
	// An answer settles it; silence does only when the IPv4 endpoint answered in the same run
	// (the instance metadata service is there, its IPv6 endpoint is not). Otherwise nothing is
	// known: a node without an IPv6 route must not read as HttpProtocolIpv6 disabled.
	switch answered := err == nil && v6.status != 0; {
	case answered || m.V1Status != 0:
		m.IPv6 = &answered
	}

	if m.V1Status != http.StatusForbidden && m.V1Status != 0 {
		tok, err := p.exchange(ctx, ec2IMDSv4, tokenRequest(), true)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("hop limit: %w", err))
		case tok.status != http.StatusOK:
			errs = append(errs, fmt.Errorf("hop limit: token request answered %d", tok.status))
		default:
			m.HopLimit = tok.ttl
		}
	}
	return m, errors.Join(errs...)
}

// metadataRequest is GET /latest/meta-data/ without a token.
func metadataRequest(to netip.AddrPort) *http.Request {
	host := to.Addr().String()
	if to.Addr().Is6() {
		host = "[" + host + "]"
	}
	return &http.Request{
		Method: http.MethodGet, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		URL:    &url.URL{Scheme: "http", Host: host, Path: "/latest/meta-data/"},
		Header: http.Header{}, Host: host, Close: true,
	}
}

// tokenRequest is the IMDSv2 session token request, for the shortest session EC2 allows.
func tokenRequest() *http.Request {
	r := metadataRequest(ec2IMDSv4)
	r.Method = http.MethodPut
	r.URL.Path = "/latest/api/token"
	r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "1")
	return r
}

// answer is what one exchange found: the HTTP status and, when asked for, the response's TTL.
type answer struct {
	status int
	ttl    int
}

// exchange sends req on a fresh connection to to and reads the answer; with ttl it also reads
// the IPv4 TTL of the response's first data segment. A connection that cannot be made, or no
// answer within the timeout, is an error.
func (p *IMDSProbe) exchange(ctx context.Context, to netip.AddrPort, req *http.Request, ttl bool) (answer, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	do := p.Do
	if do == nil {
		do = func(fn func() error) error { return fn() }
	}
	var conn net.Conn
	var capture *os.File
	err := do(func() error {
		if ttl {
			f, err := openTTLCapture(to.Addr())
			if err != nil {
				return err
			}
			capture = f
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", to.String())
		conn = c
		return err
	})
	if capture != nil {
		defer capture.Close()
	}
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", req.Method, to, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if err := req.Write(conn); err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", req.Method, to, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", req.Method, to, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if !ttl {
		return a, nil
	}
	local, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return a, fmt.Errorf("%s %s: local address: %w", req.Method, to, err)
	}
	a.ttl, err = readResponseTTL(capture, to, local.Port(), deadline)
	return a, err
}

// openTTLCapture opens a non-blocking raw IPv4 socket of protocol TCP that receives copies of
// the TCP segments from addr (connect filters raw sockets by source address).
func openTTLCapture(from netip.Addr) (*os.File, error) {
	if !from.Is4() {
		return nil, fmt.Errorf("TTL capture: %s is not IPv4", from)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("TTL capture: raw socket (needs CAP_NET_RAW): %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: from.As4()}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("TTL capture: connect raw socket to %s: %w", from, err)
	}
	// Non-blocking, the file uses the runtime's poller, so read deadlines work.
	return os.NewFile(uintptr(fd), "raw-tcp-"+from.String()), nil
}

// readResponseTTL reads copies of segments from the capture socket until one from the peer's
// port to localPort carries data, and returns its TTL. The response has been read on the TCP
// connection already, so its copy is queued.
func readResponseTTL(capture *os.File, peer netip.AddrPort, localPort uint16, deadline time.Time) (int, error) {
	buf := make([]byte, 65535)
	_ = capture.SetReadDeadline(deadline)
	for {
		n, err := capture.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("TTL capture: no data segment from %s to port %d: %w", peer, localPort, err)
		}
		if ttl, ok := ResponseTTL(buf[:n], peer, localPort); ok {
			return ttl, nil
		}
	}
}

// ResponseTTL returns the TTL of an IPv4 packet when it is a TCP segment from peer to localPort
// carrying data; ok is false for anything else (a handshake segment, a bare ACK, another
// connection's segment, a truncated packet).
func ResponseTTL(packet []byte, peer netip.AddrPort, localPort uint16) (int, bool) {
	if len(packet) < 20 || packet[0]>>4 != 4 || packet[9] != unix.IPPROTO_TCP {
		return 0, false
	}
	ihl := int(packet[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(packet[2:4]))
	if ihl < 20 || total > len(packet) || total < ihl+20 {
		return 0, false
	}
	if netip.AddrFrom4([4]byte(packet[12:16])) != peer.Addr() {
		return 0, false
	}
	tcp := packet[ihl:total]
	if binary.BigEndian.Uint16(tcp[0:2]) != peer.Port() || binary.BigEndian.Uint16(tcp[2:4]) != localPort {
		return 0, false
	}
	if dataOffset := int(tcp[12]>>4) * 4; dataOffset < 20 || len(tcp) <= dataOffset {
		return 0, false
	}
	return int(packet[8]), true
}

// describeMeasurement renders a measurement for the log.
func describeMeasurement(m *layer.InstanceMeasurement) []any {
	ipv6 := "not tried"
	if m.IPv6 != nil {
		ipv6 = fmt.Sprint(*m.IPv6)
	}
	return []any{"v1_status", m.V1Status, "ipv6", ipv6, "hop_limit", m.HopLimit}
}

// sameMeasurement compares two measurements, ignoring when they were taken.
func sameMeasurement(a, b *layer.InstanceMeasurement) bool {
	if a == nil || b == nil {
		return a == b
	}
	sameIPv6 := (a.IPv6 == nil && b.IPv6 == nil) || (a.IPv6 != nil && b.IPv6 != nil && *a.IPv6 == *b.IPv6)
	return a.V1Status == b.V1Status && a.HopLimit == b.HopLimit && sameIPv6
}
