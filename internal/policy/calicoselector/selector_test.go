package calicoselector_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy/calicoselector"
)

// calicoSelectorsDoc is where Calico documents its selector language: the "Selectors" section of
// the NetworkPolicy resource reference. Each row below quotes the line it checks.
const calicoSelectorsDoc = "https://docs.tigera.io/calico/latest/reference/resources/networkpolicy#selectors"

var pod = calicoselector.Set{"app": "web", "tier": "frontend", "team": "payments-eu", "empty": ""}

func TestSelectorOperators(t *testing.T) {
	rows := []struct {
		doc      string // the documented meaning, quoted
		selector string
		want     bool
	}{
		{"all(): Match all in-scope resources", "all()", true},
		{"an empty selector selects everything, as all() does", "", true},
		{"an empty selector selects everything (spaces only)", "  \t ", true},
		{"k == 'v': Matches any resource with the label 'k' and value 'v'", "app == 'web'", true},
		{"k == 'v': the value must be equal", "app == 'db'", false},
		{"k == 'v': a resource without label k does not match", "missing == 'web'", false},
		{"k == 'v': double quotes are accepted too", `app == "web"`, true},
		{"k == '': an empty value matches a label with an empty value", "empty == ''", true},
		{"k != 'v': Matches any resource with the label 'k' and value that is not 'v'", "app != 'db'", true},
		{"k != 'v': the same value does not match", "app != 'web'", false},
		{"k != 'v': a resource without label k matches (Calico's != is the negation of ==)", "missing != 'web'", true},
		{"has(k): Matches any resource with label 'k', independent of value", "has(tier)", true},
		{"has(k): a label with an empty value is present", "has(empty)", true},
		{"has(k): an absent label does not match", "has(missing)", false},
		{"!has(k): Matches any resource that does not have label 'k'", "!has(missing)", true},
		{"!has(k): a present label does not match", "!has(app)", false},
		{"k in { 'v1', 'v2' }: Matches any resource with label 'k' and value in the given set", "app in {'db', 'web'}", true},
		{"k in { ... }: a value outside the set does not match", "app in {'db', 'api'}", false},
		{"k in { ... }: an absent label does not match", "missing in {'web'}", false},
		{"k in {}: the empty set matches nothing", "app in {}", false},
		{"k not in { 'v1', 'v2' }: Matches any resource without label 'k' or with label 'k' and value not in the given set", "app not in {'db'}", true},
		{"k not in { ... }: a value in the set does not match", "app not in {'db', 'web'}", false},
		{"k not in { ... }: an absent label matches", "missing not in {'web'}", true},
		{"k contains 's': Matches any resource with label 'k' and value containing the substring 's'", "team contains 'ment'", true},
		{"k contains 's': a value without the substring does not match", "team contains 'us'", false},
		{"k contains 's': an absent label does not match", "missing contains ''", false},
		{"k starts with 's': Matches any resource with label 'k' and value starting with 's'", "team starts with 'pay'", true},
		{"k starts with 's': a different prefix does not match", "team starts with 'eu'", false},
		{"k ends with 's': Matches any resource with label 'k' and value ending with 's'", "team ends with '-eu'", true},
		{"k ends with 's': a different suffix does not match", "team ends with 'pay'", false},
		{"<expression> && <expression>: Matches if and only if both expressions match", "app == 'web' && tier == 'frontend'", true},
		{"&&: one side false makes it false", "app == 'web' && tier == 'backend'", false},
		{"<expression> || <expression>: Matches if and only if either expression matches", "app == 'db' || tier == 'frontend'", true},
		{"||: both sides false makes it false", "app == 'db' || tier == 'backend'", false},
		{"! <expression>: Matches if and only if <expression> does not match", "!(app == 'db')", true},
		{"!: double negation cancels", "!!has(app)", true},
		{"( <expression> ): parentheses group expressions", "(app == 'db' || app == 'web') && has(tier)", true},
		{"&& binds tighter than ||: a || b && c is a || (b && c)", "app == 'web' || has(missing) && has(other)", true},
		{"&& binds tighter than ||: (a || b) && c differs", "(app == 'web' || has(missing)) && has(other)", false},
		{"! binds to the operation right after it: !a && b is (!a) && b", "!has(missing) && app == 'web'", true},
		{"global(): Match all non-namespaced resources; a pod is namespaced", "global()", false},
		{"global() || ...: the other side still selects namespaced resources", "global() || app == 'web'", true},
		{"labels may hold . / - _ and digits", "example.com/tier-2_x != 'a'", true},
		{"operators may be written without spaces", "app=='web'&&tier!='x'", true},
		{"in may be written without a space before its set", "app in{'web'}", true},
		{"a set may end with a comma", "app in {'web',}", true},
		{"tabs separate tokens like spaces", "app\t==\t'web'", true},
		{"starts with may have several spaces between its words", "team starts   with 'pay'", true},
	}
	for _, r := range rows {
		t.Run(r.doc, func(t *testing.T) {
			s, err := calicoselector.Parse(r.selector)
			if err != nil {
				t.Fatalf("%s\nParse(%q): %v (see %s)", r.doc, r.selector, err, calicoSelectorsDoc)
			}
			if got := s.Matches(pod); got != r.want {
				t.Errorf("%s\n%q on %v = %v, want %v (see %s)", r.doc, r.selector, pod, got, r.want, calicoSelectorsDoc)
			}
			// The canonical form means the same.
			again, err := calicoselector.Parse(s.String())
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", s.String(), r.selector, err)
			}
			if again.Matches(pod) != r.want || again.String() != s.String() {
				t.Errorf("canonical form %q of %q differs: %q", s.String(), r.selector, again.String())
			}
		})
	}
}

