package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// TemplateVersions are a launch template's $Latest and $Default versions, as the EC2 API
// describes them (audit --aws, Options.TemplateVersions).
type TemplateVersions struct {
	Region, ID, Name string
	Latest, Default  TemplateVersion
}

// TemplateVersion is one version of a launch template and the metadata options it states.
type TemplateVersion struct {
	Number int64
	// Tokens, Endpoint and IPv6 are "" and HopLimit 0 where the version leaves the option out.
	Tokens, Endpoint, IPv6 string
	HopLimit               int
}

// differs reports whether two versions state different metadata options.
func (v TemplateVersion) differs(w TemplateVersion) bool {
	return v.Tokens != w.Tokens || v.Endpoint != w.Endpoint || v.IPv6 != w.IPv6 || v.HopLimit != w.HopLimit
}

// String renders the version's options: "version 3 (HttpTokens required, hop limit 1)".
func (v TemplateVersion) String() string {
	stated := func(name, value string) string {
		if value == "" {
			return name + " left out"
		}
		return name + " " + value
	}
	hop := "hop limit left out"
	if v.HopLimit > 0 {
		hop = fmt.Sprintf("hop limit %d", v.HopLimit)
	}
	parts := []string{stated("HttpTokens", v.Tokens), hop, stated("HttpEndpoint", v.Endpoint)}
	if v.IPv6 != "" {
		parts = append(parts, "HttpProtocolIpv6 "+v.IPv6)
	}
	return fmt.Sprintf("version %d (%s)", v.Number, strings.Join(parts, ", "))
}

// templateFindings reports the launch templates whose $Latest and $Default versions state
// different metadata options (IMDS021), with the nodes launched from each: a node group that
// launches $Default runs other options than the template's newest version states.
func templateFindings(r *Report, versions []TemplateVersions) []Finding {
	var out []Finding
	for _, t := range versions {
		if t.Latest.Number == 0 || t.Default.Number == 0 || t.Latest.Number == t.Default.Number || !t.Latest.differs(t.Default) {
			continue
		}
		objects := []inventory.ObjectRef{{Kind: "LaunchTemplate", Name: t.ID}}
		runs := map[string][]string{} // version → nodes
		for _, n := range r.Nodes {
			if n.Node.Labels[layer.EKSLaunchTemplateLabel] != t.ID {
				continue
			}
			v := n.Node.Labels[iac.EKSLaunchTemplateVersionLabel]
			runs[v] = append(runs[v], n.Node.Name)
			objects = append(objects, inventory.ObjectRef{Kind: "Node", Name: n.Node.Name})
		}
		var where []string
		versions := make([]string, 0, len(runs))
		for v := range runs {
			versions = append(versions, v)
		}
		slices.Sort(versions)
		for _, v := range versions {
			label := "version " + v
			if v == "" {
				label = "an unlabelled version"
			}
			where = append(where, fmt.Sprintf("%s on %s", nodeList(runs[v]), label))
		}
		name := t.ID
		if t.Name != "" {
			name += " (" + t.Name + ")"
		}
		msg := fmt.Sprintf("launch template %s in %s: $Default is %s, $Latest is %s", name, t.Region, t.Default, t.Latest)
		if len(where) > 0 {
			msg += "; " + strings.Join(where, ", ")
		}
		out = append(out, Finding{Rule: RuleTemplateVersionsDiffer, Severity: RuleTemplateVersionsDiffer.Severity, Objects: objects,
			Message: msg + " (eks.amazonaws.com/sourceLaunchTemplateVersion)",
			Remediation: fmt.Sprintf("Make the version that should run the default (aws ec2 modify-launch-template --launch-template-id %s --default-version %d, or update_default_version = true in Terraform), or launch $Latest explicitly; then replace the nodes that run the other version.",
				t.ID, t.Latest.Number)})
	}
	return out
}

// nodeList renders "2 nodes (a, b)".
func nodeList(nodes []string) string {
	shown := nodes[:min(len(nodes), 3)]
	more := ""
	if len(nodes) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(nodes)-len(shown))
	}
	return fmt.Sprintf("%s (%s%s)", count(len(nodes), "node"), strings.Join(shown, ", "), more)
}
