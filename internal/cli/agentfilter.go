package cli

import (
	"log/slog"

	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/proxy"
)

// filterProxy builds filter mode's proxy from the firewall configuration and the configuration
// file's filter section (the token TTL cap, the identity document, additions).
func filterProxy(cfg firewall.Config, fc *agent.FilterConfig, log *slog.Logger) (*proxy.Server, error) {
	var settings filter.Settings
	var adds []filter.Addition
	if fc != nil {
		settings.MaxTokenTTL, settings.DenyIdentityDocument = fc.MaxTokenTTL, fc.DenyIdentityDocument
		for _, a := range fc.Additions {
			adds = append(adds, filter.Addition{Namespace: a.Namespace, ServiceAccount: a.ServiceAccount, Cloud: filter.Cloud(a.Cloud), Paths: a.Paths})
		}
	}
	srv, err := proxy.ForFirewall(cfg, settings, adds, log)
	if err != nil {
		return nil, usageError("agent configuration, filter: %v", err)
	}
	srv.Observe = fc != nil && fc.Observe
	return srv, nil
}
