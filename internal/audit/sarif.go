package audit

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

// securitySeverity maps severities to the numeric scale GitHub code scanning reads from the
// "security-severity" rule property.
var securitySeverity = map[Severity]string{Critical: "9.5", High: "8.0", Medium: "5.5", Low: "3.0", Info: "1.0"}

// sarifBaselineState maps a baseline state to SARIF 2.1.0 §3.27.24 baselineState: a finding
// worse than in the baseline is "updated" (present in both, changed); without a baseline the
// property is left out.
func sarifBaselineState(s BaselineState) string {
	switch s {
	case BaselineNew:
		return "new"
	case BaselineUnchanged:
		return "unchanged"
	case BaselineWorse:
		return "updated"
	}
	return ""
}

func sarifLevel(s Severity) string {
	switch s {
	case Critical, High:
		return "error"
	case Medium:
		return "warning"
	}
	return "note"
}

// WriteSARIF writes the findings as a SARIF 2.1.0 log with one run.
func (r *Report) WriteSARIF(w io.Writer, version string) error {
	log := sarif.NewReport()
	run := sarif.NewRunWithInformationURI("imdsguard", "https://github.com/imdsguard/imdsguard")
	run.Tool.Driver.WithVersion(version).WithSemanticVersion(strings.TrimPrefix(version, "v"))
	for _, rule := range Rules {
		tags := []string{"security"}
		props := sarif.NewPropertyBag().Add("security-severity", securitySeverity[rule.Severity])
		for _, t := range rule.MITRE {
			tags = append(tags, "external/mitre-attack/"+t.ID)
		}
		props.WithTags(tags)
		run.AddRule(rule.ID).
			WithName(strings.ReplaceAll(rule.Title, " ", "")).
			WithShortDescription(sarif.NewMultiformatMessageString().WithText(rule.Title)).
			WithFullDescription(sarif.NewMultiformatMessageString().WithText(rule.Description)).
			WithHelp(sarif.NewMultiformatMessageString().WithText(rule.Description)).
			WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel(sarifLevel(rule.Severity))).
			WithProperties(props)
	}
	for _, f := range r.Findings {
		res := run.CreateResultForRule(f.Rule.ID).
			WithLevel(sarifLevel(f.Severity)).
			WithMessage(sarif.NewTextMessage(f.Message + " Fix: " + f.Remediation))
		props := sarif.NewPropertyBag().Add("severity", f.Severity.String()).Add("remediation", f.Remediation)
		if len(f.Endpoints) > 0 {
			props.Add("endpoints", f.Endpoints)
		}
		res.WithProperties(props)
		for _, o := range f.Objects {
			loc := sarif.NewLocation()
			if o.Source.File != "" && !strings.HasPrefix(o.Source.File, "<") {
				region := sarif.NewRegion().WithStartLine(max(1, o.Source.Line))
				loc.WithPhysicalLocation(sarif.NewPhysicalLocation().
					WithArtifactLocation(sarif.NewSimpleArtifactLocation(filepath.ToSlash(o.Source.File))).
					WithRegion(region))
			}
			fqn := o.Kind + "/" + o.Name
			if o.Namespace != "" {
				fqn = o.Namespace + "/" + fqn
			}
			loc.AddLogicalLocation(sarif.NewLogicalLocation().WithKind("object").WithName(o.Name).WithFullyQualifiedName(fqn))
			res.AddLocation(loc)
		}
		res.WithPartialFingerprints(map[string]string{"imdsguard/v1": f.Fingerprint()})
		if a := f.Accepted; a != nil {
			// SARIF 2.1.0 §3.35: an external suppression is one kept outside the analysed
			// files (the --exceptions file); its justification is the reason.
			res.AddSuppression(sarif.NewSuppression().WithKind("external").WithStatus("accepted").
				WithJustification(a.Reason + " (expires " + a.Expires.Format(dateLayout) + ")"))
		}
		if state := sarifBaselineState(f.Baseline); state != "" {
			res.WithBaselineState(state)
		}
	}
	log.AddRun(run)
	if err := log.PrettyWrite(w); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}

// Fingerprint identifies a finding across runs: its rule ID, the objects it names (kind,
// namespace and name, in the finding's order) and its endpoints (sorted), not its message,
// severity or source positions, which may change while the problem stays the same. Baselines
// compare findings by it, and SARIF carries it as the partial fingerprint "imdsguard/v1".
func Fingerprint(id string, objects []inventory.ObjectRef, endpoints []string) string {
	parts := []string{id}
	for _, o := range objects {
		parts = append(parts, o.Kind+"/"+o.Namespace+"/"+o.Name)
	}
	eps := slices.Clone(endpoints)
	slices.Sort(eps)
	return strings.Join(append(parts, eps...), "|")
}
