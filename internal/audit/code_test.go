package audit_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// runWithCode audits testdata/iac/cluster.yaml joined to the infrastructure code under paths.
func runWithCode(t *testing.T, paths ...string) *audit.Report {
	t.Helper()
	inv, err := inventory.Load([]string{filepath.Join("testdata", "iac", "cluster.yaml")}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, inputs, err := scan.Split(paths)
	if err != nil {
		t.Fatal(err)
	}
	code, err := scan.Read(inputs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range code.Problems {
		inv.Problems = append(inv.Problems, inventory.Problem{Source: inventory.Source{File: p.At.File, Line: p.At.Line}, Message: p.Message})
	}
	src := &iac.Source{Groups: code.Groups}
	return audit.RunWith(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}), audit.Options{Enforcement: policy.AssumedEnforcement(inv), Infrastructure: src})
}

func findingsOf(r *audit.Report, id string) []audit.Finding {
	var out []audit.Finding
	for _, f := range r.Findings {
		if f.Rule.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// findingOn returns the finding of rule id whose first object is the code resource named.
func findingOn(t *testing.T, r *audit.Report, id, resource string) (audit.Finding, bool) {
	t.Helper()
	for _, f := range findingsOf(r, id) {
		if len(f.Objects) > 0 && f.Objects[0].Kind == "Terraform" && f.Objects[0].Name == resource {
			return f, true
		}
	}
	return audit.Finding{}, false
}

func codeGroup(t *testing.T, r *audit.Report, resource string) audit.CodeGroup {
	t.Helper()
	for _, g := range r.Infrastructure {
		if g.Resource == resource {
			return g
		}
	}
	t.Fatalf("no group %s in %d", resource, len(r.Infrastructure))
	return audit.CodeGroup{}
}

func TestCodeJoinedToPods(t *testing.T) {
	r := runWithCode(t, filepath.Join("testdata", "iac", "infra"))
	tf := filepath.Join("testdata", "iac", "infra", "groups.tf")

	// The join and the counts.
	for _, tt := range []struct {
		resource                         string
		nodes                            []string
		subjects, podNetwork, tokenReach int
		needIMDS                         int
	}{
		{"aws_eks_node_group.legacy", []string{"n-legacy"}, 2, 1, 1, 0},
		// Pod c is in a namespace whose NetworkPolicy denies all egress: it gets no token.
		{"aws_eks_node_group.hop2", []string{"n-hop2"}, 3, 3, 2, 0},
		{"aws_eks_node_group.lb", []string{"n-lb"}, 1, 1, 1, 1},
		{"aws_launch_template.orphan", nil, 0, 0, 0, 0},
	} {
		g := codeGroup(t, r, tt.resource)
		if !slices.Equal(g.Nodes, tt.nodes) || g.Subjects != tt.subjects || g.PodNetwork != tt.podNetwork || g.TokenReach != tt.tokenReach || len(g.NeedIMDS) != tt.needIMDS {
			t.Errorf("%s: nodes %v, subjects %d, pod network %d, token reach %d, need IMDS %v; want %v, %d, %d, %d, %d needing",
				tt.resource, g.Nodes, g.Subjects, g.PodNetwork, g.TokenReach, g.NeedIMDS, tt.nodes, tt.subjects, tt.podNetwork, tt.tokenReach, tt.needIMDS)
		}
	}

	// The instance layer of a pod's verdict names the file and line that decided it.
	web := slices.IndexFunc(r.Subjects, func(s audit.Subject) bool { return s.Pod == "web" })
	imds := slices.IndexFunc(r.Endpoints, func(e endpoint.Endpoint) bool { return e.Name == "aws-imds" })
	e := r.Exposure(web, imds)
	if !e.Reachable || e.Instance.Decision != layer.Allow || e.Instance.Source != layer.Configured || !strings.Contains(e.Instance.Reason, tf+":9:") {
		t.Errorf("web's instance layer = %+v, want allow, configured, naming %s:9", e.Instance, tf)
	}

	// IMDS017: at the http_tokens line, with the node; IMDS015 does not repeat it.
	f, ok := findingOn(t, r, audit.RuleCodeIMDSv1.ID, "aws_eks_node_group.legacy")
	if !ok {
		t.Fatalf("no IMDS017 on aws_eks_node_group.legacy: %v", findingsOf(r, audit.RuleCodeIMDSv1.ID))
	}
	if at := f.Objects[0].Source; at.File != tf || at.Line != 9 || !slices.ContainsFunc(f.Objects, func(o inventory.ObjectRef) bool { return o.Kind == "Node" && o.Name == "n-legacy" }) {
		t.Errorf("IMDS017 objects = %+v, want the resource at %s:9 and node n-legacy", f.Objects, tf)
	}
	if !strings.Contains(f.Message, "apps/Pod/web") {
		t.Errorf("IMDS017 message does not name the pods: %s", f.Message)
	}
	for _, f := range findingsOf(r, audit.RuleIMDSv1.ID) {
		if slices.ContainsFunc(f.Objects, func(o inventory.ObjectRef) bool { return o.Name == "n-legacy" }) {
			t.Errorf("IMDS015 repeats the code's finding: %s", f.Message)
		}
	}

	// IMDS018: hop limit 2 where no pod needs it, with the pods that can get a token; not where
	// the load balancer controller reads instance metadata from the pod network.
	f, ok = findingOn(t, r, audit.RuleHopLimit.ID, "aws_eks_node_group.hop2")
	if !ok || !strings.Contains(f.Message, "2 pods or workloads of 3 on the pod network") || f.Objects[0].Source.Line != 27 {
		t.Errorf("IMDS018 on hop2 = %+v (found %v), want 2 of 3 at line 27", f, ok)
	}
	if _, ok := findingOn(t, r, audit.RuleHopLimit.ID, "aws_eks_node_group.lb"); ok {
		t.Error("IMDS018 on lb, whose load balancer controller needs the hop limit")
	}
	if f, ok := findingOn(t, r, audit.RuleHopLimit.ID, "aws_launch_template.orphan"); !ok || !strings.Contains(f.Message, "no node in the input joins it") {
		t.Errorf("IMDS018 on the unused template = %+v (found %v)", f, ok)
	}

	// IMDS019 for the pinned version, and no IMDS020 for it; IMDS020 for the variable.
	if f, ok := findingOn(t, r, audit.RuleTemplateVersion.ID, "aws_eks_node_group.pinned"); !ok || !strings.Contains(f.Message, "pinned to version 3") {
		t.Errorf("IMDS019 on pinned = %+v (found %v)", f, ok)
	}
	if _, ok := findingOn(t, r, audit.RuleCodeUnknown.ID, "aws_eks_node_group.pinned"); ok {
		t.Error("IMDS020 on pinned: its unknown options are IMDS019's")
	}
	if f, ok := findingOn(t, r, audit.RuleCodeUnknown.ID, "aws_eks_node_group.vars"); !ok || !strings.Contains(f.Message, "var.tokens") {
		t.Errorf("IMDS020 on vars = %+v (found %v), want it to name var.tokens", f, ok)
	}
	// The pinned group's instance layer is unknown, never a protection.
	job := slices.IndexFunc(r.Subjects, func(s audit.Subject) bool { return s.Pod == "job" })
	if e := r.Exposure(job, imds); e.Instance.Decision != layer.Unknown || !e.Reachable {
		t.Errorf("job's instance layer = %+v, want unknown and reachable", e.Instance)
	}
}

// jsonGroup is the part of the JSON report's infrastructure entries the tests read.
type jsonGroup struct {
	Resource string `json:"resource"`
	Options  struct {
		HTTPTokens struct {
			Value  any    `json:"value"`
			Known  bool   `json:"known"`
			Origin string `json:"origin"`
		} `json:"httpTokens"`
	} `json:"options"`
}

func TestCodeReports(t *testing.T) {
	tf := filepath.Join("testdata", "iac", "infra", "groups.tf")
	r := runWithCode(t, filepath.Join("testdata", "iac", "infra"))
	var out bytes.Buffer
	if err := r.WriteJSON(&out, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "../../docs/audit-report.schema.json"), out.Bytes())
	var doc struct {
		Infrastructure []jsonGroup `json:"infrastructure"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(doc.Infrastructure, func(g jsonGroup) bool {
		return g.Resource == "aws_eks_node_group.vars"
	})
	if i < 0 || doc.Infrastructure[i].Options.HTTPTokens.Known || doc.Infrastructure[i].Options.HTTPTokens.Value != nil || !strings.Contains(doc.Infrastructure[i].Options.HTTPTokens.Origin, "var.tokens") {
		t.Errorf("JSON infrastructure = %+v, want vars with unknown tokens naming var.tokens", doc.Infrastructure)
	}

	out.Reset()
	if err := r.WriteSARIF(&out, "test"); err != nil {
		t.Fatal(err)
	}
	var sarif sarifLog
	if err := json.Unmarshal(out.Bytes(), &sarif); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, res := range sarif.Runs[0].Results {
		if res.RuleID != audit.RuleCodeIMDSv1.ID || len(res.Locations) == 0 {
			continue
		}
		l := res.Locations[0].PhysicalLocation
		found = strings.HasSuffix(l.ArtifactLocation.URI, "testdata/iac/infra/groups.tf") && l.Region.StartLine == 9
	}
	if !found {
		t.Error("no SARIF result for IMDS017 located at groups.tf line 9")
	}

	out.Reset()
	if err := r.WriteHTML(&out, "test"); err != nil {
		t.Fatal(err)
	}
	if page := out.String(); !strings.Contains(page, `<section id="infrastructure">`) ||
		!strings.Contains(page, "<tr><td>aws_eks_node_group.legacy</td><td>"+tf+":14:1</td><td>optional</td><td>1</td><td>enabled</td><td>n-legacy</td></tr>") {
		t.Errorf("the HTML report has no infrastructure row for aws_eks_node_group.legacy")
	}

	out.Reset()
	if err := r.WriteTable(&out, audit.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "INFRASTRUCTURE CODE") || !strings.Contains(out.String(), "aws_eks_node_group.legacy") {
		t.Errorf("table has no infrastructure section:\n%s", out.String())
	}
}

// Code that does not parse is a problem with its position: the report is incomplete, and the
// rest of the code still joins.
func TestCodeProblemsMakeTheReportIncomplete(t *testing.T) {
	r := runWithCode(t, filepath.Join("testdata", "iac", "infra"), filepath.Join("testdata", "iac", "broken"))
	if r.Complete() {
		t.Fatal("report complete with code that does not parse")
	}
	fs := findingsOf(r, audit.RuleInput.ID)
	if len(fs) == 0 || !strings.Contains(fs[0].Message, filepath.Join("testdata", "iac", "broken", "main.tf")+":") || fs[0].Objects[0].Source.Line == 0 {
		t.Errorf("IMDS011 = %+v, want the broken file with its line", fs)
	}
	if g := codeGroup(t, r, "aws_eks_node_group.legacy"); len(g.Nodes) != 1 {
		t.Errorf("the rest of the code does not join: %+v", g)
	}
}

// TestTemplateVersionsDiffer: IMDS021 for a template whose $Default and $Latest state different
// options, with the nodes on each version; none where they are one version or state the same.
func TestTemplateVersionsDiffer(t *testing.T) {
	inv, err := inventory.Load([]string{filepath.Join("testdata", "iac", "templates.yaml")}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	versions := []audit.TemplateVersions{
		{Region: "us-west-2", ID: "lt-0abc", Name: "workers",
			Default: audit.TemplateVersion{Number: 1, Tokens: "optional", HopLimit: 2},
			Latest:  audit.TemplateVersion{Number: 3, Tokens: "required", HopLimit: 1, Endpoint: "enabled"}},
		{Region: "us-west-2", ID: "lt-0def", Default: audit.TemplateVersion{Number: 2, Tokens: "required", HopLimit: 1},
			Latest: audit.TemplateVersion{Number: 4, Tokens: "required", HopLimit: 1}},
		{Region: "us-west-2", ID: "lt-0same", Default: audit.TemplateVersion{Number: 5, Tokens: "optional"},
			Latest: audit.TemplateVersion{Number: 5, Tokens: "optional"}},
	}
	r := audit.RunWith(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}), audit.Options{Enforcement: policy.AssumedEnforcement(inv), TemplateVersions: versions})
	fs := findingsOf(r, audit.RuleTemplateVersionsDiffer.ID)
	if len(fs) != 1 {
		t.Fatalf("IMDS021 findings = %+v, want one for lt-0abc", fs)
	}
	f := fs[0]
	for _, want := range []string{
		"launch template lt-0abc (workers) in us-west-2",
		"$Default is version 1 (HttpTokens optional, hop limit 2, HttpEndpoint left out)",
		"$Latest is version 3 (HttpTokens required, hop limit 1, HttpEndpoint enabled)",
		"2 nodes (n-v1-a, n-v1-b) on version 1, 1 node (n-v3) on version 3",
	} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message %q lacks %q", f.Message, want)
		}
	}
	if f.Objects[0] != (inventory.ObjectRef{Kind: "LaunchTemplate", Name: "lt-0abc"}) || len(f.Objects) != 4 {
		t.Errorf("objects = %+v, want the template and its 3 nodes", f.Objects)
	}
}
