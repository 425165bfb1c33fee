package firewall

import (
	"context"
	"testing"
	"time"
)

// KillStandbyForTest kills the waiting standby nft, as an OOM kill or a stray signal would.
func KillStandbyForTest(t *testing.T, n *NFTables) {
	t.Helper()
	n.mu.Lock()
	p := n.standby
	n.mu.Unlock()
	if p == nil {
		t.Fatal("no standby nft waiting")
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Let it die before it is used: the point is a standby that is gone.
	for range 100 {
		if p.cmd.Process.Signal(nil) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LoadForTest loads a script as Replace does.
func LoadForTest(n *NFTables, ctx context.Context, script string) error { return n.load(ctx, script) }

// CheckStandbyClosedForTest closes n and checks that the standby it held has exited.
func CheckStandbyClosedForTest(t *testing.T, n *NFTables) {
	t.Helper()
	n.mu.Lock()
	p := n.standby
	n.mu.Unlock()
	if p == nil {
		t.Fatal("no standby nft waiting before Close")
	}
	n.Close()
	if p.cmd.ProcessState == nil {
		t.Error("the standby nft is still running after Close")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.standby != nil {
		t.Error("a standby is left after Close")
	}
}
