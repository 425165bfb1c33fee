package audit_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// The JUnit XML schema as Jenkins and GitLab read it: testsuites/testsuite/testcase with an
// optional failure and system-out. Every element and attribute the writer may use is named;
// anything else lands in an Unknown field and fails the test.
type junitDoc struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
	Unknown  []xml.Attr   `xml:",any,attr"`
	Other    []anyElement `xml:",any"`
}

type junitSuite struct {
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Cases    []junitCase  `xml:"testcase"`
	Unknown  []xml.Attr   `xml:",any,attr"`
	Other    []anyElement `xml:",any"`
}

type junitCase struct {
	Name      string  `xml:"name,attr"`
	Classname string  `xml:"classname,attr"`
	Time      float64 `xml:"time,attr"`
	Failure   *struct {
		Message string     `xml:"message,attr"`
		Type    string     `xml:"type,attr"`
		Text    string     `xml:",chardata"`
		Unknown []xml.Attr `xml:",any,attr"`
	} `xml:"failure"`
	SystemOut *string      `xml:"system-out"`
	Unknown   []xml.Attr   `xml:",any,attr"`
	Other     []anyElement `xml:",any"`
}

type anyElement struct {
	XMLName xml.Name
}

// TestJUnitCountsMatchJSON: the JUnit report of the example cluster has one testsuite per
// namespace and one for cluster-wide findings, one testcase per finding of the JSON report, and
// a failure (with the message and the fix) exactly for the findings at or above --fail-on.
func TestJUnitCountsMatchJSON(t *testing.T) {
	r := runExample(t, endpoint.All)
	var js bytes.Buffer
	if err := r.WriteJSON(&js, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	var report struct {
		Findings []struct {
			ID          string `json:"id"`
			Severity    string `json:"severity"`
			Namespace   string `json:"namespace"`
			Message     string `json:"message"`
			Remediation string `json:"remediation"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Findings) == 0 {
		t.Fatal("the example cluster has no findings to compare")
	}
	for _, failOn := range []string{"info", "medium", "high", "critical", "none"} {
		t.Run("fail-on "+failOn, func(t *testing.T) {
			threshold, err := audit.ParseSeverity(failOn)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := r.WriteJUnit(&out, threshold); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), xml.Header) {
				t.Errorf("no XML declaration: %.80s", out.String())
			}
			var doc junitDoc
			dec := xml.NewDecoder(&out)
			dec.Strict = true
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("JUnit output does not parse: %v", err)
			}

			wantSuites := map[string]bool{audit.ClusterSuite: true}
			for _, ns := range r.Namespaces {
				wantSuites[ns.Name] = true
			}
			wantFailures := map[string]int{} // by suite
			wantTests := map[string]int{}
			totalFailures := 0
			for _, f := range report.Findings {
				suite := f.Namespace
				if suite == "" {
					suite = audit.ClusterSuite
				}
				wantTests[suite]++
				sev, err := audit.ParseSeverity(f.Severity)
				if err != nil {
					t.Fatal(err)
				}
				if sev >= threshold {
					wantFailures[suite]++
					totalFailures++
				}
			}

			if len(doc.Unknown)+len(doc.Other) > 0 {
				t.Errorf("testsuites has attributes or elements outside the schema: %v %v", doc.Unknown, doc.Other)
			}
			if doc.Tests != len(report.Findings) || doc.Failures != totalFailures || doc.Errors != 0 {
				t.Errorf("testsuites: tests %d, failures %d, errors %d; want %d findings, %d at or above %s, 0 errors", doc.Tests, doc.Failures, doc.Errors, len(report.Findings), totalFailures, failOn)
			}
			if len(doc.Suites) != len(wantSuites) {
				t.Errorf("%d testsuites, want %d (one per namespace and %s)", len(doc.Suites), len(wantSuites), audit.ClusterSuite)
			}
			cases, failures := 0, 0
			names := map[string]bool{}
			for _, s := range doc.Suites {
				if !wantSuites[s.Name] {
					t.Errorf("testsuite %q is neither a namespace nor %s", s.Name, audit.ClusterSuite)
				}
				if len(s.Unknown)+len(s.Other) > 0 {
					t.Errorf("testsuite %s has attributes or elements outside the schema: %v %v", s.Name, s.Unknown, s.Other)
				}
				failed := 0
				for _, c := range s.Cases {
					if len(c.Unknown)+len(c.Other) > 0 {
						t.Errorf("testcase %s has attributes or elements outside the schema: %v %v", c.Name, c.Unknown, c.Other)
					}
					if c.Name == "" || !strings.HasPrefix(c.Classname, "imdsguard."+s.Name+".IMDS") {
						t.Errorf("testcase %q of %s: classname %q, want imdsguard.%s.<rule>", c.Name, s.Name, c.Classname, s.Name)
					}
					key := c.Classname + "\x00" + c.Name
					if names[key] {
						t.Errorf("testcase %q of %s is not unique (GitLab keeps only the first)", c.Name, c.Classname)
					}
					names[key] = true
					if c.Failure != nil {
						failed++
						if c.Failure.Message == "" || !strings.Contains(c.Failure.Text, "remediation: ") || len(c.Failure.Unknown) > 0 {
							t.Errorf("failure of %q: message %q, text %q; want the message and the remediation", c.Name, c.Failure.Message, c.Failure.Text)
						}
					} else if c.SystemOut == nil || !strings.Contains(*c.SystemOut, "remediation: ") {
						t.Errorf("passing testcase %q has no details in system-out", c.Name)
					}
				}
				if s.Tests != len(s.Cases) || s.Failures != failed {
					t.Errorf("testsuite %s says tests %d failures %d, holds %d testcases, %d failed", s.Name, s.Tests, s.Failures, len(s.Cases), failed)
				}
				if s.Tests != wantTests[s.Name] || s.Failures != wantFailures[s.Name] {
					t.Errorf("testsuite %s: %d tests, %d failures; the JSON report has %d findings there, %d at or above %s", s.Name, s.Tests, s.Failures, wantTests[s.Name], wantFailures[s.Name], failOn)
				}
				cases += len(s.Cases)
				failures += failed
			}
			if cases != len(report.Findings) || failures != totalFailures {
				t.Errorf("%d testcases, %d failed; want %d findings, %d at or above %s", cases, failures, len(report.Findings), totalFailures, failOn)
			}
		})
	}
}
