package policy

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// Tier names a layer of policy.
type Tier string

// The tiers, in the order they are consulted (HostNetwork short-circuits all of them).
const (
	TierHostNetwork   Tier = "hostNetwork"
	TierAdmin         Tier = "AdminNetworkPolicy"
	TierNetworkPolicy Tier = "NetworkPolicy"
	TierBaseline      Tier = "BaselineAdminNetworkPolicy"
	TierDefault       Tier = "Default"
	// TierClusterAdmin ("Admin") and TierClusterBaseline ("Baseline") are the two
	// ClusterNetworkPolicy tiers, consulted after AdminNetworkPolicy and after NetworkPolicy
	// respectively (cnp.go). Their values are the API's tier names.
	TierClusterAdmin    Tier = "Admin"
	TierClusterBaseline Tier = "Baseline"
	// TierCalico is a Calico GlobalNetworkPolicy or NetworkPolicy, or the end of a Calico tier.
	TierCalico Tier = "Calico"
	// TierCilium is a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
	TierCilium Tier = "Cilium"
)

// Action is what decided a verdict.
type Action string

// Actions.
const (
	ActionAllow Action = "Allow"
	ActionDeny  Action = "Deny"
)

// NoRule is the Rule index of a Reason that no single rule decided.
const NoRule = -1

// Reason says what decided a verdict: the tier, the policy and the rule.
type Reason struct {
	Tier Tier
	// Kind is the policy's kind in tiers that hold several: GlobalNetworkPolicy or
	// NetworkPolicy.projectcalico.org (Calico), CiliumNetworkPolicy or
	// CiliumClusterwideNetworkPolicy (Cilium); ClusterNetworkPolicy in its Admin and Baseline
	// tiers.
	Kind string
	// CalicoTier is the Calico tier of a Calico policy ("default", "security", ...).
	CalicoTier string
	// Policy is "namespace/name" for namespaced policies, "name" for cluster-scoped ones, empty
	// for the hostNetwork and default tiers.
	Policy string
	// Rule is the index into the policy's egress rules, or NoRule. For Cilium it indexes the
	// list RuleName names.
	Rule int
	// RuleName is the rule's name, for policy kinds whose rules have names; for Cilium, the
	// rule's field path (egress[0], egressDeny[1], specs[2].egress[0]).
	RuleName string
	Action   Action
	// Peer describes the peer that matched (e.g. "ipBlock 0.0.0.0/0"), or for a denial by
	// NetworkPolicy isolation the except entry that excluded the destination.
	Peer string
	// Broad is set when the peer that allowed the destination is a whole address family
	// (0.0.0.0/0, ::/0) or every destination.
	Broad bool
}

// String renders the reason for humans.
func (r Reason) String() string {
	switch r.Tier {
	case TierHostNetwork:
		return "hostNetwork: the pod uses the node's network; no policy applies"
	case TierDefault:
		return "no policy selects the pod for egress: allowed by default"
	}
	s := fmt.Sprintf("%s %s", r.Tier, r.Policy)
	switch {
	case r.Tier == TierCalico && r.Kind != "":
		s = fmt.Sprintf("Calico tier %s %s %s", r.CalicoTier, r.Kind, r.Policy)
	case r.Tier == TierCalico:
		s = fmt.Sprintf("Calico tier %s", r.CalicoTier)
	case isClusterTier(r.Tier):
		// ClusterNetworkPolicy deny-imds (Admin tier) rule 0 (deny-metadata): Deny (networks ...)
		kind := r.Kind
		if kind == "" {
			kind = kindCNP
		}
		s = fmt.Sprintf("%s %s (%s tier)", kind, r.Policy, r.Tier)
		if r.Rule != NoRule {
			s += fmt.Sprintf(" rule %d", r.Rule)
			if r.RuleName != "" {
				s += fmt.Sprintf(" (%s)", r.RuleName)
			}
		}
		return s + ": " + actionText(r.Tier, r.Action) + peerText(r.Peer)
	case r.Tier == TierCilium:
		s = fmt.Sprintf("%s %s", r.Kind, r.Policy)
		if r.Rule != NoRule {
			s += " " + r.RuleName
		}
		return s + ": " + string(r.Action) + peerText(r.Peer)
	}
	if r.Rule != NoRule {
		s += fmt.Sprintf(" rule %d", r.Rule)
		if r.RuleName != "" {
			s += fmt.Sprintf(" (%s)", r.RuleName)
		}
	}
	return s + ": " + string(r.Action) + peerText(r.Peer)
}

func peerText(peer string) string {
	if peer == "" {
		return ""
	}
	return " (" + peer + ")"
}

// Verdict is the evaluator's answer for one subject and one endpoint.
type Verdict struct {
	Allowed   bool
	DecidedBy Reason
}

// Subject is what the evaluator needs of a pod or pod template.
type Subject struct {
	Namespace   string
	Labels      map[string]string
	HostNetwork bool
	// ServiceAccount is the pod's service account; empty means "default". Calico selects pods
	// by it (serviceAccountSelector), Cilium by its identity label.
	ServiceAccount string
}

// serviceAccount returns the subject's service account, "default" when unset.
func (s *Subject) serviceAccount() string {
	if s.ServiceAccount == "" {
		return "default"
	}
	return s.ServiceAccount
}

// Step is one line of an evaluation trace.
type Step struct {
	Tier   Tier
	Policy string
	Rule   int
	Note   string
}

func (s Step) String() string {
	out := string(s.Tier)
	if isClusterTier(s.Tier) {
		out = kindCNP + " (" + out + " tier)"
	}
	if s.Policy != "" {
		out += " " + s.Policy
	}
	if s.Rule != NoRule {
		out += fmt.Sprintf(" rule %d", s.Rule)
	}
	return out + ": " + s.Note
}

// tracer records evaluation steps; a nil tracer records nothing and costs nothing.
type tracer struct{ steps []Step }

func (t *tracer) add(tier Tier, policy string, rule int, format string, args ...any) {
	if t == nil {
		return
	}
	t.steps = append(t.steps, Step{Tier: tier, Policy: policy, Rule: rule, Note: fmt.Sprintf(format, args...)})
}

// outcome is a tier's answer: decided (allow or deny) or pass to the next tier.
type outcome int

const (
	next outcome = iota
	allow
	deny
)

// tier is one layer of policy. bind is called once per subject; the bound tier answers per
// endpoint.
type tier interface {
	bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier
}

type boundTier interface {
	decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason)
}
