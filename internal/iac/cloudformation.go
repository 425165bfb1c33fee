package iac

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The CloudFormation resource types ReadCloudFormation reads, and their documentation.
const (
	cfnLaunchTemplate      = "AWS::EC2::LaunchTemplate"
	cfnInstance            = "AWS::EC2::Instance"
	cfnLaunchConfiguration = "AWS::AutoScaling::LaunchConfiguration"
	cfnNodegroup           = "AWS::EKS::Nodegroup"

	// CloudFormationLaunchTemplateDoc: LaunchTemplateData.MetadataOptions with HttpEndpoint,
	// HttpProtocolIpv6, HttpPutResponseHopLimit, HttpTokens.
	CloudFormationLaunchTemplateDoc = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ec2-launchtemplate-metadataoptions.html"
	// CloudFormationInstanceDoc: AWS::EC2::Instance MetadataOptions, the same four options.
	CloudFormationInstanceDoc = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ec2-instance-metadataoptions.html"
	// CloudFormationLaunchConfigurationDoc: AWS::AutoScaling::LaunchConfiguration
	// MetadataOptions with HttpEndpoint, HttpPutResponseHopLimit, HttpTokens (no IPv6).
	CloudFormationLaunchConfigurationDoc = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-autoscaling-launchconfiguration-metadataoptions.html"
	// CloudFormationNodegroupDoc: AWS::EKS::Nodegroup NodegroupName and LaunchTemplate
	// {Id | Name, Version}.
	// CloudFormationDefaultVersionDoc: "The default version of a launch template cannot be
	// specified in AWS CloudFormation" (AWS::EC2::LaunchTemplate, Fn::GetAtt DefaultVersionNumber);
	// a stack update adds a version and leaves the default at 1
	// (https://github.com/aws-cloudformation/cloudformation-coverage-roadmap/issues/1518).
	CloudFormationDefaultVersionDoc = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ec2-launchtemplate.html#aws-resource-ec2-launchtemplate-return-values"
	CloudFormationNodegroupDoc      = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-eks-nodegroup-launchtemplatespecification.html"
)

// IsCloudFormation reports whether a parsed document is a CloudFormation template: a
// mapping with a Resources mapping whose entries have a Type.
func IsCloudFormation(root *yaml.Node) bool {
	_, resources := pairs(field(root, "Resources"))
	for _, r := range resources {
		if t, ok := scalar(field(r, "Type")); ok && strings.Contains(t, "::") {
			return true
		}
	}
	return false
}

// ReadCloudFormation reads the instance metadata options of a CloudFormation template, YAML
// (with the short intrinsic function tags, !Ref, !Sub, !GetAtt, !If...) or JSON:
//
//   - AWS::EC2::LaunchTemplate LaunchTemplateData.MetadataOptions;
//   - AWS::EC2::Instance MetadataOptions;
//   - AWS::AutoScaling::LaunchConfiguration MetadataOptions;
//   - AWS::EKS::Nodegroup, whose LaunchTemplate (Id or Name, by !Ref or literal name) is
//     resolved to a launch template of the same template.
//
// Each resource is one NodeGroup. A literal is known; an intrinsic function or a !Ref to a
// parameter without a Default is unknown, with Expr set. A !Ref to a parameter with a Default
// takes the default, Expr naming the parameter. A Nodegroup without LaunchTemplate runs from
// the template EKS creates itself, which layer.EKSNodeGroup knows: it is not returned.
//
// A document that is not a template (IsCloudFormation) is a Problem.
//
// The error is for a file that is not YAML or JSON at all; everything else is a Problem.
func ReadCloudFormation(file string, data []byte) ([]NodeGroup, []Problem, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, nil, err
	}
	if root == nil {
		return nil, nil, nil
	}
	if !IsCloudFormation(root) {
		return nil, []Problem{{At: at(file, root), Message: "not a CloudFormation template: no Resources mapping of typed resources (Type: AWS::...)"}}, nil
	}
	t := cfnTemplate{file: file, resources: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, params: map[string]*yaml.Node{}, used: map[string]bool{}}
	keys, values := pairs(field(root, "Parameters"))
	for i, k := range keys {
		t.params[k.Value] = values[i]
	}
	keys, values = pairs(field(root, "Resources"))
	for i, k := range keys {
		t.resources[k.Value], t.keys[k.Value] = values[i], k
	}
	var groups []NodeGroup
	for i, k := range keys {
		name, r := k.Value, values[i]
		typ, _ := scalar(field(r, "Type"))
		props := field(r, "Properties")
		resource := typ + " " + name
		switch typ {
		case cfnLaunchTemplate:
			g := NodeGroup{Resource: resource, At: at(file, k)}
			g.Options = t.launchTemplateOptions(name)
			groups = append(groups, g)
		case cfnInstance:
			g := NodeGroup{Resource: resource, At: at(file, k)}
			g.Options = t.options(resource, k, field(props, "MetadataOptions"), "MetadataOptions", true)
			groups = append(groups, g)
		case cfnLaunchConfiguration:
			g := NodeGroup{Resource: resource, At: at(file, k)}
			g.Options = t.options(resource, k, field(props, "MetadataOptions"), "MetadataOptions", false)
			groups = append(groups, g)
		case cfnNodegroup:
			if g, ok := t.nodegroup(resource, k, props); ok {
				groups = append(groups, g)
			}
		}
	}
	// A launch template a Nodegroup uses is reported through the Nodegroup, as the Terraform
	// reader does; one no Nodegroup uses is a group of its own.
	groups = slices.DeleteFunc(groups, func(g NodeGroup) bool {
		name, isTemplate := strings.CutPrefix(g.Resource, cfnLaunchTemplate+" ")
		return isTemplate && t.used[name]
	})
	return groups, t.problems, nil
}

