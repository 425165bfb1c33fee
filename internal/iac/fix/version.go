package fix

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// versionInDoubt patches a node group that launches a launch template version the code may not
// state (iac.NodeGroup.VersionInDoubt): the template's options, as the code states them for
// its newest version, and the group's reference, so that it launches the newest version.
func (p *patcher) versionInDoubt(g iac.NodeGroup) error {
	newest := g
	newest.Options, newest.VersionInDoubt, newest.Newest = *g.Newest, "", nil
	if err := p.group(newest); err != nil {
		return err
	}
	template := g.Newest.Resource
	switch {
	case strings.HasPrefix(g.Resource, "aws_eks_node_group.") && strings.HasSuffix(g.At.File, ".tf"):
		return p.terraformVersion(g, template)
	case strings.HasPrefix(g.Resource, "AWS::EKS::Nodegroup ") && g.At.File != "":
		return p.cloudFormationVersion(g, strings.TrimPrefix(template, "AWS::EC2::LaunchTemplate "))
	}
	p.note(g, g.At, "%s; make it launch the newest version of %s by hand", g.VersionInDoubt, template)
	return nil
}

// terraformVersion sets version = TEMPLATE.latest_version in the launch_template block of an
// aws_eks_node_group.
func (p *patcher) terraformVersion(g iac.NodeGroup, template string) error {
	f, err := p.file(g.At.File)
	if err != nil {
		return err
	}
	body, ok := p.parseHCL(g, f)
	if !ok {
		return nil
	}
	typ, name := tfBlock(g.Resource)
	key := "version\x00" + g.At.File + "\x00" + typ + "." + name
	if p.done[key] {
		return nil // another instance of the node group's for_each or count
	}
	p.done[key] = true
	res := findBlock(body, "resource", typ, name)
	var lt *hclsyntax.Block
	if res != nil {
		lt = findBlock(res.Body, "launch_template")
	}
	value, ok := latestVersion(f, lt, template)
	if lt == nil || lt.OpenBraceRange.Start.Line == lt.CloseBraceRange.Start.Line || !ok {
		p.note(g, g.At, "%s; set version = %s.latest_version in its launch_template block by hand", g.VersionInDoubt, template)
		return nil
	}
	if attr, ok := lt.Body.Attributes["version"]; ok {
		r := attr.Expr.Range()
		f.add(edit{start: r.Start.Byte, end: r.End.Byte, text: value})
		return nil
	}
	indent := p.childIndent(f, lt.OpenBraceRange.Start.Byte, lt.Body)
	off := f.afterLine(lt.OpenBraceRange.Start.Byte)
	f.add(edit{start: off, end: off, text: indent + "version = " + value + f.newline()})
	return nil
}

// latestVersion is the reference to the newest version of the template a launch_template
// block names, written as the block refers to the template: `aws_launch_template.this.id`
// gives `aws_launch_template.this.latest_version`, `aws_launch_template.this[each.key].id`
// `aws_launch_template.this[each.key].latest_version`, so that every instance of a for_each
// or count keeps its own template. A template named by a literal name gives its address, but
// not an instance of a template's for_each or count: ok is false then.
func latestVersion(f *file, lt *hclsyntax.Block, template string) (string, bool) {
	if lt != nil {
		for _, name := range []string{"id", "name"} {
			attr, ok := lt.Body.Attributes[name]
			if !ok {
				continue
			}
			src := f.source(attr.Expr.Range())
			if strings.HasPrefix(src, "aws_launch_template.") && strings.HasSuffix(src, "."+name) && !strings.ContainsAny(src, " \n") {
				return strings.TrimSuffix(src, "."+name) + ".latest_version", true
			}
		}
	}
	if strings.Contains(template, "[") {
		return "", false
	}
	return template + ".latest_version", true
}

// cloudFormationVersion sets Version: !GetAtt TEMPLATE.LatestVersionNumber in the LaunchTemplate
// of an AWS::EKS::Nodegroup.
func (p *patcher) cloudFormationVersion(g iac.NodeGroup, template string) error {
	f, err := p.file(g.At.File)
	if err != nil {
		return err
	}
	d, ok := p.parseYAML(g, f)
	if !ok {
		return nil
	}
	_, name, _ := strings.Cut(g.Resource, " ")
	_, resources := pair(d.root, "Resources")
	_, res := pair(resources, name)
	_, props := pair(res, "Properties")
	ltKey, lt := pair(props, "LaunchTemplate")
	value := "!GetAtt " + template + ".LatestVersionNumber"
	if d.json {
		value = fmt.Sprintf(`{"Fn::GetAtt": [%s, "LatestVersionNumber"]}`, strconv.Quote(template))
	}
	done := false
	if k, v := pair(lt, "Version"); k != nil {
		done = d.replaceScalar(k, v, value)
	} else if lt != nil {
		key := "Version: "
		if d.json {
			key = `"Version": `
		}
		done = d.insertKeys(ltKey, lt, []string{key + value})
	}
	if !done {
		p.note(g, g.At, "%s; set LaunchTemplate.Version: !GetAtt %s.LatestVersionNumber by hand", g.VersionInDoubt, template)
	}
	return nil
}
