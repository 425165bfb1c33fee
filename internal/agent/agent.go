// Package agent is the node loop behind `imdsguard agent`: it works out the node's firewall
// configuration (pods cgroup, exempt pods, allowed hostNetwork pods), applies the firewall
// package's ruleset in one transaction, watches for anyone changing it (nf_tables' change
// notifications, plus a periodic resync) and repairs it, follows the pods on its node through the
// Kubernetes API, measures the EC2 instance metadata service from the node, publishes its state
// on its Node (layer.AgentStateAnnotation), and serves metrics and health.
//
// It fails closed: nothing is removed when the agent stops, whatever the signal; the rules stay
// until `imdsguard agent uninstall` removes them on purpose. A restarted agent replaces the
// table atomically, so there is no instant without rules.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// Options configure an Agent.
type Options struct {
	// Endpoints are the catalogue endpoints for this node's cloud.
	Endpoints []endpoint.Endpoint
	// Mode is enforce, observe or filter.
	Mode firewall.Mode
	// FilterObserve says the filter proxy passes what it would deny (its observe setting): the
	// published state says so, and the audit counts no protection from it.
	FilterObserve bool
	// Metrics are written after the agent's own on /metrics (the filter proxy's counters).
	Metrics []io.WriterTo
	// Proxy serves filter mode's redirected connections; filter mode refuses to start
	// without one.
	Proxy Proxy
	// ProxyIPv4 and ProxyIPv6 are the proxy's listen addresses in filter mode; zero values
	// mean firewall.DefaultProxyIPv4 and DefaultProxyIPv6. The agent adds them to the
	// loopback interface.
	ProxyIPv4, ProxyIPv6 netip.AddrPort
	// IPCommand is the ip command (and any prefix) that adds the proxy addresses; nil means
	// "ip".
	IPCommand []string
	// PodsCgroup is the kubelet's pods cgroup relative to the cgroup2 root; empty detects it
	// (kubepods.slice, then kubepods) on every sync, "-" disables hostNetwork protection.
	PodsCgroup string
	// CgroupRoot is where the cgroup2 hierarchy is mounted; nft resolves paths under
	// /sys/fs/cgroup, so the default is right wherever nft runs.
	CgroupRoot string
	// ExemptPodIPs and AllowedHostNetworkPodUIDs are static exemptions; Exempt and
	// AllowHostNetwork select pods through the Kubernetes API (Pods must be set).
	ExemptPodIPs              []netip.Addr
	AllowedHostNetworkPodUIDs []string
	Exempt                    []PodSelector
	AllowHostNetwork          []PodSelector
	// ResyncInterval is the backstop: a full check (and repair) this often, whatever the
	// monitor says.
	ResyncInterval time.Duration
	// Listen is the address for /metrics, /healthz and /readyz; empty disables them.
	Listen string
	// Backend is the firewall implementation.
	Backend Backend
	// Pods lists this node's pods; nil when the Kubernetes API is not used. A PodWatcher is
	// run for the agent's lifetime, and its changes trigger syncs.
	Pods PodLister
	// PodsWait bounds how long a restarted agent waits for the pod list before its first sync
	// when a table is already in place (so exempt pods keep their exemption across restarts);
	// without a table it applies at once. Default 5s.
	PodsWait time.Duration
	// CiliumStateDir is the Cilium agent's state directory as mounted here, where its datapath
	// configuration says whether eBPF host routing is on. Default /var/run/cilium/state.
	CiliumStateDir string
	// ReleaseStartupMemory returns the memory only start-up used to the kernel after the
	// first sync (see releaseStartupMemory): for the long-running agent process, not for tests
	// that embed an Agent.
	ReleaseStartupMemory bool
	// Taint, when Nodes is set, is removed from NodeName once the rules are in place.
	Nodes    NodeTainter
	NodeName string
	Taint    Taint
	// State, when set, publishes the agent's state on NodeName after every change and at
	// least every PublishInterval (default DefaultPublishInterval).
	State           StatePublisher
	PublishInterval time.Duration
	// Instance, when set, measures the instance metadata service once ready, whenever the
	// ruleset changes and every MeasureInterval (default DefaultMeasureInterval).
	Instance        InstanceMeasurer
	MeasureInterval time.Duration
	// SelfPodUID is the agent's own pod (from the downward API) when it runs in one: its pod
	// cgroup is let through the output rules like an allowed hostNetwork pod, so the agent's
	// own requests (the instance measurement) are not dropped by its rules.
	SelfPodUID string
}

