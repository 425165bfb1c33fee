package agent

import (
	"context"
	"fmt"

	"github.com/imdsguard/imdsguard/internal/firewall"
)

// Backend puts a ruleset into the kernel and reads it back.
type Backend interface {
	// Name is "nftables" or "iptables".
	Name() string
	// Read returns what the kernel holds now.
	Read(ctx context.Context) (*firewall.State, error)
	// Replace applies the ruleset (nftables) or the configuration (iptables) atomically.
	Replace(ctx context.Context, cfg firewall.Config, rs *firewall.Ruleset) error
	// Matches reports whether a state read right after Replace holds rs.
	Matches(st *firewall.State, rs *firewall.Ruleset) bool
	// Delete removes everything imdsguard installed.
	Delete(ctx context.Context) error
}

// Watcher is a Backend that can report changes as they happen.
type Watcher interface {
	// Watch sends on changed after each change that may have touched our rules, until ctx
	// ends or the watch fails.
	Watch(ctx context.Context, changed chan<- struct{}) error
}

// NFTablesBackend is the primary backend: table inet imdsguard.
type NFTablesBackend struct{ NFT *firewall.NFTables }

var (
	_ Backend = (*NFTablesBackend)(nil)
	_ Watcher = (*NFTablesBackend)(nil)
	_ Backend = (*IPTablesBackend)(nil)
)

// Name implements Backend.
func (b *NFTablesBackend) Name() string { return "nftables" }

// Read implements Backend.
func (b *NFTablesBackend) Read(ctx context.Context) (*firewall.State, error) {
	return b.NFT.Read(ctx)
}

// Replace implements Backend.
func (b *NFTablesBackend) Replace(ctx context.Context, _ firewall.Config, rs *firewall.Ruleset) error {
	return b.NFT.Replace(ctx, rs)
}

// Matches implements Backend.
func (b *NFTablesBackend) Matches(st *firewall.State, rs *firewall.Ruleset) bool {
	return st.Matches(rs)
}

// Delete implements Backend.
func (b *NFTablesBackend) Delete(ctx context.Context) error { return b.NFT.Delete(ctx) }

// Watch implements Watcher with nf_tables' change notifications.
func (b *NFTablesBackend) Watch(ctx context.Context, changed chan<- struct{}) error {
	return b.NFT.Monitor(ctx, nil, changed)
}

// Close ends the standby nft process.
func (b *NFTablesBackend) Close() { b.NFT.Close() }

// IPTablesBackend is the fallback for kernels without nf_tables. It has no change events: the
// periodic resync re-asserts the jumps.
type IPTablesBackend struct{ IPT *firewall.IPTables }

// Name implements Backend.
func (b *IPTablesBackend) Name() string { return "iptables" }

// Read implements Backend.
func (b *IPTablesBackend) Read(ctx context.Context) (*firewall.State, error) {
	return b.IPT.Read(ctx)
}

// Replace implements Backend.
func (b *IPTablesBackend) Replace(ctx context.Context, cfg firewall.Config, _ *firewall.Ruleset) error {
	return b.IPT.Replace(ctx, cfg)
}

// Matches implements Backend.
func (b *IPTablesBackend) Matches(st *firewall.State, _ *firewall.Ruleset) bool { return st.Present }

// Delete implements Backend.
func (b *IPTablesBackend) Delete(ctx context.Context) error { return b.IPT.Delete(ctx) }

// ChooseBackend returns the backend named "nftables" or "iptables", or for "auto" nftables
// when nft works here and iptables otherwise.
func ChooseBackend(ctx context.Context, name string) (Backend, error) {
	nft := &NFTablesBackend{NFT: &firewall.NFTables{Standby: true}}
	switch name {
	case "nftables":
		return nft, nil
	case "iptables":
		return &IPTablesBackend{IPT: &firewall.IPTables{}}, nil
	case "auto", "":
		if err := nft.NFT.Available(ctx); err != nil {
			return &IPTablesBackend{IPT: &firewall.IPTables{}}, nil //nolint:nilerr // falling back is the point
		}
		return nft, nil
	}
	return nil, fmt.Errorf("backend %q: want auto, nftables or iptables", name)
}
