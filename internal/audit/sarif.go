package audit

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

// securitySeverity maps severities to the numeric scale GitHub code scanning reads from the
// "security-severity" rule property.
var securitySeverity = map[Severity]string{Critical: "9.5", High: "8.0", Medium: "5.5", Low: "3.0", Info: "1.0"}

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
		res.WithPartialFingerprints(map[string]string{"imdsguard/v1": fingerprint(f)})
	}
	log.AddRun(run)
	if err := log.PrettyWrite(w); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}

// fingerprint identifies a finding across runs: rule, objects and endpoints, not the message.
func fingerprint(f Finding) string {
	parts := []string{f.Rule.ID}
	for _, o := range f.Objects {
		parts = append(parts, o.Kind+"/"+o.Namespace+"/"+o.Name)
	}
	eps := slices.Clone(f.Endpoints)
	slices.Sort(eps)
	return strings.Join(append(parts, eps...), "|")
}
