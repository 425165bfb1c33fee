package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/layer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var controlPlane = kubetest.NewShared(kubetest.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	controlPlane.Stop()
	os.Exit(code)
}

// liveCluster returns the shared control plane with the policy CRDs and the example cluster
// applied, and a kubeconfig for it.
func liveCluster(t *testing.T) (*kubetest.ControlPlane, string) {
	t.Helper()
	cp := controlPlane.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), kubetest.AdminNetworkPolicy, kubetest.Karpenter); err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.DecodeFiles(filepath.Join("..", "..", "examples", "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	applier, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	return cp, kubeconfig
}

// auditJSON is the part of the JSON report compared between manifest and live audits.
type auditJSON struct {
	Complete bool              `json:"complete"`
	Cluster  string            `json:"cluster"`
	Gaps     []json.RawMessage `json:"gaps"`
	Findings []auditFinding    `json:"findings"`
	Exposure []json.RawMessage `json:"exposure"`
}

// manifestPosition matches the position of an object read from the example's manifests, as a
// finding's message gives it: " (../../examples/cluster/nodes.yaml:9)".
var manifestPosition = regexp.MustCompile(` \([^()]*examples/cluster/[^()]*:[0-9]+\)`)

type auditFinding struct {
	ID        string        `json:"id"`
	Namespace string        `json:"namespace"`
	Objects   []auditObject `json:"objects"`
	Endpoints []string      `json:"endpoints"`
	Message   string        `json:"message"`
}

type auditObject struct {
	Kind, Namespace, Name string
}

func decodeAudit(t *testing.T, out string) auditJSON {
	t.Helper()
	var a auditJSON
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("audit output is not JSON: %v\n%s", err, out)
	}
	return a
}

// TestLiveAuditMatchesManifests: the example cluster applied to a real API server and audited
// live gives the same verdicts and findings as the manifests it came from, joined to the same
// infrastructure code.
func TestLiveAuditMatchesManifests(t *testing.T) {
	_, kubeconfig := liveCluster(t)
	exampleNamespaces := []string{"analytics", "kube-system", "marketing", "payments", "shop"}
	infra := filepath.Join("..", "..", "examples", "infra")

	code, out, stderr := run(t, "", "audit", "--cloud", "aws", "--output", "json", "--fail-on", "none", filepath.Join("..", "..", "examples", "cluster"), infra)
	if code != 0 {
		t.Fatalf("manifest audit: exit %d\n%s", code, stderr)
	}
	fromFiles := decodeAudit(t, out)
	code, out, stderr = run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "--output", "json", "--fail-on", "none", infra)
	if code != 0 {
		t.Fatalf("live audit: exit %d\n%s", code, stderr)
	}
	live := decodeAudit(t, out)
	// The code joins the live cluster's system node.
	if !slices.ContainsFunc(live.Findings, func(f auditFinding) bool {
		return f.ID == "IMDS017" && slices.ContainsFunc(f.Objects, func(o auditObject) bool {
			return o.Kind == "Node" && o.Name == "ip-10-0-1-10.us-west-2.compute.internal"
		})
	}) {
		t.Errorf("no IMDS017 joining examples/infra to the live system node:\n%s", stderr)
	}
	if !live.Complete || len(live.Gaps) != 0 || live.Cluster != "admin" {
		t.Fatalf("live audit as admin: complete %v, gaps %s, cluster %q; want complete, no gaps, cluster admin (the context)", live.Complete, live.Gaps, live.Cluster)
	}
	inExample := func(a auditJSON) auditJSON {
		var kept auditJSON
		for _, f := range a.Findings {
			if f.Namespace == "" || slices.Contains(exampleNamespaces, f.Namespace) {
				// Objects read from manifests name their file and line; the API server's do not.
				f.Message = manifestPosition.ReplaceAllString(f.Message, "")
				kept.Findings = append(kept.Findings, f)
			}
		}
		for _, e := range a.Exposure {
			var head struct{ Namespace string }
			_ = json.Unmarshal(e, &head)
			if slices.Contains(exampleNamespaces, head.Namespace) {
				kept.Exposure = append(kept.Exposure, e)
			}
		}
		return kept
	}
	want, got := inExample(fromFiles), inExample(live)
	if len(want.Exposure) == 0 || len(want.Findings) == 0 {
		t.Fatal("the manifest audit found nothing to compare")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live audit differs from the manifest audit (-manifests +live):\n%s", diff)
	}
}