// Agent keeps the firewall in place.
type Agent struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu          sync.Mutex
	ready       bool
	applied     string        // script of the last successful replacement
	replaced    bool          // a replacement succeeded since the agent started
	fingerprint string        // the kernel's fingerprint right after it
	cgroupGone  bool          // warned that the pods cgroup is missing
	cilium      CiliumRouting // the Cilium routing mode seen last
	tainted     bool          // startup taint still to remove
	logged      map[netip.Addr]bool
	lastPods    []Pod
	pods        map[netip.Addr]Pod
	selfMissing bool // warned that the agent's own pod cgroup is missing

	// What the state publishes: the last ruleset brought in place, counted, and when.
	generation int64
	synced     time.Time
	dropped    []string
	filtered   []string
	covered    bool
	instance   *layer.InstanceMeasurement

	publishNow chan struct{}
	measureNow chan struct{}
}

// New returns an agent; Run starts it.
func New(opts Options, log *slog.Logger) (*Agent, error) {
	if opts.Backend == nil {
		return nil, errors.New("agent: no firewall backend")
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = "/sys/fs/cgroup"
	}
	if opts.Mode == "" {
		opts.Mode = firewall.Enforce
	}
	if opts.CiliumStateDir == "" {
		opts.CiliumStateDir = DefaultCiliumStateDir
	}
	if opts.PodsWait <= 0 {
		opts.PodsWait = 5 * time.Second
	}
	if opts.PublishInterval <= 0 {
		opts.PublishInterval = DefaultPublishInterval
	}
	if opts.MeasureInterval <= 0 {
		opts.MeasureInterval = DefaultMeasureInterval
	}
	if opts.State != nil && opts.NodeName == "" {
		return nil, errors.New("agent: publishing the state needs the node name")
	}
	if (len(opts.Exempt) > 0 || len(opts.AllowHostNetwork) > 0) && opts.Pods == nil {
		return nil, errors.New("agent: pod selectors need the Kubernetes API")
	}
	if opts.Mode == firewall.Filter {
		if opts.Proxy == nil {
			return nil, errors.New("agent: filter mode needs the metadata proxy, and none is configured; use enforce or observe mode")
		}
		if opts.Backend.Name() != "nftables" {
			return nil, fmt.Errorf("agent: %w", firewall.ErrFilterNeedsNFTables)
		}
	}
	return &Agent{
		opts:    opts,
		log:     log,
		metrics: newMetrics(opts.Backend.Name(), opts.Mode),
		tainted: opts.Nodes != nil && opts.Taint.Key != "",
		logged:  map[netip.Addr]bool{},
		pods:    map[netip.Addr]Pod{},

		publishNow: make(chan struct{}, 1),
		measureNow: make(chan struct{}, 1),
	}, nil
}

// Ready reports whether the first sync succeeded.
func (a *Agent) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready
}

// Run applies the firewall and keeps it in place until ctx ends. It never removes the rules.
func (a *Agent) Run(ctx context.Context) error {
	if c, ok := a.opts.Backend.(interface{ Close() }); ok {
		defer c.Close()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if a.opts.Listen != "" {
		l, err := net.Listen("tcp", a.opts.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", a.opts.Listen, err)
		}
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			_ = srv.Close()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics server stopped", "err", err)
			}
		}()
		a.log.Info("serving metrics and health", "address", l.Addr().String())
	}

	changed := make(chan struct{}, 1)
	if w, ok := a.opts.Backend.(Watcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watch(ctx, w, changed)
		}()
	}

	a.log.Info("agent starting", "backend", a.opts.Backend.Name(), "mode", a.opts.Mode, "endpoints", len(a.opts.Endpoints), "resync", a.opts.ResyncInterval)
	if w, ok := a.opts.Pods.(PodWatcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watchPods(ctx, w, changed)
		}()
		a.awaitPods(ctx, w)
	}
	if a.opts.State != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.publishLoop(ctx)
		}()
	}
	if a.opts.Instance != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.measureLoop(ctx)
		}()
	}
	var proxyDone <-chan error
	if a.opts.Mode == firewall.Filter {
		// Listeners first: the ruleset that points at them comes with the first sync.
		done, err := a.startProxy(ctx)
		if err != nil {
			return err
		}
		proxyDone = done
	}
	a.checkCilium()
	tick := time.NewTicker(a.opts.ResyncInterval)
	defer tick.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			a.log.Info("agent stopping; the firewall stays in place")
			return nil
		case err := <-proxyDone:
			if ctx.Err() != nil {
				continue
			}
			// Fail closed: the redirect stays, and with nothing listening pods' metadata
			// connections are refused until a restarted agent serves them again.
			a.log.Error("metadata proxy stopped; the firewall stays in place and redirected connections are refused", "err", err)
			return fmt.Errorf("metadata proxy: %w", err)
		case <-retry.C:
		case <-tick.C:
			a.checkCilium() // Cilium may start after the agent, or change its configuration
		case <-changed:
		}
		if err := a.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			a.log.Error("sync failed", "err", err, "retry_in", backoff)
			retry.Reset(backoff)
			backoff = min(backoff*2, a.opts.ResyncInterval)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// checkCilium detects Cilium and its host routing mode, and says so when it changes: loudly
