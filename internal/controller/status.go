package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Entry is one namespace's state and why.
type Entry struct {
	State  State
	Reason string
}

// Status is the controller's view of every namespace, kept by the reconcilers and written to
// the status ConfigMap and the metrics.
type Status struct {
	mu      sync.Mutex
	mode    Mode
	entries map[string]Entry
	version uint64
}

// NewStatus returns an empty status for a mode.
func NewStatus(mode Mode) *Status {
	return &Status{mode: mode, entries: map[string]Entry{}}
}

// Set records a namespace's entry and returns the previous one and whether it had one.
func (s *Status) Set(ns string, e Entry) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.entries[ns]
	if !ok || prev != e {
		s.entries[ns] = e
		s.version++
		s.publish()
	}
	return prev, ok
}

// Forget drops a namespace that no longer exists.
func (s *Status) Forget(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[ns]; ok {
		delete(s.entries, ns)
		s.version++
		s.publish()
	}
}

// Replace sets every entry at once (the cluster-wide modes decide all namespaces together).
func (s *Status) Replace(entries map[string]Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !maps.Equal(s.entries, entries) {
		s.entries = maps.Clone(entries)
		s.version++
		s.publish()
	}
}

// Get returns a namespace's entry.
func (s *Status) Get(ns string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[ns]
	return e, ok
}

// Counts returns how many namespaces are in each state.
func (s *Status) Counts() map[State]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts()
}

func (s *Status) counts() map[State]int {
	out := map[State]int{Protected: 0, Exempt: 0, Refused: 0}
	for _, e := range s.entries {
		out[e.State]++
	}
	return out
}

// publish updates the namespace gauge; called with mu held.
func (s *Status) publish() {
	for state, n := range s.counts() {
		metrics.namespaces.WithLabelValues(string(state)).Set(float64(n))
	}
}

// ConfigMapData renders the summary the status ConfigMap holds: counts and mode in "summary",
// one namespace per line in "protected" and "exempt", "namespace: reason" lines in "refused".
func (s *Status) ConfigMapData() (map[string]string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lists := map[State][]string{}
	for _, ns := range slices.Sorted(maps.Keys(s.entries)) {
		e := s.entries[ns]
		line := ns
		if e.State == Refused {
			line = ns + ": " + e.Reason
		}
		lists[e.State] = append(lists[e.State], line)
	}
	c := s.counts()
	data := map[string]string{
		"summary": fmt.Sprintf("mode: %s\nprotected: %d\nexempt: %d\nrefused: %d\n",
			s.mode, c[Protected], c[Exempt], c[Refused]),
	}
	for _, state := range []State{Protected, Exempt, Refused} {
		data[string(state)] = joinLines(lists[state])
	}
	return data, s.version
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// statusWriter writes the status ConfigMap whenever the status changed, at most once per
// interval. It runs on the leader only.
type statusWriter struct {
	client    client.Client
	status    *Status
	namespace string
	interval  time.Duration
	log       logr.Logger
}

// NeedLeaderElection keeps standby replicas from writing.
func (w *statusWriter) NeedLeaderElection() bool { return true }

// Start writes until ctx ends.
func (w *statusWriter) Start(ctx context.Context) error {
	var written uint64
	first := true
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		data, version := w.status.ConfigMapData()
		if !first && version == written {
			continue
		}
		if err := w.write(ctx, data); err != nil {
			w.log.Error(err, "write the status ConfigMap", "namespace", w.namespace, "name", StatusConfigMapName)
			metrics.writeErrors.WithLabelValues("ConfigMap").Inc()
			continue
		}
		first, written = false, version
	}
}

func (w *statusWriter) write(ctx context.Context, data map[string]string) error {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: StatusConfigMapName, Namespace: w.namespace, Labels: ownershipLabels()},
		Data:       data,
	}
	u, err := toUnstructured(cm)
	if err != nil {
		return err
	}
	return apply(ctx, w.client, u)
}

// metrics are the controller's own Prometheus metrics, on controller-runtime's registry
// (served next to controller_runtime_reconcile_total, _errors_total and _time_seconds).
var metrics = struct {
	namespaces  *prometheus.GaugeVec
	writes      *prometheus.CounterVec
	writeErrors *prometheus.CounterVec
	mode        *prometheus.GaugeVec
}{
	namespaces: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "imdsguard_controller_namespaces", Help: "Namespaces by state: protected, exempt, refused.",
	}, []string{"state"}),
	writes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imdsguard_controller_writes_total", Help: "Objects applied or deleted, by kind and action.",
	}, []string{"kind", "action"}),
	writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imdsguard_controller_write_errors_total", Help: "Failed writes, by kind.",
	}, []string{"kind"}),
	mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "imdsguard_controller_mode", Help: "1 for the mode in use.",
	}, []string{"mode"}),
}

func init() {
	ctrlmetrics.Registry.MustRegister(metrics.namespaces, metrics.writes, metrics.writeErrors, metrics.mode)
}

// ownershipLabels mark the controller's objects.
func ownershipLabels() map[string]string {
	return map[string]string{generate.ManagedByLabel: generate.ManagedBy}
}

// apply server-side applies an object with the controller's field manager, taking over fields
// others changed (that is the repair).
func apply(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s: %w", objectName(u), err)
	}
	return nil
}
