package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/kubetest"
)

// liveCNPManifests are a namespace, a pod and two ClusterNetworkPolicies that select only that
// namespace: one written at v1alpha2 (Admin tier), one at v1beta1 (Baseline tier).
const liveCNPManifests = `apiVersion: v1
kind: Namespace
metadata: {name: live-cnp}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: live-cnp, labels: {app: web}}
spec: {containers: [{name: app, image: registry.example/web:1}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: live-cnp-deny-imds}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: live-cnp}}}
  egress:
  - name: deny-metadata
    action: Deny
    to: [{networks: [169.254.169.254/32, "fd00:ec2::254/128"]}]
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: live-cnp-baseline}
spec:
  tier: Baseline
  priority: 5
  subject: {pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: live-cnp}}, podSelector: {}}}
  egress:
  - name: accept-pod-identity
    action: Accept
    to: [{networks: [169.254.170.23/32]}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
  - name: deny-rest
    action: Deny
    to: [{networks: [0.0.0.0/0]}]
`

// TestLiveAuditClusterNetworkPolicies: ClusterNetworkPolicies created at v1alpha2 and v1beta1 on
// a real API server (the network-policy-api v0.3.0 CRD) are read by the live audit and decide
// the pod's verdicts in their tiers, with an engine that enforces them (Calico v3.32, stated
// with --policy-engine: the control plane runs no engine). The control plane is the test's
// own: cluster-scoped policies would change other tests' clusters.
func TestLiveAuditClusterNetworkPolicies(t *testing.T) {
	kubeconfig := ownCluster(t, liveCNPManifests, kubetest.ClusterNetworkPolicy)
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "--policy-engine", "calico@3.32.1", "--output", "json", "--fail-on", "none")
	if code != 0 {
		t.Fatalf("live audit: exit %d\n%s", code, stderr)
	}
	var report struct {
		Complete   bool `json:"complete"`
		Namespaces []struct {
			Name          string `json:"name"`
			EgressControl struct {
				Admin    []string `json:"adminClusterNetworkPolicies"`
				Baseline []string `json:"baselineClusterNetworkPolicies"`
			} `json:"egressControl"`
		} `json:"namespaces"`
		Exposure []struct {
			Namespace string `json:"namespace"`
			Pod       string `json:"pod"`
			Endpoint  struct {
				Name string `json:"name"`
			} `json:"endpoint"`
			Allowed   bool `json:"allowed"`
			DecidedBy struct {
				Tier, Kind, Policy, RuleName string
				Rule                         *int
			} `json:"decidedBy"`
		} `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("audit output is not JSON: %v\n%s", err, out)
	}
	if !report.Complete {
		t.Errorf("live audit is incomplete")
	}
	for _, ns := range report.Namespaces {
		if ns.Name == "live-cnp" && (strings.Join(ns.EgressControl.Admin, ",") != "live-cnp-deny-imds" || strings.Join(ns.EgressControl.Baseline, ",") != "live-cnp-baseline") {
			t.Errorf("egress control of live-cnp: %+v, want Admin live-cnp-deny-imds and Baseline live-cnp-baseline", ns.EgressControl)
		}
	}
	want := map[string]string{
		"aws-imds":              "denied by Admin ClusterNetworkPolicy live-cnp-deny-imds rule 0 (deny-metadata)",
		"aws-imds-ipv6":         "denied by Admin ClusterNetworkPolicy live-cnp-deny-imds rule 0 (deny-metadata)",
		"aws-pod-identity":      "allowed by Baseline ClusterNetworkPolicy live-cnp-baseline rule 0 (accept-pod-identity)",
		"aws-pod-identity-ipv6": "allowed by Default   rule -1 ()",
	}
	got := map[string]string{}
	for _, e := range report.Exposure {
		if e.Namespace != "live-cnp" || e.Pod != "web" {
			continue
		}
		rule := -1
		if e.DecidedBy.Rule != nil {
			rule = *e.DecidedBy.Rule
		}
		verdict := map[bool]string{true: "allowed", false: "denied"}[e.Allowed]
		got[e.Endpoint.Name] = fmt.Sprintf("%s by %s %s %s rule %d (%s)", verdict, e.DecidedBy.Tier, e.DecidedBy.Kind, e.DecidedBy.Policy, rule, e.DecidedBy.RuleName)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}

// TestLiveAuditWithoutEngineIsAGap: a live cluster in which no policy engine can be identified
// is not silently assumed to enforce its policies: the report is incomplete, with a gap and
// finding IMDS012 that say how to settle it.
func TestLiveAuditWithoutEngineIsAGap(t *testing.T) {
	kubeconfig := ownCluster(t, liveCNPManifests, kubetest.ClusterNetworkPolicy)
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "--output", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d: an unidentified engine is a high finding\n%s", code, ExitFindings, stderr)
	}
	var report struct {
		Complete bool              `json:"complete"`
		Gaps     []json.RawMessage `json:"gaps"`
		Engine   struct {
			Assumed bool `json:"assumed"`
		} `json:"policyEngine"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	gaps := fmt.Sprint(len(report.Gaps), string(bytesJoin(report.Gaps)))
	if report.Complete || !report.Engine.Assumed || !strings.Contains(gaps, `"policy engine"`) || !strings.Contains(gaps, "--policy-engine") {
		t.Errorf("complete %t, assumed %t, gaps %s: want an incomplete report with a policy engine gap", report.Complete, report.Engine.Assumed, gaps)
	}
}

