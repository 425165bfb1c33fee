package cli

import (
	"context"
	"log/slog"

	"github.com/imdsguard/imdsguard/internal/engine"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
)

// policyEngineFlag is --policy-engine, shared by the commands that evaluate policies.
type policyEngineFlag struct{ spec string }

func (f *policyEngineFlag) addFlag(fs *pflag.FlagSet) {
	fs.StringVar(&f.spec, "policy-engine", "", "the cluster's policy engine as NAME[@VERSION] (e.g. calico@3.32.1, aws-vpc-cni, cilium@1.18), when the input does not show it; see docs/engines.md")
}

// enforcement decides what enforces pod egress policy for an inventory: the engine stated with
// --policy-engine, else the engines detected in the inventory's workloads and configuration.
// Detection's warnings and problems join the inventory's warnings. A live cluster in which no
// engine can be identified is a gap of the report (IMDS012): every kind is then assumed
// enforced, and the report says it is incomplete rather than passing on an assumption.
func (f *policyEngineFlag) enforcement(log *slog.Logger, inv *inventory.Inventory) (policy.Enforcement, error) {
	if f.spec != "" {
		enf, err := engine.Parse(f.spec)
		if err != nil {
			return policy.Enforcement{}, usageError("--policy-engine: %v", err)
		}
		if inv != nil {
			if det := engine.Detect(inv); !det.Enforcement.Assumed && det.Enforcement.Engine != enf.Engine {
				inv.Warnings = append(inv.Warnings, "the input shows "+det.Enforcement.Engine+"; --policy-engine "+f.spec+" ("+enf.Engine+") is used instead")
			}
		}
		log.Debug("policy engine stated", "engine", enf.Engine, "semantics", enf.Semantics)
		return enf, nil
	}
	if inv == nil {
		return policy.Enforcement{Semantics: policy.SemanticsKubernetes, Assumed: true}, nil
	}
	det := engine.Detect(inv)
	inv.Warnings = append(inv.Warnings, det.Problems...)
	if len(det.Engines) > 0 {
		// With no engine at all, the report itself says that enforcement is assumed.
		inv.Warnings = append(inv.Warnings, det.Warnings...)
	}
	if det.Enforcement.Assumed && inv.Cluster != "" {
		inv.Gaps = append(inv.Gaps, inventory.Gap{Resource: "policy engine",
			Reason:  "no known policy engine's workloads or configuration were found in the cluster",
			Affects: "every cluster-policy verdict: each kind of policy is assumed enforced; state the engine with --policy-engine NAME[@VERSION] (docs/engines.md)"})
	}
	log.Debug("policy engine detected", "engine", det.Enforcement.Engine, "semantics", det.Enforcement.Semantics, "assumed", det.Enforcement.Assumed)
	return det.Enforcement, nil
}

// controllerEnforcement is the enforcement the controller works under: the engine stated with
// --policy-engine, else the one detected from the cluster's engine workloads and configuration
// at start (inventory.LoadEngineEvidence). When nothing identifies an engine it returns nil:
// every kind the cluster serves is assumed enforced, and a warning says so. An engine that
// cannot be read is an error (exit 2): the controller must not pick a layer on a guess.
func (f *policyEngineFlag) controllerEnforcement(ctx context.Context, log *slog.Logger, cfg *rest.Config) (*policy.Enforcement, error) {
	if f.spec != "" {
		enf, err := f.enforcement(log, nil)
		return &enf, err
	}
	inv, err := inventory.LoadEngineEvidence(ctx, cfg)
	if err != nil {
		return nil, usageError("detect the policy engine: %v (grant the controller the reads in deploy/controller/rbac.yaml, or state the engine with --policy-engine NAME[@VERSION])", err)
	}
	det := engine.Detect(inv)
	for _, w := range append(det.Problems, det.Warnings...) {
		log.Warn(w)
	}
	if det.Enforcement.Assumed {
		log.Warn("no policy engine identified in the cluster: every policy kind it serves is assumed enforced; state it with --policy-engine NAME[@VERSION] (docs/engines.md)")
		return nil, nil
	}
	log.Info("policy engine detected", "enforcement", det.Enforcement.String())
	return &det.Enforcement, nil
}