// when pod traffic may bypass the forward rules.
func (a *Agent) checkCilium() {
	mode := DetectCilium(a.opts.CiliumStateDir)
	a.mu.Lock()
	changed := mode != a.cilium
	a.cilium = mode
	a.mu.Unlock()
	a.metrics.setCilium(mode)
	if !changed {
		return
	}
	const advice = "use a CiliumClusterwideNetworkPolicy denying the metadata endpoints (imdsguard generate), or set bpf.hostLegacyRouting=true; " +
		"hostNetwork pods are still blocked by the output rules"
	switch mode {
	case CiliumBPFHostRouting:
		a.log.Error("Cilium uses eBPF host routing: pod traffic bypasses netfilter and this firewall's forward rules; "+advice, "cilium_state_dir", a.opts.CiliumStateDir)
	case CiliumUnknownRouting:
		a.log.Error("Cilium detected (cilium_host), but its datapath configuration is not readable here: with eBPF host routing, pod traffic bypasses netfilter and this firewall's forward rules; "+
			advice+"; mount the host's Cilium state directory to let the agent tell", "cilium_state_dir", a.opts.CiliumStateDir)
	case CiliumLegacyRouting:
		a.log.Info("Cilium uses legacy host routing: pod traffic passes netfilter's forward hook, and the forward rules apply", "cilium_state_dir", a.opts.CiliumStateDir)
	case NoCilium:
		a.log.Info("Cilium is no longer detected")
	}
}

