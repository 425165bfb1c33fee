package agent

import (
	"context"
	"slices"
	"time"

	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// StatePublisher publishes the agent's state on its Node (layer.AgentStateAnnotation).
type StatePublisher interface {
	PublishState(ctx context.Context, s layer.AgentState) error
}

// DefaultMeasureInterval is how often the agent measures the instance metadata service when
// nothing else asks for it: the instance's metadata options change only through the EC2 API.
const DefaultMeasureInterval = 5 * time.Minute

// DefaultPublishInterval is how often the agent republishes its state when nothing changed:
// half of layer.MaxAgentStateAge, so a running agent's state never looks stale to the audit.
const DefaultPublishInterval = layer.MaxAgentStateAge / 2

// droppedDestinations are the destinations the configuration drops (observe: would drop), as
// endpoint.Endpoint.Destination renders them, each once, sorted. In filter mode the
// destinations redirected to the proxy are not among them.
func droppedDestinations(cfg firewall.Config) []string {
	var out []string
	for _, ep := range cfg.Dropped() {
		if d := ep.Destination(); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// filteredDestinations are the destinations the configuration redirects to the filtering
// proxy (filter mode), in droppedDestinations' form.
func filteredDestinations(cfg firewall.Config) []string {
	var out []string
	for _, ep := range cfg.Redirected() {
		if d := ep.Destination(); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// selectors converts the agent's pod selectors to the published form.
func selectors(in []PodSelector) []layer.PodSelector {
	var out []layer.PodSelector
	for _, s := range in {
		out = append(out, layer.PodSelector{Namespace: s.Namespace, ServiceAccount: s.ServiceAccount})
	}
	return out
}

// sameState compares two states, ignoring the sync time and the measurement's time: what
// changes with every sync or measurement is republished on the interval, not at once.
func sameState(a, b layer.AgentState) bool {
	return a.Node == b.Node && a.Mode == b.Mode && slices.Equal(a.Dropped, b.Dropped) && slices.Equal(a.Filtered, b.Filtered) && a.FilterObserve == b.FilterObserve &&
		a.HostNetworkCovered == b.HostNetworkCovered && a.Generation == b.Generation &&
		a.CiliumRouting == b.CiliumRouting && slices.Equal(a.Exempt, b.Exempt) && slices.Equal(a.AllowHostNetwork, b.AllowHostNetwork) &&
		slices.Equal(a.AllowedHostNetworkPodUIDs, b.AllowedHostNetworkPodUIDs) && sameMeasurement(a.Instance, b.Instance)
}

// state returns the state to publish, and false before the first successful sync.
func (a *Agent) state() (layer.AgentState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.synced.IsZero() {
		return layer.AgentState{}, false
	}
	s := layer.AgentState{
		Version:            layer.AgentStateVersion,
		Node:               a.opts.NodeName,
		Mode:               string(a.opts.Mode),
		Dropped:            slices.Clone(a.dropped),
		Filtered:           slices.Clone(a.filtered),
		FilterObserve:      a.opts.FilterObserve && len(a.filtered) > 0,
		HostNetworkCovered: a.covered,
		Generation:         a.generation,
		Synced:             a.synced,
		CiliumRouting:      string(a.cilium),
		// What the ruleset lets through, so the audit does not count those pods as protected.
		Exempt:                    selectors(a.opts.Exempt),
		AllowHostNetwork:          selectors(a.opts.AllowHostNetwork),
		AllowedHostNetworkPodUIDs: slices.Clone(a.opts.AllowedHostNetworkPodUIDs),
	}
	if a.opts.SelfPodUID != "" && !slices.Contains(s.AllowedHostNetworkPodUIDs, a.opts.SelfPodUID) {
		s.AllowedHostNetworkPodUIDs = append(s.AllowedHostNetworkPodUIDs, a.opts.SelfPodUID)
	}
	if a.instance != nil {
		m := *a.instance
		s.Instance = &m
	}
	return s, true
}

// publishLoop publishes the state after every change and at least every PublishInterval; a
// failure is logged and retried with backoff. It never touches the firewall.
func (a *Agent) publishLoop(ctx context.Context) {
	const firstBackoff = time.Second
	backoff := firstBackoff
	var last layer.AgentState
	var lastAt time.Time
	timer := time.NewTimer(a.opts.PublishInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.publishNow:
		case <-timer.C:
		}
		s, ok := a.state()
		if !ok {
			timer.Reset(a.opts.PublishInterval)
			continue
		}
		if !lastAt.IsZero() && sameState(s, last) {
			if wait := a.opts.PublishInterval - time.Since(lastAt); wait > 0 {
				timer.Reset(wait)
				continue
			}
		}
		if err := a.opts.State.PublishState(ctx, s); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.metrics.statePublishErrors.Add(1)
			a.log.Warn("cannot publish the agent state on the node; the firewall is unaffected", "node", a.opts.NodeName, "err", err, "retry_in", backoff)
			timer.Reset(backoff)
			backoff = min(backoff*2, time.Minute)
			continue
		}
		if lastAt.IsZero() || !sameState(s, last) {
			a.log.Info("agent state published on the node", "node", a.opts.NodeName, "annotation", layer.AgentStateAnnotation, "generation", s.Generation)
		}
		backoff = firstBackoff
		last, lastAt = s, time.Now()
		timer.Reset(a.opts.PublishInterval)
	}
}

// measureLoop measures the instance when the agent becomes ready, whenever the ruleset
// changes, and every MeasureInterval, and hands each measurement to the publisher.
func (a *Agent) measureLoop(ctx context.Context) {
	tick := time.NewTicker(a.opts.MeasureInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.measureNow:
		case <-tick.C:
		}
		if !a.Ready() {
			continue // the first sync asks again
		}
		m, err := a.opts.Instance.MeasureInstance(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("instance metadata measurement incomplete", "err", err)
		}
		a.mu.Lock()
		changed := !sameMeasurement(a.instance, m)
		a.instance = m
		a.mu.Unlock()
		if changed {
			a.log.Info("instance metadata service measured", describeMeasurement(m)...)
		} else {
			a.log.Debug("instance metadata service measured", describeMeasurement(m)...)
		}
		notify(a.publishNow)
	}
}
