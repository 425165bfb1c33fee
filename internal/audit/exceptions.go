package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"sigs.k8s.io/yaml"
)

// ExceptionsAPIVersion and ExceptionsKind identify an exceptions file.
const (
	ExceptionsAPIVersion = "imdsguard.io/v1"
	ExceptionsKind       = "Exceptions"
)

// dateLayout is the format of an exception's expiry date.
const dateLayout = "2006-01-02"

// Exception accepts the findings of one rule on one object, optionally for one endpoint only,
// until a date. Exceptions come only from a file the person running the audit names
// (--exceptions), never from the audited objects: a workload owner must not be able to accept
// their own findings with an annotation.
type Exception struct {
	ID       string          `json:"id"`
	Object   ExceptionObject `json:"object"`
	Endpoint string          `json:"endpoint,omitempty"`
	Reason   string          `json:"reason"`
	Expires  string          `json:"expires"`
	// Index is the entry's position in the file's exceptions list, from 0.
	Index int `json:"-"`
	// expires is Expires parsed: the last day (UTC) on which the exception holds.
	expires time.Time
}

// ExceptionObject names the object an exception is about.
type ExceptionObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o ExceptionObject) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// ExpiresOn returns the last day on which the exception holds, at midnight UTC.
func (e Exception) ExpiresOn() time.Time { return e.expires }

// Expired reports whether the exception no longer holds at now: it holds through its expiry
// date, in UTC.
func (e Exception) Expired(now time.Time) bool {
	return !now.UTC().Before(e.expires.AddDate(0, 0, 1))
}

func (e Exception) String() string {
	s := e.ID + " " + e.Object.String()
	if e.Endpoint != "" {
		s += " endpoint " + e.Endpoint
	}
	return s
}

// Exceptions is a parsed exceptions file.
type Exceptions struct {
	// File is the path the exceptions were read from, for messages.
	File  string
	Items []Exception
}

// exceptionsFile is the file's top level.
type exceptionsFile struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Exceptions []json.RawMessage `json:"exceptions"`
}

// ExceptionsError is a problem with an exceptions file: the file, the entry (-1 for the top
// level) and the field concerned.
type ExceptionsError struct {
	File  string
	Index int
	Field string
	Err   error
}

func (e *ExceptionsError) Error() string {
	where := e.File
	if e.Index >= 0 {
		where += fmt.Sprintf(": exceptions[%d]", e.Index)
	}
	if e.Field != "" {
		where += ": " + e.Field
	}
	return where + ": " + e.Err.Error()
}

func (e *ExceptionsError) Unwrap() error { return e.Err }

// LoadExceptions reads and validates an exceptions file.
func LoadExceptions(path string) (*Exceptions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read exceptions: %w", err)
	}
	return ParseExceptions(path, data)
}

// ParseExceptions validates an exceptions file strictly: unknown fields, a missing or empty
// field, a date not in YYYY-MM-DD form and an ID that names no rule are errors, each naming the
// file, the entry and the field.
func ParseExceptions(file string, data []byte) (*Exceptions, error) {
	top := func(field string, err error) error {
		return &ExceptionsError{File: file, Index: -1, Field: field, Err: err}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, top("", fmt.Errorf("not YAML: %w", err))
	}
	var f exceptionsFile
	if err := strictJSON(js, &f); err != nil {
		return nil, top(unknownField(err), err)
	}
	if f.APIVersion != ExceptionsAPIVersion {
		return nil, top("apiVersion", fmt.Errorf("%q: want %s", f.APIVersion, ExceptionsAPIVersion))
	}
	if f.Kind != ExceptionsKind {
		return nil, top("kind", fmt.Errorf("%q: want %s", f.Kind, ExceptionsKind))
	}
	out := &Exceptions{File: file}
	for i, raw := range f.Exceptions {
		e, err := parseException(raw)
		if err != nil {
			err.File, err.Index = file, i
			return nil, err
		}
		e.Index = i
		out.Items = append(out.Items, e)
	}
	return out, nil
}

