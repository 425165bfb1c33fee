// Package calicoselector parses and evaluates Calico's label selector language, the expressions
// of a Calico policy's selector, namespaceSelector and serviceAccountSelector fields and of its
// rules' source and destination selectors:
//
//	all()                    every resource
//	global()                 resources without a namespace (host endpoints, global network sets)
//	k == 'v'   k != 'v'      label k has (has not) the value v; != also matches when k is absent
//	has(k)                   label k is present, whatever its value
//	k in {'a', 'b'}          label k is present with one of the values
//	k not in {'a', 'b'}      label k is absent, or present with none of the values
//	k contains 's'           label k is present and its value contains s
//	k starts with 's'        label k is present and its value starts with s
//	k ends with 's'          label k is present and its value ends with s
//	!e   e && f   e || f   ( e )
//
// The grammar and its corner cases follow Calico's own parser (libcalico-go's selector
// tokenizer and parser): strings are quoted with ' or " and have no escapes, label names are
// made of letters, digits and _ . / -, only spaces and tabs separate tokens, "has(", "all(" and
// "global(" take no space before their parenthesis, ! binds to the operation right after it,
// && binds tighter than ||, a set may end with a comma, and an empty selector selects
// everything.
//
// Errors name the 1-based column where the selector stops making sense.
package calicoselector

import (
	"fmt"
	"strings"
)

// Labels is what a selector is evaluated against: a resource's labels.
type Labels interface {
	// Get returns the value of label key and whether the resource has it.
	Get(key string) (value string, ok bool)
}

// Set is a plain label map.
type Set map[string]string

// Get returns the value of label key.
func (s Set) Get(key string) (string, bool) {
	v, ok := s[key]
	return v, ok
}

// Selector is a parsed selector. It is immutable and safe for concurrent use.
type Selector struct {
	root node
}

// Matches reports whether a namespaced resource (a pod, a namespace's labels) with the given
// labels is selected. global() selects only resources without a namespace, so it is false here.
func (s *Selector) Matches(l Labels) bool { return s.root.eval(l, scope{}) }

// MatchesGlobal reports whether a resource without a namespace (a host endpoint, a global
// network set) is selected: global() is true.
func (s *Selector) MatchesGlobal(l Labels) bool { return s.root.eval(l, scope{global: true}) }

// MatchesNamespaceOf evaluates a rule's namespaceSelector for a resource the rule may select
// (a network set): l are the labels of the resource's namespace, and, as Calico rewrites a
// rule's namespaceSelector, all() selects every namespaced resource and global() every resource
// without a namespace (whose namespace labels l are then empty).
func (s *Selector) MatchesNamespaceOf(l Labels, namespaced bool) bool {
	return s.root.eval(l, scope{global: !namespaced, allNamespaced: true})
}

// scope is what all() and global() mean where a selector is evaluated.
type scope struct {
	// global is set for a resource without a namespace: global() selects it.
	global bool
	// allNamespaced makes all() select namespaced resources only.
	allNamespaced bool
}

// String renders the selector in a canonical form: conjunctions and disjunctions in
// parentheses, strings in double quotes (single quotes when the value holds a double quote).
func (s *Selector) String() string {
	var b strings.Builder
	s.root.write(&b)
	return b.String()
}

// SelectsAll reports whether the selector is all() (or empty), which selects every resource.
func (s *Selector) SelectsAll() bool {
	_, ok := s.root.(allNode)
	return ok
}

// SyntaxError is a selector that does not parse.
type SyntaxError struct {
	// Column is the 1-based byte column where parsing failed (one past the end for an
	// unexpected end of the selector).
	Column  int
	Message string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("column %d: %s", e.Column, e.Message)
}

// node is one operation of a parsed selector.
type node interface {
	eval(l Labels, sc scope) bool
	write(b *strings.Builder)
}

type allNode struct{}

func (allNode) eval(_ Labels, sc scope) bool { return !sc.allNamespaced || !sc.global }
func (allNode) write(b *strings.Builder)     { b.WriteString("all()") }

type globalNode struct{}

func (globalNode) eval(_ Labels, sc scope) bool { return sc.global }
func (globalNode) write(b *strings.Builder)     { b.WriteString("global()") }

type hasNode struct{ key string }

func (n hasNode) eval(l Labels, _ scope) bool {
	_, ok := l.Get(n.key)
	return ok
}
func (n hasNode) write(b *strings.Builder) { b.WriteString("has(" + n.key + ")") }

// compareOp is a binary operator between a label and a string.
type compareOp int

const (
	opEq compareOp = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

var compareOpText = map[compareOp]string{
	opEq: "==", opNe: "!=", opContains: "contains", opStartsWith: "starts with", opEndsWith: "ends with",
}

type compareNode struct {
	key   string
	op    compareOp
	value string
}

func (n compareNode) eval(l Labels, _ scope) bool {
	v, ok := l.Get(n.key)
	switch n.op {
	case opEq:
		return ok && v == n.value
	case opNe:
		return !ok || v != n.value // an absent label is not equal to anything
	case opContains:
		return ok && strings.Contains(v, n.value)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.value)
	default:
		return ok && strings.HasSuffix(v, n.value)
	}
}

func (n compareNode) write(b *strings.Builder) {
	b.WriteString(n.key + " " + compareOpText[n.op] + " ")
	writeString(b, n.value)
}

type setNode struct {
	key    string
	not    bool
	values []string
}

func (n setNode) eval(l Labels, _ scope) bool {
	v, ok := l.Get(n.key)
	if !ok {
		return n.not // an absent label is in no set
	}
	in := false
	for _, x := range n.values {
		if x == v {
			in = true
			break
		}
	}
	return in != n.not
}

func (n setNode) write(b *strings.Builder) {
	b.WriteString(n.key)
	if n.not {
		b.WriteString(" not in {")
	} else {
		b.WriteString(" in {")
	}
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		writeString(b, v)
	}
	b.WriteString("}")
}

type notNode struct{ operand node }

func (n notNode) eval(l Labels, sc scope) bool { return !n.operand.eval(l, sc) }
func (n notNode) write(b *strings.Builder) {
	b.WriteString("!")
	n.operand.write(b)
}

type andNode struct{ operands []node }

func (n andNode) eval(l Labels, sc scope) bool {
	for _, o := range n.operands {
		if !o.eval(l, sc) {
			return false
		}
	}
	return true
}
func (n andNode) write(b *strings.Builder) { writeList(b, n.operands, " && ") }

type orNode struct{ operands []node }

func (n orNode) eval(l Labels, sc scope) bool {
	for _, o := range n.operands {
		if o.eval(l, sc) {
			return true
		}
	}
	return false
}
func (n orNode) write(b *strings.Builder) { writeList(b, n.operands, " || ") }

func writeList(b *strings.Builder, operands []node, sep string) {
	b.WriteString("(")
	for i, o := range operands {
		if i > 0 {
			b.WriteString(sep)
		}
		o.write(b)
	}
	b.WriteString(")")
}

// writeString quotes a value the way Calico renders selectors: double quotes, or single quotes
// when the value holds a double quote (values never hold both: the language has no escapes).
func writeString(b *strings.Builder, v string) {
	q := `"`
	if strings.Contains(v, `"`) {
		q = `'`
	}
	b.WriteString(q + v + q)
}