func TestSelectorGlobal(t *testing.T) {
	s := calicoselector.MustParse("global()")
	if s.Matches(calicoselector.Set{}) || !s.MatchesGlobal(calicoselector.Set{}) {
		t.Errorf("global() must select only resources without a namespace")
	}
	if !calicoselector.MustParse("").SelectsAll() || !calicoselector.MustParse("all()").SelectsAll() || calicoselector.MustParse("has(a)").SelectsAll() {
		t.Errorf("SelectsAll is wrong")
	}
}

// TestSelectorNamespaceOf: a rule's namespaceSelector, as Calico rewrites it (all() becomes
// has(projectcalico.org/namespace), global() its negation, labels are the namespace's).
func TestSelectorNamespaceOf(t *testing.T) {
	ns := calicoselector.Set{"team": "research"}
	rows := []struct {
		selector           string
		namespaced, global bool // selects a resource of ns, a resource without namespace
	}{
		{"all()", true, false},
		{"global()", false, true},
		{"team == 'research'", true, false},
		{"!has(team)", false, true},
		{"all() || global()", true, true},
		{"!all()", false, true},
	}
	for _, r := range rows {
		s := calicoselector.MustParse(r.selector)
		if got := s.MatchesNamespaceOf(ns, true); got != r.namespaced {
			t.Errorf("%s for a namespaced resource = %v, want %v", r.selector, got, r.namespaced)
		}
		if got := s.MatchesNamespaceOf(calicoselector.Set{}, false); got != r.global {
			t.Errorf("%s for a resource without namespace = %v, want %v", r.selector, got, r.global)
		}
	}
}

// TestSelectorErrors: invalid selectors are refused with the column where they stop making
// sense, as the API server (Calico's validation) refuses them.
func TestSelectorErrors(t *testing.T) {
	rows := []struct {
		selector string
		column   int
		message  string
	}{
		{"app = 'web'", 5, "expected '=='"},
		{"app == web", 8, "expected a quoted string"},
		{"app == 'web", 8, "unterminated string"},
		{"app == 'web' &", 14, "expected '&&'"},
		{"app == 'web' | x", 14, "expected '||'"},
		{"app", 4, "expected an operator after label \"app\""},
		{"app equals 'web'", 5, "expected an operator"},
		{"app starts 'x'", 5, "expected \"with\" after \"starts\""},
		{"app not 'x'", 5, "expected \"in\" after \"not\""},
		{"app in 'web'", 8, "expected '{'"},
		{"app in {'a' 'b'}", 13, "expected a quoted string or '}'"},
		{"app in {,}", 9, "expected a quoted string or '}'"},
		{"app in {'a'", 12, "expected a quoted string or '}'"},
		{"has(app", 8, "expected ')' to close has(app"},
		{"has()", 5, "expected a label name in has("},
		{"has (app)", 5, "expected an operator after label \"has\""},
		{"all(x)", 5, "expected ')' right after all("},
		{"(app == 'web'", 14, "expected ')' to close the '(' at column 1"},
		{"app == 'web')", 13, "unexpected ')'"},
		{"app == 'web' app == 'x'", 14, "unexpected label \"app\""},
		{"&& has(a)", 1, "unexpected '&&'"},
		{"has(a) &&", 10, "unexpected end of selector"},
		{"!", 2, "unexpected end of selector"},
		{"app == 'web'\n", 13, "unexpected character"},
		{"app == 'x' && ~", 15, "unexpected character \"~\""},
	}
	for _, r := range rows {
		_, err := calicoselector.Parse(r.selector)
		var se *calicoselector.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", r.selector, err)
			continue
		}
		if se.Column != r.column || !strings.Contains(se.Message, r.message) {
			t.Errorf("Parse(%q): column %d %q, want column %d and a message containing %q", r.selector, se.Column, se.Message, r.column, r.message)
		}
		if !strings.HasPrefix(err.Error(), "column ") {
			t.Errorf("Parse(%q): error %q does not start with its column", r.selector, err)
		}
	}
}

func TestSelectorString(t *testing.T) {
	rows := []struct{ in, want string }{
		{"", "all()"},
		{"a=='x'&&b!='y'||!has(c)", `((a == "x" && b != "y") || !has(c))`},
		{`a in {'x', "y"}`, `a in {"x", "y"}`},
		{`a == '"quoted"'`, `a == '"quoted"'`},
		{"a not in {}", "a not in {}"},
		{"a starts  with 'p' && b ends with 's' && c contains 'x'", `(a starts with "p" && b ends with "s" && c contains "x")`},
	}
	for _, r := range rows {
		if got := calicoselector.MustParse(r.in).String(); got != r.want {
			t.Errorf("String of %q = %q, want %q", r.in, got, r.want)
		}
	}
}
