package kubetest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Shared is one control plane for a whole test binary, started by the first test that asks for
// it, so tests that need none do not pay for it. Stop it from TestMain after m.Run.
type Shared struct {
	opts Options
	once sync.Once
	cp   *ControlPlane
	err  error
}

// NewShared returns a control plane that starts on first use.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Get returns the running control plane, starting it on first use; a start-up failure fails
// the test.
func (s *Shared) Get(t testing.TB) *ControlPlane {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.cp, s.err = Start(ctx, s.opts)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.cp
}

// Stop stops the control plane if it was started.
func (s *Shared) Stop() {
	if s.cp != nil {
		s.cp.Stop()
	}
}
