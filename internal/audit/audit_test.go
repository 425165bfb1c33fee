package audit_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const exampleDir = "../../examples/cluster"

func runExample(t *testing.T, clouds ...endpoint.Cloud) *audit.Report {
	t.Helper()
	inv, err := inventory.Load([]string{exampleDir}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("the example cluster has problems: %v", inv.Problems)
	}
	return audit.Run(inv, endpoint.Select(clouds))
}

// golden compares output with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/audit -run Golden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); rerun with -update if the change is intended:\n%s", name, diff)
	}
}

func TestGoldenReports(t *testing.T) {
	for _, tc := range []struct {
		name   string
		clouds []endpoint.Cloud
	}{
		{"example-aws", []endpoint.Cloud{endpoint.AWS}},
		{"example-all", []endpoint.Cloud{endpoint.All}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runExample(t, tc.clouds...)
			var table, js, sarif bytes.Buffer
			if err := r.WriteTable(&table, audit.TableOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteJSON(&js, "test"); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteSARIF(&sarif, "test"); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".txt", table.Bytes())
			golden(t, tc.name+".json", js.Bytes())
			golden(t, tc.name+".sarif", sarif.Bytes())
		})
	}
}

func compileSchema(t *testing.T, path string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("output does not validate against the schema: %v", err)
	}
}

func TestSARIFValidatesAgainstTheOASISSchema(t *testing.T) {
	schema := compileSchema(t, "testdata/sarif-schema-2.1.0.json")
	var out bytes.Buffer
	if err := runExample(t, endpoint.All).WriteSARIF(&out, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	validate(t, schema, out.Bytes())

	var log sarifLog
	if err := json.Unmarshal(out.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("want one SARIF 2.1.0 run, got version %q with %d runs", log.Version, len(log.Runs))
	}
	if got := len(log.Runs[0].Tool.Driver.Rules); got != len(audit.Rules) {
		t.Errorf("driver lists %d rules, want %d", got, len(audit.Rules))
	}
	found := false
	for _, res := range log.Runs[0].Results {
		for _, loc := range res.Locations {
			if strings.HasSuffix(loc.PhysicalLocation.ArtifactLocation.URI, "kube-system.yaml") && res.RuleID == "IMDS007" {
				found = true
				if loc.PhysicalLocation.Region.StartLine < 2 {
					t.Errorf("IMDS007 points at line %d of kube-system.yaml, want the Deployment's document", loc.PhysicalLocation.Region.StartLine)
				}
			}
		}
	}
	if !found {
		t.Error("no IMDS007 result located in kube-system.yaml (the AWS Load Balancer Controller without --aws-region)")
	}
}

// exposure mirrors the documented contract of one exposure entry.
type exposure struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Workload  struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"workload"`
	HostNetwork bool `json:"hostNetwork"`
	Endpoint    struct {
		Name     string `json:"name"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
	} `json:"endpoint"`
	Allowed   bool `json:"allowed"`
	DecidedBy struct {
		Tier   string `json:"tier"`
		Policy string `json:"policy"`
		Rule   *int   `json:"rule"`
	} `json:"decidedBy"`
}

