package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/firewall"
	"github.com/imdsguard/imdsguard/internal/proxy"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type agentOptions struct {
	// filter is the configuration file's filter section (filter mode's request policy).
	filter           *agent.FilterConfig
	config           string
	mode             string
	clouds           []string
	endpoints        []string
	backend          string
	podsCgroup       string
	exemptPodIPs     []string
	allowPodUIDs     []string
	resync           time.Duration
	listen           string
	kubeconfig       string
	noKubernetes     bool
	nodeName         string
	startupTaint     string
	ciliumStateDir   string
	podUID           string
	measureInterval  time.Duration
	format           string
	exempt           []agent.PodSelector
	allowHostNetwork []agent.PodSelector
}

func newAgentCommand(g *globalOptions, streams Streams) *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Keep the node firewall against metadata endpoints in place (runs as a DaemonSet)",
		Long: `Run the node agent: it installs nftables table inet imdsguard, which drops traffic
from pods (forward hook, any CNI) and from hostNetwork pods (output hook, by the
kubelet's pods cgroup) to the cloud's credential-bearing metadata endpoints,
watches it (nf_tables change notifications and a periodic resync) and restores
it when anything changes it. It acts on the network namespace it runs in.

It fails closed: on SIGTERM, SIGKILL or a crash the rules stay; a restart
replaces them atomically. "imdsguard agent uninstall" removes them on purpose.
Where nf_tables is unavailable it falls back to iptables (--backend auto).

With the Kubernetes API it publishes its state on its Node, in the annotation
imdsguard.io/agent-state: mode, dropped addresses, hostNetwork coverage, ruleset
generation, last sync, and (on AWS) what it measured of the instance metadata
service from the node: IMDSv1 allowed or not, the IPv6 endpoint, the PUT response
hop limit.

In filter mode (--mode filter) pods' and hostNetwork pods' connections to the
AWS, GCP and Azure instance metadata services (169.254.169.254:80 and :8080,
[fd00:ec2::254]:80) are redirected to a filtering proxy the agent serves on
169.254.88.254:8988 and [fd69:6d64:7367::254]:8988 (addresses it adds to lo);
every other credential endpoint stays dropped. With the proxy down, redirected
connections are refused, never forwarded. Filter mode needs the nftables backend.

Serves /metrics, /healthz and /readyz (ready after the first successful sync).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), g, streams, cmd.Flags(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "agent configuration file (YAML); flags given explicitly override it")
	f.StringVar(&o.mode, "mode", "enforce", "enforce (drop and count), observe (count and log, no drop) or filter (redirect the AWS, GCP and Azure metadata services to the agent's filtering proxy, drop the other endpoints; needs the nftables backend)")
	f.StringSliceVar(&o.clouds, "cloud", []string{"all"}, "clouds whose endpoints to deny: aws, gcp, azure, alibaba, oracle, digitalocean, openstack, hetzner, ecs or all")
	f.StringArrayVar(&o.endpoints, "endpoint", nil, "extra credential-bearing endpoint ADDR[:PORT][/PROTO] (repeatable)")
	f.StringVar(&o.backend, "backend", "auto", "firewall backend: auto (nftables when available, else iptables), nftables or iptables")
	f.StringVar(&o.podsCgroup, "pods-cgroup", "", `kubelet pods cgroup below /sys/fs/cgroup; empty detects kubepods.slice or kubepods, "-" disables hostNetwork blocking`)
	f.StringArrayVar(&o.exemptPodIPs, "exempt-pod-ip", nil, "pod address allowed to reach the endpoints (repeatable)")
	f.StringArrayVar(&o.allowPodUIDs, "allow-host-network-pod-uid", nil, "hostNetwork pod UID allowed to reach the endpoints (repeatable)")
	f.DurationVar(&o.resync, "resync", 30*time.Second, "periodic full check and repair, besides change events")
	f.StringVar(&o.listen, "listen", ":9808", `address for /metrics, /healthz and /readyz; "" disables`)
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster when running in a pod)")
	f.BoolVar(&o.noKubernetes, "no-kubernetes", false, "do not use the Kubernetes API (no pod names, selectors, taint removal or state on the Node)")
	f.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	f.StringVar(&o.startupTaint, "startup-taint", "", "taint key:Effect to remove from this node once the rules are in place, e.g. imdsguard.io/agent-not-ready:NoSchedule")
	f.StringVar(&o.podUID, "pod-uid", os.Getenv("POD_UID"), "the agent's own pod UID (default $POD_UID, from the downward API): its pod cgroup passes the output rules, so its measurement of the instance is not dropped")
	f.DurationVar(&o.measureInterval, "measure-interval", agent.DefaultMeasureInterval, "measure the EC2 instance metadata service from the node this often, and whenever the ruleset changes (with AWS endpoints only); 0 disables")
	f.StringVar(&o.ciliumStateDir, "cilium-state-dir", agent.DefaultCiliumStateDir, "the host's Cilium state directory as mounted here: its datapath configuration tells whether eBPF host routing bypasses the forward rules")

	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the node firewall on purpose (nftables table and iptables chains)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgentUninstall(cmd.Context(), g, streams)
		},
	}
	rules := &cobra.Command{
		Use:   "rules",
		Short: "Print the ruleset the agent applies, for loading at boot before kubelet starts",
		Long: `Print the ruleset: an nft -f script that replaces table inet imdsguard