type cfnTemplate struct {
	file      string
	resources map[string]*yaml.Node
	keys      map[string]*yaml.Node // the resources' keys, for their positions
	params    map[string]*yaml.Node
	problems  []Problem
	// used names the launch templates a Nodegroup uses.
	used map[string]bool
}

func (t *cfnTemplate) problem(n *yaml.Node, format string, args ...any) {
	t.problems = append(t.problems, Problem{At: at(t.file, n), Message: fmt.Sprintf(format, args...)})
}

// launchTemplateOptions reads the options of launch template resource name.
func (t *cfnTemplate) launchTemplateOptions(name string) MetadataOptions {
	r, key := t.resources[name], t.keys[name]
	block := field(field(field(r, "Properties"), "LaunchTemplateData"), "MetadataOptions")
	return t.options(cfnLaunchTemplate+" "+name, key, block, "LaunchTemplateData.MetadataOptions", true)
}

// options reads a MetadataOptions block; path is its attribute path. A missing block leaves
// every option unset, at the resource.
func (t *cfnTemplate) options(resource string, key, block *yaml.Node, path string, ipv6 bool) MetadataOptions {
	o := MetadataOptions{Resource: resource, At: at(t.file, key)}
	if block == nil {
		return o
	}
	o.At = at(t.file, block)
	if block.Kind != yaml.MappingNode {
		// MetadataOptions: !If [...], or a parameter: every option unknown.
		expr := t.expr(block)
		o.HTTPEndpoint = Value[string]{Set: true, At: o.At, Expr: expr, Attr: path}
		o.HTTPTokens = Value[string]{Set: true, At: o.At, Expr: expr, Attr: path}
		o.HopLimit = Value[int]{Set: true, At: o.At, Expr: expr, Attr: path}
		if ipv6 {
			o.HTTPProtocolIPv6 = Value[string]{Set: true, At: o.At, Expr: expr, Attr: path}
		}
		return o
	}
	o.HTTPEndpoint = t.enum(block, path, "HttpEndpoint", "enabled", "disabled")
	o.HTTPTokens = t.enum(block, path, "HttpTokens", "optional", "required")
	o.HopLimit = t.hopLimit(block, path)
	if ipv6 {
		o.HTTPProtocolIPv6 = t.enum(block, path, "HttpProtocolIpv6", "enabled", "disabled")
	}
	return o
}

// value evaluates property key of block: a literal, a !Ref to a parameter with a Default, or
// unknown. v.Set is false when the property is missing.
func (t *cfnTemplate) value(block *yaml.Node, key string) (text string, v Value[string]) {
	n := field(block, key)
	if n == nil {
		return "", v
	}
	v.Set, v.At = true, at(t.file, n)
	if s, ok := scalar(n); ok {
		v.Value, v.Known = s, true
		return s, v
	}
	v.Expr = t.expr(n)
	if ref, ok := refTarget(n); ok {
		if def, ok := scalar(field(t.params[ref], "Default")); ok {
			v.Value, v.Known = def, true
			v.Expr += " (parameter default)"
			return def, v
		}
	}
	return "", v
}

