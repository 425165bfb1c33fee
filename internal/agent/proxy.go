package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/firewall"
)

// Proxy is the filtering metadata proxy that filter mode redirects pods' metadata connections
// to. The agent creates its listeners on the proxy addresses (firewall.DefaultProxyIPv4 and
// DefaultProxyIPv6 unless configured) before the ruleset that points at them is applied, and
// runs Serve for its lifetime.
//
// Serve accepts on both listeners until ctx ends, and returns nil then. For each connection it
// learns the metadata address the client meant with firewall.OriginalDestination (refusing a
// connection that was not redirected), and it dials the metadata service with
// firewall.MarkedDialer, so its own connections pass the redirect. Serve owns the listeners
// and closes them when it returns; from then on redirected connections are refused, never
// forwarded to the metadata service.
type Proxy interface {
	Serve(ctx context.Context, ln4, ln6 net.Listener) error
}

// ConnectionCutter is a Backend that can cut the connections established before its latest
// replacement (conntrack).
type ConnectionCutter interface {
	// CutConnections ends the tracked connections whose original destination is one of the
	// configuration's denied endpoints, and returns how many it ended.
	CutConnections(cfg firewall.Config) (int, error)
}

// CutConnections implements ConnectionCutter over ctnetlink, in the agent's network namespace.
func (b *NFTablesBackend) CutConnections(cfg firewall.Config) (int, error) {
	return firewall.CutConnections(cfg.Denied())
}

var _ ConnectionCutter = (*NFTablesBackend)(nil)

// proxyAddresses returns the proxy's listen addresses: the options' or the defaults.
func (o Options) proxyAddresses() (v4, v6 netip.AddrPort) {
	v4, v6 = o.ProxyIPv4, o.ProxyIPv6
	if !v4.IsValid() {
		v4 = firewall.DefaultProxyIPv4
	}
	if !v6.IsValid() {
		v6 = firewall.DefaultProxyIPv6
	}
	return v4, v6
}

// addProxyAddresses puts the proxy's addresses on the loopback interface (firewall.
// ProxyInterface), where DNAT from pods reaches them without route_localnet. The IPv4 address
// has host scope and the IPv6 address is deprecated (preferred_lft 0): the kernel never picks
// either as the source of the node's own connections (RFC 6724 rule 3 avoids deprecated
// addresses), so the node's own traffic to fd00:ec2::254 keeps its usual source. `ip addr
// replace` makes it idempotent across restarts.
func addProxyAddresses(ctx context.Context, ipCommand []string, v4, v6 netip.AddrPort) error {
	if len(ipCommand) == 0 {
		ipCommand = []string{"ip"}
	}
	for _, args := range [][]string{
		{"-4", "addr", "replace", netip.PrefixFrom(v4.Addr(), 32).String(), "dev", firewall.ProxyInterface, "scope", "host"},
		{"-6", "addr", "replace", netip.PrefixFrom(v6.Addr(), 128).String(), "dev", firewall.ProxyInterface, "nodad", "preferred_lft", "0"},
	} {
		argv := append(append([]string{}, ipCommand[1:]...), args...)
		cmd := exec.CommandContext(ctx, ipCommand[0], argv...) //nolint:gosec // the operator's command and our own arguments
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w: %s", ipCommand[0], strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return nil
}

// startProxy brings the proxy's addresses up, listens on them and runs the proxy until ctx
// ends. It returns once both listeners are open, before any ruleset points at them; the
// proxy's end is reported on done (nil when ctx ended it).
func (a *Agent) startProxy(ctx context.Context) (<-chan error, error) {
	v4, v6 := a.opts.proxyAddresses()
	if err := addProxyAddresses(ctx, a.opts.IPCommand, v4, v6); err != nil {
		return nil, fmt.Errorf("filter mode: proxy addresses: %w", err)
	}
	var lc net.ListenConfig
	ln4, err := lc.Listen(ctx, "tcp4", v4.String())
	if err != nil {
		return nil, fmt.Errorf("filter mode: proxy listen: %w", err)
	}
	ln6, err := lc.Listen(ctx, "tcp6", v6.String())
	if err != nil {
		_ = ln4.Close()
		return nil, fmt.Errorf("filter mode: proxy listen: %w", err)
	}
	a.log.Info("metadata proxy listening", "ipv4", ln4.Addr().String(), "ipv6", ln6.Addr().String(), "mark", fmt.Sprintf("0x%x", firewall.ProxyMark))
	done := make(chan error, 1)
	go func() {
		err := a.opts.Proxy.Serve(ctx, ln4, ln6)
		// Whatever the proxy did, nothing listens from now on: redirected connections are
		// refused.
		_ = ln4.Close()
		_ = ln6.Close()
		if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)) {
			err = nil
		} else if err == nil {
			err = errors.New("the metadata proxy stopped")
		}
		done <- err
	}()
	return done, nil
}

// Client names the pod that sent a connection from src, for the filter's decision and its log:
// a pod on the pod network by its address; anything else is taken as a hostNetwork pod, which
// shares the node's addresses and cannot be told apart by them.
func (a *Agent) Client(src netip.Addr) filter.Client {
	a.mu.Lock()
	p, ok := a.pods[src]
	a.mu.Unlock()
	if !ok {
		return filter.Client{HostNetwork: true}
	}
	return filter.Client{Namespace: p.Namespace, Pod: p.Name, ServiceAccount: p.ServiceAccount}
}
