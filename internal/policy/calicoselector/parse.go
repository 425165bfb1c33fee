package calicoselector

import (
	"fmt"
	"strings"
)

// tokenKind is the kind of a lexical token.
type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLabel
	tokString
	tokLBrace
	tokRBrace
	tokComma
	tokEq
	tokNe
	tokIn
	tokNotIn
	tokContains
	tokStartsWith
	tokEndsWith
	tokNot
	tokAnd
	tokOr
	tokLParen
	tokRParen
	tokAll
	tokGlobal
	tokHas
)

var tokenText = map[tokenKind]string{
	tokEOF: "end of selector", tokLabel: "label", tokString: "string", tokLBrace: "'{'", tokRBrace: "'}'",
	tokComma: "','", tokEq: "'=='", tokNe: "'!='", tokIn: "'in'", tokNotIn: "'not in'", tokContains: "'contains'",
	tokStartsWith: "'starts with'", tokEndsWith: "'ends with'", tokNot: "'!'", tokAnd: "'&&'", tokOr: "'||'",
	tokLParen: "'('", tokRParen: "')'", tokAll: "'all()'", tokGlobal: "'global()'", tokHas: "'has()'",
}

type token struct {
	kind  tokenKind
	value string // label name, string value, or has()'s label
	pos   int    // byte offset in the selector
}

func (t token) describe() string {
	switch t.kind {
	case tokLabel:
		return fmt.Sprintf("label %q", t.value)
	case tokString:
		return fmt.Sprintf("string %q", t.value)
	case tokHas:
		return fmt.Sprintf("'has(%s)'", t.value)
	}
	return tokenText[t.kind]
}

// isSpace reports whether c separates tokens: Calico's tokenizer skips spaces and tabs only.
func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-'
}

// tokenize splits a selector into tokens.
func tokenize(src string) ([]token, error) {
	var toks []token
	i := 0
	errAt := func(pos int, format string, args ...any) error {
		return &SyntaxError{Column: pos + 1, Message: fmt.Sprintf(format, args...)}
	}
	skip := func() {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
	}
	label := func() string {
		start := i
		for i < len(src) && isLabelChar(src[i]) {
			i++
		}
		return src[start:i]
	}
	for {
		skip()
		if i == len(src) {
			return append(toks, token{kind: tokEOF, pos: i}), nil
		}
		start := i
		afterLabel := len(toks) > 0 && toks[len(toks)-1].kind == tokLabel
		rest := src[i:]
		switch c := src[i]; {
		case c == '(':
			toks, i = append(toks, token{kind: tokLParen, pos: start}), i+1
		case c == ')':
			toks, i = append(toks, token{kind: tokRParen, pos: start}), i+1
		case c == '{':
			toks, i = append(toks, token{kind: tokLBrace, pos: start}), i+1
		case c == '}':
			toks, i = append(toks, token{kind: tokRBrace, pos: start}), i+1
		case c == ',':
			toks, i = append(toks, token{kind: tokComma, pos: start}), i+1
		case c == '"' || c == '\'':
			end := strings.IndexByte(src[i+1:], c)
			if end < 0 {
				return nil, errAt(start, "unterminated string: no closing %c", c)
			}
			toks = append(toks, token{kind: tokString, value: src[i+1 : i+1+end], pos: start})
			i += end + 2
		case strings.HasPrefix(rest, "=="):
			toks, i = append(toks, token{kind: tokEq, pos: start}), i+2
		case c == '=':
			return nil, errAt(start, "expected '==', found a single '='")
		case strings.HasPrefix(rest, "!="):
			toks, i = append(toks, token{kind: tokNe, pos: start}), i+2
		case c == '!':
			toks, i = append(toks, token{kind: tokNot, pos: start}), i+1
		case strings.HasPrefix(rest, "&&"):
			toks, i = append(toks, token{kind: tokAnd, pos: start}), i+2
		case c == '&':
			return nil, errAt(start, "expected '&&', found a single '&'")
		case strings.HasPrefix(rest, "||"):
			toks, i = append(toks, token{kind: tokOr, pos: start}), i+2
		case c == '|':
			return nil, errAt(start, "expected '||', found a single '|'")
		case afterLabel:
			// After a label only a word operator can come (the symbols are handled above).
			kind, n, err := wordOperator(rest)
			if err != nil {
				return nil, errAt(start, "%s after label %q", err, toks[len(toks)-1].value)
			}
			toks, i = append(toks, token{kind: kind, pos: start}), i+n
		case strings.HasPrefix(rest, "has("):
			i += len("has(")
			skip()
			name := label()
			if name == "" {
				return nil, errAt(i, "expected a label name in has(")
			}
			skip()
			if i == len(src) || src[i] != ')' {
				return nil, errAt(i, "expected ')' to close has(%s", name)
			}
			i++
			toks = append(toks, token{kind: tokHas, value: name, pos: start})
		case strings.HasPrefix(rest, "all("), strings.HasPrefix(rest, "global("):
			kind, word := tokAll, "all("
			if strings.HasPrefix(rest, "global(") {
				kind, word = tokGlobal, "global("
			}
			i += len(word)
			skip()
			if i == len(src) || src[i] != ')' {
				return nil, errAt(i, "expected ')' right after %s", word)
			}
			i++
			toks = append(toks, token{kind: kind, pos: start})
		case isLabelChar(c):
			toks = append(toks, token{kind: tokLabel, value: label(), pos: start})
		default:
			return nil, errAt(start, "unexpected character %q", rest[:1])
		}
	}
}

