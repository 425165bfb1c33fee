package iac_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/terraform"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// differentialDir holds the fixtures of the table "Compared with Checkov and Trivy" in
// docs/iac.md: one directory per Terraform module (tf-*), one file per CloudFormation
// template (cfn-*.yaml).
const differentialDir = "testdata/differential"

// differentialDoc is the document that holds the table.
const differentialDoc = "../../docs/iac.md"

// The header cells of the table's columns that this test checks. The other columns (the
// scanners' results and the explanation) are documentation only.
const (
	colFixture  = "fixture"
	colTokens   = "imdsguard tokens"
	colHopLimit = "imdsguard hop limit"
	colEndpoint = "imdsguard endpoint"
)

// differentialRow is one row of the table: the fixture and what imdsguard decides for it.
type differentialRow struct {
	line                       int
	fixture                    string
	tokens, hopLimit, endpoint string
}

// TestDifferentialTable reads every fixture of the table in docs/iac.md with the readers,
// resolves it with EC2's precedence and no account defaults, and checks that the imdsguard
// columns say what the code decides. It also checks that every fixture has a row and every
// row a fixture.
func TestDifferentialTable(t *testing.T) {
	rows, err := readDifferentialTable(differentialDoc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: the differential table has no rows", differentialDoc)
	}

	entries, err := os.ReadDir(differentialDir)
	if err != nil {
		t.Fatalf("list fixtures: %v", err)
	}
	onDisk := map[string]bool{}
	for _, e := range entries {
		onDisk[e.Name()] = true
	}
	inDoc := map[string]bool{}
	for _, r := range rows {
		if inDoc[r.fixture] {
			t.Errorf("%s:%d: fixture %s has a second row", differentialDoc, r.line, r.fixture)
		}
		inDoc[r.fixture] = true
		if !onDisk[r.fixture] {
			t.Errorf("%s:%d: fixture %s is not in %s", differentialDoc, r.line, r.fixture, differentialDir)
		}
	}
	var missing []string
	for name := range onDisk {
		if !inDoc[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("%s/%s has no row in the differential table of %s", differentialDir, name, differentialDoc)
	}

	for _, r := range rows {
		if !onDisk[r.fixture] {
			continue
		}
		t.Run(r.fixture, func(t *testing.T) {
			groups, err := loadFixture(filepath.Join(differentialDir, r.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) == 0 {
				t.Fatalf("%s: no node group, launch template or instance read", r.fixture)
			}
			for _, g := range groups {
				o := iac.Resolve(g.Options, iac.AccountDefaults{}, iac.AMISupportUnknown)
				got := differentialRow{tokens: tokensCell(o.Tokens), hopLimit: hopCell(o.HopLimit), endpoint: endpointCell(o.Endpoint)}
				if got.tokens != r.tokens || got.hopLimit != r.hopLimit || got.endpoint != r.endpoint {
					t.Errorf("%s:%d: %s: the table says tokens %s, hop limit %s, endpoint %s; the code decides tokens %s (%s), hop limit %s (%s), endpoint %s (%s)",
						differentialDoc, r.line, g.Resource, r.tokens, r.hopLimit, r.endpoint,
						got.tokens, o.Tokens.Origin, got.hopLimit, o.HopLimit.Origin, got.endpoint, o.Endpoint.Origin)
				}
			}
		})
	}
}

// loadFixture reads a Terraform module directory or a CloudFormation template. Any problem
// the reader reports is an error: the fixtures are meant to be read cleanly.
func loadFixture(path string) ([]iac.NodeGroup, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	if info.IsDir() {
		groups, problems, err := terraform.Load(path)
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", path, err)
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("fixture %s: problems: %v", path, problems)
		}
		return groups, nil
	}
	data, err := os.ReadFile(path) //nolint:gosec // a fixture of this package
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	groups, problems, err := iac.ReadCloudFormation(path, data)
	if err != nil {
		return nil, fmt.Errorf("fixture %s: %w", path, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("fixture %s: problems: %v", path, problems)
	}
	return groups, nil
}

func tokensCell(s layer.Setting[string]) string {
	if !s.Known {
		return "unknown"
	}
	return s.Value
}

func hopCell(s layer.Setting[int]) string {
	if !s.Known {
		return "unknown"
	}
	return strconv.Itoa(s.Value)
}

func endpointCell(s layer.Setting[bool]) string {
	switch {
	case !s.Known:
		return "unknown"
	case s.Value:
		return "enabled"
	}
	return "disabled"
}

// readDifferentialTable finds the markdown table whose header row has the columns fixture,
// imdsguard tokens, imdsguard hop limit and imdsguard endpoint, and returns its rows.
func readDifferentialTable(path string) ([]differentialRow, error) {
	f, err := os.Open(path) //nolint:gosec // the project's own documentation
	if err != nil {
		return nil, fmt.Errorf("differential table: %w", err)
	}
	defer func() { _ = f.Close() }()

	var (
		rows    []differentialRow
		columns map[string]int
		line    int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if columns == nil {
			if !strings.HasPrefix(text, "|") {
				continue
			}
			header := map[string]int{}
			for i, c := range tableCells(text) {
				header[strings.ToLower(c)] = i
			}
			if _, ok := header[colFixture]; !ok {
				continue
			}
			if _, ok := header[colTokens]; !ok {
				continue
			}
			for _, want := range []string{colHopLimit, colEndpoint} {
				if _, ok := header[want]; !ok {
					return nil, fmt.Errorf("%s:%d: the differential table has no column %q", path, line, want)
				}
			}
			columns = header
			continue
		}
		if !strings.HasPrefix(text, "|") {
			break // the end of the table
		}
		cells := tableCells(text)
		if isSeparator(cells) {
			continue
		}
		cell := func(name string) string {
			i := columns[name]
			if i >= len(cells) {
				return ""
			}
			return strings.Trim(cells[i], "`")
		}
		rows = append(rows, differentialRow{
			line:     line,
			fixture:  strings.TrimSuffix(cell(colFixture), "/"),
			tokens:   cell(colTokens),
			hopLimit: cell(colHopLimit),
			endpoint: cell(colEndpoint),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("differential table: read %s: %w", path, err)
	}
	if columns == nil {
		return nil, fmt.Errorf("%s: no table with the columns %q and %q", path, colFixture, colTokens)
	}
	return rows, nil
}

// tableCells splits a markdown table row into its trimmed cells. The table's cells do not
// contain escaped pipes.
func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	row = strings.TrimSuffix(row, "|")
	parts := strings.Split(row, "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// isSeparator reports whether the cells are the row under a table's header (|---|:---:|).
func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":-") != "" || c == "" {
			return false
		}
	}
	return true
}
