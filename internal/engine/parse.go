package engine

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Names returns the engine names Parse accepts, in table order.
func Names() []Name {
	out := make([]Name, 0, len(engines))
	for _, e := range engines {
		out = append(out, e.name)
	}
	return out
}

// Parse reads a --policy-engine value, NAME[@VERSION] ("calico@3.32.1", "cilium@1.18",
// "aws-vpc-cni", "kube-network-policies@1.0.0-npa-v1alpha2"), and returns what that engine
// enforces. The engine's policy enforcement is taken as on (for aws-vpc-cni: the network policy
// agent is on) and its feature gates at their documented defaults. Without a version, only the
// kinds every known version enforces count.
func Parse(spec string) (policy.Enforcement, error) {
	d, err := parseDetected(spec)
	if err != nil {
		return policy.Enforcement{}, err
	}
	return merge([]Detected{d}), nil
}

// parseDetected is Parse's engine, before merging.
func parseDetected(spec string) (Detected, error) {
	name, version, hasVersion := strings.Cut(strings.TrimSpace(spec), "@")
	name = strings.ToLower(name)
	info, ok := infoOf(Name(name))
	if !ok {
		known := make([]string, 0, len(engines))
		for _, n := range Names() {
			known = append(known, string(n))
		}
		if name == "" {
			return Detected{}, fmt.Errorf("policy engine %q: want NAME[@VERSION], NAME one of %s", spec, strings.Join(known, ", "))
		}
		return Detected{}, fmt.Errorf("policy engine %q: unknown engine %q: known engines are %s", spec, name, strings.Join(known, ", "))
	}
	f := finding{name: info.name, enabled: true, evidence: []string{"--policy-engine " + spec}}
	if !hasVersion {
		f.versionUnknown = "no version given to --policy-engine"
		return resolve(f), nil
	}
	v, suffix, err := ParseVersion(version)
	if err != nil {
		return Detected{}, fmt.Errorf("policy engine %q: version %w", spec, err)
	}
	f.version = &v
	f.versionText = "v" + strings.TrimPrefix(version, "v")
	if info.name == KubeNetworkPolicies && strings.HasPrefix(suffix, "npa-") {
		f.variant = suffix
	}
	return resolve(f), nil
}
