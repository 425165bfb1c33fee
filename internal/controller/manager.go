package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/policy"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// Config is everything a running controller needs besides the decisions' Options.
type Config struct {
	Options
	// Rest reaches the API server.
	Rest *rest.Config
	// MetricsAddr serves /metrics ("0" disables), ProbeAddr /healthz and /readyz ("0"
	// disables).
	MetricsAddr string
	ProbeAddr   string
	// LeaderElection runs the reconcilers in one replica at a time, holding the Lease
	// LeaseName in Options.Namespace.
	LeaderElection bool
	LeaseDuration  time.Duration
	RenewDeadline  time.Duration
	RetryPeriod    time.Duration
	// SkipNameValidation lets one process run several controllers of the same mode (tests);
	// their controller-runtime metrics then share labels.
	SkipNameValidation bool
	Log                logr.Logger
}

// LeaseName names the leader election Lease.
const LeaseName = "imdsguard-controller"

// Controller is a configured controller, ready to Start.
type Controller struct {
	Manager manager.Manager
	Status  *Status
	// Mode is the resolved mode, and ModeReason why it was chosen.
	Mode       Mode
	ModeReason string
}

// New resolves the mode (asking the API server what it serves when the mode is auto), and
// builds the manager with its reconcilers, status writer, metrics and probes.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	served, err := DiscoverServed(cfg.Rest)
	if err != nil {
		return nil, err
	}
	mode, why, err := ChooseMode(cfg.Mode, served, cfg.Enforcement)
	if err != nil {
		return nil, err
	}
	if err := modeServed(mode, served); err != nil {
		return nil, err
	}
	log := cfg.Log.WithValues("mode", mode)
	log.Info("mode chosen", "why", why)
	if !served.ClusterNetworkPolicy.Empty() {
		cfg.ClusterNetworkPolicyAPIVersion = served.ClusterNetworkPolicy.String()
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	if err := anpv1alpha1.Install(scheme); err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	mopts := manager.Options{
		Scheme: scheme,
		Logger: log,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Client:                        client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:        cfg.ProbeAddr,
		LeaderElection:                cfg.LeaderElection,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       cfg.Namespace,
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true,
		BaseContext:                   func() context.Context { return ctx },
		Controller:                    config.Controller{SkipNameValidation: &cfg.SkipNameValidation},
	}
	if cfg.LeaseDuration > 0 {
		mopts.LeaseDuration, mopts.RenewDeadline, mopts.RetryPeriod = &cfg.LeaseDuration, &cfg.RenewDeadline, &cfg.RetryPeriod
	}
	mgr, err := manager.New(cfg.Rest, mopts)
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	status := NewStatus(mode)
	recorder := mgr.GetEventRecorder(FieldManager)
	opts := cfg.Options
	if mode == ModeNetworkPolicy {
		r := &namespaceReconciler{client: mgr.GetClient(), opts: &opts, kinds: watchedKinds(served), status: status,
			recorder: recorder, log: log.WithName("namespace")}
		err = r.setup(mgr)
	} else {
		r := &clusterReconciler{client: mgr.GetClient(), mode: mode, opts: &opts, status: status,
			recorder: recorder, log: log.WithName(string(mode))}
		err = r.setup(mgr)
	}
	if err != nil {
		return nil, fmt.Errorf("register the %s reconciler: %w", mode, err)
	}
	writer := &statusWriter{client: mgr.GetClient(), status: status, namespace: cfg.Namespace, interval: cfg.StatusInterval, log: log.WithName("status")}
	if err := mgr.Add(writer); err != nil {
		return nil, fmt.Errorf("register the status writer: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("readiness check: %w", err)
	}
	metrics.mode.Reset()
	metrics.mode.WithLabelValues(string(mode)).Set(1)
	return &Controller{Manager: mgr, Status: status, Mode: mode, ModeReason: why}, nil
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	return c.Manager.Start(ctx)
}

// DiscoverServed asks the API server which optional policy APIs it serves.
func DiscoverServed(cfg *rest.Config) (Served, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return Served{}, fmt.Errorf("discovery client: %w", err)
	}
	has := func(gv schema.GroupVersion, resources ...string) (bool, error) {
		list, err := disc.ServerResourcesForGroupVersion(gv.String())
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("discover %s: %w", gv, err)
		}
		for _, want := range resources {
			found := false
			for _, r := range list.APIResources {
				found = found || r.Name == want
			}
			if !found {
				return false, nil
			}
		}
		return true, nil
	}
	var s Served
	if s.AdminNetworkPolicy, err = has(anpGroupVersion, "adminnetworkpolicies", "baselineadminnetworkpolicies"); err != nil {
		return Served{}, err
	}
	for _, gv := range calicoGroupVersions {
		ok, err := has(gv, "tiers", "globalnetworkpolicies", "networkpolicies")
		if err != nil {
			return Served{}, err
		}
		if ok {
			s.Calico = gv
			break
		}
	}
	if s.Cilium, err = has(ciliumGroupVersion, "ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"); err != nil {
		return Served{}, err
	}
	for _, gv := range cnpGroupVersions {
		ok, err := has(gv, "clusternetworkpolicies")
		if err != nil {
			return Served{}, err
		}
		if ok {
			s.ClusterNetworkPolicy = gv
			break
		}
	}
	if s.AWSClusterNetworkPolicy, err = has(awsCNPGroupVersion, "clusternetworkpolicies"); err != nil {
		return Served{}, err
	}
	return s, nil
}

