package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// NFTables applies rulesets with the nft command-line tool, in the network namespace it runs
// in, and reads the table back over netlink. It talks to the kernel the way knftables does (one
// `nft -f -` per transaction); knftables renders the transaction.
type NFTables struct {
	// Command is the nft command and any prefix; nil means "nft". It must run nft in the
	// caller's network namespace: Read and Monitor work there, over netlink.
	Command []string
	// Standby keeps one `nft -f -` started ahead and waiting for its input, so that a
	// Replace does not wait for a process to start (exec, dynamic linking and libnftables'
	// set-up cost 10 ms of CPU or more on a small VM; a repair's whole budget is 100 ms). The
	// waiting process is idle; Close ends it.
	Standby bool

	mu      sync.Mutex
	standby *pendingLoad
}

// pendingLoad is a started `nft -f -` waiting for its script on standard input.
type pendingLoad struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr bytes.Buffer
}

// startLoad starts `nft -f -`. It is not tied to a context: it may wait for a later Replace.
func (n *NFTables) startLoad() (*pendingLoad, error) {
	p := &pendingLoad{cmd: n.command(context.Background(), "-f", "-")}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, &NFTError{Args: []string{"-f", "-"}, Err: err}
	}
	return p, nil
}

// finish hands script to the process and waits for it; ctx ending kills it.
func (p *pendingLoad) finish(ctx context.Context, script string) error {
	_, werr := io.WriteString(p.stdin, script)
	cerr := p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		err = errors.Join(ctx.Err(), <-done)
	}
	if err == nil && (werr != nil || cerr != nil) {
		err = errors.Join(werr, cerr)
	}
	if err != nil {
		return &NFTError{Args: []string{"-f", "-"}, Err: err, Stderr: strings.TrimSpace(p.stderr.String())}
	}
	return nil
}

// load runs script with `nft -f -`, through the standby process when there is one, and starts
// the next standby.
func (n *NFTables) load(ctx context.Context, script string) error {
	if !n.Standby {
		_, err := n.run(ctx, script, "-f", "-")
		return err
	}
	n.mu.Lock()
	p := n.standby
	n.standby = nil
	n.mu.Unlock()
	defer n.refill()
	if p != nil {
		err := p.finish(ctx, script)
		if err == nil || p.stdout.Len() > 0 || p.stderr.Len() > 0 || ctx.Err() != nil {
			return err
		}
		// It died silently before it got its script (killed while waiting): run afresh.
	}
	p, err := n.startLoad()
	if err != nil {
		return err
	}
	return p.finish(ctx, script)
}

// refill starts a standby process unless one is waiting.
func (n *NFTables) refill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.standby != nil {
		return
	}
	if p, err := n.startLoad(); err == nil {
		n.standby = p
	}
}

// Close ends the standby process, if any. An NFTables stays usable after Close.
func (n *NFTables) Close() {
	n.mu.Lock()
	p := n.standby
	n.standby = nil
	n.mu.Unlock()
	if p != nil {
		_ = p.stdin.Close() // nft reads an empty script and exits
		_ = p.cmd.Wait()
	}
}

func (n *NFTables) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := n.Command
	if len(argv) == 0 {
		argv = []string{"nft"}
	}
	full := append(append([]string{}, argv[1:]...), args...)
	return exec.CommandContext(ctx, argv[0], full...) //nolint:gosec // the command is the operator's configuration
}

