package proxy

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/filter"
)

// Stats counts the proxy's requests by cloud, path class and decision, and the time allowed
// requests took, for the agent's metrics endpoint. Path classes are few by construction
// (filter.Decision.Class), so the series stay bounded.
type Stats struct {
	mu       sync.Mutex
	requests map[statKey]int64
	// latency buckets of allowed requests, in seconds (upper bounds), and their counts
	buckets []int64
	sum     time.Duration
	n       int64
}

type statKey struct {
	cloud    filter.Cloud
	class    string
	decision string
}

// latencyBounds are the histogram's upper bounds, in seconds.
var latencyBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1}

func (s *Stats) count(cloud filter.Cloud, class, decision string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requests == nil {
		s.requests = map[statKey]int64{}
	}
	s.requests[statKey{cloud, class, decision}]++
}

func (s *Stats) observe(d time.Duration) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = make([]int64, len(latencyBounds))
	}
	for i, b := range latencyBounds {
		if d.Seconds() <= b {
			s.buckets[i]++
		}
	}
	s.sum += d
	s.n++
}

// Requests returns the count for a cloud, class and decision ("allowed", "denied", "error").
func (s *Stats) Requests(cloud filter.Cloud, class, decision string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[statKey{cloud, class, decision}]
}

// WriteTo writes the counters in the Prometheus text exposition format.
func (s *Stats) WriteTo(w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP imdsguard_filter_requests_total Metadata requests the filter proxy decided, by cloud, path class and decision.\n")
	b.WriteString("# TYPE imdsguard_filter_requests_total counter\n")
	keys := make([]statKey, 0, len(s.requests))
	for k := range s.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b statKey) int {
		return strings.Compare(string(a.cloud)+a.class+a.decision, string(b.cloud)+b.class+b.decision)
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "imdsguard_filter_requests_total{cloud=%q,class=%q,decision=%q} %d\n", k.cloud, k.class, k.decision, s.requests[k])
	}
	b.WriteString("# HELP imdsguard_filter_request_duration_seconds Time to serve an allowed metadata request through the filter proxy.\n")
	b.WriteString("# TYPE imdsguard_filter_request_duration_seconds histogram\n")
	for i, bound := range latencyBounds {
		var c int64
		if s.buckets != nil {
			c = s.buckets[i]
		}
		fmt.Fprintf(&b, "imdsguard_filter_request_duration_seconds_bucket{le=\"%g\"} %d\n", bound, c)
	}
	fmt.Fprintf(&b, "imdsguard_filter_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", s.n)
	fmt.Fprintf(&b, "imdsguard_filter_request_duration_seconds_sum %g\nimdsguard_filter_request_duration_seconds_count %d\n", s.sum.Seconds(), s.n)
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
