package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Netns is a named network namespace, as `ip netns add` makes it (/run/netns/NAME).
type Netns struct {
	Name string
}

// Path is the namespace's bind mount, for nsenter --net= and setns.
func (n *Netns) Path() string { return "/run/netns/" + n.Name }

// Command returns a command that runs args inside the namespace. It enters only the network
// namespace, with nsenter rather than `ip netns exec`, which would remount /sys.
func (n *Netns) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append( // #nosec G204 -- test harness commands
		[]string{"--net=" + n.Path(), "--"}, args...)...)
}

// Run runs args inside the namespace and returns its standard output; the error carries the
// command and its standard error.
func (n *Netns) Run(ctx context.Context, stdin string, args ...string) (string, error) {
	return run(n.Command(ctx, args...), stdin)
}

// IP runs `ip -n NAME args...`.
func (n *Netns) IP(ctx context.Context, args ...string) error {
	_, err := run(exec.CommandContext(ctx, "ip", append( // #nosec G204 -- test harness commands
		[]string{"-n", n.Name}, args...)...), "")
	return err
}

// Sysctl writes /proc/sys values inside the namespace: keys in sysctl's dotted form.
func (n *Netns) Sysctl(ctx context.Context, kv map[string]string) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for k, v := range kv {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s\n", v, strings.ReplaceAll(k, ".", "/"))
	}
	_, err := n.Run(ctx, "", "sh", "-c", script.String())
	return err
}

func run(cmd *exec.Cmd, stdin string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates stay in the
// namespace for their whole life, whichever thread uses them later; goroutines fn starts do
// not run in it.
func (n *Netns) Do(fn func() error) error {
	target, err := os.Open(n.Path())
	if err != nil {
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime ends it with this goroutine instead of
			// reusing a thread in the wrong namespace.
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// DialContext opens a connection from inside the namespace.
func (n *Netns) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	return conn, err
}

// Listen opens a listener inside the namespace.
func (n *Netns) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket opens a packet listener inside the namespace.
func (n *Netns) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}
