package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/controller"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

type controllerOptions struct {
	source           sourceOptions
	engine           policyEngineFlag
	mode             string
	clouds           []string
	endpoints        []string
	exemptNamespaces []string
	exemptLabel      string
	podExemption     string
	priority         int32
	namespace        string
	metricsAddr      string
	probeAddr        string
	leaderElect      bool
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	qps              float32
	burst            int
	concurrency      int
	statusInterval   time.Duration
}

// controllerDeprecatedFlags are the controller's old flag spellings: two labels, one of
// namespaces and one of pods, were named --exempt-label and --exemption-label.
var controllerDeprecatedFlags = []deprecatedFlag{
	{old: "exempt-label", replacement: "--exempt-namespace-label"},
	{old: "exemption-label", replacement: "--exempt-pod-label"},
}

func newControllerCommand(g *globalOptions, streams Streams) *cobra.Command {
	o := &controllerOptions{}
	defaults := controller.DefaultOptions(nil)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Keep the cluster-level policy against metadata endpoints in place (runs as a Deployment)",
		Long: `Run the controller: it keeps the layer of --mode in place, continuously.

  networkpolicy         the NetworkPolicy imdsguard-deny-metadata in every namespace, new
                        ones within seconds; refused (Event, status) where it would widen egress
  clusternetworkpolicy  one cluster-wide ClusterNetworkPolicy Deny in the Admin tier
  adminnetworkpolicy    one cluster-wide AdminNetworkPolicy Deny
  calico                a Calico tier and GlobalNetworkPolicy
  cilium                one CiliumClusterwideNetworkPolicy with egressDeny
  auto                  the strongest the cluster serves and its policy engine enforces:
                        clusternetworkpolicy > adminnetworkpolicy > calico > cilium >
                        networkpolicy (logged with the reason)

The policy engine is detected at start from its workloads and configuration, or stated with
--policy-engine NAME[@VERSION] (docs/engines.md); a mode it would not enforce stops the
controller at start (exit 2).

The objects are exactly those of "imdsguard generate". Namespaces listed with
--exempt-namespace or labelled --exempt-namespace-label are left alone, and a managed policy
there is removed. Only objects labelled app.kubernetes.io/managed-by=imdsguard are
ever changed (server-side apply, field manager imdsguard-controller); changes others
make to them are reverted. A summary of protected, exempt and refused namespaces is
kept in the ConfigMap imdsguard-status in --namespace.

Serves /metrics, /healthz and /readyz; with --leader-elect (default) only the
replica holding the Lease imdsguard-controller writes. Before it starts, it checks that
--namespace exists and that it may write the status ConfigMap and the Lease there.

Exit status: 0 when stopped by SIGTERM or SIGINT, 2 on a usage or input error (a bad
flag, a mode the policy engine would not enforce, --namespace missing or not writable),
3 on a runtime failure (an address it cannot listen on, the controller stopping on an
error).`,
		Example: `  imdsguard controller --mode auto --cloud aws
  imdsguard controller --kubeconfig ~/.kube/config --mode networkpolicy --leader-elect=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			warnDeprecated(cmd, streams.Err, controllerDeprecatedFlags)
			return runController(cmd.Context(), g, streams, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", string(controller.ModeAuto), "layer to keep in place: auto, clusternetworkpolicy, adminnetworkpolicy, calico, cilium or networkpolicy")
	o.engine.addFlag(f)
	addCloudFlag(cmd, &o.clouds, "deny", "")
	f.StringArrayVar(&o.endpoints, "endpoint", nil, "extra credential-bearing endpoint ADDR[:PORT][/PROTO] to deny (repeatable)")
	f.StringSliceVar(&o.exemptNamespaces, "exempt-namespace", defaults.ExemptNamespaces, "namespaces left alone (comma-separated or repeated; --exempt-namespace= for none)")
	f.StringVar(&o.exemptLabel, "exempt-namespace-label", controller.DefaultExemptLabel, "namespace label KEY=VALUE that exempts a namespace (empty: none)")
	f.StringVar(&o.exemptLabel, "exempt-label", controller.DefaultExemptLabel, "deprecated spelling of --exempt-namespace-label")
	f.StringVar(&o.podExemption, "exempt-pod-label", generate.DefaultExemptionLabel, "pod label key whose value "+generate.ExemptionValue+" leaves a pod out of the managed NetworkPolicy (empty: none)")
	f.StringVar(&o.podExemption, "exemption-label", generate.DefaultExemptionLabel, "deprecated spelling of --exempt-pod-label")
	hideDeprecated(cmd, controllerDeprecatedFlags)
	f.Int32Var(&o.priority, "priority", generate.DefaultAdminPriority, "AdminNetworkPolicy priority (0-1000, lower first)")
	f.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", defaults.Namespace), "the controller's namespace: status ConfigMap and leader election Lease (default: $POD_NAMESPACE)")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 disables)")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 disables)")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "hold the Lease imdsguard-controller before writing, so several replicas are safe")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lost leader's Lease blocks the others")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before giving up")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the Lease is tried")
	f.Float32Var(&o.qps, "kube-api-qps", 100, "requests per second to the API server")
	f.IntVar(&o.burst, "kube-api-burst", 200, "request burst to the API server")
	f.IntVar(&o.concurrency, "max-concurrent-reconciles", defaults.MaxConcurrentReconciles, "namespaces reconciled in parallel")
	f.DurationVar(&o.statusInterval, "status-interval", defaults.StatusInterval, "how often the status ConfigMap is brought up to date")
	f.StringVar(&o.source.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster service account, else $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.source.context, "context", "", "kubeconfig context")
	return cmd
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func runController(ctx context.Context, g *globalOptions, streams Streams, o *controllerOptions) error {
	log, err := g.logger(streams.Err)
	if err != nil {
		return err
	}
	mode, err := controller.ParseMode(o.mode)
	if err != nil {
		return usageError("--mode: %v", err)
	}
	eps, err := selectEndpoints(o.clouds, o.endpoints)
	if err != nil {
		return err
	}
	opts := controller.DefaultOptions(eps)
	opts.Mode = mode
	opts.ExemptNamespaces = o.exemptNamespaces
	if opts.ExemptLabelKey, opts.ExemptLabelValue, err = controller.ParseExemptLabel(o.exemptLabel); err != nil {
		return usageError("%v", err)
	}
	opts.PodExemptionLabel = o.podExemption
	opts.AdminPriority = o.priority
	opts.Namespace = o.namespace
	opts.MaxConcurrentReconciles = o.concurrency
	opts.StatusInterval = o.statusInterval
	if err := opts.Validate(); err != nil {
		return usageError("%v", err)
	}
	if o.qps <= 0 || o.burst <= 0 {
		return usageError("--kube-api-qps and --kube-api-burst must be positive")
	}
	cfg, name, err := o.source.restConfig()
	if err != nil {
		return usageError("%v", err)
	}
	cfg.QPS, cfg.Burst = o.qps, o.burst
	cfg.UserAgent = "imdsguard-controller/" + Version()

	if opts.Enforcement, err = o.engine.controllerEnforcement(ctx, log, cfg); err != nil {
		return err
	}

	if err := controller.CheckNamespace(ctx, cfg, opts.Namespace, o.leaderElect); err != nil {
		return usageError("%v", err)
	}

	logger := logr.FromSlogHandler(log.Handler())
	ctrllog.SetLogger(logger)
	log.Info("starting controller", "cluster", name, "server", cfg.Host, "mode", mode, "namespace", opts.Namespace, "leaderElection", o.leaderElect)
	c, err := controller.New(ctx, controller.Config{
		Options:        opts,
		Rest:           cfg,
		MetricsAddr:    o.metricsAddr,
		ProbeAddr:      o.probeAddr,
		LeaderElection: o.leaderElect,
		LeaseDuration:  o.leaseDuration,
		RenewDeadline:  o.renewDeadline,
		RetryPeriod:    o.retryPeriod,
		Log:            logger,
	})
	if err != nil {
		if isListenError(err) {
			return runtimeError(err)
		}
		return usageError("%v", err)
	}
	if err := c.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("controller stopped", "err", err)
		return runtimeError(fmt.Errorf("controller stopped: %w", err))
	}
	return nil
}

// isListenError reports whether err is a failure to listen on an address (a port in use, an
// address not on this host): a runtime failure, not a usage error.
func isListenError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "listen"
}