func (n *NFTables) run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := n.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), &NFTError{Args: args, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

// NFTError is a failed nft command, with its standard error.
type NFTError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *NFTError) Error() string {
	return fmt.Sprintf("nft %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *NFTError) Unwrap() error { return e.Err }

// notFound reports whether nft failed because the table does not exist.
func notFound(err error) bool {
	var nerr *NFTError
	return errors.As(err, &nerr) && strings.Contains(nerr.Stderr, "No such file or directory")
}

// Available checks that nft runs and the kernel has nf_tables.
func (n *NFTables) Available(ctx context.Context) error {
	_, err := n.run(ctx, "", "list", "tables")
	return err
}

// Replace loads r, replacing the table in one transaction.
func (n *NFTables) Replace(ctx context.Context, r *Ruleset) error {
	return n.load(ctx, r.Script())
}

// Check asks nft whether r would load, without loading it.
func (n *NFTables) Check(ctx context.Context, r *Ruleset) error {
	_, err := n.run(ctx, r.Script(), "--check", "-f", "-")
	return err
}

// Delete removes the table; a missing table is not an error.
func (n *NFTables) Delete(ctx context.Context) error {
	_, err := n.run(ctx, "", "delete", "table", "inet", TableName)
	if notFound(err) {
		return nil
	}
	return err
}

// State is what the kernel holds of the table.
type State struct {
	// Present is false when the table does not exist.
	Present bool
	// Generation is the ruleset generation the state was read at (nftables only): every
	// committed transaction, whoever makes it and whatever table it touches, increments it.
	Generation uint32
	// Fingerprint is the table's structure without anything the kernel changes on its own
	// (handles, counter values, the seen sets' elements): equal fingerprints, equal rules.
	Fingerprint string
	// Rules counts the rules of each chain; Elements the elements of each exempt set.
	Rules    map[string]int
	Elements map[string]int
	// Counters holds each named counter's packets.
	Counters map[string]uint64
	// Seen holds the packets counted per source address in the seen sets.
	Seen map[netip.Addr]uint64
}

// Read returns the table's state, read over netlink in the calling process's network
// namespace, consistently (one ruleset generation).
func (n *NFTables) Read(ctx context.Context) (*State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := dialNetlink(0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return readNetlink(c)
}

// Matches reports whether the state holds r's structure: every chain with the right number of
// rules and every exempt set with the right number of elements. It is the check that a
// fingerprint taken right after a Replace describes r and not a table someone changed in
// between.
func (st *State) Matches(r *Ruleset) bool {
	if !st.Present {
		return false
	}
	want := r.RuleCounts()
	if len(want) != len(st.Rules) {
		return false
	}
	for chain, n := range want {
		if got, ok := st.Rules[chain]; !ok || got != n {
			return false
		}
	}
	elements := map[string]int{SetExemptIPv4: 0, SetExemptIPv6: 0}
	for _, e := range r.Elements {
		elements[e.Set]++
	}
	for set, n := range elements {
		if st.Elements[set] != n {
			return false
		}
	}
	return true
}

// Monitor subscribes to nf_tables' change notifications (the multicast group `nft monitor`
// reads) in the calling process's network namespace and sends on changed after every
// transaction that touched table inet imdsguard, whoever made it (our own replacements included:
// the receiver checks the table against what it wants), and after any lost notification. It
// closes ready once subscribed and returns when ctx ends or the socket fails.
func (n *NFTables) Monitor(ctx context.Context, ready chan<- struct{}, changed chan<- struct{}) error {
	c, err := dialNetlink(1 << (unix.NFNLGRP_NFTABLES - 1))
	if err != nil {
		return err
	}
	// A burst of changes elsewhere (kube-proxy rewriting its table) must not overflow the
	// socket; when it does anyway, the receiver is told to check.
	_ = c.SetReadBuffer(4 << 20)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer func() {
		if stop() {
			_ = c.Close()
		}
	}()
	if ready != nil {
		close(ready)
	}
	notify := func() {
		select {
		case changed <- struct{}{}:
		default: // a check is already pending
		}
	}
	var events tableEvents
	for {
		msgs, err := c.Receive()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, unix.ENOBUFS) {
			events = tableEvents{}
			notify()
			continue
		}
		if err != nil {
			return fmt.Errorf("nf_tables monitor: %w", err)
		}
		for _, m := range msgs {
			if events.feed(m) {
				notify()
			}
		}
	}
}