func (t *cfnTemplate) enum(block *yaml.Node, path, key string, allowed ...string) Value[string] {
	text, v := t.value(block, key)
	v.Attr = path + "." + key
	if !v.Known {
		return v
	}
	for _, a := range allowed {
		if text == a {
			return v
		}
	}
	t.problem(field(block, key), "%s %q: want %s", v.Attr, text, strings.Join(allowed, " or "))
	v.Known, v.Expr = false, strconv.Quote(text)
	return v
}

func (t *cfnTemplate) hopLimit(block *yaml.Node, path string) Value[int] {
	text, s := t.value(block, "HttpPutResponseHopLimit")
	v := Value[int]{Set: s.Set, At: s.At, Expr: s.Expr, Attr: path + ".HttpPutResponseHopLimit"}
	if !s.Known {
		return v
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || n > 64 {
		t.problem(field(block, "HttpPutResponseHopLimit"), "%s %q: want an integer from 1 to 64", v.Attr, text)
		v.Expr = strconv.Quote(text)
		return v
	}
	v.Value, v.Known = n, true
	return v
}

// refTarget returns the name a Ref names: !Ref X or {"Ref": "X"}.
func refTarget(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n == nil {
		return "", false
	}
	if n.Tag == "!Ref" && n.Kind == yaml.ScalarNode {
		return n.Value, true
	}
	if keys, values := pairs(n); len(keys) == 1 && keys[0].Value == "Ref" {
		return scalar(values[0])
	}
	return "", false
}

// expr renders a non-literal value for reports: "!Ref HopLimit", "!If", "Fn::Sub".
func (t *cfnTemplate) expr(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return ""
	case isCustomTag(n.Tag) && n.Kind == yaml.ScalarNode:
		return n.Tag + " " + n.Value
	case isCustomTag(n.Tag):
		return n.Tag
	}
	if keys, values := pairs(n); len(keys) == 1 {
		if s, ok := scalar(values[0]); ok {
			return keys[0].Value + " " + s
		}
		return keys[0].Value
	}
	return "a " + kindName(n) + " value"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "scalar"
}

// nodegroup reads an AWS::EKS::Nodegroup. ok is false for one without LaunchTemplate.
func (t *cfnTemplate) nodegroup(resource string, key, props *yaml.Node) (NodeGroup, bool) {
	lt := field(props, "LaunchTemplate")
	if lt == nil {
		return NodeGroup{}, false
	}
	g := NodeGroup{Resource: resource, At: at(t.file, key)}
	if name, ok := scalar(field(props, "NodegroupName")); ok {
		g.EKSNodeGroup = name
	}
	if v, ok := scalar(field(lt, "Version")); ok {
		g.LaunchTemplateVersion = v
	}
	unknown := func(n *yaml.Node, why string) NodeGroup {
		g.Options = unknownCFNOptions(resource, at(t.file, n), why)
		return g
	}
	for _, prop := range []string{"Id", "Name"} {
		n := field(lt, prop)
		if n == nil {
			continue
		}
		if ref, ok := refTarget(n); ok {
			r, found := t.resources[ref]
			if !found {
				if _, param := t.params[ref]; param {
					return unknown(n, fmt.Sprintf("LaunchTemplate.%s !Ref %s, a parameter: a launch template outside this template", prop, ref)), true
				}
				t.problem(n, "%s LaunchTemplate.%s: !Ref %s names no resource or parameter of the template", resource, prop, ref)
				return unknown(n, fmt.Sprintf("LaunchTemplate.%s !Ref %s, which names nothing", prop, ref)), true
			}
			if typ, _ := scalar(field(r, "Type")); typ != cfnLaunchTemplate {
				t.problem(n, "%s LaunchTemplate.%s: !Ref %s is a %s, not an %s", resource, prop, ref, typ, cfnLaunchTemplate)
				return unknown(n, fmt.Sprintf("LaunchTemplate.%s !Ref %s, not a launch template", prop, ref)), true
			}
			t.used[ref] = true
			return t.templateVersion(g, lt, ref), true
		}
		if literal, ok := scalar(n); ok {
			if prop == "Id" {
				g.LaunchTemplateID = literal
				return unknown(n, fmt.Sprintf("LaunchTemplate.Id %s: a launch template outside this template", literal)), true
			}
			if name, found := t.launchTemplateNamed(literal); found {
				t.used[name] = true
				return t.templateVersion(g, lt, name), true
			}
			return unknown(n, fmt.Sprintf("LaunchTemplate.Name %s: a launch template outside this template", literal)), true
		}
		return unknown(n, "LaunchTemplate."+prop+" "+t.expr(n)), true
	}
	t.problem(lt, "%s LaunchTemplate: neither Id nor Name", resource)
	return unknown(lt, "LaunchTemplate without Id or Name"), true
}

