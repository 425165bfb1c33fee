package audit

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML, the test report format CI systems display (Jenkins' JUnit plugin, GitLab's unit
// test reports: https://docs.gitlab.com/ci/testing/unit_test_reports/, which reads
// testsuites/testsuite/testcase with failure, error, skipped and system-out). The elements and
// attributes written are the common subset of the Ant/Jenkins schema
// (https://github.com/windyroad/JUnit-Schema/blob/master/JUnit.xsd) that both read.
//
// One testcase per finding, in one testsuite per namespace plus one for cluster-wide findings.
// A finding, not a pod or workload, is the unit a reader acts on and --fail-on judges, and the
// only unit every finding has: namespace-wide findings (IMDS004), policy findings (IMDS005,
// IMDS013) and cluster findings (IMDS012) belong to no pod. Its name (rule, objects,
// endpoints) is stable across runs, so a CI system's test history follows each finding. A
// finding at or above --fail-on is a failed testcase; one below it passes and carries its
// details in system-out. A namespace without findings is a testsuite with no testcase.

// ClusterSuite names the testsuite of findings that belong to no namespace.
const ClusterSuite = "cluster-wide"

type junitTestsuites struct {
	XMLName  xml.Name         `xml:"testsuites"`
	Name     string           `xml:"name,attr"`
	Tests    int              `xml:"tests,attr"`
	Failures int              `xml:"failures,attr"`
	Errors   int              `xml:"errors,attr"`
	Time     string           `xml:"time,attr"`
	Suites   []junitTestsuite `xml:"testsuite"`
}

type junitTestsuite struct {
	Name     string          `xml:"name,attr"`
	Tests    int             `xml:"tests,attr"`
	Failures int             `xml:"failures,attr"`
	Errors   int             `xml:"errors,attr"`
	Skipped  int             `xml:"skipped,attr"`
	Time     string          `xml:"time,attr"`
	Cases    []junitTestcase `xml:"testcase"`
}

type junitTestcase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the findings as JUnit XML; findings at or above failOn that count toward it
// (not accepted by an exception, not already in the baseline) are failures.
func (r *Report) WriteJUnit(w io.Writer, failOn Severity) error {
	doc := r.junit(failOn)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	return nil
}

// junit builds the document: the cluster-wide suite first, then the namespaces in order.
func (r *Report) junit(failOn Severity) junitTestsuites {
	names := []string{ClusterSuite}
	index := map[string]int{"": 0}
	for _, ns := range r.Namespaces {
		index[ns.Name] = len(names)
		names = append(names, ns.Name)
	}
	suites := make([]junitTestsuite, len(names))
	for i, n := range names {
		suites[i] = junitTestsuite{Name: n, Time: "0"}
	}
	seen := map[string]int{}
	for _, f := range r.Findings {
		i, ok := index[f.Namespace]
		if !ok {
			index[f.Namespace] = len(suites)
			i = len(suites)
			suites = append(suites, junitTestsuite{Name: f.Namespace, Time: "0"})
		}
		tc := junitTestcase{
			Name:      junitCaseName(f, seen),
			Classname: "imdsguard." + suites[i].Name + "." + f.Rule.ID,
			Time:      "0",
			SystemOut: junitDetails(f),
		}
		if f.Severity >= failOn && f.Counts() { // accepted or baseline findings pass, as for --fail-on
			tc.Failure = &junitFailure{
				Message: f.Message,
				Type:    f.Rule.ID + " " + f.Severity.String(),
				Text:    junitDetails(f),
			}
			tc.SystemOut = ""
			suites[i].Failures++
		}
		suites[i].Tests++
		suites[i].Cases = append(suites[i].Cases, tc)
	}
	doc := junitTestsuites{Name: "imdsguard audit", Time: "0", Suites: suites}
	for _, s := range suites {
		doc.Tests += s.Tests
		doc.Failures += s.Failures
	}
	return doc
}

// junitCaseName names a finding's testcase: rule, objects and endpoints, made unique within the
// report (GitLab keeps only the first of equally named tests).
func junitCaseName(f Finding, seen map[string]int) string {
	parts := []string{f.Rule.ID}
	for _, o := range f.Objects {
		ref := o.Kind + "/" + o.Name
		if o.Namespace != "" && o.Namespace != f.Namespace {
			ref = o.Kind + "/" + o.Namespace + "/" + o.Name
		}
		parts = append(parts, ref)
	}
	if len(f.Endpoints) > 0 {
		parts = append(parts, strings.Join(f.Endpoints, ","))
	}
	name := strings.Join(parts, " ")
	seen[name]++
	if n := seen[name]; n > 1 {
		name = fmt.Sprintf("%s #%d", name, n)
	}
	return name
}

// junitDetails is the text a reader acts on: what, how bad, where and the fix.
func junitDetails(f Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n", f.Rule.ID, f.Severity, f.Rule.Title)
	fmt.Fprintf(&b, "%s\n", f.Message)
	for _, o := range f.Objects {
		fmt.Fprintf(&b, "object: %s", o.String())
		if o.Source.File != "" {
			fmt.Fprintf(&b, " at %s", o.Source.String())
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "remediation: %s\n", f.Remediation)
	return b.String()
}
