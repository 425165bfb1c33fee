package terraform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// The JSON plan representation of `terraform show -json PLANFILE`
// (https://developer.hashicorp.com/terraform/internals/json-format): planned_values holds
// each resource's values after the plan, with unknown values ("known after apply") left out.
type planFile struct {
	FormatVersion string `json:"format_version"`
	PlannedValues *struct {
		RootModule planModule `json:"root_module"`
	} `json:"planned_values"`
}

type planModule struct {
	Address      string         `json:"address"`
	Resources    []planResource `json:"resources"`
	ChildModules []planModule   `json:"child_modules"`
}

type planResource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Values  map[string]any `json:"values"`
}

// LoadPlan reads the resolved metadata options from a `terraform show -json` plan: the
// resources of planned_values.root_module and its child modules. Positions are the JSON file
// and the line of the resource's address; the node group's Resource is the address. Values
// the plan leaves unknown stay unknown.
func LoadPlan(path string) ([]iac.NodeGroup, []iac.Problem, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the user names the plan to audit
	if err != nil {
		return nil, nil, fmt.Errorf("terraform plan: %w", err)
	}
	groups, problems, err := parsePlan(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("terraform plan %s: %w", path, err)
	}
	return groups, problems, nil
}

func parsePlan(path string, data []byte) ([]iac.NodeGroup, []iac.Problem, error) {
	var plan planFile
	if err := json.Unmarshal(data, &plan); err != nil {
		return nil, nil, fmt.Errorf("not a terraform show -json document: %w", err)
	}
	if plan.FormatVersion == "" || plan.PlannedValues == nil {
		return nil, nil, fmt.Errorf("not a terraform show -json plan: no format_version or planned_values")
	}
	p := &planReader{path: path, data: data, used: map[string]bool{}}
	var all []planResource
	var walk func(planModule, int)
	walk = func(mod planModule, depth int) {
		if depth > 64 {
			return
		}
		for _, r := range mod.Resources {
			if r.Mode == "managed" {
				all = append(all, r)
			}
		}
		for _, child := range mod.ChildModules {
			walk(child, depth+1)
		}
	}
	walk(plan.PlannedValues.RootModule, 0)

	var groups []iac.NodeGroup
	for _, r := range all {
		at := p.position(r.Address)
		switch r.Type {
		case "aws_launch_template", "aws_instance":
			groups = append(groups, iac.NodeGroup{Resource: r.Address, At: at, Options: p.options(r.Values, at, true)})
		case "aws_launch_configuration":
			groups = append(groups, iac.NodeGroup{Resource: r.Address, At: at, Options: p.options(r.Values, at, false)})
		case "aws_eks_node_group":
			g := iac.NodeGroup{Resource: r.Address, At: at, Options: unsetOptions(at)}
			if name, ok := r.Values["node_group_name"].(string); ok {
				g.EKSNodeGroup = name
			}
			if spec := firstObject(r.Values["launch_template"]); spec != nil {
				p.resolve(&g, spec, "id", "name", all, at)
			}
			groups = append(groups, g)
		case "aws_autoscaling_group":
			g := iac.NodeGroup{Resource: r.Address, At: at, Options: unsetOptions(at)}
			if spec := firstObject(r.Values["launch_template"]); spec != nil {
				p.resolve(&g, spec, "id", "name", all, at)
			} else if policy := firstObject(r.Values["mixed_instances_policy"]); policy != nil {
				if lt := firstObject(policy["launch_template"]); lt != nil {
					if spec := firstObject(lt["launch_template_specification"]); spec != nil {
						p.resolve(&g, spec, "launch_template_id", "launch_template_name", all, at)
					}
				}
			}
			groups = append(groups, g)
		}
	}
	// A launch template a group uses is reported through the group, as in a configuration.
	groups = slices.DeleteFunc(groups, func(g iac.NodeGroup) bool { return p.used[g.Resource] })
	return nameOptions(groups), p.problems, nil
}

type planReader struct {
	// used holds the addresses of the launch templates a group refers to.
	used     map[string]bool
	path     string
	data     []byte
	problems []iac.Problem
}

// position finds the line of a resource's address in the plan file. planned_values comes
// before resource_changes in Terraform's output, so the first occurrence is the one read.
func (p *planReader) position(address string) iac.Position {
	quoted, _ := json.Marshal(address)
	re := regexp.MustCompile(`"address"\s*:\s*` + regexp.QuoteMeta(string(quoted)))
	start := bytes.Index(p.data, []byte(`"planned_values"`))
	if start < 0 {
		start = 0
	}
	loc := re.FindIndex(p.data[start:])
	if loc == nil {
		return iac.Position{File: p.path}
	}
	return iac.Position{File: p.path, Line: 1 + bytes.Count(p.data[:start+loc[0]], []byte("\n"))}
}

