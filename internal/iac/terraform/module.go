package terraform

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// eksModuleDefaults are the metadata options the terraform-aws-modules/eks module gives the
// launch template of an EKS managed node group when the node group states none, by major
// version of the module. Sources:
//   - v18: modules/eks-managed-node-group/variables.tf, variable "metadata_options", default
//     { http_endpoint = "enabled", http_tokens = "required", http_put_response_hop_limit = 2 }
//     (https://github.com/terraform-aws-modules/terraform-aws-eks/blob/v18.0.0/modules/eks-managed-node-group/variables.tf;
//     introduced by pull request #1579, confirmed for v18 in issue #1749).
//   - v19, v20: docs/UPGRADE-19.0.md and docs/UPGRADE-20.0.md list no change to these
//     defaults, and docs/UPGRADE-21.0.md says the v21 hop limit of 1 was "previously 2".
//   - v21: docs/UPGRADE-21.0.md, "EKS managed node group: IMDS now default to a hop limit of 1
//     (previously was 2)"; the same list names no change to http_tokens or http_endpoint.
//
// Versions before v18 used a different node group interface and are not modelled: their
// options stay unknown.
var eksModuleDefaults = map[int]struct {
	Endpoint, Tokens string
	HopLimit         int
}{
	18: {"enabled", "required", 2},
	19: {"enabled", "required", 2},
	20: {"enabled", "required", 2},
	21: {"enabled", "required", 1},
}

// eksModuleReplacesWholeMap lists the major versions where a node group's metadata_options
// (or eks_managed_node_group_defaults.metadata_options) replaces the module's default map as
// a whole, so an attribute it leaves out is left out of the launch template. The module's
// node_groups.tf in these versions reads
// `metadata_options = try(each.value.metadata_options, var.eks_managed_node_group_defaults.metadata_options, local.metadata_options)`.
// For v21 the merge was not verified: attributes left out are unknown.
var eksModuleReplacesWholeMap = map[int]bool{18: true, 19: true, 20: true}

const eksModuleSource = "terraform-aws-modules/eks/aws"

var gitRef = regexp.MustCompile(`terraform-aws-eks(?:\.git)?(?://[^?]*)?\?ref=v?(\d+)\.\d+\.\d+$`)

// eksModuleMajor returns the major version of the terraform-aws-modules/eks module a module
// block uses, or 0 when the block is another module or its version is not pinned to one
// major version.
func (m *module) eksModuleMajor(mod *resource) (major int, isEKS bool) {
	srcAttr, ok := mod.Body.Attributes["source"]
	if !ok {
		return 0, false
	}
	src := m.stringExpr(srcAttr.Expr, "source")
	if !src.Known {
		return 0, false
	}
	if match := gitRef.FindStringSubmatch(src.Value); match != nil {
		n, _ := strconv.Atoi(match[1])
		return n, true
	}
	if src.Value != eksModuleSource {
		return 0, false
	}
	verAttr, ok := mod.Body.Attributes["version"]
	if !ok {
		return 0, true
	}
	ver := m.stringExpr(verAttr.Expr, "version")
	if !ver.Known {
		return 0, true
	}
	return pinnedMajor(ver.Value), true
}

var (
	exactVersion     = regexp.MustCompile(`^=?\s*v?(\d+)\.\d+\.\d+$`)
	pessimisticMinor = regexp.MustCompile(`^~>\s*v?(\d+)\.\d+(?:\.\d+)?$`)
)

// pinnedMajor returns the major version a version constraint allows, or 0 when it allows more
// than one (">= 20.0", "~> 20"): "20.8.5", "= 20.8.5", "~> 20.0" and "~> 20.8.5" pin 20.
func pinnedMajor(constraint string) int {
	c := strings.TrimSpace(constraint)
	for _, re := range []*regexp.Regexp{exactVersion, pessimisticMinor} {
		if match := re.FindStringSubmatch(c); match != nil {
			n, _ := strconv.Atoi(match[1])
			return n
		}
	}
	return 0
}

// eksModule reads the eks_managed_node_groups input of a terraform-aws-modules/eks module
// block. Each node group gets its metadata_options, else
// eks_managed_node_group_defaults.metadata_options, else the module's defaults for its major
// version (Defaulted). The EKS node group name is only a join key when use_name_prefix is
// false: by default the module adds a random suffix to the name.
func (m *module) eksModule(mod *resource) []iac.NodeGroup {
	major, isEKS := m.eksModuleMajor(mod)
	if !isEKS {
		return nil
	}
	groupsAttr, ok := mod.Body.Attributes["eks_managed_node_groups"]
	if !ok {
		return nil
	}
	groups, ok := m.objectCons(groupsAttr.Expr, 0)
	if !ok {
		m.problem(position(groupsAttr.Expr.Range()), "eks_managed_node_groups is not written as an object: its node groups cannot be read")
		return nil
	}
	var defaults map[string]*hclsyntax.ObjectConsItem
	if attr, ok := mod.Body.Attributes["eks_managed_node_group_defaults"]; ok {
		if obj, ok := m.objectCons(attr.Expr, 0); ok {
			defaults = m.items(obj)
		}
	}
	var out []iac.NodeGroup
	for _, item := range groups.Items {
		key, ok := m.keyName(item.KeyExpr)
		if !ok {
			continue
		}
		at := position(item.KeyExpr.Range())
		g := iac.NodeGroup{
			Resource: fmt.Sprintf("module.%s.eks_managed_node_groups[%q]", mod.Name, key),
			At:       at,
		}
		settings := map[string]*hclsyntax.ObjectConsItem{}
		if obj, ok := m.objectCons(item.ValueExpr, 0); ok {
			settings = m.items(obj)
		}
		if m.literalBool(settings, defaults, "create") == "false" {
			continue
		}
		if m.literalBool(settings, defaults, "use_name_prefix") == "false" {
			name := key
			if it, ok := settings["name"]; ok {
				if v := m.stringExpr(it.ValueExpr, "name"); v.Known {
					name = v.Value
				} else {
					name = ""
				}
			}
			g.EKSNodeGroup = name
		}
		if m.literalBool(settings, defaults, "use_custom_launch_template") == "false" {
			g.Options = unsetOptions(at) // EKS's own launch template
			g.Options.Resource = g.Resource
			out = append(out, g)
			continue
		}
		optsItem, ok := settings["metadata_options"]
		if !ok {
			optsItem, ok = defaults["metadata_options"]
		}
		if ok {
			g.Options = m.moduleOptions(optsItem.ValueExpr, major)
		} else {
			g.Options, g.Defaulted = moduleDefaults(mod.At, major)
		}
		g.Options.Resource = g.Resource
		out = append(out, g)
	}
	return out
}