atomically (--format nft), or iptables-restore input (--format iptables or
ip6tables, for iptables-restore --noflush). The agent adopts a table loaded at
boot without a gap. Without --pods-cgroup the output chain is empty: at boot
the kubelet has not created its pods cgroup, and nft needs it to exist.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgentRules(streams, cmd.Flags(), o)
		},
	}
	rf := rules.Flags()
	rf.StringVar(&o.format, "format", "nft", "nft, iptables or ip6tables")
	for _, name := range []string{"config", "mode", "cloud", "endpoint", "exempt-pod-ip"} {
		rf.AddFlag(f.Lookup(name))
	}
	rf.StringVar(&o.podsCgroup, "pods-cgroup", "", "kubelet pods cgroup (must exist when the script is loaded); empty leaves the output chain empty")
	cmd.AddCommand(uninstall, rules)
	return cmd
}

// resolve merges the configuration file under the explicitly given flags.
func (o *agentOptions) resolve(flags *pflag.FlagSet) error {
	if o.config == "" {
		return nil
	}
	fc, err := agent.LoadFileConfig(o.config)
	if err != nil {
		return usageError("%v", err)
	}
	set := func(name string, apply func()) {
		if !flags.Changed(name) {
			apply()
		}
	}
	if fc.Mode != "" {
		set("mode", func() { o.mode = fc.Mode })
	}
	if len(fc.Clouds) > 0 {
		set("cloud", func() { o.clouds = fc.Clouds })
	}
	o.endpoints = append(o.endpoints, fc.Endpoints...)
	if fc.Backend != "" {
		set("backend", func() { o.backend = fc.Backend })
	}
	if fc.PodsCgroup != "" {
		set("pods-cgroup", func() { o.podsCgroup = fc.PodsCgroup })
	}
	o.exemptPodIPs = append(o.exemptPodIPs, fc.ExemptPodIPs...)
	o.allowPodUIDs = append(o.allowPodUIDs, fc.AllowHostNetworkPodUIDs...)
	o.exempt, o.allowHostNetwork = fc.Exempt, fc.AllowHostNetwork
	if fc.ResyncInterval != "" {
		d, err := time.ParseDuration(fc.ResyncInterval)
		if err != nil {
			return usageError("agent config %s: resyncInterval: %v", o.config, err)
		}
		set("resync", func() { o.resync = d })
	}
	if fc.Listen != "" {
		set("listen", func() { o.listen = fc.Listen })
	}
	o.filter = fc.Filter
	if fc.StartupTaint != "" {
		set("startup-taint", func() { o.startupTaint = fc.StartupTaint })
	}
	return nil
}

// firewallConfig turns the options into the static part of the firewall configuration.
func (o *agentOptions) firewallConfig() (firewall.Config, error) {
	eps, err := selectEndpoints(o.clouds, o.endpoints)
	if err != nil {
		return firewall.Config{}, err
	}
	mode, err := firewall.ParseMode(o.mode)
	if err != nil {
		return firewall.Config{}, usageError("--mode: %v", err)
	}
	cfg := firewall.Config{Endpoints: eps, Mode: mode}
	if mode == firewall.Filter {
		cfg.ProxyIPv4, cfg.ProxyIPv6 = firewall.DefaultProxyIPv4, firewall.DefaultProxyIPv6
	}
	for _, s := range o.exemptPodIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return firewall.Config{}, usageError("--exempt-pod-ip %q: %v", s, err)
		}
		cfg.ExemptPodIPs = append(cfg.ExemptPodIPs, a)
	}
	if err := cfg.Validate(); err != nil {
		return firewall.Config{}, usageError("%v", err)
	}
	return cfg, nil
}