// parseException validates one entry; the error lacks file and index, which the caller adds.
func parseException(raw json.RawMessage) (Exception, *ExceptionsError) {
	bad := func(field string, format string, args ...any) *ExceptionsError {
		return &ExceptionsError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	var e Exception
	if err := strictJSON(raw, &e); err != nil {
		return e, &ExceptionsError{Field: unknownField(err), Err: err}
	}
	if e.ID == "" {
		return e, bad("id", "missing: want a rule ID such as IMDS001")
	}
	if !slices.ContainsFunc(Rules, func(r Rule) bool { return r.ID == e.ID }) {
		return e, bad("id", "%q names no rule (IMDS001 to %s)", e.ID, Rules[len(Rules)-1].ID)
	}
	if e.Object.Kind == "" {
		return e, bad("object.kind", "missing")
	}
	if e.Object.Name == "" {
		return e, bad("object.name", "missing")
	}
	if strings.TrimSpace(e.Reason) == "" {
		return e, bad("reason", "missing: say why the finding is accepted")
	}
	if e.Expires == "" {
		return e, bad("expires", "missing: want a date, YYYY-MM-DD")
	}
	t, err := time.Parse(dateLayout, e.Expires)
	if err != nil {
		return e, bad("expires", "%q: want a date, YYYY-MM-DD", e.Expires)
	}
	e.expires = t
	return e, nil
}

// strictJSON decodes one JSON value and refuses fields v does not have.
func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: want %s, not %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// unknownField extracts the field name of a decoding error, if it names one.
func unknownField(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		return strings.TrimSuffix(name, `"`)
	}
	if field, _, ok := strings.Cut(msg, ": want "); ok {
		return field
	}
	return ""
}

// Acceptance is an exception that accepts a finding.
type Acceptance struct {
	Reason string
	// Expires is the last day the acceptance holds.
	Expires time.Time
}

// ApplyExceptions marks the findings the exceptions accept at now, and adds a warning to the
// report for each exception that has expired (its findings count again) and each that matches
// no finding. A finding that names several endpoints is accepted only when each of them is: an
// exception for one endpoint does not accept a finding about two. When several exceptions
// accept a finding, the report shows the one that expires first.
func (r *Report) ApplyExceptions(ex *Exceptions, now time.Time) {
	if ex == nil {
		return
	}
	used := make([]bool, len(ex.Items))
	for i := range r.Findings {
		f := &r.Findings[i]
		var matching []int
		for k, e := range ex.Items {
			if e.matches(f) {
				matching = append(matching, k)
				used[k] = true
			}
		}
		if a, ok := accept(f, ex.Items, matching, now); ok {
			f.Accepted = &a
		}
	}
	for k, e := range ex.Items {
		switch {
		case e.Expired(now):
			what := "it matches no finding"
			if used[k] {
				what = "the findings it matched count again"
			}
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: exceptions[%d] (%s) expired on %s: %s", ex.File, k, e, e.Expires, what))
		case !used[k]:
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: exceptions[%d] (%s) is unused: it matches no finding; remove it", ex.File, k, e))
		}
	}
}

// matches reports whether the exception is about the finding: same rule, the finding names the
// object, and, when the exception names an endpoint, the finding names it too.
func (e Exception) matches(f *Finding) bool {
	if e.ID != f.Rule.ID {
		return false
	}
	if !slices.ContainsFunc(f.Objects, func(o inventory.ObjectRef) bool {
		return o.Kind == e.Object.Kind && o.Namespace == e.Object.Namespace && o.Name == e.Object.Name
	}) {
		return false
	}
	return e.Endpoint == "" || slices.Contains(f.Endpoints, e.Endpoint)
}

// accept decides whether the matching exceptions that have not expired accept the finding: one
// without an endpoint does, else each endpoint of the finding needs one.
func accept(f *Finding, items []Exception, matching []int, now time.Time) (Acceptance, bool) {
	var best *Exception
	covered := map[string]bool{}
	all := false
	for _, k := range matching {
		e := &items[k]
		if e.Expired(now) {
			continue
		}
		if e.Endpoint == "" {
			all = true
		} else {
			covered[e.Endpoint] = true
		}
		if best == nil || e.expires.Before(best.expires) {
			best = e
		}
	}
	if best == nil {
		return Acceptance{}, false
	}
	if !all {
		if len(f.Endpoints) == 0 {
			return Acceptance{}, false
		}
		for _, ep := range f.Endpoints {
			if !covered[ep] {
				return Acceptance{}, false
			}
		}
	}
	return Acceptance{Reason: best.Reason, Expires: best.expires}, true
}
