package firewall

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// CutConnections deletes the conntrack entries, in the calling thread's network namespace,
// whose original destination is one of the endpoints, and returns how many it deleted.
//
// A ruleset replacement changes only what new connections meet: nat chains are consulted for
// a connection's first packet alone, and an established connection keeps the translation (or
// the absence of one) conntrack recorded when it started. Deleting the entry makes the next
// packet start afresh under the new rules: redirected to the proxy, which answers a segment of
// a connection it never saw with a reset; dropped; or, for the node's own daemons and the
// proxy's marked connections, picked up again unchanged (nf_conntrack_tcp_loose, on by
// default, tracks a connection from the middle).
//
// It talks to ctnetlink (github.com/ti-mo/conntrack): a dump of the table, then a delete by
// original tuple for each match, as `conntrack -D` does.
func CutConnections(endpoints []endpoint.Endpoint) (int, error) {
	type key struct {
		addr  netip.Addr
		port  uint16
		proto uint8
	}
	want := map[key]bool{}
	for _, ep := range endpoints {
		proto, err := l4(ep)
		if err != nil {
			return 0, err
		}
		want[key{ep.Address, uint16(ep.Port), protoNumbers[proto]}] = true
	}
	if len(want) == 0 {
		return 0, nil
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack dump: %w", err)
	}
	cut := 0
	var errs []error
	for _, f := range flows {
		orig := f.TupleOrig
		if !want[key{orig.IP.DestinationAddress.Unmap(), orig.Proto.DestinationPort, orig.Proto.Protocol}] {
			continue
		}
		if err := c.Delete(f); err != nil {
			// Gone in between (closed, timed out) is what we wanted anyway.
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("conntrack delete %s -> %s: %w", netip.AddrPortFrom(orig.IP.SourceAddress, orig.Proto.SourcePort), netip.AddrPortFrom(orig.IP.DestinationAddress, orig.Proto.DestinationPort), err))
			}
			continue
		}
		cut++
	}
	return cut, errors.Join(errs...)
}

// protoNumbers are the IANA protocol numbers of the nft protocol keywords l4 returns.
var protoNumbers = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}
