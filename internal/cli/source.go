package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// sourceOptions say where a command reads the cluster's objects from: manifests, or a live API
// server.
type sourceOptions struct {
	files          []string
	maxFileSize    string
	live           bool
	kubeconfig     string
	context        string
	requestTimeout time.Duration
	timeout        time.Duration
	pageSize       int64
	// defaultLive reads the live cluster when no manifest is given: kubectl's plugin audits
	// kubectl's current context, as every kubectl command does.
	defaultLive bool
	// progress, when set, hears how many objects of each resource a live read has listed.
	progress func(resource string, listed int, done bool)
	// code is the infrastructure code (Terraform, CloudFormation, eksctl) load found among
	// the paths, apart from the manifests (scan.Split); read it with scan.Read.
	code []scan.Input
}

// addFlags registers the input flags on a command.
func (o *sourceOptions) addFlags(f *pflag.FlagSet) {
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file or directory, or - for standard input (repeatable; positional arguments work too)")
	f.StringVar(&o.maxFileSize, "max-file-size", "2Gi", "largest input file accepted, as a quantity (e.g. 500Mi, 2Gi)")
	f.BoolVar(&o.live, "live", false, "read the live cluster of the current kubeconfig context (or the in-cluster service account) instead of manifests")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file for a live cluster (implies --live; default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "kubeconfig context for a live cluster (implies --live)")
	f.DurationVar(&o.requestTimeout, "request-timeout", inventory.DefaultRequestTimeout, "bound on each request to the API server")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on reading the whole live cluster")
	f.Int64Var(&o.pageSize, "page-size", inventory.DefaultPageSize, "objects per List request to the API server")
}

// isLive reports whether the input is a live cluster.
func (o *sourceOptions) isLive() bool { return o.live || o.kubeconfig != "" || o.context != "" }

// load reads the inventory from manifests (paths: positional arguments and --filename) or the
// live cluster. Infrastructure code among the paths is set aside in o.code. Errors are usage or
// input errors (exit 2).
func (o *sourceOptions) load(ctx context.Context, log *slog.Logger, streams Streams, args []string) (*inventory.Inventory, error) {
	paths := append(slices.Clone(o.files), args...)
	var manifests []string
	if len(paths) > 0 {
		var err error
		if manifests, o.code, err = scan.Split(paths); err != nil {
			return nil, usageError("%v", err)
		}
	}
	if o.isLive() || (o.defaultLive && len(manifests) == 0) {
		// Infrastructure code joins a live cluster's nodes as it joins manifests'.
		if len(manifests) > 0 {
			return nil, usageError("give either manifests (%s) or a live cluster (--live, --kubeconfig, --context), not both", strings.Join(manifests, ", "))
		}
		return o.loadCluster(ctx, log)
	}
	limit, err := resource.ParseQuantity(o.maxFileSize)
	if err != nil || limit.Value() <= 0 {
		return nil, usageError("--max-file-size %q: want a positive quantity such as 500Mi or 2Gi", o.maxFileSize)
	}
	if len(paths) == 0 {
		return nil, usageError("no input: give manifest files or directories, - for standard input, or --live for the current cluster")
	}
	if len(manifests) == 0 {
		return inventory.Empty(), nil // infrastructure code alone
	}
	inv, err := inventory.Load(manifests, inventory.Options{MaxFileBytes: limit.Value(), Stdin: streams.In})
	if err != nil {
		return nil, usageError("%v", err)
	}
	return inv, nil
}

// loadCluster reads the live cluster named by the kubeconfig flags.
func (o *sourceOptions) loadCluster(ctx context.Context, log *slog.Logger) (*inventory.Inventory, error) {
	if o.requestTimeout <= 0 || o.timeout <= 0 {
		return nil, usageError("--request-timeout and --timeout must be positive")
	}
	if o.pageSize <= 0 {
		return nil, usageError("--page-size %d: want a positive number", o.pageSize)
	}
	cfg, name, err := o.restConfig()
	if err != nil {
		return nil, usageError("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	started := time.Now()
	log.Debug("reading live cluster", "cluster", name, "server", cfg.Host)
	inv, err := inventory.LoadCluster(ctx, cfg, inventory.ClusterOptions{Name: name, PageSize: o.pageSize, Progress: o.progress})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, usageError("reading cluster %s took longer than --timeout %s: %v", name, o.timeout, err)
		}
		return nil, usageError("%v", err)
	}
	log.Debug("read live cluster", "cluster", name, "version", inv.ServerVersion, "objects", inv.Documents, "gaps", len(inv.Gaps), "duration", time.Since(started))
	return inv, nil
}

// restConfig resolves the kubeconfig flags (or the in-cluster service account) to a client
// configuration and a name for reports: the context, else the server URL.
func (o *sourceOptions) restConfig() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", errors.New("no cluster configured: no kubeconfig found ($KUBECONFIG, ~/.kube/config) and not running in a pod; give --kubeconfig")
		}
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	name := cfg.Host
	if raw, err := cc.RawConfig(); err == nil {
		switch {
		case o.context != "":
			name = o.context
		case raw.CurrentContext != "":
			name = raw.CurrentContext
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = o.requestTimeout
	cfg.UserAgent = "imdsguard/" + Version()
	// The audit reads a snapshot once: lift client-side throttling to what the server allows.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, name, nil
}

// detectClouds picks the clouds whose endpoints to use when --cloud was not given, and says
// why: the clouds of the nodes' provider IDs, else those the input shows otherwise
// (inventory.InferClouds), else AWS when infrastructure code is given (code names its first
// piece; its launch settings are EC2's), else every cloud.
func detectClouds(log *slog.Logger, inv *inventory.Inventory, code string) ([]string, []inventory.CloudEvidence) {
	evidence := inventory.InferClouds(inv)
	if len(evidence) == 0 && code != "" {
		e := inventory.CloudEvidence{Cloud: endpoint.AWS, Basis: inventory.CloudsFromInput, Evidence: "infrastructure code " + code}
		log.Info("cloud detected from the infrastructure code (nothing else in the input names one)", "cloud", e.Cloud, "evidence", e.Evidence)
		return []string{string(endpoint.AWS)}, []inventory.CloudEvidence{e}
	}
	if len(evidence) == 0 {
		log.Info("nothing in the input names a cloud: auditing every cloud's endpoints (use --cloud to narrow)", "nodes", len(inv.Nodes))
		return []string{string(endpoint.All)}, []inventory.CloudEvidence{{Cloud: endpoint.All, Basis: inventory.CloudsFromNothing}}
	}
	clouds := make([]string, len(evidence))
	for i, e := range evidence {
		clouds[i] = string(e.Cloud)
		if e.Basis == inventory.CloudsFromNodes {
			log.Info("cloud detected from node spec.providerID", "cloud", e.Cloud, "evidence", e.Evidence)
			continue
		}
		log.Info("cloud detected from the input (no node names one in spec.providerID)", "cloud", e.Cloud, "evidence", e.Evidence)
	}
	return clouds, evidence
}

// statedClouds is the evidence of clouds named with --cloud.
func statedClouds(clouds []string) []inventory.CloudEvidence {
	out := make([]inventory.CloudEvidence, len(clouds))
	for i, c := range clouds {
		cloud, _ := endpoint.ParseCloud(c) // checked before the input was read
		out[i] = inventory.CloudEvidence{Cloud: cloud, Basis: inventory.CloudsFromFlag}
	}
	return out
}
