package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Detection is what the input says about the cluster's policy engines.
type Detection struct {
	// Engines are the engines found, in the order of the engine table, enabled or not.
	Engines []Detected
	// Enforcement merges the enabled engines (see the package documentation).
	Enforcement policy.Enforcement
	// Problems are engine configuration values that could not be read (an unknown
	// enable-policy value); the kinds they decide are counted as not enforced.
	Problems []string
	// Warnings are facts a reader should know: assumptions made, unreadable resources, an
	// unknown version, settings that change what a policy means (a default-deny mode).
	Warnings []string
}

// Detected is one engine found in the input.
type Detected struct {
	Name Name
	// Version is as found ("v3.31.2", "v1.19.0-eksbuild.1"); empty when unknown.
	Version string
	// Variant is an image variant or edition the table tells apart ("npa-v1alpha2",
	// "enterprise"); empty for the plain engine.
	Variant string
	// Enabled is whether the engine's policy enforcement is on.
	Enabled bool
	// Evidence names each object and field the detection read: "DaemonSet kube-system/aws-node
	// container aws-eks-nodeagent arg --enable-network-policy=false".
	Evidence []string
	// Semantics is how the engine combines policies.
	Semantics policy.Semantics
	// Kinds says, for every kind in policy.Kinds, whether this engine enforces it and why.
	Kinds map[policy.Kind]policy.KindEnforcement
}

// Label names the engine and its version for reports: "Calico v3.31.2".
func (d Detected) Label() string {
	info, _ := infoOf(d.Name)
	label := info.display
	if d.Variant == "enterprise" {
		label += " Enterprise"
	}
	if d.Version != "" {
		label += " " + d.Version
	}
	return label
}

// finding is what a detector learnt about one engine, before the table is applied.
type finding struct {
	name    Name
	variant string
	// version is nil when unknown; versionText is as found.
	version     *Version
	versionText string
	// versionUnknown says why the version is unknown, for reasons.
	versionUnknown string
	enabled        bool
	// off says why enforcement is off, when it is.
	off      string
	evidence []string
	gates    map[string]gateValue
}

// gateValue is a gate's value as configured, and where it was read.
type gateValue struct {
	on       bool
	evidence string
}

// resolve applies the table to a finding.
func resolve(f finding) Detected {
	info, _ := infoOf(f.name)
	d := Detected{Name: f.name, Version: f.versionText, Variant: f.variant, Enabled: f.enabled,
		Evidence: f.evidence, Semantics: info.semantics, Kinds: map[policy.Kind]policy.KindEnforcement{}}
	label := d.Label()
	rows := rowsFor(f.name, f.variant)
	for _, k := range policy.Kinds {
		d.Kinds[k] = kindEnforcement(label, f, rows, k)
	}
	return d
}

// kindEnforcement decides one kind for one engine.
func kindEnforcement(label string, f finding, rows []parsedRow, k policy.Kind) policy.KindEnforcement {
	switch {
	case !f.enabled:
		return policy.KindEnforcement{Reason: fmt.Sprintf("%s does not enforce %s: its policy enforcement is off (%s)", label, k, f.off)}
	case len(rows) == 0:
		return policy.KindEnforcement{Reason: fmt.Sprintf("imdsguard's engine table has no row for %s: %s counted as not enforced", label, k)}
	case f.version != nil:
		for _, r := range rows {
			if r.covers(*f.version) {
				return rowDecision(label, r, k, f.gates)
			}
		}
		return policy.KindEnforcement{Reason: fmt.Sprintf("imdsguard's engine table has no row for %s: %s counted as not enforced", label, k)}
	}
	// Version unknown: a kind counts only if every version in the table enforces it, from the
	// first version whose enforcement can be on.
	if info, _ := infoOf(f.name); info.enforcementSince != "" {
		since, _, _ := ParseVersion(info.enforcementSince)
		rows = slices.DeleteFunc(slices.Clone(rows), func(r parsedRow) bool { return r.before != nil && !since.Less(*r.before) })
	}
	var first policy.KindEnforcement
	for i, r := range rows {
		ke := rowDecision(label, r, k, f.gates)
		if !ke.Enforced {
			return policy.KindEnforcement{Reason: fmt.Sprintf("%s: the version is unknown (%s) and not every version enforces %s: %s", label, f.versionUnknown, k, ke.Reason)}
		}
		if i == 0 {
			first = ke
		}
	}
	first.Reason = fmt.Sprintf("%s (version unknown: %s) enforces %s in every version imdsguard knows; %s", label, f.versionUnknown, k, first.Reason)
	return first
}

