package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/firewall"
)

// ForFirewall builds filter mode's proxy for a firewall configuration: the request policy with
// the settings and additions given (the node's cloud set when the redirected endpoints name
// exactly one filterable cloud and the settings do not say), the marked dialer the redirect
// lets through, and the redirected destinations as the only ones it forwards to.
func ForFirewall(cfg firewall.Config, settings filter.Settings, adds []filter.Addition, log *slog.Logger) (*Server, error) {
	var clouds []endpoint.Cloud
	redirected := map[netip.AddrPort]bool{}
	for _, ep := range cfg.Redirected() {
		redirected[netip.AddrPortFrom(ep.Address, uint16(ep.Port))] = true
		for _, c := range ep.Clouds {
			if slices.Contains(firewall.FilterClouds, c) && !slices.Contains(clouds, c) {
				clouds = append(clouds, c)
			}
		}
	}
	if settings.Cloud == "" && len(clouds) == 1 {
		settings.Cloud = filter.Cloud(clouds[0])
	}
	if settings.MaxTokenTTL == 0 {
		settings.MaxTokenTTL = filter.DefaultMaxTokenTTL
	}
	policy, err := filter.DefaultPolicy().WithSettings(settings)
	if err != nil {
		return nil, fmt.Errorf("filter settings: %w", err)
	}
	if policy, err = policy.With(adds); err != nil {
		return nil, fmt.Errorf("filter additions: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := firewall.MarkedDialer(&net.Dialer{Timeout: 2 * time.Second})
	return &Server{
		Policy:      policy,
		Dial:        dialer.DialContext,
		OriginalDst: firewall.OriginalDestination,
		Allowed:     func(dst netip.AddrPort) bool { return redirected[dst] },
		Log:         log.With("component", "filter"),
		Stats:       &Stats{},
	}, nil
}
