package terraform

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// resource is one `resource "TYPE" "NAME"` block.
type resource struct {
	Type, Name string
	Body       *hclsyntax.Body
	At         iac.Position
}

func (r *resource) address() string { return r.Type + "." + r.Name }

// module is one Terraform module: the blocks of all its *.tf files, with the source of each
// file kept to quote expressions as written.
type module struct {
	sources   map[string][]byte // file name → content
	resources []*resource
	byAddress map[string]*resource
	modules   []*resource // module "NAME" blocks, Type "module"
	locals    map[string]*hclsyntax.Attribute
	variables map[string]*hclsyntax.Body
	eval      *evaluator
	problems  []iac.Problem
	// dir is the module's directory; inputs are the variables a module call gives it (nil for
	// a root module: its variables' defaults).
	dir    string
	inputs map[string]input
}

// Load reads every *.tf file of dir as one Terraform module and returns the node groups,
// instances and launch settings it declares. Files that do not parse are reported as
// problems; the error is only for a directory that cannot be read.
func Load(dir string) ([]iac.NodeGroup, []iac.Problem, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("terraform: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, nil, fmt.Errorf("terraform: list %s: %w", dir, err)
	}
	return LoadFiles(paths)
}

// LoadFiles reads the given *.tf files as one module (the files of one directory), with the
// local modules it calls (LoadModules). A file larger than iac.MaxFileSize is a problem and is
// not read; the error is for a file that cannot be read at all.
func LoadFiles(paths []string) ([]iac.NodeGroup, []iac.Problem, error) {
	if len(paths) == 0 {
		return nil, nil, nil
	}
	return LoadModules(map[string][]string{filepath.Dir(paths[0]): paths})
}

// parseModule reads and evaluates a module from file contents keyed by file name, with its
// variables' defaults. It never fails: what it cannot read becomes a Problem.
func parseModule(files map[string][]byte) ([]iac.NodeGroup, []iac.Problem) {
	m := parse(files)
	m.eval = newEvaluator(m)
	groups := nameOptions(m.nodeGroups())
	sort.SliceStable(m.problems, func(i, j int) bool {
		a, b := m.problems[i].At, m.problems[j].At
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return groups, m.problems
}

// parse parses a module's files, in name order, without evaluating anything.
func parse(files map[string][]byte) *module {
	m := &module{
		sources:   files,
		byAddress: map[string]*resource{},
		locals:    map[string]*hclsyntax.Attribute{},
		variables: map[string]*hclsyntax.Body{},
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m.addFile(name, files[name])
	}
	return m
}

func (m *module) addFile(name string, src []byte) {
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	m.addDiagnostics(diags)
	if file == nil || diags.HasErrors() {
		return // a partial parse would be read as something the file does not say
	}
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return
	}
	for _, block := range body.Blocks {
		switch block.Type {
		case "resource":
			if len(block.Labels) != 2 {
				continue
			}
			r := &resource{Type: block.Labels[0], Name: block.Labels[1], Body: block.Body, At: position(block.DefRange())}
			if prev, dup := m.byAddress[r.address()]; dup {
				m.problem(r.At, fmt.Sprintf("%s is declared again (first at %s:%d)", r.address(), prev.At.File, prev.At.Line))
				continue
			}
			m.resources = append(m.resources, r)
			m.byAddress[r.address()] = r
		case "module":
			if len(block.Labels) != 1 {
				continue
			}
			m.modules = append(m.modules, &resource{Type: "module", Name: block.Labels[0], Body: block.Body, At: position(block.DefRange())})
		case "locals":
			for name, attr := range block.Body.Attributes {
				if prev, dup := m.locals[name]; dup {
					m.problem(position(attr.NameRange), fmt.Sprintf("local.%s is declared again (first at %s:%d)", name, prev.NameRange.Filename, prev.NameRange.Start.Line))
					continue
				}
				m.locals[name] = attr
			}
		case "variable":
			if len(block.Labels) == 1 {
				m.variables[block.Labels[0]] = block.Body
			}
		}
	}
}

func (m *module) addDiagnostics(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		at := iac.Position{}
		if d.Subject != nil {
			at = position(*d.Subject)
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		m.problem(at, msg)
	}
}

func (m *module) problem(at iac.Position, msg string) {
	m.problems = append(m.problems, iac.Problem{At: at, Message: msg})
}

// source returns the expression as written.
func (m *module) source(expr hclsyntax.Expression) string {
	r := expr.Range()
	src := m.sources[r.Filename]
	if r.Start.Byte < 0 || r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
		return ""
	}
	return strings.TrimSpace(string(src[r.Start.Byte:r.End.Byte]))
}

func position(r hcl.Range) iac.Position {
	return iac.Position{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column}
}

// nodeGroups turns the module's resources into node groups, one per instance of a resource
// with for_each or count (instances). Launch templates and launch configurations that no node
// group or autoscaling group uses are returned on their own, so that their settings are still
// audited.
func (m *module) nodeGroups() []iac.NodeGroup {
	var groups []iac.NodeGroup
	used := map[string]bool{} // instance addresses
	for _, r := range m.resources {
		for _, in := range m.instances(r) {
			switch r.Type {
			case "aws_eks_node_group":
				groups = append(groups, m.eksNodeGroup(in, used))
			case "aws_autoscaling_group":
				groups = append(groups, m.autoscalingGroup(in, used))
			case "aws_instance":
				groups = append(groups, iac.NodeGroup{Resource: in.address(), At: r.At, Options: m.metadataOptions(in, true)})
			}
		}
	}
	for _, mod := range m.modules {
		groups = append(groups, m.eksModule(mod)...)
	}
	for _, r := range m.resources {
		for _, in := range m.instances(r) {
			if used[in.address()] {
				continue
			}
			switch r.Type {
			case "aws_launch_template":
				groups = append(groups, iac.NodeGroup{Resource: in.address(), At: r.At, Options: m.metadataOptions(in, true)})
			case "aws_launch_configuration":
				groups = append(groups, iac.NodeGroup{Resource: in.address(), At: r.At, Options: m.metadataOptions(in, false)})
			}
		}
	}
	return groups
}

// nameOptions names the resource and the position of every group's options that do not name
// them yet (a group's own options, not those of a launch template it uses): the origin of an
// option the code leaves out is read from them (iac.Resolve).
func nameOptions(groups []iac.NodeGroup) []iac.NodeGroup {
	for i := range groups {
		o := &groups[i].Options
		if o.Resource == "" {
			o.Resource = groups[i].Resource
		}
		if o.At == (iac.Position{}) {
			o.At = groups[i].At
		}
	}
	return groups
}