// wordOperator reads the operator after a label: contains, starts with, ends with, not in, in.
// It returns the token kind and how many bytes it used.
func wordOperator(s string) (tokenKind, int, error) {
	// "starts with", "ends with" and "not in" may have any spaces or tabs between their words.
	two := func(first, second string, kind tokenKind) (tokenKind, int, error) {
		rest := strings.TrimLeft(s[len(first):], " \t")
		if !strings.HasPrefix(rest, second) {
			return 0, 0, fmt.Errorf("expected %q after %q", second, first)
		}
		return kind, len(s) - len(rest) + len(second), nil
	}
	switch {
	case strings.HasPrefix(s, "contains"):
		return tokContains, len("contains"), nil
	case strings.HasPrefix(s, "starts"):
		return two("starts", "with", tokStartsWith)
	case strings.HasPrefix(s, "ends"):
		return two("ends", "with", tokEndsWith)
	case strings.HasPrefix(s, "not"):
		return two("not", "in", tokNotIn)
	case strings.HasPrefix(s, "in"):
		return tokIn, len("in"), nil
	}
	return 0, 0, fmt.Errorf("expected an operator (==, !=, in, not in, contains, starts with, ends with)")
}

// parser is a recursive-descent parser over the tokens:
//
//	or        = and { "||" and }
//	and       = operation { "&&" operation }
//	operation = { "!" } ( "all()" | "global()" | "has(" label ")" | label comparison | "(" or ")" )
//	comparison = ( "==" | "!=" | "contains" | "starts with" | "ends with" ) string
//	           | ( "in" | "not in" ) "{" [ string { "," string } [ "," ] ] "}"
type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) fail(t token, format string, args ...any) error {
	return &SyntaxError{Column: t.pos + 1, Message: fmt.Sprintf(format, args...)}
}

// Parse parses a selector. An empty selector (or one of only spaces) selects everything, as
// Calico's does.
func Parse(src string) (*Selector, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	if toks[0].kind == tokEOF {
		return &Selector{root: allNode{}}, nil
	}
	p := &parser{toks: toks}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.fail(t, "unexpected %s: expected '&&', '||' or the end of the selector", t.describe())
	}
	return &Selector{root: root}, nil
}

// MustParse parses a selector known to be valid; it panics otherwise.
func MustParse(src string) *Selector {
	s, err := Parse(src)
	if err != nil {
		panic(fmt.Sprintf("selector %q: %v", src, err))
	}
	return s
}

func (p *parser) or() (node, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	operands := []node{first}
	for p.peek().kind == tokOr {
		p.next()
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		operands = append(operands, n)
	}
	if len(operands) == 1 {
		return first, nil
	}
	return orNode{operands}, nil
}

func (p *parser) and() (node, error) {
	first, err := p.operation()
	if err != nil {
		return nil, err
	}
	operands := []node{first}
	for p.peek().kind == tokAnd {
		p.next()
		n, err := p.operation()
		if err != nil {
			return nil, err
		}
		operands = append(operands, n)
	}
	if len(operands) == 1 {
		return first, nil
	}
	return andNode{operands}, nil
}

func (p *parser) operation() (node, error) {
	negated := false
	for p.peek().kind == tokNot {
		p.next()
		negated = !negated
	}
	var n node
	switch t := p.next(); t.kind {
	case tokAll:
		n = allNode{}
	case tokGlobal:
		n = globalNode{}
	case tokHas:
		n = hasNode{key: t.value}
	case tokLabel:
		var err error
		if n, err = p.comparison(t); err != nil {
			return nil, err
		}
	case tokLParen:
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.fail(c, "expected ')' to close the '(' at column %d, found %s", t.pos+1, c.describe())
		}
		n = inner
	default:
		return nil, p.fail(t, "unexpected %s: expected a label, has(), all(), global(), '!' or '('", t.describe())
	}
	if negated {
		n = negate(n)
	}
	return n, nil
}

func (p *parser) comparison(label token) (node, error) {
	op := p.next()
	switch op.kind {
	case tokEq, tokNe, tokContains, tokStartsWith, tokEndsWith:
		v := p.next()
		if v.kind != tokString {
			return nil, p.fail(v, "expected a quoted string after %s, found %s", op.describe(), v.describe())
		}
		cmp := map[tokenKind]compareOp{tokEq: opEq, tokNe: opNe, tokContains: opContains, tokStartsWith: opStartsWith, tokEndsWith: opEndsWith}[op.kind]
		return compareNode{key: label.value, op: cmp, value: v.value}, nil
	case tokIn, tokNotIn:
		if b := p.next(); b.kind != tokLBrace {
			return nil, p.fail(b, "expected '{' after %s, found %s", op.describe(), b.describe())
		}
		set := setNode{key: label.value, not: op.kind == tokNotIn}
		for p.peek().kind == tokString {
			set.values = append(set.values, p.next().value)
			if p.peek().kind != tokComma {
				break
			}
			p.next()
		}
		if c := p.next(); c.kind != tokRBrace {
			return nil, p.fail(c, "expected a quoted string or '}' in the set, found %s", c.describe())
		}
		return set, nil
	}
	return nil, p.fail(op, "expected an operator after label %q (==, !=, in, not in, contains, starts with, ends with), found %s", label.value, op.describe())
}

// negate negates a node; a negated negation is its operand, so "!(!a == 'x')" and "a == 'x'"
// have one canonical form.
func negate(n node) node {
	if inner, ok := n.(notNode); ok {
		return inner.operand
	}
	return notNode{n}
}
