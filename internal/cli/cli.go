// Package cli is imdsguard's command line: one file per command, each turning flags into options
// and calling the packages that do the work. Commands write to the streams they are given so
// tests can run them in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every command.
const (
	ExitOK       = 0 // clean: no finding at or above --fail-on, nothing refused
	ExitFindings = 1 // findings at or above --fail-on, or a refused layer or namespace
	ExitUsage    = 2 // usage or input error: fix the command line or the input and run again
	ExitRuntime  = 3 // runtime failure: a listen failure, a failed write, a crashed controller or agent
)

// version is set at build time with -ldflags "-X github.com/imdsguard/imdsguard/internal/cli.version=v1.2.3".
var version = ""

// Version returns the version of this build.
func Version() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// Streams are a command's input and outputs.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
	// OutIsTerminal enables colour in human output when --color=auto.
	OutIsTerminal bool
	// ErrIsTerminal enables progress lines on Err.
	ErrIsTerminal bool
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks an error as a usage or input error (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// runtimeError marks an error as a runtime failure (exit 3): the command line and the input
// were good, but the work could not be done.
func runtimeError(err error) error {
	return &exitError{code: ExitRuntime, err: err}
}

// classifyRunErrors makes every error a command's RunE returns without an exit code a runtime
// failure (exit 3), for cmd and its subcommands. Usage and input errors are marked where they
// are found (usageError); cobra's own errors (unknown command or flag, bad argument count)
// never reach RunE and stay usage errors (Run).
func classifyRunErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			var exit *exitError
			if err == nil || errors.As(err, &exit) {
				return err
			}
			return runtimeError(err)
		}
	}
	for _, sub := range cmd.Commands() {
		classifyRunErrors(sub)
	}
}

// deprecatedFlag is an old spelling of a flag, kept working: the old flag is hidden from the
// help and sets the same variable as its replacement.
type deprecatedFlag struct {
	old, replacement string
}

// warnDeprecated writes one warning to standard error for each deprecated spelling used on the
// command line. pflag's own MarkDeprecated is not used: cobra prints its message through the
// command's output stream (cobra's Command.ParseFlags calls c.Print, which writes to
// OutOrStderr), which here is standard output, where it would corrupt a YAML or JSON stream.
func warnDeprecated(cmd *cobra.Command, w io.Writer, flags []deprecatedFlag) {
	for _, d := range flags {
		if cmd.Flags().Changed(d.old) {
			name := "--" + d.old
			if f := cmd.Flags().Lookup(d.old); f != nil && f.Shorthand != "" {
				name += " (-" + f.Shorthand + ")"
			}
			fmt.Fprintf(w, "imdsguard: warning: flag %s is deprecated and will be removed: use %s\n", name, d.replacement)
		}
	}
}

// hideDeprecated hides the old spellings from the help; they keep working.
func hideDeprecated(cmd *cobra.Command, flags []deprecatedFlag) {
	for _, d := range flags {
		_ = cmd.Flags().MarkHidden(d.old)
	}
}

// globalOptions are the flags every command has.
type globalOptions struct {
	logLevel  string
	logFormat string
	// invocation says whether the binary runs as kubectl's plugin.
	invocation Invocation
}

func (g *globalOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: want text or json", g.logFormat)
}

// NewCommand builds the root command.
func NewCommand(streams Streams) *cobra.Command {
	return newCommand(streams, Invocation{})
}

// newCommand builds the root command as invoked: as imdsguard, or as kubectl's plugin.
func newCommand(streams Streams, invocation Invocation) *cobra.Command {
	g := &globalOptions{invocation: invocation}
	root := &cobra.Command{
		Use:   "imdsguard",
		Short: "Keep Kubernetes pods away from the cloud instance metadata API, and prove it",
		Long: `imdsguard finds every path from a pod to the cloud instance metadata API
(169.254.169.254, fd00:ec2::254, Azure WireServer, ...) and what decides it, in each layer
the traffic crosses:

  cluster-policy  the policies the cluster's engine actually enforces: NetworkPolicy,
                  AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, the
                  AWS VPC CNI's ClusterNetworkPolicy.networking.k8s.aws, Calico and Cilium
                  policies, or nothing at all
  node            the imdsguard agent's nftables or iptables rules on the node
  instance        the instance's metadata settings (on AWS: IMDSv2 and the hop limit)

audit reports the paths, generate writes the fixes, and the controller and the agent keep
them in place. MITRE ATT&CK T1552.005, Unsecured Credentials: Cloud Instance Metadata API.

Exit status, for every command: 0 clean, 1 findings or refusals, 2 usage or input error,
3 runtime failure (a listen failure, a failed write, a crashed controller or agent).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format on standard error: text or json")
	root.AddCommand(newAuditCommand(g, streams), newGenerateCommand(g, streams), newVersionCommand(streams))
	root.AddCommand(newAgentCommand(g, streams))
	root.AddCommand(newControllerCommand(g, streams))
	classifyRunErrors(root)
	invocation.applyTo(root)
	return root
}

// Run runs the command line as imdsguard and returns the process exit code.
func Run(ctx context.Context, args []string, streams Streams) int {
	return RunAs(ctx, Invocation{}, args, streams)
}

// RunAs runs the command line as invoked (InvocationOf) and returns the process exit code.
func RunAs(ctx context.Context, invocation Invocation, args []string, streams Streams) int {
	cmd := newCommand(streams, invocation)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.err != nil && exit.code != ExitFindings {
			fmt.Fprintf(streams.Err, "imdsguard: %v\n", exit.err)
		}
		return exit.code
	}
	// Every other error is cobra's own (unknown command or flag, bad argument count): usage.
	fmt.Fprintf(streams.Err, "imdsguard: %v\nRun '%s --help' for usage.\n", err, invocation.DisplayName())
	return ExitUsage
}

func newVersionCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(streams.Out, "imdsguard %s\n", Version())
			return err
		},
	}
}