// modeKinds maps each mode to the kind of policy it writes.
var modeKinds = map[Mode]policy.Kind{
	ModeClusterNetworkPolicy: policy.KindClusterNetworkPolicy,
	ModeAdminNetworkPolicy:   policy.KindAdminNetworkPolicy,
	ModeCalico:               policy.KindCalico,
	ModeCilium:               policy.KindCilium,
	ModeNetworkPolicy:        policy.KindNetworkPolicy,
}

// ChooseMode resolves auto to the strongest layer the cluster serves and its policy engine
// enforces: ClusterNetworkPolicy, then AdminNetworkPolicy, then Calico (projectcalico.org/v3), then Cilium, then
// NetworkPolicy. An explicit mode is kept if the engine enforces it. A mode nothing would
// enforce is an error: its objects would protect no pod. It returns why, for the log. A nil
// enforcement assumes every kind served is enforced.
func ChooseMode(want Mode, served Served, enf *policy.Enforcement) (Mode, string, error) {
	if want != ModeAuto {
		if ok, why := enf.Enforces(modeKinds[want]); !ok {
			return "", "", fmt.Errorf("mode %s: %s, so its policies would protect no pod; choose a mode the engine enforces (%s), or protect pods with the node agent", want, why, enforcedModes(enf))
		}
		return want, "chosen with --mode", nil
	}
	candidates := []struct {
		mode   Mode
		served bool
		why    string
	}{
		{ModeClusterNetworkPolicy, !served.ClusterNetworkPolicy.Empty(), "the cluster serves policy.networking.k8s.io ClusterNetworkPolicy, an Admin-tier deny no NetworkPolicy can undo"},
		{ModeAdminNetworkPolicy, served.AdminNetworkPolicy, "the cluster serves policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy, a cluster-wide deny no NetworkPolicy can undo"},
		{ModeCalico, served.Calico == calicoGroupVersions[0], "the cluster serves Calico's projectcalico.org/v3 tiers and GlobalNetworkPolicies, a cluster-wide deny ordered before every NetworkPolicy"},
		{ModeCilium, served.Cilium, "the cluster serves cilium.io/v2 CiliumClusterwideNetworkPolicy, whose egressDeny wins over every allow"},
		{ModeNetworkPolicy, true, "one NetworkPolicy per namespace, refused where it would widen egress"},
	}
	var skipped []string
	for _, c := range candidates {
		if !c.served {
			continue
		}
		if ok, why := enf.Enforces(modeKinds[c.mode]); !ok {
			skipped = append(skipped, fmt.Sprintf("%s: %s", c.mode, why))
			continue
		}
		reason := "auto: " + c.why
		if len(skipped) > 0 {
			reason += " (not enforced here: " + strings.Join(skipped, "; ") + ")"
		}
		return c.mode, reason, nil
	}
	return "", "", fmt.Errorf("mode auto: no policy layer the cluster serves would be enforced (%s): protect pods with the node agent (imdsguard agent) and the instance settings", strings.Join(skipped, "; "))
}

// enforcedModes lists the modes whose kind the engine enforces.
func enforcedModes(enf *policy.Enforcement) string {
	var out []string
	for _, m := range Modes[1:] {
		if ok, _ := enf.Enforces(modeKinds[m]); ok {
			out = append(out, string(m))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// modeServed checks that the API a cluster-wide mode writes is served.
func modeServed(mode Mode, served Served) error {
	switch {
	case mode == ModeClusterNetworkPolicy && served.ClusterNetworkPolicy.Empty():
		return errors.New("mode clusternetworkpolicy: the cluster does not serve policy.networking.k8s.io ClusterNetworkPolicy at v1beta1 or v1alpha2 (install the network-policy-api CRDs and a network plugin that enforces them)")
	case mode == ModeAdminNetworkPolicy && !served.AdminNetworkPolicy:
		return errors.New("mode adminnetworkpolicy: the cluster does not serve policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy (install the network-policy-api CRDs and a network plugin that implements them)")
	case mode == ModeCalico && served.Calico != calicoGroupVersions[0]:
		return errors.New("mode calico: the cluster does not serve projectcalico.org/v3 Tier and GlobalNetworkPolicy (Calico 3.29 or later with its v3 CRDs, or the Calico API server)")
	case mode == ModeCilium && !served.Cilium:
		return errors.New("mode cilium: the cluster does not serve cilium.io/v2 CiliumClusterwideNetworkPolicy")
	}
	return nil
}
