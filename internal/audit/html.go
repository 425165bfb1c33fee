package audit

import (
	"bufio"
	"crypto/sha256"
	_ "embed" // the page's stylesheet, script and template
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// The HTML report is one file: the page's template, stylesheet and script are compiled in, and
// the report's data travels once, as JSON, in a <script type="application/json"> element that
// the script renders a page of rows at a time.
var (
	//go:embed html/report.html.tmpl
	htmlPage string
	//go:embed html/report.css
	htmlStyle string
	//go:embed html/report.js
	htmlScript string

	htmlTemplate = template.Must(template.New("report").Parse(htmlPage))
)

// htmlView is what the template renders. Everything from the input is a plain string, escaped by
// html/template; the only unescaped values are the compiled-in stylesheet and script, and the
// data, which json.Marshal escapes for a script element (htmlData).
type htmlView struct {
	Title    string
	Version  string
	Input    string
	Engine   string
	Complete bool
	Summary  jsonSummary
	// DeniedBy* count the exposures each layer denies (the summary's deniedBy).
	DeniedByPolicy, DeniedByNode, DeniedByInstance int
	// Unknown counts the exposures whose node or instance layer decided nothing.
	UnknownNode, UnknownInstance int
	// Severities lists the severity names, most severe first, with their finding counts.
	Severities []htmlSeverityCount
	Warnings   []string
	Gaps       []string
	Problems   []string
	// Infrastructure are the launch settings of the infrastructure code, at most
	// maxHTMLCodeRows; InfrastructureMore counts those left out.
	Infrastructure     []htmlCodeRow
	InfrastructureMore int
	// CSP is the page's Content-Security-Policy: no network at all, and only the compiled-in
	// stylesheet and script may run, so an element injected through the data would be inert.
	CSP    string
	Style  template.CSS
	Script template.JS
	Data   template.JS
}

// htmlCodeRow is a launch setting of the infrastructure code, as the table shows it.
type htmlCodeRow struct {
	Resource, Root, At, Tokens, HopLimit, Endpoint, Nodes string
}

// maxHTMLCodeRows bounds the page's infrastructure table; the JSON report lists every setting.
const maxHTMLCodeRows = 1000

type htmlSeverityCount struct {
	Name  string
	Count int
}

// htmlData is the embedded JSON document the page's script renders (html/report.js). Repeated
// strings (reasons, trace lines, labels) are listed once in Strings and referred to by index.
type htmlData struct {
	Endpoints  []htmlEndpoint  `json:"endpoints"`
	Namespaces []htmlNamespace `json:"namespaces"`
	Strings    []string        `json:"strings"`
	Rows       []htmlRow       `json:"rows"`
	// Traces are the cluster-policy traces of the distinct cluster-policy verdict rows: per
	// endpoint, the trace's lines as indexes into Strings, the verdict last.
	Traces   [][][]int     `json:"traces"`
	Findings []htmlFinding `json:"findings"`
}

type htmlEndpoint struct {
	Name        string `json:"name"`
	Destination string `json:"destination"`
	Role        string `json:"role"`
	// Credentials is set for credential-bearing endpoints: their rows are always shown; the
	// others only when denied, as in the table.
	Credentials bool `json:"credentials"`
}

type htmlNamespace struct {
	Name     string `json:"name"`
	Control  string `json:"control"`
	Subjects int    `json:"subjects"`
	// Reachable counts the namespace's reachable exposures to credential endpoints.
	Reachable int `json:"reachable"`
	// Findings counts the namespace's findings by severity, most severe first.
	Findings [5]int `json:"findings"`
}

// htmlRow is one subject of the table, with the pods folded into it (as the table folds a
// workload's pods whose verdicts equal its template's).
type htmlRow struct {
	Namespace int `json:"n"`
	// Label is "Deployment/web" for a template, "Pod/web-1" for a pod.
	Label string `json:"s"`
	// Workload is, for a pod, its workload as "Kind/Name" (an index into Strings); -1 for a
	// template.
	Workload int `json:"k"`
	// Labels is the subject's labels as --explain prints them (an index into Strings).
	Labels int `json:"l"`
	// Source is where the subject was read: the file (an index into Strings), the document, the
	// line and the item, as inventory.Source holds them; empty when not read from a file.
	Source      []int    `json:"o,omitempty"`
	HostNetwork bool     `json:"h,omitempty"`
	Folded      []string `json:"p,omitempty"`
	Trace       int      `json:"t"`
	// Codes holds five letters per endpoint: the overall verdict (r reachable, d denied), the
	// cluster-policy, node and instance decisions (a allow, d deny, u unknown) and the deciding
	// layer (p cluster policy, n node, i instance).
	Codes string `json:"c"`
	// Reasons holds three indexes into Strings per endpoint: the deciding layer's reason, the
	// node layer's verdict and the instance layer's verdict.
	Reasons []int `json:"r"`
}

// htmlFinding is a finding; its remediation, often shared, is an index into Strings.
type htmlFinding struct {
	ID          string   `json:"id"`
	Severity    string   `json:"severity"`
	Namespace   string   `json:"namespace"`
	Objects     []string `json:"objects"`
	Message     string   `json:"message"`
	Remediation int      `json:"remediation"`
}

// htmlCellKey is what an exposure's cell depends on: the cluster-policy verdict and the node and
// instance layers' verdicts, which subjects on like nodes share.
type htmlCellKey struct {
	policy         policy.Verdict
	node, instance *layer.Verdict
}

// htmlCell is an exposure's part of a row: its letters in htmlRow.Codes and its reasons.
type htmlCell struct {
	code    string
	reasons [3]int
}

// htmlStrings interns the strings of the embedded data.
type htmlStrings struct {
	list  []string
	index map[string]int
}

func (s *htmlStrings) id(v string) int {
	if i, ok := s.index[v]; ok {
		return i
	}
	s.index[v] = len(s.list)
	s.list = append(s.list, v)
	return len(s.list) - 1
}

// WriteHTML writes the report as one self-contained HTML page: the summary (reachable
// credential exposures by namespace, findings by severity, what each layer denies), every
// subject's verdict per endpoint with each layer's decision, the findings with their fixes and,
// per subject, the --explain trace. Nothing on the page is fetched: the stylesheet, the script
// and the data are inline, and its Content-Security-Policy forbids any other resource.
func (r *Report) WriteHTML(w io.Writer, version string) error {
	s := r.summary()
	view := htmlView{
		Title:    "imdsguard audit",
		Version:  version,
		Input:    r.describeInput(s),
		Complete: r.Complete(),
		Summary:  s,

		DeniedByPolicy:   s.DeniedBy[layer.ClusterPolicy],
		DeniedByNode:     s.DeniedBy[layer.Node],
		DeniedByInstance: s.DeniedBy[layer.Instance],
		Style:            template.CSS(htmlStyle), // #nosec G203 -- compiled in, not from the input
		Script:           template.JS(htmlScript), // #nosec G203 -- compiled in, not from the input
	}
	if e := r.model.Enforcement; !e.Assumed {
		view.Engine = e.String()
	}
	for k := len(severityNames) - 1; k >= 0; k-- {
		view.Severities = append(view.Severities, htmlSeverityCount{severityNames[k], s.Findings[severityNames[k]]})
	}
	view.Warnings = r.Warnings
	for i, g := range r.Infrastructure {
		if i == maxHTMLCodeRows {
			view.InfrastructureMore = len(r.Infrastructure) - i
			break
		}
		o := g.Resolved
		view.Infrastructure = append(view.Infrastructure, htmlCodeRow{Resource: g.Resource, Root: g.Root, At: g.At.String(),
			Tokens:   settingText(o.Tokens, func(s string) string { return s }),
			HopLimit: settingText(o.HopLimit, func(h int) string { return fmt.Sprint(h) }),
			Endpoint: settingText(o.Endpoint, func(b bool) string { return enabledJSON(b).(string) }),
			Nodes:    nodesText(g.Nodes)})
	}
	for _, g := range r.Gaps {
		view.Gaps = append(view.Gaps, g.String())
	}
	for _, p := range r.Problems {
		view.Problems = append(view.Problems, p.Error())
	}
	for i := range r.layers {
		for j := range r.layers[i] {
			p := r.layers[i][j]
			if p.Node.Decision == layer.Unknown {
				view.UnknownNode++
			}
			if p.Instance.Decision == layer.Unknown {
				view.UnknownInstance++
			}
		}
	}
	data, err := json.Marshal(r.htmlData())
	if err != nil {
		return fmt.Errorf("encode HTML report data: %w", err)
	}
	// json.Marshal escapes <, > and & as \u003c, \u003e and \u0026, and U+2028 and U+2029: the
	// data cannot close its script element or open a comment, whatever the input holds.
	view.Data = template.JS(data) // #nosec G203 -- HTML-safe JSON, see above
	view.CSP = "default-src 'none'; style-src " + cspHash(htmlStyle) + "; script-src " + cspHash(htmlScript) +
		"; img-src data:; base-uri 'none'; form-action 'none'"
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := htmlTemplate.Execute(bw, view); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

// cspHash is the Content-Security-Policy source that allows one inline element's content.
func cspHash(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// describeInput says what was audited, as the table's first line does.
func (r *Report) describeInput(s jsonSummary) string {
	source := count(s.Files, "file") + ", " + count(s.Documents, "document")
	if r.Cluster != "" {
		source = "cluster " + r.Cluster + ", " + count(s.Documents, "object")
	}
	if r.CodeFiles > 0 {
		source += " and " + count(r.CodeFiles, "file") + " of infrastructure code"
	}
	return fmt.Sprintf("%s; %s, %s, %s; %s", source, count(s.Namespaces, "namespace"), count(s.Pods, "pod"),
		count(s.Workloads, "workload"), count(s.Endpoints, "endpoint"))
}

// htmlData gathers the page's data: one row per subject, a workload's pods folded into its
// template's row where their verdicts agree, and the cluster-policy traces of the distinct
// verdict rows (subjects of a namespace with the same labels share one).
func (r *Report) htmlData() htmlData {
	strs := &htmlStrings{index: map[string]int{}}
	d := htmlData{Endpoints: []htmlEndpoint{}, Namespaces: []htmlNamespace{}, Rows: []htmlRow{}, Traces: [][][]int{}, Findings: []htmlFinding{}}
	for _, ep := range r.Endpoints {
		d.Endpoints = append(d.Endpoints, htmlEndpoint{Name: ep.Name, Destination: ep.Destination(), Role: string(ep.Role), Credentials: ep.Role == endpoint.Credentials})
	}
	nsIndex := map[string]int{}
	for _, ns := range r.Namespaces {
		nsIndex[ns.Name] = len(d.Namespaces)
		d.Namespaces = append(d.Namespaces, htmlNamespace{Name: ns.Name, Control: describeControl(ns)})
	}
	traces := map[*policy.Verdict]int{}
	cells := map[htmlCellKey]htmlCell{}
	for i := 0; i < len(r.Subjects); {
		s := &r.Subjects[i]
		next := r.foldedUntil(i, len(r.Subjects))
		n, ok := nsIndex[s.Namespace]
		if !ok { // every subject's namespace is listed; keep the row all the same
			n = len(d.Namespaces)
			nsIndex[s.Namespace] = n
			d.Namespaces = append(d.Namespaces, htmlNamespace{Name: s.Namespace, Control: "none"})
		}
		row := htmlRow{Namespace: n, Label: s.Label(), Workload: -1, Labels: strs.id(formatLabels(s.Meta.Labels)),
			HostNetwork: s.Spec.HostNetwork, Reasons: make([]int, 0, 3*len(r.Endpoints))}
		if !s.IsTemplate() {
			row.Workload = strs.id(s.Workload.Kind + "/" + s.Workload.Name)
		}
		if src := s.Source; src.File != "" {
			row.Source = []int{strs.id(src.File), src.Document, src.Line, src.Item}
		}
		for k := i + 1; k < next; k++ {
			row.Folded = append(row.Folded, r.Subjects[k].Pod)
		}
		d.Namespaces[n].Subjects += next - i
		if len(r.Endpoints) > 0 {
			key := &r.Verdicts[i][0]
			t, ok := traces[key]
			if !ok {
				t = len(d.Traces)
				traces[key] = t
				d.Traces = append(d.Traces, r.htmlTrace(i, strs))
			}
			row.Trace = t
		}
		var codes strings.Builder
		for j, ep := range r.Endpoints {
			// Rendering an exposure's reasons is the costly part, and subjects share verdicts:
			// render each distinct combination of the three layers' verdicts once.
			p := r.layers[i][j]
			key := htmlCellKey{r.Verdicts[i][j], p.Node, p.Instance}
			c, ok := cells[key]
			if !ok {
				x := r.Exposure(i, j)
				c = htmlCell{verdictCode(x), [3]int{strs.id(decidedBy(x)), strs.id(x.Node.String()), strs.id(x.Instance.String())}}
				cells[key] = c
			}
			codes.WriteString(c.code)
			row.Reasons = append(row.Reasons, c.reasons[:]...)
			if ep.Role == endpoint.Credentials {
				for k := i; k < next; k++ {
					if r.Reachable(k, j) {
						d.Namespaces[n].Reachable++
					}
				}
			}
		}
		row.Codes = codes.String()
		d.Rows = append(d.Rows, row)
		i = next
	}
	for _, f := range r.Findings {
		objects := make([]string, 0, len(f.Objects))
		for _, o := range f.Objects {
			objects = append(objects, o.String())
		}
		d.Findings = append(d.Findings, htmlFinding{ID: f.Rule.ID, Severity: f.Severity.String(), Namespace: f.Namespace,
			Objects: objects, Message: f.Message, Remediation: strs.id(f.Remediation)})
		if n, ok := nsIndex[f.Namespace]; ok && f.Severity >= Info && f.Severity <= Critical {
			d.Namespaces[n].Findings[Critical-f.Severity]++
		}
	}
	d.Strings = strs.list
	return d
}

// htmlTrace is subject i's cluster-policy trace for every endpoint: the steps, then the verdict
// ("=> allowed: ..."), as --explain prints them.
func (r *Report) htmlTrace(i int, strs *htmlStrings) [][]int {
	verdicts, steps := r.Explain(i)
	out := make([][]int, len(r.Endpoints))
	for j := range r.Endpoints {
		lines := make([]int, 0, len(steps[j])+1)
		for _, step := range steps[j] {
			lines = append(lines, strs.id(step.String()))
		}
		out[j] = append(lines, strs.id("=> "+verdicts[j].String()))
	}
	return out
}

// decidedBy is the table's DECIDED BY cell: the deciding layer's reason, named with its layer
// and source unless it is the cluster policy.
func decidedBy(x Exposure) string {
	if x.DecidedBy.Layer == layer.ClusterPolicy {
		return x.DecidedBy.Reason
	}
	return string(x.DecidedBy.Layer) + " (" + string(x.DecidedBy.Source) + "): " + x.DecidedBy.Reason
}

// verdictCode renders an exposure in the five letters of htmlRow.Codes.
func verdictCode(x Exposure) string {
	letter := func(d layer.Decision) byte {
		switch d {
		case layer.Allow:
			return 'a'
		case layer.Deny:
			return 'd'
		}
		return 'u'
	}
	out := []byte{'d', letter(x.ClusterPolicy.Decision), letter(x.Node.Decision), letter(x.Instance.Decision), 'p'}
	if x.Reachable {
		out[0] = 'r'
	}
	switch x.DecidedBy.Layer {
	case layer.Node:
		out[4] = 'n'
	case layer.Instance:
		out[4] = 'i'
	}
	return string(out)
}
