package agent

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// FileConfig is the agent's configuration file (a ConfigMap in the DaemonSet). Command-line
// flags given explicitly override it. Exemptions live here, in the administrator's hands,
// never in annotations a pod's author could set.
type FileConfig struct {
	// Mode is enforce, observe or filter.
	Mode string `json:"mode,omitempty"`
	// Clouds select the catalogue endpoints (aws, gcp, azure, ..., all).
	Clouds []string `json:"clouds,omitempty"`
	// Endpoints are extra credential-bearing endpoints, ADDR[:PORT][/PROTO].
	Endpoints []string `json:"endpoints,omitempty"`
	// Backend is auto, nftables or iptables.
	Backend string `json:"backend,omitempty"`
	// PodsCgroup is the kubelet's pods cgroup; empty detects it, "-" disables.
	PodsCgroup string `json:"podsCgroup,omitempty"`
	// Exempt selects pods (by namespace and service account) allowed to reach the endpoints.
	Exempt []PodSelector `json:"exempt,omitempty"`
	// ExemptPodIPs are static exempt pod addresses.
	ExemptPodIPs []string `json:"exemptPodIPs,omitempty"`
	// AllowHostNetwork selects hostNetwork pods allowed to reach the endpoints (aws-node,
	// ebs-csi-node, ...).
	AllowHostNetwork []PodSelector `json:"allowHostNetwork,omitempty"`
	// AllowHostNetworkPodUIDs are static allowed hostNetwork pods.
	AllowHostNetworkPodUIDs []string `json:"allowHostNetworkPodUIDs,omitempty"`
	// ResyncInterval is the periodic full check, e.g. "30s".
	ResyncInterval string `json:"resyncInterval,omitempty"`
	// Listen is the metrics and health address.
	Listen string `json:"listen,omitempty"`
	// StartupTaint is removed from the node once the rules are in place, "key:Effect".
	StartupTaint string `json:"startupTaint,omitempty"`
	// Filter tunes filter mode's request policy (docs/agent.md, "Filter mode: what passes").
	Filter *FilterConfig `json:"filter,omitempty"`
}

// FilterConfig is filter mode's part of the configuration file: the only place the policy is
// widened, never a pod annotation.
type FilterConfig struct {
	// MaxTokenTTL caps the IMDSv2 token lifetime, in seconds (default 21600).
	MaxTokenTTL int `json:"maxTokenTTL,omitempty"`
	// DenyIdentityDocument refuses the AWS instance identity document.
	DenyIdentityDocument bool `json:"denyIdentityDocument,omitempty"`
	// Additions allow more paths of one cloud to a namespace's pods (or one service account's).
	Additions []FilterAddition `json:"additions,omitempty"`
	// Observe passes on the canonical requests the policy would deny, and logs them: filter
	// mode's roll-out, which protects nothing.
	Observe bool `json:"observe,omitempty"`
}

// FilterAddition is one entry of FilterConfig.Additions.
type FilterAddition struct {
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount,omitempty"`
	Cloud          string   `json:"cloud"`
	Paths          []string `json:"paths"`
}

// LoadFileConfig reads a configuration file; unknown fields are errors.
func LoadFileConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	var c FileConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}
