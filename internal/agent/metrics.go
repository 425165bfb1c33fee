package agent

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imdsguard/imdsguard/internal/firewall"
)

// metrics are the agent's Prometheus metrics, written in the text exposition format by hand:
// a dozen series do not need a client library (and its dependencies) in a node agent.
type metrics struct {
	backend string
	mode    firewall.Mode

	ready                atomic.Int64
	repairs              atomic.Int64
	statePublishErrors   atomic.Int64
	hostNetworkProtected atomic.Int64
	ciliumDetected       atomic.Int64
	ciliumRouting        atomic.Value // CiliumRouting

	mu           sync.Mutex
	syncsOK      int64
	syncsFailed  int64
	lastSync     time.Time
	lastDuration time.Duration
	// per counter name: packets carried over from replaced tables, and the kernel's value now
	base, current map[string]uint64
	labels        map[string]counterLabels
	// per source address
	sourceBase, sourceCurrent map[netip.Addr]uint64
	sourcePods                map[netip.Addr]Pod
}

type counterLabels struct {
	endpoint, destination, hook string
}

func newMetrics(backend string, mode firewall.Mode) *metrics {
	return &metrics{
		backend: backend, mode: mode,
		base: map[string]uint64{}, current: map[string]uint64{}, labels: map[string]counterLabels{},
		sourceBase: map[netip.Addr]uint64{}, sourceCurrent: map[netip.Addr]uint64{}, sourcePods: map[netip.Addr]Pod{},
	}
}

func (m *metrics) setCilium(mode CiliumRouting) {
	m.ciliumRouting.Store(mode)
	m.ciliumDetected.Store(boolInt(mode != NoCilium))
}

func (m *metrics) observeSync(err error, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.syncsFailed++
		return
	}
	m.syncsOK++
	m.lastSync = time.Now()
	m.lastDuration = d
}

// carry folds the kernel's counters into the base before a replacement resets them.
func (m *metrics) carry(st *firewall.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, v := range st.Counters {
		if _, known := m.labels[name]; known {
			m.base[name] += v
		}
	}
	for addr, v := range st.Seen {
		m.sourceBase[addr] += v
	}
	m.current = map[string]uint64{}
	m.sourceCurrent = map[netip.Addr]uint64{}
}

// setKernel records the counters of the table that holds rs.
func (m *metrics) setKernel(rs *firewall.Ruleset, st *firewall.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, match := range rs.Matches {
		m.labels[match.Counter] = counterLabels{endpoint: match.Endpoint.Name, destination: match.Endpoint.Destination(), hook: string(match.Hook)}
	}
	m.current = map[string]uint64{}
	for name, v := range st.Counters {
		m.current[name] = v
	}
	m.sourceCurrent = map[netip.Addr]uint64{}
	for addr, v := range st.Seen {
		m.sourceCurrent[addr] = v
	}
}

func (m *metrics) setSources(seen map[netip.Addr]uint64, pods map[netip.Addr]Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for addr := range seen {
		if p, ok := pods[addr]; ok {
			m.sourcePods[addr] = p
		}
	}
}

// write renders the metrics.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("imdsguard_agent_ready", "gauge", "1 once the first sync put the firewall in place.")
	fmt.Fprintf(&b, "imdsguard_agent_ready %d\n", m.ready.Load())
	family("imdsguard_agent_info", "gauge", "The agent's backend and mode.")
	fmt.Fprintf(&b, "imdsguard_agent_info{backend=%q,mode=%q} 1\n", m.backend, m.mode)
	family("imdsguard_hostnetwork_protection", "gauge", "1 when hostNetwork pods are blocked by cgroup (the kubelet's pods cgroup exists).")
	fmt.Fprintf(&b, "imdsguard_hostnetwork_protection %d\n", m.hostNetworkProtected.Load())
	family("imdsguard_cilium_detected", "gauge", "1 when a Cilium datapath is present: with eBPF host routing pod traffic bypasses the forward rules.")
	fmt.Fprintf(&b, "imdsguard_cilium_detected %d\n", m.ciliumDetected.Load())
	family("imdsguard_cilium_host_routing", "gauge", "Cilium's host routing mode when Cilium is present: bpf (pod traffic bypasses the forward rules), legacy (it does not) or unknown (assume bpf).")
	if mode, _ := m.ciliumRouting.Load().(CiliumRouting); mode != NoCilium {
		fmt.Fprintf(&b, "imdsguard_cilium_host_routing{mode=%q} 1\n", mode)
	}
	family("imdsguard_syncs_total", "counter", "Syncs by result.")
	fmt.Fprintf(&b, "imdsguard_syncs_total{result=\"ok\"} %d\nimdsguard_syncs_total{result=\"error\"} %d\n", m.syncsOK, m.syncsFailed)
	family("imdsguard_repairs_total", "counter", "Times the firewall was found changed or removed by someone else and restored.")
	fmt.Fprintf(&b, "imdsguard_repairs_total %d\n", m.repairs.Load())
	family("imdsguard_state_publish_errors_total", "counter", "Failed attempts to publish the agent state on the node (retried; the firewall is unaffected).")
	fmt.Fprintf(&b, "imdsguard_state_publish_errors_total %d\n", m.statePublishErrors.Load())
	family("imdsguard_last_sync_timestamp_seconds", "gauge", "Unix time of the last successful sync.")
	fmt.Fprintf(&b, "imdsguard_last_sync_timestamp_seconds %d\n", m.lastSync.Unix())
	family("imdsguard_last_sync_duration_seconds", "gauge", "Duration of the last successful sync.")
	fmt.Fprintf(&b, "imdsguard_last_sync_duration_seconds %.6f\n", m.lastDuration.Seconds())

	name := "imdsguard_dropped_packets_total"
	help := "Packets to a credential endpoint dropped, by endpoint and hook (forward: pods; output: hostNetwork pods; postrouting: branch-ENI pods)."
	if m.mode == firewall.Observe {
		name = "imdsguard_would_drop_packets_total"
		help = "Packets to a credential endpoint that enforce mode would drop (observe mode lets them pass), by endpoint and hook."
	}
	family(name, "counter", help)
	counters := make([]string, 0, len(m.labels))
	for c := range m.labels {
		counters = append(counters, c)
	}
	sort.Strings(counters)
	for _, c := range counters {
		l := m.labels[c]
		fmt.Fprintf(&b, "%s{endpoint=%q,destination=%q,hook=%q} %d\n", name, l.endpoint, l.destination, l.hook, m.base[c]+m.current[c])
	}

	family("imdsguard_source_packets_total", "counter", "Packets to credential endpoints by source pod address (and pod, when the Kubernetes API is used).")
	sources := map[netip.Addr]bool{}
	for a := range m.sourceBase {
		sources[a] = true
	}
	for a := range m.sourceCurrent {
		sources[a] = true
	}
	addrs := make([]netip.Addr, 0, len(sources))
	for a := range sources {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		p := m.sourcePods[a]
		fmt.Fprintf(&b, "imdsguard_source_packets_total{source=%q,namespace=%q,pod=%q} %d\n", a.String(), p.Namespace, p.Name, m.sourceBase[a]+m.sourceCurrent[a])
	}
	_, _ = io.WriteString(w, b.String())
}

// Handler serves /metrics, /healthz (the process is alive) and /readyz (the first sync put
// the firewall in place).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		a.metrics.write(w)
		for _, m := range a.opts.Metrics {
			_, _ = m.WriteTo(w)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "firewall not applied yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}
