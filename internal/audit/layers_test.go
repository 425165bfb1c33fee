package audit_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// node renders a Node manifest; state, if not nil, is published as the agent's annotation.
func node(t *testing.T, name, class string, state *layer.AgentState) string {
	t.Helper()
	labels := "{}"
	if class != "" {
		labels = "{" + layer.EC2NodeClassLabel + ": " + class + "}"
	}
	annotations := "{}"
	if state != nil {
		state.Node = name
		v, err := layer.EncodeAgentState(*state)
		if err != nil {
			t.Fatal(err)
		}
		annotations = fmt.Sprintf("{%s: %q}", layer.AgentStateAnnotation, v)
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata: {name: %s, labels: %s, annotations: %s}\nspec: {providerID: 'aws:///eu-west-1a/i-%s'}\n---\n", name, labels, annotations, name)
}

const karpenterClasses = `apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: default}
spec: {role: KarpenterNodeRole}
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: legacy}
spec:
  role: KarpenterNodeRole
  metadataOptions: {httpTokens: optional, httpPutResponseHopLimit: 2}
---
`

// layeredCluster has no network policy at all: every verdict below comes from the node and
// instance layers.
func layeredCluster(t *testing.T, now time.Time) string {
	imds := []string{"169.254.169.254:80/TCP", "[fd00:ec2::254]:80/TCP"}
	return karpenterClasses +
		node(t, "karp-a", "default", nil) +
		node(t, "karp-legacy", "legacy", nil) +
		node(t, "agent-node", "", &layer.AgentState{Mode: "enforce", Dropped: imds, HostNetworkCovered: true, Synced: now.Add(-time.Minute),
			Exempt: []layer.PodSelector{{Namespace: "shop", ServiceAccount: "exempted"}}}) +
		node(t, "stale-node", "", &layer.AgentState{Mode: "enforce", Dropped: imds, HostNetworkCovered: true, Synced: now.Add(-time.Hour)}) +
		// The class says hop limit 2; the agent measured 1 (and IMDSv1 answering, as configured).
		node(t, "drifted", "legacy", &layer.AgentState{Mode: "observe", Synced: now.Add(-time.Minute),
			Instance: &layer.InstanceMeasurement{Measured: now.Add(-time.Minute), V1Status: 200, HopLimit: 1}}) +
		pod("shop", "on-default", "  nodeName: karp-a\n") +
		pod("shop", "host-on-default", "  nodeName: karp-a\n  hostNetwork: true\n") +
		pod("shop", "on-legacy", "  nodeName: karp-legacy\n") +
		pod("shop", "on-agent", "  nodeName: agent-node\n") +
		pod("shop", "host-on-agent", "  nodeName: agent-node\n  hostNetwork: true\n") +
		pod("shop", "exempted-on-agent", "  nodeName: agent-node\n  serviceAccountName: exempted\n") +
		pod("shop", "on-stale", "  nodeName: stale-node\n") +
		pod("shop", "on-drifted", "  nodeName: drifted\n") +
		pod("shop", "pinned-default", "  nodeSelector: {"+layer.EC2NodeClassLabel+": default}\n") +
		pod("shop", "unscheduled", "")
}

// TestLayeredVerdicts is the overall verdict's truth table over the node and instance layers:
// reachable unless some layer denies; unknown never denies; a template takes the weakest node.
func TestLayeredVerdicts(t *testing.T) {
	now := time.Now()
	r := auditYAMLWith(t, layeredCluster(t, now), audit.Options{Now: now}, endpoint.AWS)
	want := map[string]struct {
		reachable    bool
		node, inst   layer.Decision
		deciding     layer.Name
		reasonSubstr string
	}{
		"on-default":      {false, layer.Unknown, layer.Deny, layer.Instance, "2 hops away"},
		"host-on-default": {true, layer.Unknown, layer.Allow, layer.ClusterPolicy, "hostNetwork"},
		"on-legacy":       {true, layer.Unknown, layer.Allow, layer.ClusterPolicy, "no policy selects the pod"},
		"on-agent":        {false, layer.Deny, layer.Unknown, layer.Node, "drops 169.254.169.254:80/TCP (enforce)"},
		"host-on-agent":   {false, layer.Deny, layer.Unknown, layer.Node, "drops 169.254.169.254:80/TCP (enforce)"},
		"on-stale":        {true, layer.Unknown, layer.Unknown, layer.ClusterPolicy, "no policy selects the pod"},
		// The agent's configuration lets its service account through.
		"exempted-on-agent": {true, layer.Allow, layer.Unknown, layer.ClusterPolicy, "no policy selects the pod"},
		"on-drifted":        {true, layer.Allow, layer.Allow, layer.ClusterPolicy, "no policy selects the pod"},
		"pinned-default":    {false, layer.Unknown, layer.Deny, layer.Instance, "2 hops away"},
		// May land on any node: the weakest (karp-legacy's IMDSv1, drifted's observing agent)
		// decides.
		"unscheduled": {true, layer.Allow, layer.Allow, layer.ClusterPolicy, "no policy selects the pod"},
	}
	imds := slices.IndexFunc(r.Endpoints, func(ep endpoint.Endpoint) bool { return ep.Name == "aws-imds" })
	for i, s := range r.Subjects {
		w, ok := want[s.Pod]
		if !ok {
			t.Fatalf("unexpected subject %s", s.Label())
		}
		x := r.Exposure(i, imds)
		if x.Reachable != w.reachable || x.Node.Decision != w.node || x.Instance.Decision != w.inst ||
			x.DecidedBy.Layer != w.deciding || !strings.Contains(x.DecidedBy.Reason, w.reasonSubstr) {
			t.Errorf("%s → aws-imds: reachable %t, node %s, instance %s, decided by %s; want %+v", s.Pod, x.Reachable, x.Node, x.Instance, x.DecidedBy, w)
		}
		if x.Reachable != r.Reachable(i, imds) {
			t.Errorf("%s: Exposure and Reachable disagree", s.Pod)
		}
	}
	// The measurement wins over the class's default, and the drift is a finding.
	drifted := slices.IndexFunc(r.Subjects, func(s audit.Subject) bool { return s.Pod == "on-drifted" })
	if x := r.Exposure(drifted, imds); x.Instance.Source != layer.Measured || !strings.Contains(x.Instance.Reason, "HttpTokens optional") {
		t.Errorf("on-drifted instance layer %s: want allow measured (IMDSv1 answered)", x.Instance)
	}
	if len(r.Drifts) != 1 || r.Drifts[0].Node != "drifted" || r.Drifts[0].Option != "HttpPutResponseHopLimit" ||
		!strings.HasPrefix(r.Drifts[0].Used, "1 (measured") || !strings.HasPrefix(r.Drifts[0].Other, "2 (configured: EC2NodeClass legacy") {
		t.Errorf("drifts %v: want the hop limit on node drifted, measured 1 over configured 2", r.Drifts)
	}
}

// TestLayeredFindings: IMDS001 only where every layer lets the pod through; IMDS014 where one
// layer alone protects; IMDS015 names the nodes with IMDSv1; IMDS016 the drift; IMDS002 only
// for hostNetwork pods no layer stops.
func TestLayeredFindings(t *testing.T) {
	now := time.Now()
	r := auditYAMLWith(t, layeredCluster(t, now), audit.Options{Now: now}, endpoint.AWS)
	got := map[string][]string{}
	for _, f := range r.Findings {
		var names []string
		for _, o := range f.Objects {
			names = append(names, o.Name)
		}
		got[f.Rule.ID] = append(got[f.Rule.ID], strings.Join(names, ","))
	}
	reach := got["IMDS001"]
	slices.Sort(reach)
	// aws-imds and aws-imds-ipv6 each; on-agent, on-default and pinned-default are denied.
	for _, p := range []string{"on-default", "on-agent", "pinned-default", "host-on-agent"} {
		for _, f := range reach {
			if f == p {
				t.Errorf("IMDS001 for %s, which a layer denies", p)
			}
		}
	}
	for _, p := range []string{"on-legacy", "on-stale", "on-drifted", "unscheduled"} {
		if !slices.Contains(reach, p) {
			t.Errorf("no IMDS001 for %s, which every layer lets through (IMDS001 %v)", p, reach)
		}
	}
	if h := got["IMDS002"]; len(h) != 1 || h[0] != "host-on-default" {
		t.Errorf("IMDS002 %v: want host-on-default only (the agent stops host-on-agent)", h)
	}
	if v1 := got["IMDS015"]; !slices.Contains(v1, "karp-legacy") || !slices.Contains(v1, "drifted") {
		t.Errorf("IMDS015 %v: want karp-legacy (configured) and drifted (measured)", v1)
	}
	if d := got["IMDS016"]; len(d) != 1 || d[0] != "drifted" {
		t.Errorf("IMDS016 %v: want the drift on node drifted", d)
	}
	var single []string
	for _, f := range r.Findings {
		if f.Rule.ID == audit.RuleSingleLayer.ID {
			single = append(single, f.Message)
		}
	}
	if !slices.ContainsFunc(single, func(m string) bool { return strings.Contains(m, "by the instance layer alone (default)") }) ||
		!slices.ContainsFunc(single, func(m string) bool { return strings.Contains(m, "by the node layer alone (measured)") }) {
		t.Errorf("IMDS014 %q: want the instance layer (default) and the node layer (measured)", single)
	}
}

// TestLayeredReports: the table shows each layer and the denying one, --explain all three, and
// the JSON report validates against the schema with layers, nodes and counts that agree.
func TestLayeredReports(t *testing.T) {
	now := time.Now()
	r := auditYAMLWith(t, layeredCluster(t, now), audit.Options{Now: now}, endpoint.AWS)
	var table bytes.Buffer
	if err := r.WriteTable(&table, audit.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POLICY  NODE   INSTANCE", "instance (default): HttpTokens required", "node (measured): the imdsguard agent on agent-node drops"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var explain bytes.Buffer
	if ok, err := r.WriteExplain(&explain, "shop/on-agent"); !ok || err != nil {
		t.Fatalf("explain: %t %v", ok, err)
	}
	for _, want := range []string{"cluster policy:", "node deny (measured)", "instance unknown (assumed)", "=> denied by the node layer"} {
		if !strings.Contains(explain.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, explain.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "../../docs/audit-report.schema.json"), js.Bytes())
	doc := decodeReport(t, js.Bytes())
	reachable, denied := 0, map[string]int{}
	for _, e := range doc.Exposure {
		if e.Allowed {
			reachable++
		} else {
			denied[e.DeniedBy]++
		}
		node, inst := doc.LayerVerdicts[e.LayerVerdicts.Node], doc.LayerVerdicts[e.LayerVerdicts.Instance]
		if e.Layers.ClusterPolicy == "" || node.Layer != "node" || node.Decision != e.Layers.Node || inst.Layer != "instance" || inst.Decision != e.Layers.Instance {
			t.Fatalf("exposure's layers do not match the verdicts they refer to: %+v, node %+v, instance %+v", e, node, inst)
		}
	}
	if reachable != doc.Summary.Reachable || denied["instance"] != doc.Summary.DeniedBy["instance"] || denied["node"] != doc.Summary.DeniedBy["node"] {
		t.Errorf("summary reachable %d deniedBy %v; exposures say %d and %v", doc.Summary.Reachable, doc.Summary.DeniedBy, reachable, denied)
	}
	if len(doc.Nodes) != 5 || len(doc.Drifts) != 1 {
		t.Errorf("nodes %d, drifts %d: want 5 and 1", len(doc.Nodes), len(doc.Drifts))
	}
}

// report is the part of the JSON report the layer tests read.
type report struct {
	Summary struct {
		Reachable int            `json:"reachable"`
		DeniedBy  map[string]int `json:"deniedBy"`
	} `json:"summary"`
	Nodes         []json.RawMessage `json:"nodes"`
	Drifts        []json.RawMessage `json:"drifts"`
	LayerVerdicts []struct {
		Layer, Decision, Source, Reason string
	} `json:"layerVerdicts"`
	Exposure []struct {
		Allowed  bool   `json:"allowed"`
		DeniedBy string `json:"deniedBy"`
		Layers   struct {
			ClusterPolicy, Node, Instance string
		} `json:"layers"`
		LayerVerdicts struct {
			Node, Instance int
		} `json:"layerVerdicts"`
	} `json:"exposure"`
}

func decodeReport(t *testing.T, data []byte) report {
	t.Helper()
	var doc report
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// auditYAMLWith runs an audit with options over inline manifests.
func auditYAMLWith(t *testing.T, manifests string, opts audit.Options, clouds ...endpoint.Cloud) *audit.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("problems: %v", inv.Problems)
	}
	if opts.Enforcement.Kinds == nil {
		opts.Enforcement = policy.AssumedEnforcement(inv)
	}
	return audit.RunWith(inv, endpoint.Select(clouds), opts)
}

// TestGKEMetadataServerLayer: on a GKE node with the GKE metadata server, pods on the pod network
// are denied the node's credentials on the node layer; hostNetwork pods are not; a tainted pool
// counts only for the templates that tolerate it.
func TestGKEMetadataServerLayer(t *testing.T) {
	manifests := `apiVersion: v1
kind: Node
metadata: {name: gke-wi, labels: {iam.gke.io/gke-metadata-server-enabled: "true"}}
spec: {providerID: "gce://proj/europe-west1-b/gke-wi"}
---
apiVersion: v1
kind: Node
metadata: {name: gke-legacy}
spec:
  providerID: "gce://proj/europe-west1-b/gke-legacy"
  taints: [{key: pool, value: legacy, effect: NoSchedule}]
---
` + pod("shop", "web", "") + pod("shop", "host", "  hostNetwork: true\n") +
		pod("shop", "tolerant", "  tolerations: [{key: pool, operator: Exists}]\n")
	r := auditYAMLWith(t, manifests, audit.Options{}, endpoint.GCP)
	want := map[string]bool{"web": false, "host": true, "tolerant": true}
	for i, s := range r.Subjects {
		x := r.Exposure(i, 0)
		if x.Reachable != want[s.Pod] {
			t.Errorf("%s → %s: reachable %t, node %s; want reachable %t", s.Pod, r.Endpoints[0].Name, x.Reachable, x.Node, want[s.Pod])
		}
		if s.Pod == "web" && (x.DecidedBy.Layer != layer.Node || x.Node.Source != layer.Configured || !strings.Contains(x.Node.Reason, "GKE metadata server")) {
			t.Errorf("web: decided by %s, want the node layer's GKE metadata server (configured)", x.DecidedBy)
		}
	}
}

// TestTableFoldsPodsOnLikeNodes: a Deployment's pods on two nodes of the same node pool have the
// same decisions on every layer, though their reasons name different nodes: the table folds them
// into the template's row.
func TestTableFoldsPodsOnLikeNodes(t *testing.T) {
	owned := func(name, node string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: shop\n  labels: {app: web, pod-template-hash: 7d9c}\n" +
			"  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9c, uid: u-rs, controller: true}]\n" +
			"spec:\n  nodeName: " + node + "\n  containers: [{name: c, image: nginx}]\n---\n"
	}
	manifests := karpenterClasses + node(t, "karp-a", "default", nil) + node(t, "karp-b", "default", nil) +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n" +
		"  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: nginx}]}\n---\n" +
		owned("web-7d9c-a", "karp-a") + owned("web-7d9c-b", "karp-b")
	r := auditYAMLWith(t, manifests, audit.Options{}, endpoint.AWS)
	var table bytes.Buffer
	if err := r.WriteTable(&table, audit.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "Deployment/web (+2 pods)") {
		t.Errorf("the pods are not folded into the template's row:\n%s", table.String())
	}
}
