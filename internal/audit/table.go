package audit

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// TableOptions tunes the human-readable report.
type TableOptions struct {
	// Color adds ANSI colours (only for a terminal).
	Color bool
	// Show says which exposure rows the table lists; ShowAuto when empty.
	Show Show
}

// Show selects the exposure rows of the table.
type Show string

// The row selections.
const (
	// ShowAuto lists every row when there are at most MaxScreenRows, else only the reachable
	// ones.
	ShowAuto Show = ""
	// ShowReachable lists only the reachable rows.
	ShowReachable Show = "reachable"
	// ShowAll lists every row.
	ShowAll Show = "all"
)

// MaxScreenRows is how many exposure rows fit on a screen: a longer table lists only the
// reachable rows unless told to list all (ShowAuto).
const MaxScreenRows = 60

type palette struct{ on bool }

func (p palette) paint(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) severity(s Severity) string {
	label := strings.ToUpper(s.String())
	switch s {
	case Critical, High:
		return p.paint("1;31", label)
	case Medium:
		return p.paint("33", label)
	}
	return p.paint("36", label)
}

func (p palette) verdict(e Exposure) string {
	if e.Reachable {
		return p.paint("31", "reachable")
	}
	return p.paint("32", "denied")
}

// decision renders a layer's decision in a table cell: allow, deny or "?" for unknown.
func decision(v layer.Verdict) string {
	if v.Decision == layer.Unknown {
		return "?"
	}
	return string(v.Decision)
}

// WriteTable writes the report for humans: per namespace, what governs egress, each pod's and
// workload's verdicts for the credential-bearing endpoints (and blocked keep-reachable ones),
// then the namespace's findings.
//
// With ShowReachable, or ShowAuto and more than MaxScreenRows rows, only the reachable rows are
// listed, and the last line says how many denied rows were left out.
func (r *Report) WriteTable(w io.Writer, opts TableOptions) error {
	bw := bufio.NewWriter(w)
	p := palette{opts.Color}
	s := r.summary()
	r.writeHead(bw, p, s)
	reachableOnly := opts.Show == ShowReachable || (opts.Show == ShowAuto && r.exposureRows(false) > MaxScreenRows)
	hidden := 0

	byNS := map[string][]Finding{}
	for _, f := range r.Findings {
		byNS[f.Namespace] = append(byNS[f.Namespace], f)
	}
	r.writeInfrastructure(bw, p, opts.Show)
	if fs := byNS[""]; len(fs) > 0 {
		fmt.Fprintf(bw, "\n%s\n", p.paint("1", "CLUSTER"))
		writeFindings(bw, p, fs)
	}
	next := 0
	for _, ns := range r.Namespaces {
		lo := next
		for next < len(r.Subjects) && r.Subjects[next].Namespace == ns.Name {
			next++
		}
		if lo == next && len(byNS[ns.Name]) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s %s  egress control: %s\n", p.paint("1", "NAMESPACE"), p.paint("1", ns.Name), describeControl(ns))
		hidden += r.writeExposureRows(bw, p, lo, next, reachableOnly)
		writeFindings(bw, p, byNS[ns.Name])
	}
	fmt.Fprintf(bw, "\n%s: %d critical, %d high, %d medium, %d low, %d info; %d of %d exposures reachable\n",
		count(len(r.Findings), "finding"), s.Findings["critical"], s.Findings["high"], s.Findings["medium"], s.Findings["low"], s.Findings["info"], s.Reachable, s.Exposures)
	r.writeNotCounted(bw)
	if hidden > 0 {
		fmt.Fprintf(bw, "%s hidden; --show all lists them\n", count(hidden, "denied row"))
	}
	return bw.Flush()
}