// templateVersion sets the options of a Nodegroup that launches from launch template name of
// this template. The template states its newest version: a Version of !GetAtt
// NAME.LatestVersionNumber runs it. A Version left out, or !GetAtt NAME.DefaultVersionNumber,
// runs the default version, which CloudFormation never moves from version 1
// (CloudFormationDefaultVersionDoc); a literal number pins a version. Either way the options in
// force may be an older version's: unknown, with VersionInDoubt set and Newest the template's.
func (t *cfnTemplate) templateVersion(g NodeGroup, lt *yaml.Node, name string) NodeGroup {
	newest := t.launchTemplateOptions(name)
	v := field(lt, "Version")
	target, attr, isGetAtt := getAttTarget(v)
	if isGetAtt && target == name && attr == "LatestVersionNumber" {
		g.Options = newest
		return g
	}
	why := "LaunchTemplate.Version is " + t.expr(v)
	switch {
	case v == nil:
		why = "LaunchTemplate.Version left out: EKS launches the default version, which CloudFormation leaves at version 1"
	case isGetAtt && target == name && attr == "DefaultVersionNumber":
		why = "LaunchTemplate.Version is the default version, which CloudFormation leaves at version 1"
	default:
		if literal, ok := scalar(v); ok {
			why = "LaunchTemplate.Version pins version " + literal
		}
	}
	pos := at(t.file, lt)
	if v != nil {
		pos = at(t.file, v)
	}
	g.Options = unknownCFNOptions(g.Resource, pos, why+" of "+cfnLaunchTemplate+" "+name)
	g.VersionInDoubt = fmt.Sprintf("%s: %s, while the template states its newest version (Version: !GetAtt %s.LatestVersionNumber runs it; %s)", pos, why, name, CloudFormationDefaultVersionDoc)
	g.Newest = &newest
	return g
}

// unknownCFNOptions are options set to something not known statically, for why, at pos.
func unknownCFNOptions(resource string, pos Position, why string) MetadataOptions {
	const attr = "LaunchTemplate"
	return MetadataOptions{Resource: resource, At: pos,
		HTTPEndpoint:     Value[string]{Set: true, At: pos, Expr: why, Attr: attr},
		HTTPTokens:       Value[string]{Set: true, At: pos, Expr: why, Attr: attr},
		HopLimit:         Value[int]{Set: true, At: pos, Expr: why, Attr: attr},
		HTTPProtocolIPv6: Value[string]{Set: true, At: pos, Expr: why, Attr: attr},
	}
}

// getAttTarget reads !GetAtt NAME.ATTR, !GetAtt [NAME, ATTR] and {"Fn::GetAtt": [NAME, ATTR]}.
func getAttTarget(n *yaml.Node) (name, attr string, ok bool) {
	n = deref(n)
	if n == nil {
		return "", "", false
	}
	arg := n // !GetAtt
	if n.Tag != "!GetAtt" {
		keys, values := pairs(n)
		if len(keys) != 1 || keys[0].Value != "Fn::GetAtt" {
			return "", "", false
		}
		arg = deref(values[0])
	}
	switch arg.Kind {
	case yaml.ScalarNode:
		name, attr, ok = strings.Cut(arg.Value, ".")
		return name, attr, ok
	case yaml.SequenceNode:
		if len(arg.Content) == 2 {
			name, ok1 := scalar(arg.Content[0])
			attr, ok2 := scalar(arg.Content[1])
			return name, attr, ok1 && ok2
		}
	}
	return "", "", false
}

// launchTemplateNamed finds the launch template resource whose literal LaunchTemplateName is
// name, the first in name order when several are.
func (t *cfnTemplate) launchTemplateNamed(name string) (string, bool) {
	var found []string
	for id, r := range t.resources {
		if typ, _ := scalar(field(r, "Type")); typ != cfnLaunchTemplate {
			continue
		}
		if n, ok := scalar(field(field(r, "Properties"), "LaunchTemplateName")); ok && n == name {
			found = append(found, id)
		}
	}
	if len(found) == 0 {
		return "", false
	}
	sort.Strings(found)
	return found[0], true
}