func runAgent(ctx context.Context, g *globalOptions, streams Streams, flags *pflag.FlagSet, o *agentOptions) error {
	log, err := g.logger(streams.Err)
	if err != nil {
		return err
	}
	if err := o.resolve(flags); err != nil {
		return err
	}
	cfg, err := o.firewallConfig()
	if err != nil {
		return err
	}
	backend, err := agent.ChooseBackend(ctx, o.backend)
	if err != nil {
		return usageError("--backend: %v", err)
	}
	if o.resync <= 0 {
		return usageError("--resync must be positive")
	}
	opts := agent.Options{
		Endpoints:                 cfg.Endpoints,
		Mode:                      cfg.Mode,
		PodsCgroup:                o.podsCgroup,
		ExemptPodIPs:              cfg.ExemptPodIPs,
		AllowedHostNetworkPodUIDs: o.allowPodUIDs,
		Exempt:                    o.exempt,
		AllowHostNetwork:          o.allowHostNetwork,
		ResyncInterval:            o.resync,
		Listen:                    o.listen,
		Backend:                   backend,
		NodeName:                  o.nodeName,
		CiliumStateDir:            o.ciliumStateDir,
		ReleaseStartupMemory:      true,
		SelfPodUID:                o.podUID,
	}
	var filterSrv *proxy.Server
	if cfg.Mode == firewall.Filter {
		if filterSrv, err = filterProxy(cfg, o.filter, log); err != nil {
			return err
		}
		opts.Proxy, opts.Metrics, opts.FilterObserve = filterSrv, append(opts.Metrics, filterSrv.Stats), filterSrv.Observe
	} else if o.filter != nil {
		log.Warn("the configuration's filter section applies to filter mode only", "mode", cfg.Mode)
	}
	if o.measureInterval < 0 {
		return usageError("--measure-interval must not be negative")
	}
	if o.measureInterval > 0 && agent.HasAWSIMDS(cfg.Endpoints) {
		opts.Instance, opts.MeasureInterval = &agent.IMDSProbe{}, o.measureInterval
	}
	if o.startupTaint != "" {
		t, err := agent.ParseTaint(o.startupTaint)
		if err != nil {
			return usageError("--startup-taint: %v", err)
		}
		opts.Taint = t
	}
	kube, err := o.kubeClient()
	if err != nil {
		return err
	}
	if kube != nil {
		if o.nodeName == "" {
			return usageError("--node-name (or $NODE_NAME) is needed with the Kubernetes API")
		}
		k := &agent.Kube{Client: kube, NodeName: o.nodeName}
		opts.Pods, opts.Nodes, opts.State = k, k, k
	} else if opts.Taint.Key != "" || len(opts.Exempt) > 0 || len(opts.AllowHostNetwork) > 0 {
		return usageError("--startup-taint and pod selectors need the Kubernetes API (in-cluster or --kubeconfig)")
	}
	a, err := agent.New(opts, log)
	if err != nil {
		return usageError("%v", err)
	}
	if filterSrv != nil {
		filterSrv.Clients = a // the pods the agent knows, by address
	}
	return a.Run(ctx)
}

// kubeClient returns a client when the API is to be used: --kubeconfig, or in-cluster.
func (o *agentOptions) kubeClient() (kubernetes.Interface, error) {
	if o.noKubernetes {
		return nil, nil
	}
	var rc *rest.Config
	var err error
	switch {
	case o.kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		rc, err = rest.InClusterConfig()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, usageError("kubernetes client: %v", err)
	}
	rc.UserAgent = "imdsguard-agent/" + Version()
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, usageError("kubernetes client: %v", err)
	}
	return cs, nil
}

func runAgentUninstall(ctx context.Context, g *globalOptions, streams Streams) error {
	log, err := g.logger(streams.Err)
	if err != nil {
		return err
	}
	var errs []error
	nft := &firewall.NFTables{}
	if nft.Available(ctx) == nil {
		if err := nft.Delete(ctx); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("removed nftables table", "table", "inet "+firewall.TableName)
		}
	}
	ipt := &firewall.IPTables{}
	if err := ipt.Delete(ctx); err != nil {
		log.Debug("iptables clean-up", "err", err)
	} else {
		log.Info("removed iptables fallback chains")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}

func runAgentRules(streams Streams, flags *pflag.FlagSet, o *agentOptions) error {
	if err := o.resolve(flags); err != nil {
		return err
	}
	cfg, err := o.firewallConfig()
	if err != nil {
		return err
	}
	if o.podsCgroup != "-" {
		cfg.PodsCgroup = o.podsCgroup
	}
	var out string
	switch o.format {
	case "nft":
		out, err = firewall.NFTScript(cfg)
	case "iptables":
		out, err = firewall.IPTablesRestore(cfg, firewall.IPv4)
	case "ip6tables":
		out, err = firewall.IPTablesRestore(cfg, firewall.IPv6)
	default:
		return usageError("--format %q: want nft, iptables or ip6tables", o.format)
	}
	if err != nil {
		return usageError("%v", err)
	}
	_, err = fmt.Fprint(streams.Out, out)
	return err
}
