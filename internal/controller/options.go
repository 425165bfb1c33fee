package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/policy"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Mode is the layer the controller keeps in place.
type Mode string

// The modes. Auto picks the strongest layer the cluster serves when the controller starts.
const (
	ModeNetworkPolicy        Mode = Mode(generate.NetworkPolicy)
	ModeClusterNetworkPolicy Mode = Mode(generate.ClusterNetworkPolicy)
	ModeAdminNetworkPolicy   Mode = Mode(generate.AdminNetworkPolicy)
	ModeCalico               Mode = Mode(generate.Calico)
	ModeCilium               Mode = Mode(generate.Cilium)
	ModeAuto                 Mode = "auto"
)

// Modes lists every mode, strongest first after auto.
var Modes = []Mode{ModeAuto, ModeClusterNetworkPolicy, ModeAdminNetworkPolicy, ModeCalico, ModeCilium, ModeNetworkPolicy}

// ParseMode parses --mode.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Modes, m) {
		names := make([]string, len(Modes))
		for i, m := range Modes {
			names[i] = string(m)
		}
		return "", fmt.Errorf("unknown mode %q (want %s)", s, strings.Join(names, ", "))
	}
	return m, nil
}

// FieldManager is the field manager of every server-side apply the controller makes.
const FieldManager = "imdsguard-controller"

// StatusConfigMapName names the ConfigMap, in the controller's namespace, that summarises which
// namespaces are protected, exempt and refused.
const StatusConfigMapName = "imdsguard-status"

// DefaultExemptLabel is the namespace label that exempts a namespace: key=value.
const DefaultExemptLabel = generate.DefaultExemptionLabel + "=" + generate.ExemptionValue

// Options configure the controller. DefaultOptions fills in the defaults.
type Options struct {
	// Mode is the layer to keep in place; ModeAuto is resolved when the controller starts.
	Mode Mode
	// Endpoints are denied (Role Credentials) and kept reachable (Role KeepReachable).
	Endpoints []endpoint.Endpoint
	// ExemptNamespaces are always left alone.
	ExemptNamespaces []string
	// ExemptLabelKey and ExemptLabelValue: a namespace carrying this label is left alone, and
	// its managed NetworkPolicy is removed. An empty key exempts no namespace by label.
	ExemptLabelKey   string
	ExemptLabelValue string
	// PodExemptionLabel is the pod label key that, with value generate.ExemptionValue, leaves a
	// pod out of the managed NetworkPolicy's pod selector (as in generate); empty for none.
	PodExemptionLabel string
	// AdminPriority is the AdminNetworkPolicy's priority.
	AdminPriority int32
	// Namespace is where the controller runs: the status ConfigMap and the leader election
	// Lease live there.
	Namespace string
	// StatusInterval is how often the status ConfigMap is brought up to date (when it changed).
	StatusInterval time.Duration
	// MaxConcurrentReconciles bounds parallel namespace reconciles.
	MaxConcurrentReconciles int
	// ClusterNetworkPolicyAPIVersion is the apiVersion the clusternetworkpolicy mode writes:
	// the preferred one the cluster serves (set at start).
	ClusterNetworkPolicyAPIVersion string
	// Enforcement is what enforces pod egress policy in the cluster, detected at start or
	// stated with --policy-engine. Auto picks a layer it enforces; a mode of a kind it does not
	// enforce is refused at start. Nil assumes every kind served is enforced.
	Enforcement *policy.Enforcement
}

// DefaultOptions returns the defaults for the selected endpoints.
func DefaultOptions(eps []endpoint.Endpoint) Options {
	key, value, _ := strings.Cut(DefaultExemptLabel, "=")
	return Options{
		Mode:                    ModeAuto,
		Endpoints:               eps,
		ExemptNamespaces:        slices.Clone(generate.DefaultExemptNamespaces),
		ExemptLabelKey:          key,
		ExemptLabelValue:        value,
		PodExemptionLabel:       generate.DefaultExemptionLabel,
		AdminPriority:           generate.DefaultAdminPriority,
		Namespace:               "imdsguard-system",
		StatusInterval:          2 * time.Second,
		MaxConcurrentReconciles: 8,
	}
}

// ParseExemptLabel parses --exempt-namespace-label KEY=VALUE; empty means no label exempts a namespace.
func ParseExemptLabel(s string) (key, value string, err error) {
	if s == "" {
		return "", "", nil
	}
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("--exempt-namespace-label %q: want KEY=VALUE", s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", fmt.Errorf("--exempt-namespace-label %q: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", fmt.Errorf("--exempt-namespace-label %q: %s", s, strings.Join(errs, "; "))
	}
	return key, value, nil
}

// Validate checks the options before anything talks to the cluster.
func (o *Options) Validate() error {
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	if !slices.ContainsFunc(o.Endpoints, func(e endpoint.Endpoint) bool { return e.Role == endpoint.Credentials }) {
		return errors.New("no credential-bearing endpoint is selected: nothing to deny")
	}
	for _, ns := range append(slices.Clone(o.ExemptNamespaces), o.Namespace) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	if o.StatusInterval <= 0 || o.MaxConcurrentReconciles <= 0 {
		return errors.New("the status interval and the number of concurrent reconciles must be positive")
	}
	return nil
}

// generateOptions are the options of generate for one layer.
func (o *Options) generateOptions(layer generate.Layer) generate.Options {
	g := generate.DefaultOptions(o.Endpoints)
	g.Layers = []generate.Layer{layer}
	g.ExemptNamespaces = slices.Clone(o.ExemptNamespaces)
	g.ExemptionLabel = o.PodExemptionLabel
	g.AdminPriority = o.AdminPriority
	g.Enforcement = o.Enforcement
	g.ClusterNetworkPolicyAPIVersion = o.ClusterNetworkPolicyAPIVersion
	return g
}

// exemptByLabel reports whether namespace labels exempt the namespace.
func (o *Options) exemptByLabel(labels map[string]string) bool {
	return o.ExemptLabelKey != "" && labels[o.ExemptLabelKey] == o.ExemptLabelValue
}