// WriteSummary writes the short report: the table's opening lines, one line per namespace
// (subjects, reachable exposures to credential endpoints, findings by severity), then the
// findings with their fixes.
func (r *Report) WriteSummary(w io.Writer, opts TableOptions) error {
	bw := bufio.NewWriter(w)
	p := palette{opts.Color}
	s := r.summary()
	r.writeHead(bw, p, s)
	type line struct {
		subjects, reachable int
		findings            [Critical + 1]int
	}
	lines := map[string]*line{}
	for _, ns := range r.Namespaces {
		lines[ns.Name] = &line{}
	}
	for i := range r.Subjects {
		l := lines[r.Subjects[i].Namespace]
		if l == nil {
			continue
		}
		l.subjects++
		for j, ep := range r.Endpoints {
			if ep.Role == endpoint.Credentials && r.Reachable(i, j) {
				l.reachable++
			}
		}
	}
	byNS := map[string][]Finding{}
	for _, f := range r.Findings {
		if l := lines[f.Namespace]; l != nil && f.Severity >= Info && f.Severity <= Critical {
			l.findings[f.Severity]++
		}
		byNS[f.Namespace] = append(byNS[f.Namespace], f)
	}
	fmt.Fprintln(bw)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSUBJECTS\tREACHABLE\tCRITICAL\tHIGH\tMEDIUM\tLOW\tINFO")
	for _, ns := range r.Namespaces {
		l := lines[ns.Name]
		if l.subjects == 0 && l.findings == [Critical + 1]int{} {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", ns.Name, l.subjects, l.reachable,
			l.findings[Critical], l.findings[High], l.findings[Medium], l.findings[Low], l.findings[Info])
	}
	_ = tw.Flush() // tabwriter only fails when bw does; the final Flush reports that
	fmt.Fprintln(bw, "(REACHABLE: exposures of the namespace's pods and workload templates to credential endpoints that no layer denies)")
	if fs := byNS[""]; len(fs) > 0 {
		fmt.Fprintf(bw, "\n%s\n", p.paint("1", "CLUSTER"))
		writeFindings(bw, p, fs)
	}
	for _, ns := range r.Namespaces {
		if fs := byNS[ns.Name]; len(fs) > 0 {
			fmt.Fprintf(bw, "\n%s %s\n", p.paint("1", "NAMESPACE"), p.paint("1", ns.Name))
			writeFindings(bw, p, fs)
		}
	}
	fmt.Fprintf(bw, "\n%s: %d critical, %d high, %d medium, %d low, %d info; %d of %d exposures reachable\n",
		count(len(r.Findings), "finding"), s.Findings["critical"], s.Findings["high"], s.Findings["medium"], s.Findings["low"], s.Findings["info"], s.Reachable, s.Exposures)
	r.writeNotCounted(bw)
	return bw.Flush()
}

// writeHead writes the opening lines of the table and the summary: what was audited, the policy
// engine, what is incomplete, the warnings and the kinds skipped.
func (r *Report) writeHead(bw *bufio.Writer, p palette, s jsonSummary) {
	fmt.Fprintf(bw, "imdsguard audit: %s\n", r.describeInput(s))
	if e := r.model.Enforcement; !e.Assumed {
		fmt.Fprintf(bw, "policy engine: %s\n", e.String())
	}
	if len(r.Clouds) > 0 {
		fmt.Fprintf(bw, "clouds: %s\n", cloudsLine(r.Clouds))
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(bw, p.paint("1;31", fmt.Sprintf("INCOMPLETE: %d documents or objects could not be evaluated (see IMDS011 findings)", len(r.Problems))))
	}
	for _, g := range r.Gaps {
		fmt.Fprintln(bw, p.paint("1;31", "INCOMPLETE: "+g.String()+" (IMDS012)"))
	}
	for _, warning := range r.Warnings {
		fmt.Fprintln(bw, p.paint("33", "warning: ")+warning)
	}
	if len(r.Skipped) > 0 {
		kinds := map[string]int{}
		var order []string
		for _, sk := range r.Skipped {
			k := sk.APIVersion + " " + sk.Kind
			if kinds[k] == 0 {
				order = append(order, k)
			}
			kinds[k]++
		}
		parts := make([]string, len(order))
		for i, k := range order {
			parts[i] = fmt.Sprintf("%s ×%d", k, kinds[k])
		}
		fmt.Fprintf(bw, "skipped %d documents of kinds not evaluated: %s\n", len(r.Skipped), strings.Join(parts, ", "))
	}
}

