package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
)

const exceptionsHead = "apiVersion: imdsguard.io/v1\nkind: Exceptions\nexceptions:\n"

// goodEntry is a valid exception entry, to precede the entry under test.
const goodEntry = "- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, reason: migrating to IRSA, expires: 2030-01-31}\n"

func TestParseExceptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		sentence string
		file     string
		index    int // -1: the top level
		field    string
		message  string
	}{
		{"an unknown field of an entry is refused, naming it", exceptionsHead + goodEntry +
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, endpiont: aws-imds, reason: r, expires: 2030-01-31}\n",
			1, "endpiont", `unknown field "endpiont"`},
		{"an unknown field of the object is refused", exceptionsHead +
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web, uid: x}, reason: r, expires: 2030-01-31}\n",
			0, "uid", `unknown field "uid"`},
		{"a missing reason is refused", exceptionsHead + goodEntry + goodEntry +
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, expires: 2030-01-31}\n",
			2, "reason", "missing"},
		{"a blank reason is refused", exceptionsHead + "- {id: IMDS001, object: {kind: Pod, name: web}, reason: '  ', expires: 2030-01-31}\n",
			0, "reason", "missing"},
		{"a missing expiry is refused", exceptionsHead + "- {id: IMDS001, object: {kind: Pod, name: web}, reason: r}\n",
			0, "expires", "missing"},
		{"a date that does not exist is refused", exceptionsHead + "- {id: IMDS001, object: {kind: Pod, name: web}, reason: r, expires: 2030-02-30}\n",
			0, "expires", `"2030-02-30": want a date, YYYY-MM-DD`},
		{"a date in another form is refused", exceptionsHead + "- {id: IMDS001, object: {kind: Pod, name: web}, reason: r, expires: 31/01/2030}\n",
			0, "expires", "want a date, YYYY-MM-DD"},
		{"an ID that names no rule is refused", exceptionsHead + "- {id: IMDS999, object: {kind: Pod, name: web}, reason: r, expires: 2030-01-31}\n",
			0, "id", `"IMDS999" names no rule`},
		{"a missing ID is refused", exceptionsHead + "- {object: {kind: Pod, name: web}, reason: r, expires: 2030-01-31}\n",
			0, "id", "missing"},
		{"an object without a name is refused", exceptionsHead + "- {id: IMDS001, object: {kind: Pod}, reason: r, expires: 2030-01-31}\n",
			0, "object.name", "missing"},
		{"an object without a kind is refused", exceptionsHead + "- {id: IMDS001, object: {name: web}, reason: r, expires: 2030-01-31}\n",
			0, "object.kind", "missing"},
		{"another apiVersion is refused", "apiVersion: imdsguard.io/v2\nkind: Exceptions\nexceptions: []\n",
			-1, "apiVersion", "want imdsguard.io/v1"},
		{"another kind is refused", "apiVersion: imdsguard.io/v1\nkind: Exception\nexceptions: []\n",
			-1, "kind", "want Exceptions"},
		{"an unknown top-level field is refused", exceptionsHead[:len(exceptionsHead)-len("exceptions:\n")] + "exception: []\n",
			-1, "exception", `unknown field "exception"`},
		{"a field of the wrong type is refused", exceptionsHead + "- {id: IMDS001, object: web, reason: r, expires: 2030-01-31}\n",
			0, "object", "want audit.ExceptionObject"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			_, err := audit.ParseExceptions("accepted.yaml", []byte(tc.file))
			var ee *audit.ExceptionsError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v, want an ExceptionsError", err)
			}
			if ee.File != "accepted.yaml" || ee.Index != tc.index || ee.Field != tc.field || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q (index %d, field %q), want index %d, field %q and %q", err, ee.Index, ee.Field, tc.index, tc.field, tc.message)
			}
			if tc.index >= 0 && !strings.HasPrefix(err.Error(), "accepted.yaml: exceptions[") {
				t.Errorf("error %q does not start with the file and the entry", err)
			}
		})
	}
}

func TestParseExceptionsValid(t *testing.T) {
	ex, err := audit.ParseExceptions("accepted.yaml", []byte(exceptionsHead+goodEntry+
		"- id: IMDS004\n  object: {kind: Namespace, name: shop}\n  reason: \"legacy namespace, #123\"\n  expires: \"2030-02-28\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Items) != 2 || ex.Items[1].Index != 1 || ex.Items[1].Object.Name != "shop" || !ex.Items[1].ExpiresOn().Equal(time.Date(2030, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parsed %+v", ex.Items)
	}
}

// exposedShop is a namespace whose pod reaches every metadata endpoint: with --cloud aws, it
// has IMDS001 for aws-imds and for aws-imds-ipv6, IMDS004 for the namespace and IMDS008.
const exposedShop = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"

