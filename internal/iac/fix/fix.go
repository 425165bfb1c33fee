// Package fix writes the instance metadata fix into the user's own infrastructure code: given
// the node groups the readers of package iac found, Patch returns a unified diff that makes
// each group's launch settings require session tokens (IMDSv2) with a hop limit of at most
// the target, and notes for the groups it cannot patch.
//
// What gets patched (docs/iac.md, "Fixing the code"):
//
//   - Terraform aws_launch_template, aws_instance and aws_launch_configuration: http_tokens
//     and http_put_response_hop_limit in the metadata_options block, the block added when it
//     is missing;
//   - terraform-aws-modules/eks node groups: metadata_options in the node group's object of
//     eks_managed_node_groups;
//   - CloudFormation (YAML and JSON) AWS::EC2::LaunchTemplate
//     LaunchTemplateData.MetadataOptions, AWS::EC2::Instance and
//     AWS::AutoScaling::LaunchConfiguration MetadataOptions: HttpTokens and
//     HttpPutResponseHopLimit;
//   - eksctl node groups: disablePodIMDS (hop limit 1) or disableIMDSv1 (hop limit 2).
//
// Edits are made at the positions the files' own parsers (hclsyntax, YAML nodes) give, line
// by line, so indentation, comments and everything else stay as written. The package only
// reads, through the function the caller gives; it writes nothing.
package fix

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// Target is what the fix sets: HttpTokens "required" and a hop limit of at most HopLimit.
type Target struct {
	// HopLimit is 1, or 2 when pods on the pod network need the instance metadata service;
	// the caller decides. A group whose hop limit is already at most HopLimit keeps it.
	HopLimit int
	// Base is the directory the diff's paths are relative to ("a/" and "b/" prefixed, for
	// patch -p1 or git apply run in Base). Empty: the files' paths as the readers give them,
	// which must then be relative.
	Base string
}

// Note is a group Patch did not patch, or patched with a caveat: why, and what to do by hand.
type Note struct {
	// Resource is the node group (iac.NodeGroup.Resource) and At where its options are.
	Resource string
	At       iac.Position
	Message  string
}

func (n Note) String() string { return fmt.Sprintf("%s: %s: %s", n.At, n.Resource, n.Message) }

// Patch returns a unified diff that makes the launch settings of every group require tokens
// with a hop limit of at most t.HopLimit, and notes for the groups it cannot patch. Only
// groups that need it are patched: their options, resolved with iac.Resolve as the code alone
// states them (no account defaults, AMI unknown), are not tokens required, or the hop limit
// is unknown or above t.HopLimit. Groups that share one launch template patch it once.
//
// read returns a file's content by the path the readers put in iac.Position.File. The error
// is for a file that cannot be read, a bad target or a path outside t.Base; what a group's
// code does not allow to patch is a Note.
func Patch(groups []iac.NodeGroup, read func(file string) ([]byte, error), t Target) (diff []byte, notes []Note, err error) {
	if t.HopLimit < 1 || t.HopLimit > 64 {
		return nil, nil, fmt.Errorf("fix: hop limit %d: want 1 to 64", t.HopLimit)
	}
	p := &patcher{read: read, target: t, files: map[string]*file{}, done: map[string]bool{}, union: map[string]needs{}}
	// The instances of a Terraform for_each or count share one block: it gets what any of
	// them needs.
	for _, g := range groups {
		g = local(g)
		o := g.Options
		if g.VersionInDoubt != "" && g.Newest != nil {
			o = *g.Newest
		}
		n, k := p.needs(o), blockKey(g, o)
		u := p.union[k]
		p.union[k] = needs{tokens: u.tokens || n.tokens, hop: u.hop || n.hop}
	}
	for _, g := range groups {
		if err := p.group(local(g)); err != nil {
			return nil, nil, err
		}
	}
	names := make([]string, 0, len(p.files))
	for name := range p.files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		rel, err := relative(t.Base, name)
		if err != nil {
			return nil, nil, err
		}
		if err := unifiedDiff(&out, rel, p.files[name]); err != nil {
			return nil, nil, fmt.Errorf("fix: %w", err)
		}
	}
	return out.Bytes(), p.notes, nil
}