func TestJSONReportContract(t *testing.T) {
	schema := compileSchema(t, "../../docs/audit-report.schema.json")
	r := runExample(t, endpoint.AWS)
	var out bytes.Buffer
	if err := r.WriteJSON(&out, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, schema, out.Bytes())

	var doc struct {
		SchemaVersion string     `json:"schemaVersion"`
		Complete      bool       `json:"complete"`
		Exposure      []exposure `json:"exposure"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != audit.SchemaVersion || !doc.Complete {
		t.Errorf("schemaVersion %q complete %t, want %q and true", doc.SchemaVersion, doc.Complete, audit.SchemaVersion)
	}
	if want := len(r.Subjects) * len(r.Endpoints); len(doc.Exposure) != want {
		t.Fatalf("%d exposure entries, want one per subject and endpoint: %d", len(doc.Exposure), want)
	}
	find := func(ns, pod, kind, name, ep string) exposure {
		t.Helper()
		for _, e := range doc.Exposure {
			if e.Namespace == ns && e.Pod == pod && e.Workload.Kind == kind && e.Workload.Name == name && e.Endpoint.Name == ep {
				return e
			}
		}
		t.Fatalf("no exposure for %s/%s %s/%s %s", ns, pod, kind, name, ep)
		return exposure{}
	}
	pod := find("shop", "web-7d9c6b5f4-x2k8p", "Deployment", "web", "aws-imds")
	if pod.Allowed || pod.DecidedBy.Tier != "NetworkPolicy" || pod.DecidedBy.Policy != "shop/allow-all-egress-except-metadata-api" || pod.DecidedBy.Rule == nil || *pod.DecidedBy.Rule != 0 {
		t.Errorf("shop pod web: %+v, want denied by NetworkPolicy shop/allow-all-egress-except-metadata-api rule 0", pod)
	}
	if pod.Endpoint.Address != "169.254.169.254" || pod.Endpoint.Protocol != "TCP" || pod.Endpoint.Port != 80 {
		t.Errorf("endpoint = %+v", pod.Endpoint)
	}
	tmpl := find("kube-system", "", "DaemonSet", "aws-node", "aws-imds-ipv6")
	if !tmpl.Allowed || !tmpl.HostNetwork || tmpl.DecidedBy.Tier != "hostNetwork" || tmpl.DecidedBy.Rule != nil {
		t.Errorf("aws-node template: %+v, want reachable by hostNetwork with a null rule", tmpl)
	}
	cron := find("marketing", "", "CronJob", "report-export", "aws-imds")
	if !cron.Allowed || cron.DecidedBy.Policy != "marketing/allow-all-egress" {
		t.Errorf("marketing CronJob: %+v, want reachable through marketing/allow-all-egress", cron)
	}
}

// findingIDs lists finding IDs with their first object, e.g. "IMDS002 DaemonSet kube-system/aws-node".
func findingIDs(r *audit.Report) []string {
	var out []string
	for _, f := range r.Findings {
		s := f.Rule.ID
		if len(f.Objects) > 0 {
			s += " " + f.Objects[0].String()
		}
		out = append(out, s)
	}
	return out
}

func TestExampleFindings(t *testing.T) {
	r := runExample(t, endpoint.AWS)
	got := findingIDs(r)
	for _, want := range []string{
		"IMDS001 Deployment kube-system/coredns",
		"IMDS001 CronJob marketing/report-export",
		"IMDS002 DaemonSet kube-system/aws-node",
		"IMDS003 Deployment analytics/spark-driver",
		"IMDS004 Namespace/kube-system",
		"IMDS005 NetworkPolicy marketing/allow-all-egress",
		"IMDS005 NetworkPolicy analytics/egress-internet",
		"IMDS007 Deployment kube-system/aws-load-balancer-controller",
		"IMDS007 CronJob marketing/report-export",
		"IMDS008 Deployment marketing/campaign-api",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing finding %q", want)
		}
	}
	for _, unwanted := range []string{
		"IMDS001 Deployment shop/web",           // denied by the seeds' policy
		"IMDS001 StatefulSet payments/checkout", // default deny
		"IMDS008 Deployment shop/web",           // has an IRSA role
		"IMDS008 Deployment kube-system/aws-load-balancer-controller",
		"IMDS004 Namespace/payments",
	} {
		if slices.Contains(got, unwanted) {
			t.Errorf("unexpected finding %q", unwanted)
		}
	}
	for _, f := range r.Findings {
		if f.Message == "" || f.Remediation == "" || len(f.Objects) == 0 {
			t.Errorf("finding %s lacks a message, remediation or object: %+v", f.Rule.ID, f)
		}
		if f.Rule.ID != audit.RulePriorityTie.ID && f.Rule.ID != audit.RuleInput.ID && (len(f.Rule.MITRE) == 0 || f.Rule.MITRE[0].ID != "T1552.005") {
			t.Errorf("finding %s is not mapped to T1552.005", f.Rule.ID)
		}
	}
}

// auditYAML runs an audit over inline manifests.
func auditYAML(t *testing.T, manifests string, clouds ...endpoint.Cloud) *audit.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(clouds) == 0 {
		clouds = []endpoint.Cloud{endpoint.All}
	}
	return audit.Run(inv, endpoint.Select(clouds))
}

func pod(ns, name, extra string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns + ", labels: {app: " + name + "}}\nspec:\n" + extra + "  containers: [{name: c, image: busybox}]\n---\n"
}

func TestFindingRules(t *testing.T) {
	defaultDeny := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Egress]}\n---\n"
	cases := []struct {
		name      string
		manifests string
		clouds    []endpoint.Cloud
		want      []string // finding IDs with first object
		wantNot   []string
	}{
		{name: "Azure WireServer reachable is its own finding, and DNS on 168.63.129.16 is not a finding",
			manifests: pod("shop", "app", ""), clouds: []endpoint.Cloud{endpoint.Azure},
			want: []string{"IMDS006 Pod shop/app", "IMDS001 Pod shop/app"}},
		{name: "a pod using the EKS Pod Identity agent behind a default deny depends on a blocked endpoint",
			manifests: defaultDeny + "apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: shop}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env: [{name: AWS_CONTAINER_CREDENTIALS_FULL_URI, value: 'http://169.254.170.23/v1/credentials'}]\n",
			clouds:    []endpoint.Cloud{endpoint.AWS},
			want:      []string{"IMDS009 Pod shop/app"}, wantNot: []string{"IMDS001 Pod shop/app", "IMDS008 Pod shop/app"}},
		{name: "a pod not using the Pod Identity agent is not reported for it being blocked",
			manifests: defaultDeny + pod("shop", "app", ""), clouds: []endpoint.Cloud{endpoint.AWS},
			wantNot: []string{"IMDS009 Pod shop/app"}},
		{name: "the AWS Load Balancer Controller with --aws-region and --aws-vpc-id is not reported",
			manifests: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: lbc, namespace: kube-system}\nspec:\n  selector: {matchLabels: {app: lbc}}\n  template:\n    metadata: {labels: {app: lbc}}\n    spec:\n      containers:\n      - name: c\n        image: public.ecr.aws/eks/aws-load-balancer-controller:v2.8.1\n        args: [--aws-region=eu-west-1, --aws-vpc-id, vpc-0123]\n",
			wantNot:   []string{"IMDS007 Deployment kube-system/lbc"}},
		{name: "the cluster autoscaler on AWS without AWS_REGION is reported",
			manifests: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ca, namespace: kube-system}\nspec:\n  selector: {matchLabels: {app: ca}}\n  template:\n    metadata: {labels: {app: ca}}\n    spec:\n      containers:\n      - name: c\n        image: registry.k8s.io/autoscaling/cluster-autoscaler:v1.30.0\n        command: [./cluster-autoscaler, --cloud-provider=aws]\n",
			want:      []string{"IMDS007 Deployment kube-system/ca"}},
		{name: "a GKE workload identity service account is a pod identity",
			manifests: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app, namespace: shop, annotations: {iam.gke.io/gcp-service-account: app@proj.iam.gserviceaccount.com}}\n---\n" + pod("shop", "app", "  serviceAccountName: app\n"),
			clouds:    []endpoint.Cloud{endpoint.GCP}, wantNot: []string{"IMDS008 Pod shop/app"}, want: []string{"IMDS001 Pod shop/app"}},
		{name: "Azure workload identity needs both the service account annotation and the pod label",
			manifests: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app, namespace: shop, annotations: {azure.workload.identity/client-id: 00000000-0000-0000-0000-000000000000}}\n---\n" + pod("shop", "app", "  serviceAccountName: app\n"),
			clouds:    []endpoint.Cloud{endpoint.Azure}, want: []string{"IMDS008 Pod shop/app"}},
		{name: "AdminNetworkPolicies with equal priorities are reported",
			manifests: "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 3, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [169.254.169.254/32]}]}]}\n---\n" +
				"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: b}\nspec: {priority: 3, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: ['fd00:ec2::254/128']}]}]}\n---\n" + pod("shop", "app", ""),
			clouds: []endpoint.Cloud{endpoint.AWS}, want: []string{"IMDS010 AdminNetworkPolicy/a"}, wantNot: []string{"IMDS001 Pod shop/app", "IMDS004 Namespace/shop"}},
		{name: "an invalid policy is an input finding pointing at its file and document, and the rest is evaluated",
			manifests: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/40}}]}]}\n---\n" + pod("shop", "app", ""),
			clouds:    []endpoint.Cloud{endpoint.AWS}, want: []string{"IMDS011 NetworkPolicy shop/bad", "IMDS001 Pod shop/app"}},
		{name: "hostNetwork pods get the hostNetwork finding, not the generic one",
			manifests: pod("shop", "agent", "  hostNetwork: true\n"), clouds: []endpoint.Cloud{endpoint.AWS},
			want: []string{"IMDS002 Pod shop/agent"}, wantNot: []string{"IMDS001 Pod shop/agent", "IMDS004 Namespace/shop"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := auditYAML(t, c.manifests, c.clouds...)
			got := findingIDs(r)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
			for _, w := range c.wantNot {
				if slices.Contains(got, w) {
					t.Errorf("unexpected %q in %q", w, got)
				}
			}
		})
	}
}

func TestInputFindingNamesFileAndDocument(t *testing.T) {
	r := auditYAML(t, pod("shop", "app", "")+"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {podSelector: {matchExpressions: [{key: a, operator: Has}]}, policyTypes: [Egress]}\n")
	if r.Complete() {
		t.Fatal("report with a rejected policy claims to be complete")
	}
	for _, f := range r.Findings {
		if f.Rule.ID == audit.RuleInput.ID {
			if !strings.Contains(f.Message, "cluster.yaml: document 2") || !strings.Contains(f.Message, "spec.podSelector") {
				t.Errorf("input finding %q does not name the file, document and field", f.Message)
			}
			return
		}
	}
	t.Fatal("no input finding")
}

func TestExplainTrace(t *testing.T) {
	r := runExample(t, endpoint.AWS)
	var out bytes.Buffer
	found, err := r.WriteExplain(&out, "payments/checkout")
	if err != nil || !found {
		t.Fatalf("explain payments/checkout: found=%t err=%v", found, err)
	}
	golden(t, "explain-payments-checkout.txt", out.Bytes())
	if found, _ := r.WriteExplain(&bytes.Buffer{}, "payments/nope"); found {
		t.Error("explain found a subject that does not exist")
	}
}

func TestGoldenSummary(t *testing.T) {
	r := runExample(t, endpoint.AWS)
	var out bytes.Buffer
	if err := r.WriteSummary(&out, audit.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "example-aws-summary.txt", out.Bytes())
}

// manyWorkloads is an input with one namespace whose egress is denied to everything and one
// without any policy, with n Deployments in each.
func manyWorkloads(t *testing.T, n int) *audit.Report {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-egress, namespace: locked}\nspec: {podSelector: {}, policyTypes: [Egress]}\n")
	for _, ns := range []string{"locked", "open"} {
		for i := range n {
			fmt.Fprintf(&b, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-%d, namespace: %s}\nspec:\n  template:\n    metadata: {labels: {app: app-%d}}\n    spec: {containers: [{name: c, image: app}]}\n", i, ns, i)
		}
	}
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return audit.Run(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
}

// exposureRow matches a table row's endpoint and verdict.
var exposureRow = regexp.MustCompile(`(?m)^  .*\baws-[a-z0-9-]+ +(reachable|denied) `)

func TestTableShowsReachableRowsWhenLongerThanAScreen(t *testing.T) {
	for _, tc := range []struct {
		name      string
		workloads int
		show      audit.Show
		// rows are the reachable and denied exposure rows listed; hidden the footer's count.
		reachable, denied, hidden int
	}{
		// Each open workload has two reachable rows (aws-imds, aws-imds-ipv6); each locked one
		// four denied rows, its blocked keep-reachable endpoints included.
		{"a short table lists every row", 5, audit.ShowAuto, 10, 20, 0},
		{"a table longer than a screen lists the reachable rows", 20, audit.ShowAuto, 40, 0, 80},
		{"--show all lists every row", 20, audit.ShowAll, 40, 80, 0},
		{"--show reachable hides the denied rows of a short table too", 5, audit.ShowReachable, 10, 0, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := manyWorkloads(t, tc.workloads)
			var out bytes.Buffer
			if err := r.WriteTable(&out, audit.TableOptions{Show: tc.show}); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			reachable, denied := 0, 0
			for _, m := range exposureRow.FindAllStringSubmatch(text, -1) {
				if m[1] == "reachable" {
					reachable++
				} else {
					denied++
				}
			}
			if reachable != tc.reachable || denied != tc.denied {
				t.Errorf("%d reachable and %d denied rows listed, want %d and %d:\n%s", reachable, denied, tc.reachable, tc.denied, text)
			}
			footer := fmt.Sprintf("%d denied rows hidden; --show all lists them\n", tc.hidden)
			if got := strings.HasSuffix(text, footer); got != (tc.hidden > 0) {
				t.Errorf("footer %q present: %t, want %t:\n%s", footer, got, tc.hidden > 0, text)
			}
		})
	}
}

// sarifLog is the part of a SARIF log the tests read.
type sarifLog struct {
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Rules []struct {
					ID string `json:"id"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			Level     string `json:"level"`
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct {
						URI string `json:"uri"`
					} `json:"artifactLocation"`
					Region struct {
						StartLine int `json:"startLine"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}
