package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cidrPeer is an address block with exceptions (a NetworkPolicy ipBlock, or an ANP network with
// no exceptions).
type cidrPeer struct {
	prefix netip.Prefix
	except []netip.Prefix
	label  string // "ipBlock 0.0.0.0/0 except [...]"
}

// match reports whether addr is in the block; excluded names the except entry that removed it.
func (c *cidrPeer) match(addr netip.Addr) (ok bool, excluded string) {
	if !c.prefix.Contains(addr) {
		return false, ""
	}
	for _, e := range c.except {
		if e.Contains(addr) {
			return false, e.String()
		}
	}
	return true, ""
}

func (c *cidrPeer) broad() bool { return c.prefix.Bits() == 0 }

// parseCIDR parses a CIDR as the API server accepts it (host bits may be set) and returns the
// masked prefix; IPv4-mapped IPv6 prefixes are refused, as the API server refuses them.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: IPv4-mapped IPv6 prefixes are not allowed", s)
	}
	return p.Masked(), nil
}

// portRange is a protocol with a port range; named ports never match an address outside the
// cluster and are kept only to explain that.
type portRange struct {
	protocol   corev1.Protocol
	start, end int32 // 0,0: every port of the protocol
	named      string
}

func (p *portRange) match(ep *endpoint.Endpoint) bool {
	if p.protocol != ep.Protocol || p.named != "" {
		return false
	}
	return p.start == 0 || (ep.Port >= p.start && ep.Port <= p.end)
}

func (p *portRange) String() string {
	switch {
	case p.named != "":
		return fmt.Sprintf("%s named port %q", p.protocol, p.named)
	case p.start == 0:
		return fmt.Sprintf("%s any port", p.protocol)
	case p.start == p.end:
		return fmt.Sprintf("%s %d", p.protocol, p.start)
	}
	return fmt.Sprintf("%s %d-%d", p.protocol, p.start, p.end)
}

// ports is a rule's port list; an empty, non-nil-marked list means every port and protocol.
type ports struct {
	all    bool
	ranges []portRange
}

func (ps *ports) match(ep *endpoint.Endpoint) bool {
	if ps.all {
		return true
	}
	for i := range ps.ranges {
		if ps.ranges[i].match(ep) {
			return true
		}
	}
	return false
}

func (ps *ports) String() string {
	if ps.all {
		return "all ports"
	}
	s := make([]string, len(ps.ranges))
	for i := range ps.ranges {
		s[i] = ps.ranges[i].String()
	}
	return strings.Join(s, ", ")
}

func (ps *ports) hasNamed() bool {
	for _, r := range ps.ranges {
		if r.named != "" {
			return true
		}
	}
	return false
}

func validProtocol(p corev1.Protocol) bool {
	return p == corev1.ProtocolTCP || p == corev1.ProtocolUDP || p == corev1.ProtocolSCTP
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }

// matchDomain reports whether an FQDN peer pattern ("metadata.google.internal" or
// "*.google.internal") matches a hostname.
func matchDomain(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return pattern == host
}

// fieldErrors collects validation errors with field paths.
type fieldErrors []fieldError

type fieldError struct{ field, message string }

func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, fieldError{field, fmt.Sprintf(format, args...)})
}

// validateSelector checks that a label selector is valid, when set.
func validateSelector(s *metav1.LabelSelector, field string, errs *fieldErrors) {
	if s == nil {
		return
	}
	if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
		errs.add(field, "invalid selector: %v", err)
	}
}