// local names the resources of a group read through a module call by their address inside
// the called module, where the patch edits them: "module.nodes.aws_launch_template.this" is
// aws_launch_template.this of the module's files. Two calls of one module patch it once.
func local(g iac.NodeGroup) iac.NodeGroup {
	if g.Root == "" {
		return g
	}
	g.Resource = localAddress(g.Resource)
	g.Options.Resource = localAddress(g.Options.Resource)
	if g.Newest != nil {
		newest := *g.Newest
		newest.Resource = localAddress(newest.Resource)
		g.Newest = &newest
	}
	return g
}

// localAddress strips the module calls from a Terraform address, keeping a call of the
// terraform-aws-modules/eks module's node groups, which the module's caller states. A call
// with for_each or count has an instance key: `module.nodes["a.b"].aws_launch_template.this`
// is aws_launch_template.this.
func localAddress(a string) string {
	for strings.HasPrefix(a, "module.") {
		rest := a[len("module."):]
		i := stepEnd(rest)
		if i >= len(rest) || rest[i] != '.' || strings.HasPrefix(rest[i+1:], "eks_managed_node_groups[") {
			return a
		}
		a = rest[i+1:]
	}
	return a
}

// stepEnd returns the end of the first step of an address: its name and instance key, if any
// (`nodes["a.b"]`, `nodes[0]`).
func stepEnd(a string) int {
	i := strings.IndexAny(a, ".[")
	if i < 0 {
		return len(a)
	}
	if a[i] == '.' {
		return i
	}
	if i+1 < len(a) && a[i+1] == '"' {
		if key, err := strconv.QuotedPrefix(a[i+1:]); err == nil && i+1+len(key) < len(a) && a[i+1+len(key)] == ']' {
			return i + 1 + len(key) + 1
		}
		return len(a)
	}
	if j := strings.IndexByte(a[i:], ']'); j >= 0 {
		return i + j + 1
	}
	return len(a)
}

// tfBlock returns the labels of the resource block of a Terraform resource address, without
// its instance key: `aws_launch_template.this["a"]` is the block aws_launch_template "this";
// every instance of a for_each or count is written by that one block.
func tfBlock(address string) (typ, name string) {
	typ, rest, _ := strings.Cut(address, ".")
	name, _, _ = strings.Cut(rest, "[")
	return typ, name
}

// blockKey identifies the code that states a group's options: the file and the resource, a
// Terraform resource by its block, so that the instances of a for_each or count are patched
// once.
func blockKey(g iac.NodeGroup, o iac.MetadataOptions) string {
	if o.Resource == "" {
		return g.At.File + "\x00" + g.Resource
	}
	if hasPrefix(o.Resource, terraformResources) {
		typ, name := tfBlock(o.Resource)
		return o.At.File + "\x00" + typ + "." + name
	}
	return o.At.File + "\x00" + o.Resource
}

// relative returns file's path relative to base, with forward slashes.
func relative(base, file string) (string, error) {
	rel := file
	if base != "" {
		absBase, err := filepath.Abs(base)
		if err != nil {
			return "", fmt.Errorf("fix: base %s: %w", base, err)
		}
		absFile, err := filepath.Abs(file)
		if err != nil {
			return "", fmt.Errorf("fix: %s: %w", file, err)
		}
		if rel, err = filepath.Rel(absBase, absFile); err != nil {
			return "", fmt.Errorf("fix: %s is not under %s: %w", file, base, err)
		}
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("fix: %s is not under the base directory %q", file, base)
	}
	return rel, nil
}

type patcher struct {
	read   func(string) ([]byte, error)
	target Target
	files  map[string]*file
	done   map[string]bool  // file and resource already patched or noted
	union  map[string]needs // by blockKey: what the groups of one resource block need
	notes  []Note
}

