package terraform

import (
	"fmt"
	"math/big"
	"strconv"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// maxInstances bounds how many instances one resource or module call is expanded into; a
// for_each or count beyond it is a problem and the block is read once, as when it is unknown.
const maxInstances = 1000

// instance is one instance of a resource or module block. A block with the for_each
// meta-argument has one instance per element, with each.key and each.value
// (https://developer.hashicorp.com/terraform/language/meta-arguments/for_each); a block with
// count has count instances, with count.index
// (https://developer.hashicorp.com/terraform/language/meta-arguments/count). A block without
// either, or whose for_each or count is not known statically, is one instance without a key:
// what depends on each or count is then unknown.
type instance struct {
	*resource
	// keyed is set for an instance of an expanded block: key is then each.key (a string) or
	// count.index (a number, count set), and each is each.value.
	keyed, count bool
	key, each    cty.Value
}

// address is the instance's address as Terraform writes it: `aws_launch_template.this["a"]`,
// `aws_launch_template.this[0]`, or the block's address when it is not expanded.
func (in *instance) address() string { return in.resource.address() + in.index() }

// index is the instance key as written in an address: `["a"]`, `[0]`, or "".
func (in *instance) index() string {
	if !in.keyed {
		return ""
	}
	return "[" + keyText(in.key) + "]"
}

// expanded reports whether the instance is one of an expanded block.
func (in *instance) expanded() bool { return in.keyed }

// variables are each or count of the instance, for its evaluation context.
func (in *instance) variables() map[string]cty.Value {
	switch {
	case !in.keyed:
		return nil
	case in.count:
		return map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": in.key})}
	}
	return map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": in.key, "value": in.each})}
}

// instances returns the instances of a resource or module block, computed once per reading of
// the module. for_each takes a map or object (one instance per key, each.value its element) or
// a set of strings (each.key and each.value the element); count a whole number from 0. Both on
// one block, a list given to for_each, or a negative count are errors in Terraform: they are
// problems here and the block is read once, unknown where it depends on each or count.
func (m *module) instances(r *resource) []*instance {
	if list, ok := m.eval.instances[r]; ok {
		return list
	}
	list := m.expand(r)
	m.eval.instances[r] = list
	return list
}

func (m *module) expand(r *resource) []*instance {
	one := []*instance{{resource: r}}
	forEach, hasForEach := r.Body.Attributes["for_each"]
	count, hasCount := r.Body.Attributes["count"]
	switch {
	case hasForEach && hasCount:
		m.problem(position(count.NameRange), fmt.Sprintf("%s has both count and for_each: read once, unknown where it depends on them", r.address()))
		return one
	case hasForEach:
		return m.expandForEach(r, forEach, one)
	case hasCount:
		return m.expandCount(r, count, one)
	}
	return one
}

func (m *module) expandForEach(r *resource, attr *hclsyntax.Attribute, one []*instance) []*instance {
	v, diags := attr.Expr.Value(m.eval.base)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() {
		return one // not known statically
	}
	ty := v.Type()
	var out []*instance
	switch {
	case ty.IsMapType() || ty.IsObjectType():
		if v.LengthInt() > maxInstances {
			m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: for_each of %d elements, more than %d: read once", r.address(), v.LengthInt(), maxInstances))
			return one
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out = append(out, &instance{resource: r, keyed: true, key: k, each: e})
		}
	case ty.IsSetType():
		if !v.IsWhollyKnown() {
			return one
		}
		if v.LengthInt() == 0 {
			return nil // toset([]): no instance
		}
		if !ty.ElementType().Equals(cty.String) {
			m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: for_each takes a set of strings, not a %s", r.address(), ty.FriendlyName()))
			return one
		}
		if v.LengthInt() > maxInstances {
			m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: for_each of %d elements, more than %d: read once", r.address(), v.LengthInt(), maxInstances))
			return one
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, &instance{resource: r, keyed: true, key: e, each: e})
		}
	default:
		m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: for_each takes a map or a set of strings, not a %s (toset() converts a list)", r.address(), ty.FriendlyName()))
		return one
	}
	return out
}

func (m *module) expandCount(r *resource, attr *hclsyntax.Attribute, one []*instance) []*instance {
	v, diags := attr.Expr.Value(m.eval.base)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() {
		return one
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: count takes a number: %v", r.address(), err))
		return one
	}
	f := n.AsBigFloat()
	i, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || i < 0 || i > maxInstances {
		m.problem(position(attr.Expr.Range()), fmt.Sprintf("%s: count %s is not a whole number from 0 to %d: read once", r.address(), f.Text('f', -1), maxInstances))
		return one
	}
	out := make([]*instance, 0, i)
	for k := range i {
		out = append(out, &instance{resource: r, keyed: true, count: true, key: cty.NumberIntVal(k)})
	}
	return out
}

// enter makes the instance's each or count part of the evaluation context until the returned
// function is called.
func (m *module) enter(in *instance) (leave func()) {
	prevCtx, prevIn := m.eval.ctx, m.eval.current
	m.eval.ctx, m.eval.current = m.eval.base, in
	if vars := in.variables(); vars != nil {
		ctx := m.eval.base.NewChild()
		ctx.Variables = vars
		m.eval.ctx = ctx
	}
	return func() { m.eval.ctx, m.eval.current = prevCtx, prevIn }
}

// instanceNote names the instance an expression is evaluated in when it refers to each or
// count: ` (each.key = "legacy")`, ` (count.index = 0)`, or ` (each not known statically)`
// when the block's for_each or count is not.
func (m *module) instanceNote(expr hclsyntax.Expression) string {
	in := m.eval.current
	if in == nil {
		return ""
	}
	for _, t := range expr.Variables() {
		switch root := t.RootName(); {
		case root != "each" && root != "count":
			continue
		case !in.expanded():
			return " (" + root + " not known statically)"
		case root == "each" && !in.count:
			return " (each.key = " + keyText(in.key) + ")"
		case root == "count" && in.count:
			return " (count.index = " + keyText(in.key) + ")"
		}
	}
	return ""
}

// keyText writes an instance key as in an address: "a" quoted, a number as is.
func keyText(k cty.Value) string {
	if k.Type() == cty.Number {
		return k.AsBigFloat().Text('f', -1)
	}
	return strconv.Quote(k.AsString())
}

// toset is Terraform's toset function for the evaluation context: a known list or tuple
// becomes a set (https://developer.hashicorp.com/terraform/language/functions/toset).
var toset = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
	Type: func(args []cty.Value) (cty.Type, error) {
		v, err := convert.Convert(args[0], cty.Set(cty.DynamicPseudoType))
		if err != nil {
			return cty.NilType, err
		}
		return v.Type(), nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return convert.Convert(args[0], cty.Set(cty.DynamicPseudoType))
	},
})

// functions are the functions the evaluation context knows.
func functions() map[string]function.Function {
	return map[string]function.Function{"toset": toset}
}
