package firewall

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// NFTables applies rulesets with the nft command-line tool, in the network namespace it runs
// in, and reads the table back. It talks to the kernel the way knftables does (one `nft -f -`
// per transaction); knftables renders the transaction.
type NFTables struct {
	// Command is the nft command and any prefix (e.g. nsenter); nil means "nft".
	Command []string
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
	_, err := n.run(ctx, r.Script(), "-f", "-")
	return err
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

// Read lists the table and returns its state.
func (n *NFTables) Read(ctx context.Context) (*State, error) {
	out, err := n.run(ctx, "", "--json", "list", "table", "inet", TableName)
	if notFound(err) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseState([]byte(out))
}

// parseState turns `nft --json list table` output into a State.
func parseState(data []byte) (*State, error) {
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse nft json: %w", err)
	}
	st := &State{Present: true, Rules: map[string]int{}, Elements: map[string]int{}, Counters: map[string]uint64{}, Seen: map[netip.Addr]uint64{}}
	var structure []map[string]any
	for _, item := range doc.Nftables {
		for kind, obj := range item {
			switch kind {
			case "metainfo":
				continue
			case "chain":
				name, _ := obj["name"].(string)
				st.Rules[name] += 0
			case "rule":
				chain, _ := obj["chain"].(string)
				st.Rules[chain]++
			case "counter":
				name, _ := obj["name"].(string)
				packets, _ := obj["packets"].(float64)
				st.Counters[name] = uint64(packets)
			case "set":
				name, _ := obj["name"].(string)
				elems, _ := obj["elem"].([]any)
				if strings.HasPrefix(name, "seen_") {
					for _, e := range elems {
						addr, packets := seenElement(e)
						if addr.IsValid() {
							st.Seen[addr] += packets
						}
					}
					obj = withoutKey(obj, "elem")
				} else {
					st.Elements[name] = len(elems)
				}
			}
			structure = append(structure, map[string]any{kind: stripState(obj)})
		}
	}
	fp, err := json.Marshal(structure)
	if err != nil {
		return nil, err
	}
	st.Fingerprint = string(fp)
	return st, nil
}

// seenElement reads {"elem": {"val": "10.0.0.1", "counter": {"packets": 3, ...}}} or a bare
// address.
func seenElement(e any) (netip.Addr, uint64) {
	switch v := e.(type) {
	case string:
		a, _ := netip.ParseAddr(v)
		return a, 0
	case map[string]any:
		inner, _ := v["elem"].(map[string]any)
		val, _ := inner["val"].(string)
		a, _ := netip.ParseAddr(val)
		var packets float64
		if c, ok := inner["counter"].(map[string]any); ok {
			packets, _ = c["packets"].(float64)
		}
		return a, uint64(packets)
	}
	return netip.Addr{}, 0
}

func withoutKey(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// stripState removes, recursively, what changes without anyone editing the table.
func stripState(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			switch k {
			case "handle", "packets", "bytes", "expires":
				continue
			}
			out[k] = stripState(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = stripState(val)
		}
		return out
	}
	return v
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

// Monitor runs `nft monitor` and sends on changed after every kernel transaction that touched
// table inet imdsguard, whoever made it (our own replacements included: the receiver checks
// the table against what it wants). It returns when ctx ends or nft exits.
func (n *NFTables) Monitor(ctx context.Context, ready chan<- struct{}, changed chan<- struct{}) error {
	cmd := n.command(ctx, "monitor")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nft monitor: %w", err)
	}
	if ready != nil {
		close(ready)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	touched := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, " inet "+TableName+" ") || strings.HasSuffix(line, " inet "+TableName) || strings.HasPrefix(line, "flush ruleset") {
			touched = true
		}
		if strings.HasPrefix(line, "# new generation") && touched {
			touched = false
			select {
			case changed <- struct{}{}:
			default: // a check is already pending
			}
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("nft monitor exited: %w: %s", err, strings.TrimSpace(stderr.String()))
}
