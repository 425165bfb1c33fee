package calicoselector_test

import (
	"errors"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy/calicoselector"
)

// FuzzParse: any input either parses or is refused with a SyntaxError whose column lies within
// the input (or one past its end); a selector that parses renders to a canonical form that
// parses to itself and selects exactly what the original selects.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "all()", "global()", "app == 'web'", `app != "web"`, "has(app)", "!has(app)",
		"app in {'a', 'b',}", "app not in {}", "team contains 'x'", "team starts with 'p'",
		"team ends  with 'x'", "!(a == 'b' || c == 'd') && has(e)", "a == 'b' &&", "has(",
		"projectcalico.org/namespace == 'shop' && pcns.team in {'a'}", "(((a == 'b')))",
	} {
		f.Add(s)
	}
	labelSets := []calicoselector.Set{
		{}, {"app": "web"}, {"app": "a", "team": "payments", "a": "b"}, {"e": "", "c": "d"},
		{"projectcalico.org/namespace": "shop", "pcns.team": "a"},
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := calicoselector.Parse(src)
		if err != nil {
			var se *calicoselector.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): %v is not a SyntaxError", src, err)
			}
			if se.Column < 1 || se.Column > len(src)+1 || se.Message == "" {
				t.Fatalf("Parse(%q): column %d outside the input of %d bytes, or no message", src, se.Column, len(src))
			}
			return
		}
		canonical := s.String()
		again, err := calicoselector.Parse(canonical)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canonical, src, err)
		}
		if again.String() != canonical {
			t.Fatalf("canonical form of %q is not stable: %q then %q", src, canonical, again.String())
		}
		for _, l := range labelSets {
			if s.Matches(l) != again.Matches(l) || s.MatchesGlobal(l) != again.MatchesGlobal(l) {
				t.Fatalf("%q and its canonical form %q disagree on %v", src, canonical, l)
			}
		}
	})
}