// file returns the file being patched, reading it the first time.
func (p *patcher) file(path string) (*file, error) {
	if f, ok := p.files[path]; ok {
		return f, nil
	}
	data, err := p.read(path)
	if err != nil {
		return nil, fmt.Errorf("fix: read %s: %w", path, err)
	}
	f := &file{path: path, data: data}
	p.files[path] = f
	return f, nil
}

// needs says which options a group's fix sets.
type needs struct{ tokens, hop bool }

func (p *patcher) needs(o iac.MetadataOptions) needs {
	r := iac.Resolve(o, iac.AccountDefaults{}, iac.AMISupportUnknown)
	return needs{
		tokens: !r.Tokens.Known || r.Tokens.Value != "required",
		hop:    !r.HopLimit.Known || r.HopLimit.Value > p.target.HopLimit,
	}
}

// byHand is what a note asks the user to set.
func (p *patcher) byHand() string {
	return fmt.Sprintf("set HttpTokens required and HttpPutResponseHopLimit %d there by hand", p.target.HopLimit)
}

func (p *patcher) note(g iac.NodeGroup, at iac.Position, format string, args ...any) {
	if at.File == "" {
		at = g.Options.At
	}
	if at.File == "" {
		at = g.At
	}
	msg := fmt.Sprintf(format, args...)
	if o := g.Options.Resource; o != "" && o != g.Resource {
		msg = o + ": " + msg
	}
	p.notes = append(p.notes, Note{Resource: g.Resource, At: at, Message: msg})
}

// The resources whose options Patch edits, by the prefix of iac.MetadataOptions.Resource.
var (
	terraformResources = []string{"aws_launch_template.", "aws_instance.", "aws_launch_configuration."}
	cfnResources       = []string{"AWS::EC2::LaunchTemplate ", "AWS::EC2::Instance ", "AWS::AutoScaling::LaunchConfiguration "}
)

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// group patches one group's options, or notes why not.
func (p *patcher) group(g iac.NodeGroup) error {
	if g.VersionInDoubt != "" && g.Newest != nil {
		return p.versionInDoubt(g)
	}
	o := g.Options
	n := p.needs(o)
	if !n.tokens && !n.hop {
		return nil
	}
	key := blockKey(g, o)
	if p.done[key] {
		return nil
	}
	p.done[key] = true
	if u, ok := p.union[key]; ok {
		n = u
	}
	file := o.At.File
	switch {
	case hasPrefix(o.Resource, terraformResources) && strings.HasSuffix(file, ".tf"):
		return p.terraform(g, n)
	case strings.HasPrefix(o.Resource, "module.") && strings.Contains(o.Resource, ".eks_managed_node_groups[") && strings.HasSuffix(file, ".tf"):
		return p.eksModule(g, n)
	case hasPrefix(o.Resource, cfnResources) && file != "":
		return p.cloudFormation(g, n)
	case strings.HasPrefix(o.Resource, "eksctl ") && file != "":
		return p.eksctl(g, n)
	case hasPrefix(o.Resource, terraformResources) && strings.HasSuffix(file, ".json"):
		p.note(g, o.At, "the options come from a Terraform plan, not from the configuration: %s in the Terraform code", p.byHand())
		return nil
	}
	p.note(g, o.At, "the options come from outside the files read (%s): %s", outside(o), p.byHand())
	return nil
}

// outside describes where a group's options come from when the files do not state them.
func outside(o iac.MetadataOptions) string {
	for _, v := range []iac.Value[string]{o.HTTPTokens, o.HTTPEndpoint} {
		if v.Expr != "" {
			return v.Expr
		}
	}
	if o.HopLimit.Expr != "" {
		return o.HopLimit.Expr
	}
	if o.Resource != "" {
		return o.Resource
	}
	return "no launch template or launch parameters in the code"
}