func describeControl(ns NamespaceSummary) string {
	var parts []string
	if n := len(ns.Control.Admin); n > 0 {
		parts = append(parts, fmt.Sprintf("%d AdminNetworkPolicy", n))
	}
	if n := len(ns.Control.ClusterAdmin); n > 0 {
		parts = append(parts, fmt.Sprintf("%d ClusterNetworkPolicy (Admin tier)", n))
	}
	if n := len(ns.Control.NetworkPolicies); n > 0 {
		parts = append(parts, fmt.Sprintf("%d egress NetworkPolicy", n))
	}
	if n := len(ns.Control.ClusterBaseline); n > 0 {
		parts = append(parts, fmt.Sprintf("%d ClusterNetworkPolicy (Baseline tier)", n))
	}
	if n := len(ns.Control.Baseline); n > 0 {
		parts = append(parts, "BaselineAdminNetworkPolicy")
	}
	if n := len(ns.Control.Calico); n > 0 {
		parts = append(parts, fmt.Sprintf("%d Calico policy", n))
	}
	if n := len(ns.Control.Cilium); n > 0 {
		parts = append(parts, fmt.Sprintf("%d Cilium policy", n))
	}
	if len(parts) == 0 {
		return "none"
	}
	if ns.Synthesized {
		parts = append(parts, "(namespace not declared in input)")
	}
	return strings.Join(parts, ", ")
}

// shown reports whether the table lists an endpoint's verdict: credential endpoints always,
// keep-reachable ones only when denied.
func shown(ep endpoint.Endpoint, reachable bool) bool {
	return ep.Role == endpoint.Credentials || !reachable
}

// exposureRows counts the rows the table lists for every subject, or only the reachable ones.
func (r *Report) exposureRows(reachableOnly bool) int {
	n := 0
	for i := 0; i < len(r.Subjects); i = r.foldedUntil(i, len(r.Subjects)) {
		for j, ep := range r.Endpoints {
			reachable := r.Reachable(i, j)
			if shown(ep, reachable) && (reachable || !reachableOnly) {
				n++
			}
		}
	}
	return n
}

// writeExposureRows writes subjects [lo, hi), or only their reachable rows, and returns how many
// rows it left out. Pods whose verdicts equal their workload template's are folded into the
// template's row.
func (r *Report) writeExposureRows(w io.Writer, p palette, lo, hi int, reachableOnly bool) int {
	if lo == hi {
		return 0
	}
	hidden := 0
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for i := lo; i < hi; {
		j := r.foldedUntil(i, hi)
		folded := j - i - 1
		label := r.Subjects[i].Label()
		if folded > 0 {
			label += " (+" + count(folded, "pod") + ")"
		}
		if r.Subjects[i].Spec.HostNetwork {
			label += " [hostNetwork]"
		}
		for e, ep := range r.Endpoints {
			x := r.Exposure(i, e)
			if !shown(ep, x.Reachable) {
				continue
			}
			if reachableOnly && !x.Reachable {
				hidden++
				continue
			}
			if !header {
				fmt.Fprintln(tw, "  SUBJECT\tENDPOINT\tVERDICT\tPOLICY\tNODE\tINSTANCE\tDECIDED BY")
				header = true
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, ep.Name, p.verdict(x),
				decision(x.ClusterPolicy), decision(x.Node), decision(x.Instance), decidedBy(x))
			label = ""
		}
		i = j
	}
	_ = tw.Flush() // tabwriter only fails when w does; WriteTable's final Flush reports that
	return hidden
}

// foldedUntil returns the end of subject i's row among subjects [i, hi): a workload template's
// row folds the workload's pods that follow it and share its verdicts on every layer.
func (r *Report) foldedUntil(i, hi int) int {
	j := i + 1
	if !r.Subjects[i].IsTemplate() {
		return j
	}
	for j < hi && r.Subjects[j].Workload == r.Subjects[i].Workload && !r.Subjects[j].IsTemplate() &&
		sameVerdicts(r.Verdicts[i], r.Verdicts[j]) && sameLayers(r.layers[i], r.layers[j]) {
		j++
	}
	return j
}

// sameLayers reports whether two rows have the same node and instance decisions and sources:
// pods of a workload run on different nodes, whose reasons name them.
func sameLayers(a, b []layer.Pair) bool {
	for i := range a {
		if layerKeyOf(a[i]) != layerKeyOf(b[i]) {
			return false
		}
	}
	return true
}

