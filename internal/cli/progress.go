package cli

import (
	"fmt"
	"io"
	"sync"
)

// progress shows on a terminal what a live read has listed: the resource being listed on one
// line rewritten in place, and a line for each resource once it is read. It goes to standard
// error only, so it never mixes with a report on standard output.
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// update is inventory.ClusterOptions.Progress.
func (p *progress) update(resource string, listed int, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// \r and erase-line rewrite the line in place; a terminal is the only place this is written.
	if done {
		fmt.Fprintf(p.w, "\r\x1b[Klisted %d %s\n", listed, resource)
		return
	}
	fmt.Fprintf(p.w, "\r\x1b[Klisting %s: %d so far", resource, listed)
}
