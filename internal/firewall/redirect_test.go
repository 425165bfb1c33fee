package firewall_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
)

func destinations(eps []endpoint.Endpoint) []string {
	var out []string
	for _, ep := range eps {
		out = append(out, ep.Destination())
	}
	slices.Sort(out)
	return out
}

// TestFilterModeSplitsRedirectedFromDropped: filter mode redirects exactly the AWS, GCP and
// Azure instance metadata services (and GCE's port 8080) and drops every other credential
// endpoint; other modes redirect nothing.
func TestFilterModeSplitsRedirectedFromDropped(t *testing.T) {
	cfg := firewall.Config{
		Endpoints: endpoint.Select([]endpoint.Cloud{endpoint.All, endpoint.ECS}), Mode: firewall.Filter,
		ProxyIPv4: firewall.DefaultProxyIPv4, ProxyIPv6: firewall.DefaultProxyIPv6,
	}
	if got, want := destinations(cfg.Redirected()), []string{"169.254.169.254:80/TCP", "169.254.169.254:8080/TCP", "[fd00:ec2::254]:80/TCP"}; !slices.Equal(got, want) {
		t.Errorf("redirected %v, want %v", got, want)
	}
	if got, want := destinations(cfg.Dropped()), []string{"100.100.100.200:80/TCP", "168.63.129.16:32526/TCP", "168.63.129.16:80/TCP", "169.254.170.2:80/TCP"}; !slices.Equal(got, want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	for _, ep := range cfg.Endpoints {
		if ep.Role == endpoint.KeepReachable && (slices.ContainsFunc(cfg.Redirected(), func(r endpoint.Endpoint) bool { return r.Destination() == ep.Destination() }) ||
			slices.ContainsFunc(cfg.Dropped(), func(r endpoint.Endpoint) bool { return r.Destination() == ep.Destination() })) {
			t.Errorf("keep-reachable %s is touched", ep)
		}
	}
	script, err := firewall.NFTScript(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`add rule inet imdsguard redirect_prerouting ip daddr 169.254.169.254 tcp dport 80 counter name "redirect_prerouting.imds" dnat ip to 169.254.88.254:8988`,
		`add rule inet imdsguard redirect_prerouting ip6 daddr fd00:ec2::254 tcp dport 80 counter name "redirect_prerouting.aws-imds-ipv6" dnat ip6 to [fd69:6d64:7367::254]:8988`,
		`add rule inet imdsguard output meta mark & 0x2000 == 0x2000 accept`,
	} {
		if !strings.Contains(script, line) {
			t.Errorf("script lacks %q", line)
		}
	}
	for _, port := range []string{"dport 53 ", "169.254.170.23"} {
		if strings.Contains(script, port) {
			t.Errorf("script matches %q, which must stay untouched", port)
		}
	}

	for _, mode := range []firewall.Mode{firewall.Enforce, firewall.Observe} {
		c := cfg
		c.Mode = mode
		if len(c.Redirected()) != 0 || len(c.Dropped()) != len(c.Denied()) {
			t.Errorf("%s: redirects %v", mode, c.Redirected())
		}
	}

	c := cfg
	c.ProxyIPv4 = netipAddrPort("127.0.0.1:8988")
	if err := c.Validate(); err == nil {
		t.Error("a loopback proxy address (needs route_localnet) was accepted")
	}
	if _, err := firewall.IPTablesRestore(cfg, firewall.IPv4); !errors.Is(err, firewall.ErrFilterNeedsNFTables) {
		t.Errorf("iptables fallback in filter mode: %v, want ErrFilterNeedsNFTables", err)
	}
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
