package engine

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// kindColumns are the table's kind columns, with their headings.
var kindColumns = []struct {
	kind    policy.Kind
	heading string
}{
	{policy.KindNetworkPolicy, "NetworkPolicy"},
	{policy.KindAdminNetworkPolicy, "ANP v1alpha1"},
	{policy.KindBaselineAdminNetworkPolicy, "BANP v1alpha1"},
	{policy.KindClusterNetworkPolicy, "ClusterNetworkPolicy"},
	{policy.KindAWSClusterNetworkPolicy, "ClusterNetworkPolicy (networking.k8s.aws)"},
	{policy.KindCalico, "Calico kinds"},
	{policy.KindCilium, "Cilium kinds"},
}

// MarkdownTable renders the enforcement table and the detection table as Markdown, for
// docs/engines.md.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| engine | versions |")
	for _, c := range kindColumns {
		b.WriteString(" " + c.heading + " |")
	}
	b.WriteString(" sources |\n|---|---|")
	for range kindColumns {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	var rows []parsedRow
	for _, e := range engines { // in engine order, each engine's rows in table order
		for _, r := range parsedTable {
			if r.Engine == e.name {
				rows = append(rows, r)
			}
		}
	}
	for _, r := range rows {
		name := "`" + string(r.Engine) + "`"
		if r.Variant != "" {
			name += " (" + r.Variant + ")"
		}
		fmt.Fprintf(&b, "| %s | %s |", name, r.rangeText())
		for _, c := range kindColumns {
			b.WriteString(" " + cell(r.Kinds[c.kind]) + " |")
		}
		var links []string
		for i, s := range r.Sources {
			links = append(links, fmt.Sprintf("[%d](%s)", i+1, s))
		}
		b.WriteString(" " + strings.Join(links, " ") + " |\n")
	}
	b.WriteString("\n| engine | detected from | semantics |\n|---|---|---|\n")
	for _, e := range engines {
		fmt.Fprintf(&b, "| `%s` (%s) | %s | %s |\n", e.name, e.display, e.detection, e.semantics)
	}
	return b.String()
}

// cell renders one kind rule.
func cell(r KindRule) string {
	var s string
	switch r.Support {
	case NotEnforced:
		s = "no"
	case Unconfirmed:
		s = "unconfirmed (not counted)"
	case Enforced:
		s = "**yes**"
		var gates []string
		for _, g := range r.Gates {
			gates = append(gates, fmt.Sprintf("`%s` (default %s)", g.Name, onOff(g.Default)))
		}
		if len(gates) > 0 {
			s += " with " + strings.Join(gates, " and ")
		}
	}
	if r.Note != "" {
		s += "; " + r.Note
	}
	return s
}
