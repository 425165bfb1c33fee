// Command imdsguard keeps Kubernetes pods away from the cloud instance metadata API and proves
// it. All the work is in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/imdsguard/imdsguard/internal/cli"
)

// gcPercent is a tighter garbage-collection target than Go's default of 100. A large audit
// spends more time faulting in fresh heap pages than collecting: measured side by side on a
// 100,000-pod cluster, 60 is faster and needs less memory (docs/benchmarks.md). GOGC, when set,
// wins.
const gcPercent = 60

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.RunAs(ctx, cli.InvocationOf(os.Args[0]), os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, OutIsTerminal: isTerminal(os.Stdout), ErrIsTerminal: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
