package sandbox

import (
	"context"
	"sync"
	"testing"
)

// Check is one expectation about reach: a probe and whether it must succeed.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
	// Reach says the probe must succeed; otherwise it must fail (be blocked).
	Reach bool
}

// Reaches builds a check that the probe succeeds.
func Reaches(name string, probe func(context.Context) error) Check {
	return Check{Name: name, Probe: probe, Reach: true}
}

// Blocked builds a check that the probe fails.
func Blocked(name string, probe func(context.Context) error) Check {
	return Check{Name: name, Probe: probe}
}

// FetchCheck is a check that ns fetches req (or is blocked from it).
func FetchCheck(who string, fetch func(context.Context, Request) error, req Request, reach bool) Check {
	return Check{Name: who + " " + req.Method + " " + req.URL, Probe: func(ctx context.Context) error { return fetch(ctx, req) }, Reach: reach}
}

// Verify runs the checks concurrently (a blocked probe waits for its timeout) and reports
// every one whose outcome differs from the expectation.
func Verify(t testing.TB, checks ...Check) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(checks))
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Probe(context.Background())
		}()
	}
	wg.Wait()
	for i, c := range checks {
		switch {
		case c.Reach && errs[i] != nil:
			t.Errorf("%s: want reachable, got %v", c.Name, errs[i])
		case !c.Reach && errs[i] == nil:
			t.Errorf("%s: want blocked, but it was answered", c.Name)
		}
	}
}
