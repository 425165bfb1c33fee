package terraform

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// evaluator evaluates expressions with what is statically knowable in a module: variables
// (var.*: a module call's arguments, else their defaults), locals (local.*), the function
// toset, and each or count while an instance of a block with for_each or count is read.
// Nothing else is in its context, so a reference to a resource, a data source, a module
// output or another function call fails to evaluate and the value stays unknown.
type evaluator struct {
	// base has var and local; ctx is base, or a child of it with each or count while an
	// instance of an expanded block is read (module.enter), current that instance.
	base, ctx *hcl.EvalContext
	current   *instance
	instances map[*resource][]*instance
}

func newEvaluator(m *module) *evaluator {
	vars := map[string]cty.Value{}
	for name, body := range m.variables {
		if in, ok := m.inputs[name]; ok {
			vars[name] = in.value // the module call's argument
			continue
		}
		attr, ok := body.Attributes["default"]
		if !ok {
			vars[name] = cty.DynamicVal // no default: given at plan time, unknown here
			continue
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			vars[name] = cty.DynamicVal
			continue
		}
		vars[name] = v
	}
	l := &localsEvaluation{m: m, vars: vars, state: map[string]int{}, values: map[string]cty.Value{}}
	names := make([]string, 0, len(m.locals))
	for name := range m.locals {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		l.evaluate(name, nil)
	}
	ctx := l.context()
	return &evaluator{base: ctx, ctx: ctx, instances: map[*resource][]*instance{}}
}

// localsEvaluation evaluates locals depth-first, each after the locals it refers to, and
// reports a cycle at the local that closes it.
type localsEvaluation struct {
	m      *module
	vars   map[string]cty.Value
	state  map[string]int // 0 not visited, 1 in progress, 2 done
	values map[string]cty.Value
}

func (l *localsEvaluation) context() *hcl.EvalContext {
	locals := make(map[string]cty.Value, len(l.values))
	for k, v := range l.values {
		locals[k] = v
	}
	return &hcl.EvalContext{Variables: map[string]cty.Value{
		"var":   cty.ObjectVal(l.vars),
		"local": cty.ObjectVal(locals),
	}, Functions: functions()}
}

func (l *localsEvaluation) evaluate(name string, path []string) {
	attr, ok := l.m.locals[name]
	if !ok || l.state[name] == 2 {
		return
	}
	if l.state[name] == 1 {
		cycle := append(path, name) //nolint:gocritic // a fresh slice for the message only
		start := 0
		for i, n := range cycle {
			if n == name {
				start = i
				break
			}
		}
		msg := "local." + cycle[start]
		for _, n := range cycle[start+1:] {
			msg += " → local." + n
		}
		l.m.problem(position(attr.NameRange), "cycle between locals: "+msg)
		l.values[name] = cty.DynamicVal
		return
	}
	l.state[name] = 1
	for _, traversal := range attr.Expr.Variables() {
		if traversal.RootName() != "local" || len(traversal) < 2 {
			continue
		}
		if step, ok := traversal[1].(hcl.TraverseAttr); ok {
			l.evaluate(step.Name, append(path, name))
		}
	}
	if _, cyclic := l.values[name]; !cyclic {
		v, diags := attr.Expr.Value(l.context())
		if diags.HasErrors() {
			v = cty.DynamicVal
		}
		l.values[name] = v
	}
	l.state[name] = 2
}

// value evaluates expr; ok is false when it is not wholly known statically.
func (e *evaluator) value(expr hclsyntax.Expression) (cty.Value, bool) {
	v, diags := expr.Value(e.ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.DynamicVal, false
	}
	return v, true
}

// stringValue reads an attribute as a string option. A missing attribute or one set to null
// (which Terraform treats as omitted) is not Set.
func (m *module) stringValue(body *hclsyntax.Body, name string, unset iac.Position) iac.Value[string] {
	attr, ok := body.Attributes[name]
	if !ok {
		return iac.Value[string]{At: unset, Attr: name}
	}
	v := m.stringExpr(attr.Expr, attr.Name)
	v.Attr = name // names the value in the instance layer's origins (iac.Resolve)
	return v
}