func exceptions(t *testing.T, entries string) *audit.Exceptions {
	t.Helper()
	ex, err := audit.ParseExceptions("accepted.yaml", []byte(exceptionsHead+entries))
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// accepted lists the findings accepted, as "ID endpoints".
func accepted(r *audit.Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Accepted != nil {
			out = append(out, f.Rule.ID+" "+strings.Join(f.Endpoints, ","))
		}
	}
	return out
}

func TestApplyExceptions(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		sentence string
		entries  string
		now      time.Time
		accepted []string
		warnings []string
	}{
		{"an exception without endpoint accepts every finding of its rule on its object",
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, reason: r, expires: 2030-01-31}\n",
			day("2030-01-01T00:00:00Z"), []string{"IMDS001 aws-imds", "IMDS001 aws-imds-ipv6"}, nil},
		{"an exception with an endpoint accepts only the finding about that endpoint",
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, endpoint: aws-imds-ipv6, reason: r, expires: 2030-01-31}\n",
			day("2030-01-01T00:00:00Z"), []string{"IMDS001 aws-imds-ipv6"}, nil},
		{"a cluster-scoped object is named without namespace",
			"- {id: IMDS004, object: {kind: Namespace, name: shop}, reason: r, expires: 2030-01-31}\n",
			day("2030-01-01T00:00:00Z"), []string{"IMDS004 "}, nil},
		{"an exception holds through its expiry day, in UTC",
			"- {id: IMDS008, object: {kind: Pod, namespace: shop, name: web}, reason: r, expires: 2030-01-31}\n",
			day("2030-01-31T23:59:59Z"), []string{"IMDS008 aws-imds"}, nil},
		{"an expired exception accepts nothing, and is reported",
			"- {id: IMDS008, object: {kind: Pod, namespace: shop, name: web}, reason: r, expires: 2030-01-31}\n",
			day("2030-02-01T00:00:00Z"), nil,
			[]string{"accepted.yaml: exceptions[0] (IMDS008 Pod shop/web) expired on 2030-01-31: the findings it matched count again"}},
		{"an exception for another object, rule or endpoint is unused, and reported",
			"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: api}, reason: r, expires: 2030-01-31}\n" +
				"- {id: IMDS002, object: {kind: Pod, namespace: shop, name: web}, reason: r, expires: 2030-01-31}\n" +
				"- {id: IMDS001, object: {kind: Pod, namespace: shop, name: web}, endpoint: gcp-metadata, reason: r, expires: 2030-01-31}\n" +
				"- {id: IMDS001, object: {kind: Deployment, namespace: shop, name: web}, reason: r, expires: 2030-01-31}\n",
			day("2030-01-01T00:00:00Z"), nil,
			[]string{"accepted.yaml: exceptions[0] (IMDS001 Pod shop/api) is unused: it matches no finding; remove it",
				"accepted.yaml: exceptions[1] (IMDS002 Pod shop/web) is unused: it matches no finding; remove it",
				"accepted.yaml: exceptions[2] (IMDS001 Pod shop/web endpoint gcp-metadata) is unused: it matches no finding; remove it",
				"accepted.yaml: exceptions[3] (IMDS001 Deployment shop/web) is unused: it matches no finding; remove it"}},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			r := auditYAML(t, exposedShop+pod("shop", "web", ""), endpoint.AWS)
			before := len(r.Warnings)
			r.ApplyExceptions(exceptions(t, tc.entries), tc.now)
			if got := accepted(r); strings.Join(got, ";") != strings.Join(tc.accepted, ";") {
				t.Errorf("accepted %q, want %q", got, tc.accepted)
			}
			if got := r.Warnings[before:]; strings.Join(got, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings %q, want %q", got, tc.warnings)
			}
			for _, f := range r.Findings {
				if f.Counts() == (f.Accepted != nil) {
					t.Errorf("%s accepted %v counts %v", f.Rule.ID, f.Accepted != nil, f.Counts())
				}
			}
		})
	}
}

// TestAcceptanceNeedsEveryEndpoint: a finding about two endpoints is accepted only when both
// are, and shows the exception that expires first.
func TestAcceptanceNeedsEveryEndpoint(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := audit.Finding{Rule: audit.RuleIPv6Gap, Severity: audit.High, Objects: auditObjects("Pod", "shop", "web"), Endpoints: []string{"aws-imds", "aws-imds-ipv6"}}
	one := "- {id: IMDS003, object: {kind: Pod, namespace: shop, name: web}, endpoint: aws-imds, reason: first, expires: 2030-06-30}\n"
	two := "- {id: IMDS003, object: {kind: Pod, namespace: shop, name: web}, endpoint: aws-imds-ipv6, reason: second, expires: 2030-03-31}\n"
	r := &audit.Report{Findings: []audit.Finding{f}}
	r.ApplyExceptions(exceptions(t, one), now)
	if r.Findings[0].Accepted != nil {
		t.Errorf("accepted by an exception for one of its two endpoints")
	}
	r = &audit.Report{Findings: []audit.Finding{f}}
	r.ApplyExceptions(exceptions(t, one+two), now)
	if a := r.Findings[0].Accepted; a == nil || a.Reason != "second" || a.Expires.Format("2006-01-02") != "2030-03-31" {
		t.Errorf("accepted %+v, want the exception that expires first", a)
	}
}

