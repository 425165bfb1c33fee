package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// BaselineState is a finding's state against a baseline report.
type BaselineState string

// The baseline states. Only new and worse findings count toward --fail-on.
const (
	// BaselineNew: the baseline has no finding with the same fingerprint.
	BaselineNew BaselineState = "new"
	// BaselineUnchanged: the baseline has the finding, at the same or a higher severity.
	BaselineUnchanged BaselineState = "unchanged"
	// BaselineWorse: the baseline has the finding at a lower severity.
	BaselineWorse BaselineState = "worse"
)

// Baseline is what a previous JSON report says of its findings: the highest severity of each
// fingerprint.
type Baseline struct {
	// File is the path the report was read from, for messages.
	File     string
	severity map[string]Severity
}

// baselineReport is the part of a JSON report (schema 2.x) a baseline reads.
type baselineReport struct {
	SchemaVersion string `json:"schemaVersion"`
	Findings      []struct {
		ID        string                `json:"id"`
		Severity  string                `json:"severity"`
		Objects   []inventory.ObjectRef `json:"objects"`
		Endpoints []string              `json:"endpoints"`
	} `json:"findings"`
}

// LoadBaseline reads a previous JSON report.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	return ParseBaseline(path, data)
}

// ParseBaseline reads the findings of a JSON report of schema major version 2 (SchemaVersion);
// other major versions are refused, since their findings may not mean the same.
func ParseBaseline(file string, data []byte) (*Baseline, error) {
	var rep baselineReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("baseline %s: not a JSON report of imdsguard audit -o json: %w", file, err)
	}
	want, _, _ := strings.Cut(SchemaVersion, ".")
	major, _, _ := strings.Cut(rep.SchemaVersion, ".")
	if rep.SchemaVersion == "" {
		return nil, fmt.Errorf("baseline %s: no schemaVersion: not a JSON report of imdsguard audit -o json", file)
	}
	if major != want {
		return nil, fmt.Errorf("baseline %s: schemaVersion %s: want %s.x; write a new baseline with this version of imdsguard", file, rep.SchemaVersion, want)
	}
	b := &Baseline{File: file, severity: map[string]Severity{}}
	for i, f := range rep.Findings {
		sev, err := ParseSeverity(f.Severity)
		if err != nil || sev > Critical {
			return nil, fmt.Errorf("baseline %s: findings[%d].severity %q: want info, low, medium, high or critical", file, i, f.Severity)
		}
		fp := Fingerprint(f.ID, f.Objects, f.Endpoints)
		if old, ok := b.severity[fp]; !ok || sev > old {
			b.severity[fp] = sev
		}
	}
	return b, nil
}

// ApplyBaseline sets each finding's baseline state: new when the baseline lacks its
// fingerprint, worse when the baseline has it at a lower severity, unchanged otherwise.
func (r *Report) ApplyBaseline(b *Baseline) {
	if b == nil {
		return
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		old, ok := b.severity[f.Fingerprint()]
		switch {
		case !ok:
			f.Baseline = BaselineNew
		case f.Severity > old:
			f.Baseline = BaselineWorse
		default:
			f.Baseline = BaselineUnchanged
		}
	}
}

// Fingerprint identifies a finding across runs (Fingerprint).
func (f Finding) Fingerprint() string { return Fingerprint(f.Rule.ID, f.Objects, f.Endpoints) }
