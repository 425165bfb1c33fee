package engine

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated table in docs/engines.md")

const (
	docsPath   = "../../docs/engines.md"
	beginTable = "<!-- BEGIN GENERATED: engine table -->\n"
	endTable   = "<!-- END GENERATED: engine table -->\n"
)

// TestDocsTable: docs/engines.md shows exactly the table the code uses, and names every engine.
func TestDocsTable(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	before, rest, ok := strings.Cut(doc, beginTable)
	_, after, ok2 := strings.Cut(rest, endTable)
	if !ok || !ok2 {
		t.Fatalf("%s: the generated table's markers are missing", docsPath)
	}
	want := before + beginTable + MarkdownTable() + endTable + after
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil { //nolint:gosec // a documentation file
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Errorf("%s is out of date with table.go: run go test ./internal/engine -run TestDocsTable -update", docsPath)
	}
	for _, n := range Names() {
		if !strings.Contains(doc, "| `"+string(n)+"`") {
			t.Errorf("%s has no row for %s", docsPath, n)
		}
	}
}
