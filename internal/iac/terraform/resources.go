package terraform

import (
	"cmp"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// metadataOptions reads the metadata_options block of an aws_launch_template, aws_instance
// or aws_launch_configuration. Per the provider docs all three take http_endpoint,
// http_tokens and http_put_response_hop_limit; aws_launch_template and aws_instance also take
// http_protocol_ipv6 (withIPv6). A missing block or attribute is not Set: EC2's precedence
// decides. A `dynamic "metadata_options"` block is set but unknown.
//
// Resource names r ("aws_launch_template.nodes"), the resource that states the options.
func (m *module) metadataOptions(r *resource, withIPv6 bool) iac.MetadataOptions {
	for _, block := range r.Body.Blocks {
		if block.Type == "dynamic" && len(block.Labels) == 1 && block.Labels[0] == "metadata_options" {
			opts := unknownOptions(position(block.DefRange()), `dynamic "metadata_options"`, withIPv6)
			opts.Resource = r.address()
			return opts
		}
	}
	block := firstBlock(r.Body, "metadata_options")
	if block == nil {
		opts := unsetOptions(r.At)
		opts.Resource = r.address()
		return opts
	}
	at := position(block.DefRange())
	opts := iac.MetadataOptions{
		Resource:         r.address(),
		At:               at,
		HTTPEndpoint:     m.stringValue(block.Body, "http_endpoint", at),
		HTTPTokens:       m.stringValue(block.Body, "http_tokens", at),
		HopLimit:         m.intValue(block.Body, "http_put_response_hop_limit", at),
		HTTPProtocolIPv6: iac.Value[string]{At: at},
	}
	if withIPv6 {
		opts.HTTPProtocolIPv6 = m.stringValue(block.Body, "http_protocol_ipv6", at)
	}
	return opts
}

// unknownOptions are options that are set somewhere the reader cannot see.
func unknownOptions(at iac.Position, expr string, withIPv6 bool) iac.MetadataOptions {
	opts := iac.MetadataOptions{
		At:               at,
		HTTPEndpoint:     iac.Value[string]{Set: true, At: at, Expr: expr},
		HTTPTokens:       iac.Value[string]{Set: true, At: at, Expr: expr},
		HopLimit:         iac.Value[int]{Set: true, At: at, Expr: expr},
		HTTPProtocolIPv6: iac.Value[string]{Set: true, At: at, Expr: expr},
	}
	if !withIPv6 {
		opts.HTTPProtocolIPv6 = iac.Value[string]{At: at}
	}
	return opts
}

func firstBlock(body *hclsyntax.Body, typ string) *hclsyntax.Block {
	for _, b := range body.Blocks {
		if b.Type == typ {
			return b
		}
	}
	return nil
}

// eksNodeGroup reads an aws_eks_node_group: its node_group_name (the node label
// eks.amazonaws.com/nodegroup) and the launch template it uses. Without a launch_template
// block EKS launches the nodes from a template of its own, which this configuration does not
// state: the options are then not Set.
func (m *module) eksNodeGroup(r *resource, used map[string]bool) iac.NodeGroup {
	g := iac.NodeGroup{Resource: r.address(), At: r.At, Options: unsetOptions(r.At)}
	if attr, ok := r.Body.Attributes["node_group_name"]; ok {
		if name := m.stringExpr(attr.Expr, "node_group_name"); name.Known {
			g.EKSNodeGroup = name.Value
		}
	}
	if block := firstBlock(r.Body, "launch_template"); block != nil {
		m.launchTemplateReference(&g, block.Body, "id", "name", position(block.DefRange()), used)
	}
	return g
}

// autoscalingGroup reads an aws_autoscaling_group: its launch_template block, the
// mixed_instances_policy.launch_template.launch_template_specification block, or its
// launch_configuration.
func (m *module) autoscalingGroup(r *resource, used map[string]bool) iac.NodeGroup {
	g := iac.NodeGroup{Resource: r.address(), At: r.At, Options: unsetOptions(r.At)}
	if block := firstBlock(r.Body, "launch_template"); block != nil {
		m.launchTemplateReference(&g, block.Body, "id", "name", position(block.DefRange()), used)
		return g
	}
	if policy := firstBlock(r.Body, "mixed_instances_policy"); policy != nil {
		if lt := firstBlock(policy.Body, "launch_template"); lt != nil {
			if spec := firstBlock(lt.Body, "launch_template_specification"); spec != nil {
				m.launchTemplateReference(&g, spec.Body, "launch_template_id", "launch_template_name", position(spec.DefRange()), used)
				return g
			}
		}
	}
	if attr, ok := r.Body.Attributes["launch_configuration"]; ok {
		at := position(attr.Expr.Range())
		target, _ := m.referencedResource(attr.Expr, "aws_launch_configuration", "name")
		if target == nil {
			target = m.resourceByLiteralName(attr.Expr, "aws_launch_configuration")
		}
		if target == nil {
			g.Options = unknownOptions(at, m.source(attr.Expr), false)
			return g
		}
		used[target.address()] = true
		g.Options = m.metadataOptions(target, false)
	}
	return g
}

// launchTemplateReference resolves a launch template reference ({id|name, version}) to the
// aws_launch_template of this configuration it names, and sets the node group's options to
// that template's when the version is the one the configuration describes.
//
// A configuration describes one version of a template, its newest: `.latest_version` and
// "$Latest" are that version. The default version ("$Default", `.default_version`, or the
// version left out where the resource allows it) is the newest only when the template sets
// update_default_version = true; otherwise EC2 keeps the first version as the default
// (provider docs, aws_launch_template update_default_version and default_version). A numeric
// version cannot be matched to the configuration. In those cases the options are unknown.
func (m *module) launchTemplateReference(g *iac.NodeGroup, body *hclsyntax.Body, idAttr, nameAttr string, at iac.Position, used map[string]bool) {
	var target *resource
	var refExpr hclsyntax.Expression
	if attr, ok := body.Attributes[idAttr]; ok {
		refExpr = attr.Expr
		var ok bool
		target, ok = m.referencedResource(attr.Expr, "aws_launch_template", "id")
		if !ok {
			if id := m.stringExpr(attr.Expr, idAttr); id.Known {
				g.LaunchTemplateID = id.Value
			}
		}
	} else if attr, ok := body.Attributes[nameAttr]; ok {
		refExpr = attr.Expr
		target, _ = m.referencedResource(attr.Expr, "aws_launch_template", "name")
		if target == nil {
			target = m.resourceByLiteralName(attr.Expr, "aws_launch_template")
		}
	}
	if refExpr == nil {
		m.problem(at, fmt.Sprintf("launch template reference without %s or %s", idAttr, nameAttr))
		g.Options = unknownOptions(at, "launch template without "+idAttr+" or "+nameAttr, true)
		return
	}
	if attr, ok := body.Attributes["version"]; ok {
		// A numeric version is the join key eks.amazonaws.com/sourceLaunchTemplateVersion.
		if v := m.stringExpr(attr.Expr, "version"); v.Known && isVersionNumber(v.Value) {
			g.LaunchTemplateVersion = v.Value
		}
	}
	if target == nil {
		g.Options = unknownOptions(position(refExpr.Range()), fmt.Sprintf("launch template %s, not declared in this configuration", m.source(refExpr)), true)
		return
	}
	used[target.address()] = true

	version := "$Default" // the provider's default for the version argument
	versionAt := at
	versionExpr := ""
	if attr, ok := body.Attributes["version"]; ok {
		versionAt = position(attr.Expr.Range())
		versionExpr = m.source(attr.Expr)
		if ref, ok := m.referencedResource(attr.Expr, "aws_launch_template", "latest_version"); ok && ref == target {
			version = "$Latest"
		} else if ref, ok := m.referencedResource(attr.Expr, "aws_launch_template", "default_version"); ok && ref == target {
			version = "$Default"
		} else if v := m.stringExpr(attr.Expr, "version"); v.Known {
			version = v.Value
		} else {
			version = ""
		}
	}
	switch version {
	case "$Latest":
		g.Options = m.metadataOptions(target, true)
		return
	case "$Default":
		if upd, ok := target.Body.Attributes["update_default_version"]; ok {
			if v, known := m.eval.value(upd.Expr); known && !v.IsNull() && v.Type() == cty.Bool && v.True() {
				g.Options = m.metadataOptions(target, true)
				return
			}
		}
		why := fmt.Sprintf("the default version of %s, which may be older than the configuration: update_default_version is not true", target.address())
		g.Options = unknownOptions(versionAt, why, true)
		g.VersionInDoubt = fmt.Sprintf("%s: runs the default version of %s (version %s), which EC2 does not move to the newest version unless the template sets update_default_version = true",
			versionAt, target.address(), cmp.Or(versionExpr, "left out"))
		newest := m.metadataOptions(target, true)
		g.Newest = &newest
		return
	case "":
		g.Options = unknownOptions(versionAt, versionExpr, true)
		return
	default:
		g.Options = unknownOptions(versionAt, fmt.Sprintf("version %s of %s; the configuration describes its newest version only", version, target.address()), true)
		g.VersionInDoubt = fmt.Sprintf("%s: pinned to version %s of %s, while the configuration states its newest version", versionAt, version, target.address())
		newest := m.metadataOptions(target, true)
		g.Newest = &newest
	}
}

// referencedResource returns the resource of type typ that expr refers to as TYPE.NAME.attr.
// ok reports whether expr has that shape at all; the resource is nil (and a Problem is
// recorded) when the configuration does not declare it.
func (m *module) referencedResource(expr hclsyntax.Expression, typ, attr string) (*resource, bool) {
	ref, isRef := expr.(*hclsyntax.ScopeTraversalExpr)
	if !isRef {
		return nil, false
	}
	t := ref.Traversal
	if len(t) != 3 || t.RootName() != typ {
		return nil, false
	}
	name, ok1 := t[1].(hcl.TraverseAttr)
	last, ok2 := t[2].(hcl.TraverseAttr)
	if !ok1 || !ok2 || last.Name != attr {
		return nil, false
	}
	r := m.byAddress[typ+"."+name.Name]
	if r == nil {
		m.problem(position(expr.Range()), fmt.Sprintf("reference to undeclared resource %s.%s", typ, name.Name))
	}
	return r, true
}

// resourceByLiteralName finds the resource of type typ whose name argument equals the
// statically known value of expr.
func (m *module) resourceByLiteralName(expr hclsyntax.Expression, typ string) *resource {
	v := m.stringExpr(expr, "name")
	if !v.Known {
		return nil
	}
	for _, r := range m.resources {
		if r.Type != typ {
			continue
		}
		if attr, ok := r.Body.Attributes["name"]; ok {
			if n := m.stringExpr(attr.Expr, "name"); n.Known && n.Value == v.Value {
				return r
			}
		}
	}
	return nil
}

func isVersionNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
