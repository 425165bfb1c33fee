package firewall

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// IPTables applies the fallback ruleset with iptables-restore and ip6tables-restore, for nodes
// whose kernel lacks nf_tables. Every Replace deletes existing jumps and inserts them again at
// the top, so the jumps are back in first place after another component inserted rules above
// them.
type IPTables struct {
	// Prefix runs before each iptables command (e.g. nsenter); nil runs them directly.
	Prefix []string
}

func (ipt *IPTables) run(ctx context.Context, stdin string, args ...string) (string, error) {
	argv := append(append([]string{}, ipt.Prefix...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // fixed tool names
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func tools(f Family) (iptables, restore string) {
	if f == IPv6 {
		return "ip6tables", "ip6tables-restore"
	}
	return "iptables", "iptables-restore"
}

// listTable returns `iptables -S` of a table, by chain: each chain's lines in order ("-P" or
// "-N" first, then its "-A" rules). A chain that does not exist has no entry.
func (ipt *IPTables) listTable(ctx context.Context, f Family, table string) (map[string][]string, error) {
	tool, _ := tools(f)
	out, err := ipt.run(ctx, "", tool, "-w", "-t", table, "-S")
	if err != nil {
		return nil, err
	}
	chains := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		chains[fields[1]] = append(chains[fields[1]], line)
	}
	return chains, nil
}

// listChain returns the lines of one chain, nil when it does not exist.
func (ipt *IPTables) listChain(ctx context.Context, f Family, table, chain string) ([]string, error) {
	chains, err := ipt.listTable(ctx, f, table)
	if err != nil {
		return nil, err
	}
	return chains[chain], nil
}

// Replace loads cfg for both families.
func (ipt *IPTables) Replace(ctx context.Context, cfg Config) error {
	for _, f := range []Family{IPv4, IPv6} {
		stale := map[Jump]int{}
		for _, j := range Jumps {
			lines, err := ipt.listChain(ctx, f, j.Table, j.Chain)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if l == "-A "+j.Rule() {
					stale[j]++
				}
			}
		}
		text, err := iptablesRestore(cfg, f, stale)
		if err != nil {
			return err
		}
		_, restore := tools(f)
		if _, err := ipt.run(ctx, text, restore, "-w", "--noflush"); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// Read returns the fallback's state: present when every jump is first in its chain; the
// fingerprint covers our chains' rules and the jumps' positions.
func (ipt *IPTables) Read(ctx context.Context) (*State, error) {
	st := &State{Present: true, Rules: map[string]int{}}
	var fp strings.Builder
	for _, f := range []Family{IPv4, IPv6} {
		for _, j := range Jumps {
			builtin, err := ipt.listChain(ctx, f, j.Table, j.Chain)
			if err != nil {
				return nil, err
			}
			// Line 0 is the policy (-P); the jump must come right after it.
			if len(builtin) < 2 || builtin[1] != "-A "+j.Rule() {
				st.Present = false
			}
			own, err := ipt.listChain(ctx, f, j.Table, j.Target)
			if err != nil {
				return nil, err
			}
			if own == nil {
				st.Present = false
			}
			st.Rules[string(f)+"/"+j.Target] = max(len(own)-1, 0)
			fmt.Fprintf(&fp, "%s %s\n%s\n", f, j.Target, strings.Join(own, "\n"))
		}
	}
	st.Fingerprint = fp.String()
	return st, nil
}

// Delete removes the jumps and chains of both families; missing ones are skipped.
func (ipt *IPTables) Delete(ctx context.Context) error {
	for _, f := range []Family{IPv4, IPv6} {
		tool, _ := tools(f)
		for _, j := range Jumps {
			lines, err := ipt.listChain(ctx, f, j.Table, j.Chain)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if l == "-A "+j.Rule() {
					if _, err := ipt.run(ctx, "", tool, "-w", "-t", j.Table, "-D", j.Chain, "-j", j.Target); err != nil {
						return err
					}
				}
			}
			own, err := ipt.listChain(ctx, f, j.Table, j.Target)
			if err != nil {
				return err
			}
			if own != nil {
				if _, err := ipt.run(ctx, "", tool, "-w", "-t", j.Table, "-F", j.Target); err != nil {
					return err
				}
				if _, err := ipt.run(ctx, "", tool, "-w", "-t", j.Table, "-X", j.Target); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