// moduleOptions reads a metadata_options map given to the module.
func (m *module) moduleOptions(expr hclsyntax.Expression, major int) iac.MetadataOptions {
	at := position(expr.Range())
	obj, ok := m.objectCons(expr, 0)
	if !ok {
		return unknownOptions(at, m.source(expr), true)
	}
	items := m.items(obj)
	left := iac.Value[string]{At: at}
	leftInt := iac.Value[int]{At: at}
	if !eksModuleReplacesWholeMap[major] {
		reason := fmt.Sprintf("left out of metadata_options; how terraform-aws-modules/eks v%d fills it is not modelled", major)
		left = iac.Value[string]{Set: true, At: at, Expr: reason}
		leftInt = iac.Value[int]{Set: true, At: at, Expr: reason}
	}
	opts := iac.MetadataOptions{At: at, HTTPEndpoint: left, HTTPTokens: left, HopLimit: leftInt, HTTPProtocolIPv6: left}
	if it, ok := items["http_endpoint"]; ok {
		opts.HTTPEndpoint = m.stringExpr(it.ValueExpr, "http_endpoint")
	}
	if it, ok := items["http_tokens"]; ok {
		opts.HTTPTokens = m.stringExpr(it.ValueExpr, "http_tokens")
	}
	if it, ok := items["http_put_response_hop_limit"]; ok {
		opts.HopLimit = m.intExpr(it.ValueExpr, "http_put_response_hop_limit")
	}
	if it, ok := items["http_protocol_ipv6"]; ok {
		opts.HTTPProtocolIPv6 = m.stringExpr(it.ValueExpr, "http_protocol_ipv6")
	}
	return opts
}

// moduleDefaults are the module's own options for a node group that states none, at the
// module block. An unpinned or unmodelled version leaves them unknown.
func moduleDefaults(at iac.Position, major int) (iac.MetadataOptions, bool) {
	d, ok := eksModuleDefaults[major]
	if !ok {
		expr := "the terraform-aws-modules/eks module's default metadata_options; its version is not pinned to a major version with known defaults (v18–v21)"
		return unknownOptions(at, expr, true), false
	}
	expr := fmt.Sprintf("terraform-aws-modules/eks v%d default", major)
	return iac.MetadataOptions{
		At:               at,
		HTTPEndpoint:     iac.Value[string]{Value: d.Endpoint, Set: true, Known: true, At: at, Expr: expr},
		HTTPTokens:       iac.Value[string]{Value: d.Tokens, Set: true, Known: true, At: at, Expr: expr},
		HopLimit:         iac.Value[int]{Value: d.HopLimit, Set: true, Known: true, At: at, Expr: expr},
		HTTPProtocolIPv6: iac.Value[string]{At: at},
	}, true
}

// literalBool returns "true" or "false" for a statically known boolean setting of a node
// group, falling back to the defaults object; "" when not known.
func (m *module) literalBool(settings, defaults map[string]*hclsyntax.ObjectConsItem, name string) string {
	it, ok := settings[name]
	if !ok {
		it, ok = defaults[name]
	}
	if !ok {
		return ""
	}
	v := m.stringExpr(it.ValueExpr, name)
	if !v.Known {
		return ""
	}
	return v.Value
}

// objectCons returns the object expression expr is, following local.NAME references to the
// local's own expression so that positions stay those of the values as written.
func (m *module) objectCons(expr hclsyntax.Expression, depth int) (*hclsyntax.ObjectConsExpr, bool) {
	if depth > 16 {
		return nil, false
	}
	switch e := expr.(type) {
	case *hclsyntax.ObjectConsExpr:
		return e, true
	case *hclsyntax.ScopeTraversalExpr:
		t := e.Traversal
		if len(t) == 2 && t.RootName() == "local" {
			if step, ok := t[1].(hcl.TraverseAttr); ok {
				if attr, ok := m.locals[step.Name]; ok {
					return m.objectCons(attr.Expr, depth+1)
				}
			}
		}
	}
	return nil, false
}

// items maps the statically named keys of an object expression to their items.
func (m *module) items(obj *hclsyntax.ObjectConsExpr) map[string]*hclsyntax.ObjectConsItem {
	out := map[string]*hclsyntax.ObjectConsItem{}
	for i := range obj.Items {
		if key, ok := m.keyName(obj.Items[i].KeyExpr); ok {
			out[key] = &obj.Items[i]
		}
	}
	return out
}

// keyName returns an object key written as a bare name or a string.
func (m *module) keyName(expr hclsyntax.Expression) (string, bool) {
	if name := hcl.ExprAsKeyword(expr); name != "" {
		return name, true
	}
	v, ok := m.eval.value(expr)
	if !ok || v.IsNull() {
		return "", false
	}
	s, err := toString(v)
	return s, err == nil
}