// TestLiveAuditDetectsCloudAndReportsGaps: without --cloud the nodes' provider IDs choose the
// endpoints; a user without list rights gets an incomplete report and exit status 1, never a
// silent pass.
func TestLiveAuditDetectsCloudAndReportsGaps(t *testing.T) {
	cp, kubeconfig := liveCluster(t)
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gke-pool-1"}, Spec: corev1.NodeSpec{ProviderID: "gce://project/europe-west1-b/gke-pool-1"}}
	if _, err := cp.Client("admin").CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Client("admin").CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}) }()

	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--output", "json", "--fail-on", "none", "--log-level", "info")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var report struct {
		Endpoints []struct{ Name string } `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range report.Endpoints {
		names = append(names, e.Name)
	}
	// The example's nodes are on AWS, the added one on GCE.
	var want []string
	for _, ep := range endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.GCP}) {
		want = append(want, ep.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("endpoints %v, want %v (nodes on AWS and GCE)", names, want)
	}
	if !strings.Contains(stderr, "cloud detected from node spec.providerID") {
		t.Errorf("the detection is not logged:\n%s", stderr)
	}

	// "nobody" may list nothing: every resource is a gap, and the table says so.
	code, out, _ = run(t, "", "audit", "--kubeconfig", kubeconfig, "--context", "nobody", "--cloud", "aws")
	if code != ExitFindings {
		t.Errorf("audit without list rights: exit %d, want %d (IMDS012 findings are high)", code, ExitFindings)
	}
	for _, want := range []string{"INCOMPLETE: pods could not be read (forbidden:", "IMDS012", "cluster nobody"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
}

// TestLiveAuditErrors: a cluster that cannot be used is a usage error (exit 2) that says why.
func TestLiveAuditErrors(t *testing.T) {
	cp, kubeconfig := liveCluster(t)
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable")
	if err := os.WriteFile(unreachable, []byte(strings.ReplaceAll(string(data), cp.URL, "https://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("clusters: [this is not a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	pods := filepath.Join(dir, "pods.yaml")
	if err := os.WriteFile(pods, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: default}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unreachable server", []string{"--kubeconfig", unreachable}, "cannot reach the API server at https://127.0.0.1:1"},
		{"malformed kubeconfig", []string{"--kubeconfig", garbage}, "kubeconfig:"},
		{"missing kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "absent")}, "absent"},
		{"unknown context", []string{"--kubeconfig", kubeconfig, "--context", "prod"}, `context "prod" does not exist`},
		{"files and a cluster", []string{"--kubeconfig", kubeconfig, pods}, "either manifests (" + pods + ") or a live cluster"},
		{"a missing file and a cluster", []string{"--kubeconfig", kubeconfig, "pods.yaml"}, "pods.yaml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", append([]string{"audit"}, tt.args...)...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if line := errorLine(t, stderr); !strings.Contains(line, tt.want) {
				t.Errorf("error %q, want it to contain %q", line, tt.want)
			}
		})
	}
}

// TestLiveGenerate: generate reads the live cluster like audit does, refuses the isolated
// namespaces it finds there, and refuses the networkpolicy layer outright when the cluster could
// not be read completely.
func TestLiveGenerate(t *testing.T) {
	_, kubeconfig := liveCluster(t)
	code, out, stderr := run(t, "", "generate", "--kubeconfig", kubeconfig, "--cloud", "aws", "--layer", "networkpolicy,adminnetworkpolicy")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (the example has egress-isolated namespaces to refuse)\n%s", code, ExitFindings, stderr)
	}
	for _, want := range []string{"kind: NetworkPolicy", "namespace: default", "fd00:ec2::254/128"} {
		if !strings.Contains(out, want) {
			t.Errorf("generated objects lack %q:\n%s", want, out)
		}
	}
	// The example runs the AWS VPC CNI with its network policy agent, read live: it does not
	// enforce AdminNetworkPolicy, so that layer is refused, as from the files.
	if strings.Contains(out, "kind: AdminNetworkPolicy") || !strings.Contains(stderr, "does not enforce AdminNetworkPolicy") {
		t.Errorf("the adminnetworkpolicy layer was not refused on the VPC CNI:\n%s", stderr)
	}
	if !strings.Contains(stderr, "payments") {
		t.Errorf("the refusal of the isolated namespace payments is not reported:\n%s", stderr)
	}

	code, _, stderr = run(t, "", "generate", "--kubeconfig", kubeconfig, "--context", "nobody", "--cloud", "aws", "--layer", "networkpolicy")
	if code != ExitUsage {
		t.Errorf("networkpolicy layer from an unreadable cluster: exit %d, want %d", code, ExitUsage)
	}
	if line := errorLine(t, stderr); !strings.Contains(line, "could not be read completely") || !strings.Contains(line, "pods could not be read (forbidden") {
		t.Errorf("error %q does not say the read was incomplete and what was missing", line)
	}
	// Deny-only layers need no inventory and are still generated.
	code, out, stderr = run(t, "", "generate", "--kubeconfig", kubeconfig, "--context", "nobody", "--cloud", "aws", "--layer", "adminnetworkpolicy")
	if code != ExitOK || !strings.Contains(out, "kind: AdminNetworkPolicy") {
		t.Errorf("adminnetworkpolicy layer from an unreadable cluster: exit %d, output %q\n%s", code, out, stderr)
	}
}

// TestLiveAuditLayers: on a real API server, a node reaches its EC2NodeClass through its
// NodeClaim (no class label), an agent's published state denies on the node layer, and each
// pod gets its node's layer verdicts; the nodes' objects are read with the audit ClusterRole's
// rights (the live audit runs as the admin here; the ClusterRole's rules are tested in
// package inventory).
func TestLiveAuditLayers(t *testing.T) {
	cp, kubeconfig := liveCluster(t)
	ctx := context.Background()
	state, err := layer.EncodeAgentState(layer.AgentState{Node: "layers-agent", Mode: "enforce", HostNetworkCovered: true, Generation: 1,
		Dropped: []string{"169.254.169.254:80/TCP", "[fd00:ec2::254]:80/TCP"}, Synced: time.Now().UTC(),
		// Measured: tokens required, hop limit 1; the hostNetwork pod is one hop away.
		Instance: &layer.InstanceMeasurement{Measured: time.Now().UTC(), V1Status: 401, HopLimit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	manifests := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: layers}
---
apiVersion: v1
kind: Node
metadata: {name: layers-claimed}
spec: {providerID: "aws:///us-west-2a/i-0a1b2c3d4e5f6aa01"}
---
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata: {name: payments-x7k2p}
spec:
  nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: payments}
status: {providerID: "aws:///us-west-2a/i-0a1b2c3d4e5f6aa01"}
---
apiVersion: v1
kind: Node
metadata:
  name: layers-agent
  annotations: {%s: %q}
spec: {providerID: "aws:///us-west-2a/i-0a1b2c3d4e5f6aa02"}
---
apiVersion: v1
kind: Pod
metadata: {name: on-claimed, namespace: layers}
spec: {nodeName: layers-claimed, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: on-agent, namespace: layers}
spec: {nodeName: layers-agent, hostNetwork: true, containers: [{name: c, image: busybox}]}
`, layer.AgentStateAnnotation, state)
	objs, err := kubetest.Decode([]byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	applier, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range []string{"layers-claimed", "layers-agent"} {
			_ = cp.Client("admin").CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		}
		_ = cp.Client("admin").CoreV1().Namespaces().Delete(ctx, "layers", metav1.DeleteOptions{})
	}()
	_, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "--output", "json", "--fail-on", "none")
	var report struct {
		LayerVerdicts []struct{ Layer, Decision, Source, Reason string } `json:"layerVerdicts"`
		Exposure      []struct {
			Namespace, Pod string
			Endpoint       struct{ Name string }
			Allowed        bool
			DeniedBy       string
			LayerVerdicts  struct{ Node, Instance int }
		} `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want := map[string]struct{ deniedBy, node, instance, reason string }{
		"on-claimed": {"instance", "unknown", "deny", "EC2NodeClass payments"},
		"on-agent":   {"node", "deny", "allow", "the imdsguard agent on layers-agent drops 169.254.169.254:80/TCP (enforce)"},
	}
	measured := map[string]bool{"on-agent": true}
	seen := 0
	for _, e := range report.Exposure {
		w, ok := want[e.Pod]
		if e.Namespace != "layers" || !ok || e.Endpoint.Name != "aws-imds" {
			continue
		}
		seen++
		node, inst := report.LayerVerdicts[e.LayerVerdicts.Node], report.LayerVerdicts[e.LayerVerdicts.Instance]
		deciding := inst
		if w.deniedBy == "node" {
			deciding = node
		}
		if e.Allowed || e.DeniedBy != w.deniedBy || node.Decision != w.node || inst.Decision != w.instance || !strings.Contains(deciding.Reason, w.reason) ||
			measured[e.Pod] != (inst.Source == "measured") {
			t.Errorf("%s → aws-imds: allowed %t, denied by %q, node %+v, instance %+v; want %+v", e.Pod, e.Allowed, e.DeniedBy, node, inst, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d exposures of the layers pods to aws-imds, want %d:\n%s", seen, len(want), stderr)
	}
}

// TestLiveAuditProgress: on a terminal, a live audit says on standard error how many objects of
// each resource it listed; the report on standard output stays clean, and nothing is said when
// standard error is not a terminal.
func TestLiveAuditProgress(t *testing.T) {
	_, kubeconfig := liveCluster(t)
	for _, terminal := range []bool{true, false} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), []string{"audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "-o", "json", "--fail-on", "none", "--page-size", "2"},
			Streams{In: strings.NewReader(""), Out: &out, Err: &errOut, ErrIsTerminal: terminal})
		if code != 0 {
			t.Fatalf("live audit: exit %d\n%s", code, errOut.String())
		}
		decodeAudit(t, out.String())
		if strings.ContainsAny(out.String(), "\r\x1b") || regexp.MustCompile(`listed \d+ [a-z.]+\n`).MatchString(out.String()) {
			t.Errorf("progress in the JSON report:\n%s", out.String())
		}
		namespaces := regexp.MustCompile(`listed (\d+) namespaces\n`).FindStringSubmatch(errOut.String())
		switch {
		case terminal && namespaces == nil:
			t.Errorf("no progress line for namespaces on a terminal:\n%q", errOut.String())
		case terminal && namespaces[1] == "0":
			t.Errorf("progress says no namespace was listed:\n%q", errOut.String())
		case terminal && !strings.Contains(errOut.String(), "\r\x1b[Klisting namespaces: 2 so far"):
			t.Errorf("no in-place line while namespaces are listed page by page:\n%q", errOut.String())
		case !terminal && (namespaces != nil || strings.ContainsAny(errOut.String(), "\r\x1b")):
			t.Errorf("progress on standard error that is not a terminal:\n%q", errOut.String())
		}
	}
}