// options reads a resource's metadata_options from the plan. An attribute that is null was
// not set; one that is missing is unknown until apply.
func (p *planReader) options(values map[string]any, at iac.Position, withIPv6 bool) iac.MetadataOptions {
	raw, present := values["metadata_options"]
	if !present {
		return unknownOptions(at, "metadata_options (known after apply)", withIPv6)
	}
	block := firstObject(raw)
	if block == nil {
		return unsetOptions(at)
	}
	opts := iac.MetadataOptions{
		At:               at,
		HTTPEndpoint:     planString(block, "http_endpoint", at),
		HTTPTokens:       planString(block, "http_tokens", at),
		HopLimit:         p.planInt(block, "http_put_response_hop_limit", at),
		HTTPProtocolIPv6: iac.Value[string]{At: at},
	}
	if withIPv6 {
		opts.HTTPProtocolIPv6 = planString(block, "http_protocol_ipv6", at)
	}
	return opts
}

// resolve sets a node group's options to those of the launch template of the plan it names,
// when its version is the template's latest_version (the version the plan describes).
func (p *planReader) resolve(g *iac.NodeGroup, spec map[string]any, idKey, nameKey string, all []planResource, at iac.Position) {
	id, _ := spec[idKey].(string)
	name, _ := spec[nameKey].(string)
	version := ""
	switch v := spec["version"].(type) {
	case string:
		version = v
	case float64:
		version = strconv.FormatFloat(v, 'f', -1, 64)
	}
	g.LaunchTemplateID = id
	if _, err := strconv.Atoi(version); err == nil {
		g.LaunchTemplateVersion = version
	}
	var target *planResource
	for i := range all {
		r := &all[i]
		if r.Type != "aws_launch_template" {
			continue
		}
		if rid, ok := r.Values["id"].(string); ok && id != "" && rid == id {
			target = r
		}
		if rname, ok := r.Values["name"].(string); ok && name != "" && rname == name {
			target = r
		}
	}
	if target == nil {
		g.Options = unknownOptions(at, fmt.Sprintf("launch template %s (not resolvable in the plan)", firstNonEmpty(id, name, "known after apply")), true)
		return
	}
	p.used[target.Address] = true
	latest, ok := target.Values["latest_version"].(float64)
	if !ok || version == "" || version != strconv.FormatFloat(latest, 'f', -1, 64) {
		g.Options = unknownOptions(at, fmt.Sprintf("version %q of %s; the plan describes its latest_version only", firstNonEmpty(version, "known after apply"), target.Address), true)
		if ok && version != "" {
			g.VersionInDoubt = fmt.Sprintf("%s: runs version %s of %s, whose latest_version in the plan is %s", at, version, target.Address, strconv.FormatFloat(latest, 'f', -1, 64))
			newest := p.options(target.Values, p.position(target.Address), true)
			g.Newest = &newest
		}
		return
	}
	g.Options = p.options(target.Values, p.position(target.Address), true)
	g.Options.Resource = target.Address
}

func planString(block map[string]any, key string, at iac.Position) iac.Value[string] {
	raw, present := block[key]
	if !present {
		return iac.Value[string]{Set: true, At: at, Expr: key + " (known after apply)", Attr: key}
	}
	s, ok := raw.(string)
	if !ok || s == "" {
		return iac.Value[string]{At: at, Attr: key}
	}
	return iac.Value[string]{Value: s, Set: true, Known: true, At: at, Attr: key}
}

func (p *planReader) planInt(block map[string]any, key string, at iac.Position) iac.Value[int] {
	raw, present := block[key]
	if !present {
		return iac.Value[int]{Set: true, At: at, Expr: key + " (known after apply)", Attr: key}
	}
	if raw == nil {
		return iac.Value[int]{At: at, Attr: key}
	}
	f, ok := raw.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		p.problems = append(p.problems, iac.Problem{At: at, Message: fmt.Sprintf("%s: want a whole number, got %v", key, raw)})
		return iac.Value[int]{Set: true, At: at, Expr: fmt.Sprint(raw), Attr: key}
	}
	if f == 0 {
		return iac.Value[int]{At: at, Attr: key} // the provider's zero value: not set
	}
	return iac.Value[int]{Value: int(f), Set: true, Known: true, At: at, Attr: key}
}

// firstObject returns the first element of a nested block list (the JSON shape of a block).
func firstObject(raw any) map[string]any {
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil
	}
	obj, _ := list[0].(map[string]any)
	return obj
}

func unsetOptions(at iac.Position) iac.MetadataOptions {
	return iac.MetadataOptions{
		At:               at,
		HTTPEndpoint:     iac.Value[string]{At: at},
		HTTPTokens:       iac.Value[string]{At: at},
		HopLimit:         iac.Value[int]{At: at},
		HTTPProtocolIPv6: iac.Value[string]{At: at},
	}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
