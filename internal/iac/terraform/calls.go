package terraform

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// maxCallDepth bounds how deep local module calls are followed.
const maxCallDepth = 16

// moduleMetaArguments are the arguments of a module block that are not the module's variables
// (https://developer.hashicorp.com/terraform/language/modules/syntax).
var moduleMetaArguments = []string{"source", "version", "count", "for_each", "providers", "depends_on"}

// LoadModules reads the Terraform modules of a repository, the *.tf files of each directory
// keyed by the directory, as Terraform reads a configuration: a module that another module
// calls with a local source ("./nodes", "../modules/nodes") is read as each such call, its
// variables taking the caller's arguments where they are known statically and its resources
// addressed under the call ("module.nodes.aws_launch_template.this"); a module no other
// module calls is a root module, read with its variables' defaults. A local source outside the
// given directories is read too, as Terraform would; one that does not exist is a problem at
// the call. Problems of a module read several times are reported once.
func LoadModules(dirs map[string][]string) ([]iac.NodeGroup, []iac.Problem, error) {
	l := &loader{parsed: map[string]*module{}, seen: map[iac.Problem]bool{}}
	names := make([]string, 0, len(dirs))
	for dir := range dirs {
		names = append(names, filepath.Clean(dir))
	}
	sort.Strings(names)
	byDir := make(map[string][]string, len(dirs))
	for dir, files := range dirs {
		byDir[filepath.Clean(dir)] = files
	}
	if err := l.parseAll(names, byDir); err != nil {
		return nil, nil, err
	}
	// Local module sources not among the directories given are part of the configuration too.
	for pending := names; len(pending) > 0; {
		var next []string
		for _, dir := range pending {
			for _, call := range l.parsed[dir].localCalls() {
				if _, ok := l.parsed[call.dir]; ok || slices.Contains(next, call.dir) {
					continue
				}
				if info, err := os.Stat(call.dir); err != nil || !info.IsDir() {
					continue // reported at the call when it is read
				}
				next = append(next, call.dir)
			}
		}
		sort.Strings(next)
		if err := l.parseAll(next, nil); err != nil {
			return nil, nil, err
		}
		pending = next
	}
	called := map[string]bool{}
	for _, m := range l.parsed {
		for _, call := range m.localCalls() {
			called[call.dir] = true
		}
	}
	var roots []string
	for _, dir := range names {
		if !called[dir] {
			roots = append(roots, dir)
		}
	}
	l.instantiateAll(roots)
	// A cycle of calls leaves no root: read its modules on their own.
	var rest []string
	for _, dir := range names {
		if called[dir] && !l.instantiated[dir] {
			rest = append(rest, dir)
		}
	}
	for _, dir := range rest {
		if !l.instantiated[dir] {
			l.instantiateAll([]string{dir})
		}
	}
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i].At, l.problems[j].At
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return l.groups, l.problems, nil
}

type loader struct {
	parsed       map[string]*module
	instantiated map[string]bool
	groups       []iac.NodeGroup
	problems     []iac.Problem
	seen         map[iac.Problem]bool
}

// reading is what the reading of one root module and the modules it calls found.
type reading struct {
	groups   []iac.NodeGroup
	problems []iac.Problem
	dirs     []string // the modules read
}

// instantiateAll reads the root modules dirs and the modules they call, several roots at a
// time, and adds what they found in the roots' order.
func (l *loader) instantiateAll(dirs []string) {
	results := make([]reading, len(dirs))
	iac.Parallel(len(dirs), func(i int) { l.instantiate(&results[i], dirs[i], nil, "", nil) })
	if l.instantiated == nil {
		l.instantiated = map[string]bool{}
	}
	for _, r := range results {
		l.groups = append(l.groups, r.groups...)
		for _, p := range r.problems {
			if !l.seen[p] {
				l.seen[p] = true
				l.problems = append(l.problems, p)
			}
		}
		for _, d := range r.dirs {
			l.instantiated[d] = true
		}
	}
}

// parseAll reads and parses the modules of dirs, several at a time: the files given in files,
// else every *.tf file of the directory.
func (l *loader) parseAll(dirs []string, files map[string][]string) error {
	parsed := make([]*module, len(dirs))
	errs := make([]error, len(dirs))
	iac.Parallel(len(dirs), func(i int) {
		paths, ok := files[dirs[i]]
		if !ok {
			var err error
			if paths, err = filepath.Glob(filepath.Join(dirs[i], "*.tf")); err != nil {
				errs[i] = fmt.Errorf("terraform: list %s: %w", dirs[i], err)
				return
			}
		}
		parsed[i], errs[i] = readModule(dirs[i], paths)
	})
	for i, dir := range dirs {
		if errs[i] != nil {
			return errs[i]
		}
		l.parsed[dir] = parsed[i]
	}
	return nil
}