func bytesJoin(parts []json.RawMessage) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// liveEngineManifests are Calico v3.32's calico-node DaemonSet as a manifest install puts it,
// and an AdminNetworkPolicy that Calico v3.32 no longer enforces.
const liveEngineManifests = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      hostNetwork: true
      containers: [{name: calico-node, image: quay.io/calico/node:v3.32.1}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: live-anp-deny-imds}
spec:
  priority: 1
  subject: {namespaces: {}}
  egress: [{name: deny, action: Deny, to: [{networks: [169.254.169.254/32]}]}]
`

// TestLiveAuditDetectsTheEngine: on a real API server running Calico v3.32's calico-node (read
// live), the audit detects the engine without --policy-engine, evaluates the
// ClusterNetworkPolicies it enforces, and reports the AdminNetworkPolicy it no longer enforces
// (IMDS013), which then decides nothing.
func TestLiveAuditDetectsTheEngine(t *testing.T) {
	kubeconfig := ownCluster(t, liveCNPManifests+"---\n"+liveEngineManifests, kubetest.ClusterNetworkPolicy, kubetest.AdminNetworkPolicy)
	code, out, stderr := run(t, "", "audit", "--kubeconfig", kubeconfig, "--cloud", "aws", "--output", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (the unenforced AdminNetworkPolicy is a high finding)\n%s", code, ExitFindings, stderr)
	}
	var report struct {
		Complete bool `json:"complete"`
		Engine   struct {
			Engine    string `json:"engine"`
			Semantics string `json:"semantics"`
			Assumed   bool   `json:"assumed"`
		} `json:"policyEngine"`
		Findings []struct {
			ID      string `json:"id"`
			Message string `json:"message"`
		} `json:"findings"`
		Exposure []struct {
			Namespace string `json:"namespace"`
			Endpoint  struct {
				Name string `json:"name"`
			} `json:"endpoint"`
			Allowed   bool `json:"allowed"`
			DecidedBy struct {
				Kind, Policy string
			} `json:"decidedBy"`
		} `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("audit output is not JSON: %v\n%s", err, out)
	}
	if !report.Complete || report.Engine.Assumed || report.Engine.Engine != "Calico v3.32.1" || report.Engine.Semantics != "calico" {
		t.Errorf("complete %t, policy engine %+v: want Calico v3.32.1 detected live, calico semantics", report.Complete, report.Engine)
	}
	notEnforced := false
	for _, f := range report.Findings {
		if f.ID == "IMDS013" && strings.Contains(f.Message, "AdminNetworkPolicy live-anp-deny-imds") && strings.Contains(f.Message, "Calico v3.32.1") {
			notEnforced = true
		}
	}
	if !notEnforced {
		t.Errorf("no IMDS013 for the AdminNetworkPolicy Calico v3.32 does not enforce: %+v", report.Findings)
	}
	for _, e := range report.Exposure {
		if e.Namespace == "live-cnp" && e.Endpoint.Name == "aws-imds" && (e.Allowed || e.DecidedBy.Policy != "live-cnp-deny-imds" || e.DecidedBy.Kind != "ClusterNetworkPolicy") {
			t.Errorf("live-cnp → aws-imds: allowed %t by %s %s, want denied by ClusterNetworkPolicy live-cnp-deny-imds (the ANP at priority 1 is not enforced)", e.Allowed, e.DecidedBy.Kind, e.DecidedBy.Policy)
		}
	}
}

// ownCluster starts a control plane of the test's own (cluster-scoped policies would change
// other tests' clusters), installs the CRD sets, applies the manifests and returns a
// kubeconfig for it.
func ownCluster(t *testing.T, manifests string, sets ...kubetest.CRDSet) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), sets...); err != nil {
		t.Fatal(err)
	}
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
	kubeconfig, err := cp.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}