// TestAcceptedAndBaselineOutput: accepted findings stay in every report, marked with their
// reason and expiry; JSON validates against the report schema and SARIF against the OASIS
// schema, with an external suppression and the baseline state.
func TestAcceptedAndBaselineOutput(t *testing.T) {
	r := auditYAML(t, exposedShop+pod("shop", "web", ""), endpoint.AWS)
	var js bytes.Buffer
	if err := r.WriteJSON(&js, "test"); err != nil {
		t.Fatal(err)
	}
	// The baseline knows IMDS004 at a lower severity and IMDS001 for aws-imds.
	base := strings.Replace(strings.Replace(js.String(), `"severity":"medium"`, `"severity":"low"`, 1), `"endpoints":["aws-imds-ipv6"]`, `"endpoints":["gcp-metadata"]`, 1)
	b, err := audit.ParseBaseline("main.json", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	r.ApplyExceptions(exceptions(t, "- {id: IMDS008, object: {kind: Pod, namespace: shop, name: web}, reason: \"needs node role <until IRSA>\", expires: 2030-01-31}\n"),
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	r.ApplyBaseline(b)
	want := map[string]audit.BaselineState{"IMDS001 aws-imds": audit.BaselineUnchanged, "IMDS001 aws-imds-ipv6": audit.BaselineNew,
		"IMDS004 ": audit.BaselineWorse, "IMDS008 aws-imds": audit.BaselineUnchanged}
	for _, f := range r.Findings {
		if key := f.Rule.ID + " " + strings.Join(f.Endpoints, ","); f.Baseline != want[key] {
			t.Errorf("%s: baseline %q, want %q", key, f.Baseline, want[key])
		}
	}

	js.Reset()
	if err := r.WriteJSON(&js, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "../../docs/audit-report.schema.json"), js.Bytes())
	var rep struct {
		Findings []struct {
			ID       string `json:"id"`
			Baseline string `json:"baseline"`
			Accepted *struct {
				Reason  string `json:"reason"`
				Expires string `json:"expires"`
			} `json:"accepted"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if (f.ID == "IMDS008") != (f.Accepted != nil) || f.Baseline == "" {
			t.Errorf("JSON finding %+v", f)
		}
		if a := f.Accepted; a != nil && (a.Reason != "needs node role <until IRSA>" || a.Expires != "2030-01-31") {
			t.Errorf("JSON acceptance %+v", a)
		}
	}

	var sarifOut bytes.Buffer
	if err := r.WriteSARIF(&sarifOut, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "testdata/sarif-schema-2.1.0.json"), sarifOut.Bytes())
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID        string `json:"ruleId"`
				BaselineState string `json:"baselineState"`
				Suppressions  []struct {
					Kind          string `json:"kind"`
					Justification string `json:"justification"`
				} `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sarifOut.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	states := map[audit.BaselineState]string{audit.BaselineNew: "new", audit.BaselineUnchanged: "unchanged", audit.BaselineWorse: "updated"}
	for i, res := range log.Runs[0].Results {
		f := r.Findings[i]
		if res.BaselineState != states[f.Baseline] {
			t.Errorf("%s: baselineState %q, want %q", res.RuleID, res.BaselineState, states[f.Baseline])
		}
		if f.Accepted == nil {
			if len(res.Suppressions) != 0 {
				t.Errorf("%s: suppressed without an exception", res.RuleID)
			}
			continue
		}
		if len(res.Suppressions) != 1 || res.Suppressions[0].Kind != "external" || !strings.HasPrefix(res.Suppressions[0].Justification, "needs node role <until IRSA>") {
			t.Errorf("%s: suppressions %+v, want one external with the reason", res.RuleID, res.Suppressions)
		}
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table, audit.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"IMDS008 [accepted until 2030-01-31: needs node role <until IRSA>] ",
		"IMDS004 [worse than baseline] ",
		"IMDS001 [in baseline] ",
		"not counted toward --fail-on: 1 accepted by exceptions, 1 unchanged since the baseline",
	} {
		if !strings.Contains(table.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, table.String())
		}
	}
}