// readModule reads and parses the files of one module, without evaluating it.
func readModule(dir string, paths []string) (*module, error) {
	paths = slices.Clone(paths)
	sort.Strings(paths)
	files := make(map[string][]byte, len(paths))
	var tooLarge []iac.Problem
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("terraform: %w", err)
		}
		if info.Size() > iac.MaxFileSize {
			tooLarge = append(tooLarge, iac.Problem{At: iac.Position{File: p}, Message: fmt.Sprintf("%d bytes, larger than %d: not read", info.Size(), iac.MaxFileSize)})
			continue
		}
		b, err := os.ReadFile(p) //nolint:gosec // the user names the files to audit
		if err != nil {
			return nil, fmt.Errorf("terraform: read %s: %w", p, err)
		}
		files[p] = b
	}
	m := parse(files)
	m.dir = dir
	m.problems = append(tooLarge, m.problems...)
	return m, nil
}

// call is a module block with a local source.
type call struct {
	name  string
	dir   string
	block *resource
}

// localCalls lists the module's calls of local modules, in name order.
func (m *module) localCalls() []call {
	var out []call
	for _, mod := range m.modules {
		attr, ok := mod.Body.Attributes["source"]
		if !ok {
			continue
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() || v.IsNull() || !v.Type().Equals(cty.String) {
			continue
		}
		src := v.AsString()
		if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
			continue // a registry, git or other remote source: not read
		}
		out = append(out, call{name: mod.Name, dir: filepath.Clean(filepath.Join(m.dir, src)), block: mod})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// instantiate reads the module of dir with the variables given (nil: their defaults), under the
// address prefix ("module.nodes."), and then the local modules it calls, into r. It only reads
// l.parsed, so roots can be read concurrently.
func (l *loader) instantiate(r *reading, dir string, inputs map[string]input, prefix string, stack []string) {
	root := dir
	if len(stack) > 0 {
		root = stack[0]
	}
	r.dirs = append(r.dirs, dir)
	base := l.parsed[dir]
	m := *base
	m.problems = nil
	m.inputs = inputs
	m.eval = newEvaluator(&m)
	groups := nameOptions(m.nodeGroups())
	for i := range groups {
		groups[i] = prefixed(groups[i], prefix)
		if prefix != "" {
			groups[i].Root = root
		}
	}
	r.groups = append(r.groups, groups...)
	r.problems = append(r.problems, base.problems...)
	defer func() { r.problems = append(r.problems, m.problems...) }() // with those of the calls' for_each and count
	stack = append(stack, dir)
	for _, c := range m.localCalls() {
		at := c.block.At
		switch {
		case slices.Contains(stack, c.dir):
			r.problems = append(r.problems, iac.Problem{At: at, Message: fmt.Sprintf("module %s calls %s, which calls it back: not followed", c.name, c.dir)})
			continue
		case len(stack) >= maxCallDepth:
			r.problems = append(r.problems, iac.Problem{At: at, Message: fmt.Sprintf("module %s: local module calls nested deeper than %d: not followed", c.name, maxCallDepth)})
			continue
		}
		if _, ok := l.parsed[c.dir]; !ok {
			r.problems = append(r.problems, iac.Problem{At: at, Message: fmt.Sprintf("module %s: source %s is not a directory of *.tf files", c.name, c.dir)})
			continue
		}
		// A call with for_each or count is one instantiation per instance, under
		// module.NAME["key"]. or module.NAME[0]., its arguments evaluated with each or count.
		for _, in := range m.instances(c.block) {
			leave := m.enter(in)
			addr := prefix + "module." + c.name + in.index()
			args := map[string]input{}
			for name, attr := range c.block.Body.Attributes {
				if slices.Contains(moduleMetaArguments, name) {
					continue
				}
				v, ok := m.eval.value(attr.Expr)
				if !ok {
					v = cty.DynamicVal
				}
				args[name] = input{value: v, from: fmt.Sprintf("%s argument %s = %s at %s", addr, name, m.source(attr.Expr)+m.instanceNote(attr.Expr), position(attr.Expr.Range()))}
			}
			leave()
			l.instantiate(r, c.dir, args, addr+".", stack)
		}
	}
}

// input is a variable's value given by a module call, and where it was given.
type input struct {
	value cty.Value
	from  string
}

// prefixed puts a group read in a called module under the call's address.
func prefixed(g iac.NodeGroup, prefix string) iac.NodeGroup {
	if prefix == "" {
		return g
	}
	g.Resource = prefix + g.Resource
	if g.Options.Resource != "" {
		g.Options.Resource = prefix + g.Options.Resource
	}
	if g.Newest != nil {
		newest := *g.Newest
		newest.Resource = prefix + newest.Resource
		g.Newest = &newest
	}
	return g
}
