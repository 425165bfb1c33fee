package agent_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// TestIMDSProbeMeasuresEachMetadataOption measures, from the sandbox node, an emulator set up
// as each combination of EC2 metadata options, and expects exactly those options back:
// HttpTokens optional or required (200 or 401 without a token), HttpEndpoint enabled or disabled
// (403, and then no token to time), HttpPutResponseHopLimit 1 or 2 (the TTL of the token
// response), HttpProtocolIpv6 on or off.
func TestIMDSProbeMeasuresEachMetadataOption(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	probe := &agent.IMDSProbe{Do: s.Node.Do, Now: func() time.Time { return at }}
	for _, required := range []bool{false, true} {
		for _, disabled := range []bool{false, true} {
			for _, hop := range []int{1, 2} {
				for _, ipv6Off := range []bool{false, true} {
					opts := sandbox.AWSOptions{TokensRequired: required, EndpointDisabled: disabled, HopLimit: hop, IPv6Disabled: ipv6Off}
					ipv6 := !ipv6Off
					want := &layer.InstanceMeasurement{Measured: at, V1Status: 200, IPv6: &ipv6, HopLimit: hop}
					switch {
					case disabled:
						want.V1Status, want.HopLimit = 403, 0
					case required:
						want.V1Status = 401
					}
					t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
						s.IMDS.SetAWS(opts)
						got, err := probe.MeasureInstance(context.Background())
						if err != nil {
							t.Errorf("MeasureInstance: %v", err)
						}
						if diff := cmp.Diff(want, got); diff != "" {
							t.Errorf("measurement (-want +got):\n%s", diff)
						}
					})
				}
			}
		}
	}
}

// TestIMDSProbeWithoutAnswer: when nothing answers on either address (the cloud drops the
// requests), the measurement says so — V1Status 0, no IPv6 endpoint, no hop limit — and takes
// no longer than its timeouts.
func TestIMDSProbeWithoutAnswer(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	ctx := context.Background()
	drop := fmt.Sprintf(`table inet silence {
	chain input {
		type filter hook input priority 0; policy accept;
		ip daddr %s tcp dport 80 drop
		ip6 daddr %s tcp dport 80 drop
	}
}
`, sandbox.IMDSv4, sandbox.IMDSv6)
	if _, err := s.Cloud.Run(ctx, drop, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	probe := &agent.IMDSProbe{Do: s.Node.Do, Timeout: 300 * time.Millisecond}
	start := time.Now()
	got, err := probe.MeasureInstance(ctx)
	if err != nil {
		t.Errorf("MeasureInstance: %v (nothing answering is a measurement, not an error)", err)
	}
	// Nothing answered at all: whether the IPv6 endpoint is on is not known, and a node without
	// a route to it must not read as HttpProtocolIpv6 disabled.
	if got.V1Status != 0 || got.IPv6 != nil || got.HopLimit != 0 {
		t.Errorf("measurement = %+v (ipv6 %v), want V1Status 0, IPv6 unknown (nil), HopLimit 0", got, got.IPv6)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v with two 300ms timeouts", took)
	}
}

// tcpPacket builds an IPv4 TCP segment with the given TTL, ports and payload.
func tcpPacket(ttl byte, from netip.Addr, sport, dport uint16, payload string) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	p[8], p[9] = ttl, 6
	a := from.As4()
	copy(p[12:16], a[:])
	copy(p[16:20], []byte{192, 0, 2, 10})
	binary.BigEndian.PutUint16(p[20:22], sport)
	binary.BigEndian.PutUint16(p[22:24], dport)
	p[32] = 5 << 4
	copy(p[40:], payload)
	return p
}

// TestResponseTTL: only a data segment from the metadata service's port 80 to the probe's own
// port gives the TTL; handshake segments, other connections and truncated packets do not.
func TestResponseTTL(t *testing.T) {
	imds := netip.AddrPortFrom(netip.MustParseAddr("169.254.169.254"), 80)
	other := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name   string
		packet []byte
		ttl    int
		ok     bool
	}{
		{"the response", tcpPacket(1, imds.Addr(), 80, 40000, "HTTP/1.1 200 OK\r\n"), 1, true},
		{"hop limit 2", tcpPacket(2, imds.Addr(), 80, 40000, "token"), 2, true},
		{"a SYN-ACK or bare ACK carries no data", tcpPacket(64, imds.Addr(), 80, 40000, ""), 0, false},
		{"another connection of the metadata service", tcpPacket(1, imds.Addr(), 80, 40001, "HTTP/1.1 200 OK\r\n"), 0, false},
		{"another source", tcpPacket(1, other, 80, 40000, "HTTP/1.1 200 OK\r\n"), 0, false},
		{"another source port", tcpPacket(1, imds.Addr(), 8080, 40000, "x"), 0, false},
		{"truncated", tcpPacket(1, imds.Addr(), 80, 40000, "x")[:30], 0, false},
		{"not IPv4", append([]byte{0x60}, make([]byte, 60)...), 0, false},
	} {
		ttl, ok := agent.ResponseTTL(tc.packet, imds, 40000)
		if ttl != tc.ttl || ok != tc.ok {
			t.Errorf("%s: ResponseTTL = %d, %v; want %d, %v", tc.name, ttl, ok, tc.ttl, tc.ok)
		}
	}
}
