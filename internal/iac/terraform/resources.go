package terraform

import (
	"cmp"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// metadataOptions reads the metadata_options block of an aws_launch_template, aws_instance
// or aws_launch_configuration. Per the provider docs all three take http_endpoint,
// http_tokens and http_put_response_hop_limit; aws_launch_template and aws_instance also take
// http_protocol_ipv6 (withIPv6). A missing block or attribute is not Set: EC2's precedence
// decides. A `dynamic "metadata_options"` block is set but unknown.
//
// Resource names r ("aws_launch_template.nodes", `aws_launch_template.nodes["a"]`), the
// resource that states the options; they are evaluated with r's each or count.
func (m *module) metadataOptions(r *instance, withIPv6 bool) iac.MetadataOptions {
	defer m.enter(r)()
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
func (m *module) eksNodeGroup(r *instance, used map[string]bool) iac.NodeGroup {
	defer m.enter(r)()
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
func (m *module) autoscalingGroup(r *instance, used map[string]bool) iac.NodeGroup {
	defer m.enter(r)()
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
		target, ok := m.referencedResource(attr.Expr, "aws_launch_configuration", "name")
		if target == nil && !ok {
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
	var target *instance
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
		var ok bool
		target, ok = m.referencedResource(attr.Expr, "aws_launch_template", "name")
		if target == nil && !ok {
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
		why := fmt.Sprintf("launch template %s, not declared in this configuration", m.source(refExpr))
		if m.declares(refExpr, "aws_launch_template") {
			why = fmt.Sprintf("launch template %s, an instance not known statically", m.describe(refExpr))
		}
		g.Options = unknownOptions(position(refExpr.Range()), why, true)
		return
	}
	used[target.address()] = true

	version := "$Default" // the provider's default for the version argument
	versionAt := at
	versionExpr := ""
	if attr, ok := body.Attributes["version"]; ok {
		versionAt = position(attr.Expr.Range())
		versionExpr = m.source(attr.Expr)
		if ref, ok := m.referencedResource(attr.Expr, "aws_launch_template", "latest_version"); ok && ref != nil && ref.address() == target.address() {
			version = "$Latest"
		} else if ref, ok := m.referencedResource(attr.Expr, "aws_launch_template", "default_version"); ok && ref != nil && ref.address() == target.address() {
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
			leave := m.enter(target)
			v, known := m.eval.value(upd.Expr)
			leave()
			if known && !v.IsNull() && v.Type() == cty.Bool && v.True() {
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

// referencedResource returns the instance of a resource of type typ that expr refers to as
// TYPE.NAME.attr, or, for a resource with for_each or count, TYPE.NAME[KEY].attr, KEY a
// literal or an expression of the referring instance (each.key, count.index). ok reports
// whether expr has that shape at all. The instance is nil when the configuration does not
// declare the resource or that instance (a Problem is recorded), or when the key is not known
// statically.
func (m *module) referencedResource(expr hclsyntax.Expression, typ, attr string) (*instance, bool) {
	var name string
	var key cty.Value
	indexed := false // key or keyExpr is set
	var keyExpr hclsyntax.Expression
	switch e := expr.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		t := e.Traversal
		if len(t) < 3 || len(t) > 4 || t.RootName() != typ {
			return nil, false
		}
		n, ok1 := t[1].(hcl.TraverseAttr)
		last, ok2 := t[len(t)-1].(hcl.TraverseAttr)
		if !ok1 || !ok2 || last.Name != attr {
			return nil, false
		}
		name = n.Name
		if len(t) == 4 {
			idx, ok := t[2].(hcl.TraverseIndex)
			if !ok {
				return nil, false
			}
			key, indexed = idx.Key, true
		}
	case *hclsyntax.RelativeTraversalExpr:
		// TYPE.NAME[each.key].attr: an index expression, then .attr.
		idx, ok := e.Source.(*hclsyntax.IndexExpr)
		if !ok || len(e.Traversal) != 1 {
			return nil, false
		}
		last, ok := e.Traversal[0].(hcl.TraverseAttr)
		coll, ok2 := idx.Collection.(*hclsyntax.ScopeTraversalExpr)
		if !ok || !ok2 || last.Name != attr || len(coll.Traversal) != 2 || coll.Traversal.RootName() != typ {
			return nil, false
		}
		n, ok := coll.Traversal[1].(hcl.TraverseAttr)
		if !ok {
			return nil, false
		}
		name, keyExpr, indexed = n.Name, idx.Key, true
	default:
		return nil, false
	}
	r := m.byAddress[typ+"."+name]
	if r == nil {
		m.problem(position(expr.Range()), fmt.Sprintf("reference to undeclared resource %s.%s", typ, name))
		return nil, true
	}
	list := m.instances(r)
	if len(list) == 1 && !list[0].expanded() {
		if !indexed {
			return list[0], true
		}
		// An index into a block whose for_each or count is unknown: its one reading, unknown
		// where it depends on the instance.
		if _, unknown := r.Body.Attributes["for_each"]; unknown {
			return list[0], true
		}
		if _, unknown := r.Body.Attributes["count"]; unknown {
			return list[0], true
		}
		m.problem(position(expr.Range()), fmt.Sprintf("%s has neither for_each nor count: it cannot be indexed", r.address()))
		return nil, true
	}
	if !indexed {
		m.problem(position(expr.Range()), fmt.Sprintf("%s has for_each or count: a reference to it needs an instance key", r.address()))
		return nil, true
	}
	if keyExpr != nil {
		v, ok := m.eval.value(keyExpr)
		if !ok || v.IsNull() {
			return nil, true // the key is not known statically
		}
		key = v
	}
	for _, in := range list {
		if sameKey(in.key, key) {
			return in, true
		}
	}
	m.problem(position(expr.Range()), fmt.Sprintf("%s has no instance %s", r.address(), m.source(expr)))
	return nil, true
}

// declares reports whether expr refers to a resource of type typ that the module declares.
func (m *module) declares(expr hclsyntax.Expression, typ string) bool {
	for _, t := range expr.Variables() {
		if t.RootName() != typ || len(t) < 2 {
			continue
		}
		if name, ok := t[1].(hcl.TraverseAttr); ok && m.byAddress[typ+"."+name.Name] != nil {
			return true
		}
	}
	return false
}

// sameKey compares an instance key with an index, converting as Terraform does ("0" is 0).
func sameKey(key, index cty.Value) bool {
	if !index.IsKnown() || index.IsNull() {
		return false
	}
	conv, err := convert.Convert(index, key.Type())
	if err != nil || !conv.IsKnown() {
		return false
	}
	return key.Equals(conv).True()
}

// resourceByLiteralName finds the instance of a resource of type typ whose name argument
// equals the statically known value of expr.
func (m *module) resourceByLiteralName(expr hclsyntax.Expression, typ string) *instance {
	v := m.stringExpr(expr, "name")
	if !v.Known {
		return nil
	}
	for _, r := range m.resources {
		if r.Type != typ {
			continue
		}
		attr, ok := r.Body.Attributes["name"]
		if !ok {
			continue
		}
		for _, in := range m.instances(r) {
			leave := m.enter(in)
			n := m.stringExpr(attr.Expr, "name")
			leave()
			if n.Known && n.Value == v.Value {
				return in
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