// watch runs the backend's change monitor, restarting it when it exits.
func (a *Agent) watch(ctx context.Context, w Watcher, changed chan<- struct{}) {
	for ctx.Err() == nil {
		err := w.Watch(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("firewall monitor stopped; restarting", "err", err)
		// A missed event is caught by this check and, at worst, by the periodic resync.
		select {
		case changed <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// watchPods keeps the pod watch running, resuming it when it ends and backing off while it
// fails.
func (a *Agent) watchPods(ctx context.Context, w PodWatcher, changed chan<- struct{}) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := w.WatchPods(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		delay := time.Duration(0)
		if err != nil {
			a.log.Warn("pod watch failed; the firewall keeps the last known pods", "err", err, "retry_in", backoff)
			delay, backoff = backoff, min(backoff*2, 30*time.Second)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// awaitPods waits, up to PodsWait, for the first pod list when a table is already in place: the
// table holds the exemptions the previous agent knew, and replacing it before the pods are known
// would take them away. Without a table, rules come first.
func (a *Agent) awaitPods(ctx context.Context, w PodWatcher) {
	st, err := a.opts.Backend.Read(ctx)
	if err != nil || !st.Present {
		return
	}
	deadline := time.Now().Add(a.opts.PodsWait)
	for !w.PodsSynced() {
		if time.Now().After(deadline) {
			a.log.Warn("no pod list yet; applying the firewall without API-selected exemptions", "waited", a.opts.PodsWait)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Sync makes the kernel hold the desired ruleset: it reads the table, replaces it when it
// differs from the last one applied (drift, counted as a repair) or when the desired ruleset
// changed, and refreshes metrics.
func (a *Agent) Sync(ctx context.Context) error {
	start := time.Now()
	err := a.sync(ctx)
	a.metrics.observeSync(err, time.Since(start))
	return err
}

func (a *Agent) sync(ctx context.Context) error {
	cfg, err := a.desired(ctx)
	if err != nil {
		return err
	}
	rs, err := firewall.Build(cfg)
	if err != nil {
		return err
	}
	script := rs.Script()
	b := a.opts.Backend
	start := time.Now()
	before, err := b.Read(ctx)
	if err != nil {
		return fmt.Errorf("read firewall: %w", err)
	}
	read := time.Since(start)
	a.mu.Lock()
	applied, fingerprint := a.applied, a.fingerprint
	a.mu.Unlock()

	a.observeSources(before)
	if before.Present && script == applied && before.Fingerprint == fingerprint {
		a.metrics.setKernel(rs, before)
		return a.afterSync(ctx, cfg, false)
	}
	drift := applied != "" && script == applied
	if err := b.Replace(ctx, cfg, rs); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	a.metrics.carry(before) // the replacement reset the kernel's counters
	applyDone := time.Since(start)
	after, err := b.Read(ctx)
	if err != nil {
		return fmt.Errorf("read firewall after apply: %w", err)
	}
	// The fingerprint taken now is what later reads are compared with, so it must be of our
	// table and nobody else's: nothing at all may have been committed between the read before
	// the replacement and this one but the replacement itself (nftables counts commits).
	// Otherwise a change slipped in right after ours would be taken for ours and never repaired.
	if !after.Present || !b.Matches(after, rs) || (after.Generation != 0 && after.Generation != before.Generation+1) {
		return errors.New("the firewall changed while it was applied; retrying")
	}
	a.mu.Lock()
	first := !a.replaced
	a.applied, a.fingerprint, a.replaced = script, after.Fingerprint, true
	a.generation++
	a.mu.Unlock()
	if first || drift {
		a.cutConnections(cfg)
	}
	a.metrics.setKernel(rs, after)
	if drift {
		a.metrics.repairs.Add(1)
		a.log.Warn("firewall was changed by someone else; restored", "table_present", before.Present, "read", read, "restored_after", applyDone)
	} else {
		a.log.Info("firewall applied", "mode", cfg.Mode, "dropped", len(cfg.Dropped()), "redirected", len(cfg.Redirected()), "pods_cgroup", cfg.PodsCgroup, "exempt_pod_ips", len(cfg.ExemptPodIPs), "allowed_hostnetwork_pods", len(cfg.AllowedHostNetworkPods))
	}
	return a.afterSync(ctx, cfg, true)
}

// cutConnections ends the connections to the metadata endpoints that were established under
// an earlier ruleset: after the agent's first replacement (the table before it may have been
// another mode's, a previous agent's or a boot script's) and after a repair (while the table
// was changed, pods may have connected directly). A failure is logged, not fatal: the drop
// rules still stop an escaped connection's packets, in every mode but observe.
func (a *Agent) cutConnections(cfg firewall.Config) {
	c, ok := a.opts.Backend.(ConnectionCutter)
	if !ok {
		return
	}
	n, err := c.CutConnections(cfg)
	if err != nil {
		a.log.Warn("cannot cut connections established to the metadata endpoints before the ruleset changed", "err", err, "cut", n)
		return
	}
	if n > 0 {
		a.log.Info("cut connections established to the metadata endpoints before the ruleset changed", "connections", n)
	}
}

// afterSync marks the agent ready, records what the state publishes and asks for its
// publication (and, when the ruleset was replaced or on the first sync, for a measurement),
// and, once, removes the startup taint.
func (a *Agent) afterSync(ctx context.Context, cfg firewall.Config, replaced bool) error {
	a.mu.Lock()
	first := !a.ready
	a.ready = true
	tainted := a.tainted
	a.synced = time.Now().UTC()
	a.dropped, a.filtered = droppedDestinations(cfg), filteredDestinations(cfg)
	a.covered = cfg.PodsCgroup != ""
	a.mu.Unlock()
	if replaced || first {
		notify(a.measureNow)
	}
	notify(a.publishNow)
	a.metrics.ready.Store(1)
	if first {
		a.log.Info("agent ready")
		if a.opts.ReleaseStartupMemory {
			before, after := releaseStartupMemory()
			a.log.Debug("released start-up memory", "rss_before_kb", before, "rss_after_kb", after)
		}
	}
	if !tainted {
		return nil
	}
	removed, err := a.opts.Nodes.RemoveTaint(ctx, a.opts.NodeName, a.opts.Taint)
	if err != nil {
		return fmt.Errorf("remove startup taint %s from node %s: %w", a.opts.Taint, a.opts.NodeName, err)
	}
	a.mu.Lock()
	a.tainted = false
	a.mu.Unlock()
	if removed {
		a.log.Info("startup taint removed: pods may now be scheduled", "node", a.opts.NodeName, "taint", a.opts.Taint.String())
	}
	return nil
}

// desired gathers the firewall configuration: the pods cgroup as it is now, static and
// API-selected exemptions.
func (a *Agent) desired(ctx context.Context) (firewall.Config, error) {
	cfg := firewall.Config{Endpoints: a.opts.Endpoints, Mode: a.opts.Mode, ExemptPodIPs: slices.Clone(a.opts.ExemptPodIPs)}
	if cfg.Mode == firewall.Filter {
		cfg.ProxyIPv4, cfg.ProxyIPv6 = a.opts.proxyAddresses()
	}
	var pods []Pod
	if a.opts.Pods != nil {
		var err error
		pods, err = a.opts.Pods.ListPods(ctx)
		a.mu.Lock()
		if err != nil {
			// Repairs must not wait for the API: go on with the pods known last (none at
			// first, which exempts nobody: stricter, never looser).
			pods = a.lastPods
			if !errors.Is(err, ErrPodsNotSynced) {
				a.log.Warn("cannot list pods on this node; using the last known list", "err", err, "pods", len(pods))
			}
		}
		a.lastPods = pods
		a.mu.Unlock()
		byIP := map[netip.Addr]Pod{}
		for _, p := range pods {
			if p.HostNetwork {
				continue
			}
			for _, ip := range p.IPs {
				byIP[ip] = p
			}
			if matchesAny(p, a.opts.Exempt) {
				cfg.ExemptPodIPs = append(cfg.ExemptPodIPs, p.IPs...)
			}
		}
		a.mu.Lock()
		a.pods = byIP
		a.mu.Unlock()
	}

	switch a.opts.PodsCgroup {
	case "-":
	case "":
		cfg.PodsCgroup = DetectPodsCgroup(a.opts.CgroupRoot)
	default:
		if cgroupExists(a.opts.CgroupRoot, a.opts.PodsCgroup) {
			cfg.PodsCgroup = a.opts.PodsCgroup
		}
	}
	a.mu.Lock()
	warn := cfg.PodsCgroup == "" && a.opts.PodsCgroup != "-" && !a.cgroupGone
	a.cgroupGone = cfg.PodsCgroup == "" && a.opts.PodsCgroup != "-"
	a.mu.Unlock()
	if warn {
		a.log.Warn("no kubelet pods cgroup yet: hostNetwork pods are not blocked until it appears", "configured", a.opts.PodsCgroup, "cgroup_root", a.opts.CgroupRoot)
	}
	a.metrics.hostNetworkProtected.Store(boolInt(cfg.PodsCgroup != ""))
	if cfg.PodsCgroup == "" {
		return cfg, nil
	}
	uids := slices.Clone(a.opts.AllowedHostNetworkPodUIDs)
	for _, p := range pods {
		if p.HostNetwork && matchesAny(p, a.opts.AllowHostNetwork) {
			uids = append(uids, p.UID)
		}
	}
	if a.opts.SelfPodUID != "" && !slices.Contains(uids, a.opts.SelfPodUID) {
		uids = append(uids, a.opts.SelfPodUID)
	}
	for _, uid := range uids {
		path, ok := FindPodCgroup(a.opts.CgroupRoot, cfg.PodsCgroup, uid)
		if uid == a.opts.SelfPodUID {
			a.warnSelfMissing(!ok, cfg.PodsCgroup)
		}
		if !ok {
			continue // not started yet, or gone: nothing to allow
		}
		cfg.AllowedHostNetworkPods = append(cfg.AllowedHostNetworkPods, firewall.PodCgroup{UID: uid, Path: path})
	}
	return cfg, nil
}

// warnSelfMissing warns once when the agent's own pod cgroup is not found below the pods
// cgroup: the output rules then match the agent's own sockets, and its measurement of the
// instance is dropped (enforce) or counted (observe) like a hostNetwork pod's request.
func (a *Agent) warnSelfMissing(missing bool, podsCgroup string) {
	a.mu.Lock()
	warn := missing && !a.selfMissing
	a.selfMissing = missing
	a.mu.Unlock()
	if warn {
		a.log.Warn("the agent's own pod cgroup is not found: its own requests to the metadata service are treated as a hostNetwork pod's", "pod_uid", a.opts.SelfPodUID, "pods_cgroup", podsCgroup, "cgroup_root", a.opts.CgroupRoot)
	}
}

// observeSources logs every new source address once, with its pod when known.
func (a *Agent) observeSources(st *firewall.State) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr := range st.Seen {
		if a.logged[addr] {
			continue
		}
		a.logged[addr] = true
		p, known := a.pods[addr]
		attrs := []any{"source", addr.String(), "mode", a.opts.Mode}
		if known {
			attrs = append(attrs, "namespace", p.Namespace, "pod", p.Name)
		}
		if a.opts.Mode == firewall.Observe {
			a.log.Warn("pod reached for a metadata endpoint (observe mode: not dropped)", attrs...)
		} else {
			a.log.Info("pod tried a metadata endpoint and was dropped", attrs...)
		}
	}
	a.metrics.setSources(st.Seen, a.pods)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