func sameVerdicts(a, b []policy.Verdict) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// marker says why a finding does not count toward --fail-on, or that it is worse than in the
// baseline; it is empty for other findings.
func marker(f Finding) string {
	switch {
	case f.Accepted != nil:
		return fmt.Sprintf("[accepted until %s: %s] ", f.Accepted.Expires.Format(dateLayout), f.Accepted.Reason)
	case f.Baseline == BaselineUnchanged:
		return "[in baseline] "
	case f.Baseline == BaselineWorse:
		return "[worse than baseline] "
	}
	return ""
}

// writeNotCounted writes the footer line that counts the findings accepted by an exception or
// unchanged since the baseline, when there are any.
func (r *Report) writeNotCounted(w io.Writer) {
	accepted, unchanged := 0, 0
	for _, f := range r.Findings {
		switch {
		case f.Accepted != nil:
			accepted++
		case f.Baseline == BaselineUnchanged:
			unchanged++
		}
	}
	if accepted+unchanged > 0 {
		fmt.Fprintf(w, "not counted toward --fail-on: %d accepted by exceptions, %d unchanged since the baseline\n", accepted, unchanged)
	}
}

func writeFindings(w io.Writer, p palette, fs []Finding) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintln(w, "  findings:")
	last := ""
	for _, f := range fs {
		fmt.Fprintf(w, "  %s %s %s%s\n", p.severity(f.Severity), f.Rule.ID, marker(f), f.Message)
		if f.Remediation == last {
			fmt.Fprintln(w, "      fix: as above")
			continue
		}
		fmt.Fprintf(w, "      fix: %s\n", f.Remediation)
		last = f.Remediation
	}
}

// WriteExplain writes the evaluation trace of every subject matching a NAMESPACE/NAME (or
// NAMESPACE/KIND/NAME) reference; it returns false when none matches.
func (r *Report) WriteExplain(w io.Writer, ref string) (bool, error) {
	matches := r.Find(ref)
	if len(matches) == 0 {
		return false, nil
	}
	bw := bufio.NewWriter(w)
	for k, i := range matches {
		s := &r.Subjects[i]
		if k > 0 {
			fmt.Fprintln(bw)
		}
		what := s.Ref().String()
		if !s.IsTemplate() {
			what += fmt.Sprintf(" (workload %s/%s)", s.Workload.Kind, s.Workload.Name)
		} else {
			what += " pod template"
		}
		fmt.Fprintf(bw, "%s\n  labels: %s\n  hostNetwork: %t\n  source: %s\n", what, formatLabels(s.Meta.Labels), s.Spec.HostNetwork, s.Source)
		verdicts, traces := r.Explain(i)
		for e, ep := range r.Endpoints {
			x := r.Exposure(i, e)
			fmt.Fprintf(bw, "\n  %s (%s, %s)\n", ep.Name, ep.Destination(), ep.Role)
			fmt.Fprintf(bw, "    cluster policy:\n")
			for _, step := range traces[e] {
				fmt.Fprintf(bw, "      %s\n", step)
			}
			fmt.Fprintf(bw, "      => %s\n", verdicts[e])
			fmt.Fprintf(bw, "    %s\n    %s\n", x.Node, x.Instance)
			overall := "reachable: no layer denies it"
			if !x.Reachable {
				overall = "denied by the " + string(x.DecidedBy.Layer) + " layer"
			}
			fmt.Fprintf(bw, "    => %s\n", overall)
		}
	}
	return true, bw.Flush()
}

// Find returns the subjects matching NAMESPACE/NAME (pod or workload name) or
// NAMESPACE/KIND/NAME.
func (r *Report) Find(ref string) []int {
	parts := strings.Split(ref, "/")
	var ns, kind, name string
	switch len(parts) {
	case 2:
		ns, name = parts[0], parts[1]
	case 3:
		ns, kind, name = parts[0], parts[1], parts[2]
	default:
		return nil
	}
	var out []int
	for i := range r.Subjects {
		s := &r.Subjects[i]
		if s.Namespace != ns {
			continue
		}
		ref := s.Ref()
		if ref.Name == name && (kind == "" || strings.EqualFold(kind, ref.Kind)) {
			out = append(out, i)
		}
	}
	return out
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "(none)"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// count renders "1 pod", "2 pods".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