// rowDecision decides one kind from one row and the gates as configured.
func rowDecision(label string, r parsedRow, k policy.Kind, gates map[string]gateValue) policy.KindEnforcement {
	rule := r.Kinds[k]
	src := r.rangeText() + "; " + strings.Join(r.Sources, " ")
	if rule.Note != "" {
		src = rule.Note + "; " + src
	}
	switch rule.Support {
	case NotEnforced:
		return policy.KindEnforcement{Reason: fmt.Sprintf("%s does not enforce %s (%s)", label, k, src)}
	case Unconfirmed:
		return policy.KindEnforcement{Reason: fmt.Sprintf("whether %s enforces %s is unconfirmed, so it is counted as not enforced (%s)", label, k, src)}
	}
	var with []string
	for _, g := range rule.Gates {
		on, how := g.Default, fmt.Sprintf("%s is %s by default", g.Name, onOff(g.Default))
		if v, ok := gates[g.Name]; ok {
			on, how = v.on, v.evidence
		}
		if !on {
			return policy.KindEnforcement{Reason: fmt.Sprintf("%s enforces %s only with %s on, and it is off: %s (%s)", label, k, g.Name, how, src)}
		}
		with = append(with, how)
	}
	reason := fmt.Sprintf("%s enforces %s (%s)", label, k, src)
	if len(with) > 0 {
		reason += " with " + strings.Join(with, ", ")
	}
	return policy.KindEnforcement{Enforced: true, Reason: reason}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// semanticsRank orders semantics by how specific their kinds are, for merging: Calico's tiers
// hold every other kind; Cilium's semantics also decide how Kubernetes kinds behave (ipBlock does
// not match pods), even where the Cilium kinds are switched off.
var semanticsRank = map[policy.Semantics]int{policy.SemanticsKubernetes: 0, policy.SemanticsCilium: 1, policy.SemanticsCalico: 2}

// merge combines the engines found into one Enforcement (rules in the package documentation).
func merge(found []Detected) policy.Enforcement {
	if len(found) == 0 {
		e := policy.Enforcement{Semantics: policy.SemanticsKubernetes, Assumed: true, Kinds: map[policy.Kind]policy.KindEnforcement{}}
		for _, k := range policy.Kinds {
			e.Kinds[k] = policy.KindEnforcement{Enforced: true, Reason: "no policy engine identified in the input: assumed enforced"}
		}
		return e
	}
	var enabled, labels []string
	semantics := policy.SemanticsKubernetes
	for _, d := range found {
		if !d.Enabled {
			continue
		}
		enabled = append(enabled, d.Label())
		if semanticsRank[d.Semantics] > semanticsRank[semantics] {
			semantics = d.Semantics
		}
	}
	for _, d := range found {
		labels = append(labels, d.Label())
	}
	e := policy.Enforcement{Semantics: semantics, Kinds: map[policy.Kind]policy.KindEnforcement{}}
	if len(enabled) > 0 {
		e.Engine = strings.Join(enabled, " + ")
	} else {
		e.Engine = strings.Join(labels, " + ") + " (policy enforcement off)"
	}
	for _, k := range policy.Kinds {
		var yes, no []string
		for _, d := range found {
			ke := d.Kinds[k]
			if ke.Enforced {
				yes = append(yes, ke.Reason)
			} else {
				no = append(no, ke.Reason)
			}
		}
		if len(yes) > 0 {
			e.Kinds[k] = policy.KindEnforcement{Enforced: true, Reason: strings.Join(yes, "; ")}
		} else {
			e.Kinds[k] = policy.KindEnforcement{Reason: strings.Join(no, "; ")}
		}
	}
	return e
}