func (m *module) stringExpr(expr hclsyntax.Expression, name string) iac.Value[string] {
	at := position(expr.Range())
	v, ok := m.eval.value(expr)
	if !ok {
		return iac.Value[string]{Set: true, At: at, Expr: m.describe(expr)}
	}
	if v.IsNull() {
		return iac.Value[string]{At: at}
	}
	s, err := toString(v)
	if err != nil {
		m.problem(at, fmt.Sprintf("%s: %v", name, err))
		return iac.Value[string]{Set: true, At: at, Expr: m.describe(expr)}
	}
	out := iac.Value[string]{Value: s, Set: true, Known: true, At: at}
	if !isLiteral(expr) {
		out.Expr = m.describe(expr)
	}
	return out
}

// intValue reads an attribute as a whole number option (the hop limit).
func (m *module) intValue(body *hclsyntax.Body, name string, unset iac.Position) iac.Value[int] {
	attr, ok := body.Attributes[name]
	if !ok {
		return iac.Value[int]{At: unset, Attr: name}
	}
	v := m.intExpr(attr.Expr, attr.Name)
	v.Attr = name // names the value in the instance layer's origins (iac.Resolve)
	return v
}

func (m *module) intExpr(expr hclsyntax.Expression, name string) iac.Value[int] {
	at := position(expr.Range())
	v, ok := m.eval.value(expr)
	if !ok {
		return iac.Value[int]{Set: true, At: at, Expr: m.describe(expr)}
	}
	if v.IsNull() {
		return iac.Value[int]{At: at}
	}
	n, err := toInt(v)
	if err != nil {
		m.problem(at, fmt.Sprintf("%s: %v", name, err))
		return iac.Value[int]{Set: true, At: at, Expr: m.describe(expr)}
	}
	out := iac.Value[int]{Value: n, Set: true, Known: true, At: at}
	if !isLiteral(expr) {
		out.Expr = m.describe(expr)
	}
	return out
}

// describe renders an expression as written, the instance it is evaluated in when it refers
// to each or count (`each.value.tokens (each.key = "legacy")`), and, for each variable it
// refers to that a module call gives, where the call gives it: "var.http_tokens (module.nodes
// argument http_tokens = "required" at envs/prod/main.tf:4:17)".
func (m *module) describe(expr hclsyntax.Expression) string {
	out := m.source(expr) + m.instanceNote(expr)
	var named []string
	for _, t := range expr.Variables() {
		if t.RootName() != "var" || len(t) < 2 {
			continue
		}
		step, ok := t[1].(hcl.TraverseAttr)
		if !ok || slices.Contains(named, step.Name) {
			continue
		}
		if in, ok := m.inputs[step.Name]; ok {
			named = append(named, step.Name)
			out += " (" + in.from + ")"
		}
	}
	return out
}

// toString converts as Terraform does for a string argument: strings, numbers and bools.
func toString(v cty.Value) (string, error) {
	switch v.Type() {
	case cty.String:
		return v.AsString(), nil
	case cty.Number:
		return v.AsBigFloat().Text('f', -1), nil
	case cty.Bool:
		return strconv.FormatBool(v.True()), nil
	}
	return "", fmt.Errorf("want a string, got %s", v.Type().FriendlyName())
}

// toInt converts as Terraform does for a number argument: numbers and numeric strings.
func toInt(v cty.Value) (int, error) {
	var f *big.Float
	switch v.Type() {
	case cty.Number:
		f = v.AsBigFloat()
	case cty.String:
		parsed, _, err := big.ParseFloat(v.AsString(), 10, 512, big.ToNearestEven)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", v.AsString())
		}
		f = parsed
	default:
		return 0, fmt.Errorf("want a number, got %s", v.Type().FriendlyName())
	}
	if !f.IsInt() {
		return 0, fmt.Errorf("want a whole number, got %s", f.Text('f', -1))
	}
	i, acc := f.Int64()
	if acc != big.Exact || i < -1<<31 || i > 1<<31-1 {
		return 0, fmt.Errorf("number %s out of range", f.Text('f', -1))
	}
	return int(i), nil
}

// isLiteral reports whether expr is written as a constant, so that Expr stays empty for it.
func isLiteral(expr hclsyntax.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return true
	case *hclsyntax.TemplateExpr:
		return e.IsStringLiteral()
	}
	return false
}
