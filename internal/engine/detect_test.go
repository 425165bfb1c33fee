package engine

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// A detectCase is one sentence of detection: an engine's published install shape (a file in
// testdata) and what Detect must make of it.
type detectCase struct {
	file string
	// engines are "name version on|off" for each engine found, in order.
	engines []string
	// enforced are the kinds the merged enforcement enforces; every other kind must not be.
	enforced  []policy.Kind
	semantics policy.Semantics
	engine    string // Enforcement.Engine
	assumed   bool
	// reasons are substrings each kind's merged reason must hold.
	reasons map[policy.Kind]string
	// warnings and problems are substrings, one per expected message, in order.
	warnings []string
	problems []string
	// evidence is a substring of one engine's evidence.
	evidence string
}

var (
	np   = policy.KindNetworkPolicy
	anp  = policy.KindAdminNetworkPolicy
	banp = policy.KindBaselineAdminNetworkPolicy
	cnp  = policy.KindClusterNetworkPolicy
	awsc = policy.KindAWSClusterNetworkPolicy
	cal  = policy.KindCalico
	cil  = policy.KindCilium
)

var detectCases = []detectCase{
	{file: "aws-vpc-cni-off.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 off"}, enforced: nil, semantics: policy.SemanticsKubernetes,
		engine:  "AWS VPC CNI v1.19.0-eksbuild.1 (policy enforcement off)",
		reasons: map[policy.Kind]string{np: "its policy enforcement is off (DaemonSet kube-system/aws-node container aws-eks-nodeagent arg --enable-network-policy=false)"}},
	{file: "aws-vpc-cni-on.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine:  "AWS VPC CNI v1.19.0-eksbuild.1",
		reasons: map[policy.Kind]string{np: "v1.14.0 to before v1.21.1", awsc: "needs VPC CNI v1.21.1", anp: "AWS VPC CNI v1.19.0-eksbuild.1 does not enforce AdminNetworkPolicy"}},
	{file: "aws-vpc-cni-1.21.yaml",
		engines: []string{"aws-vpc-cni v1.21.1-eksbuild.3 on"}, enforced: []policy.Kind{np, awsc}, semantics: policy.SemanticsKubernetes,
		engine: "AWS VPC CNI v1.21.1-eksbuild.3"},
	{file: "aws-vpc-cni-controller-off.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 off"}, semantics: policy.SemanticsKubernetes,
		engine:  "AWS VPC CNI v1.19.0-eksbuild.1 (policy enforcement off)",
		reasons: map[policy.Kind]string{np: "enable-network-policy-controller=false: the network policy controller is off"}},
	{file: "aws-vpc-cni-agent-only.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine:   "AWS VPC CNI v1.19.0-eksbuild.1",
		warnings: []string{"ConfigMap kube-system/amazon-vpc-cni is not in the input: the network policy controller is assumed on"}},
	{file: "aws-vpc-cni-pods-only.yaml",
		engines: []string{"aws-vpc-cni v1.20.4-eksbuild.2 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine:   "AWS VPC CNI v1.20.4-eksbuild.2",
		evidence: "DaemonSet kube-system/aws-node (from its Pod aws-node-x7k2p) container aws-eks-nodeagent arg --enable-network-policy=true"},
	{file: "aws-vpc-cni-1.13.yaml",
		engines: []string{"aws-vpc-cni v1.13.4-eksbuild.1 off"}, semantics: policy.SemanticsKubernetes,
		engine:  "AWS VPC CNI v1.13.4-eksbuild.1 (policy enforcement off)",
		reasons: map[policy.Kind]string{np: "has no aws-eks-nodeagent container"}},
	{file: "eks-auto-mode.yaml",
		engines: []string{"eks-auto-mode  on"}, enforced: []policy.Kind{np, awsc}, semantics: policy.SemanticsKubernetes,
		engine:  "EKS Auto Mode",
		reasons: map[policy.Kind]string{np: "EKS Auto Mode (version unknown: EKS Auto Mode is managed by AWS"}},
	{file: "eks-auto-mode-off.yaml",
		engines: []string{"eks-auto-mode  off"}, semantics: policy.SemanticsKubernetes,
		engine:   "EKS Auto Mode (policy enforcement off)",
		reasons:  map[policy.Kind]string{np: "accepts network policies without enforcing them"},
		warnings: []string{"NodeClass default has networkPolicy DefaultDeny"}},
	{file: "calico-3.28.yaml",
		engines: []string{"calico v3.28.5 on"}, enforced: []policy.Kind{np, cal}, semantics: policy.SemanticsCalico,
		engine:  "Calico v3.28.5",
		reasons: map[policy.Kind]string{anp: "Calico v3.28.5 does not enforce AdminNetworkPolicy (from v3.29.0; before v3.29.0;"}},
	{file: "calico-3.31.yaml",
		engines: []string{"calico v3.31.2 on"}, enforced: []policy.Kind{np, anp, banp, cal}, semantics: policy.SemanticsCalico,
		engine:  "Calico v3.31.2",
		reasons: map[policy.Kind]string{anp: "v3.30.0 to before v3.32.0; https://github.com/projectcalico/calico/pull/9464", cnp: "Calico v3.31.2 does not enforce ClusterNetworkPolicy"}},
	{file: "calico-operator-3.32.yaml",
		engines: []string{"calico v3.32.0 on"}, enforced: []policy.Kind{np, cnp, cal}, semantics: policy.SemanticsCalico,
		engine:  "Calico v3.32.0",
		reasons: map[policy.Kind]string{anp: "removed in v3.32.0 for ClusterNetworkPolicy", cnp: "v3.32.0 and later"}},
	{file: "calico-operator-only.yaml",
		engines: []string{"calico  on"}, enforced: []policy.Kind{np, cal}, semantics: policy.SemanticsCalico,
		engine:   "Calico",
		reasons:  map[policy.Kind]string{anp: "the version is unknown (the calico-node DaemonSet, which the Tigera operator creates in calico-system, is not in the input)"},
		warnings: []string{"calico: version unknown: the calico-node DaemonSet, which the Tigera operator creates in calico-system, is not in the input, and no Installation reports status.calicoVersion", "uses the eBPF dataplane"}},
	{file: "calico-operator-status.yaml",
		engines: []string{"calico v3.31.4 on"}, enforced: []policy.Kind{np, anp, banp, cal}, semantics: policy.SemanticsCalico,
		engine:   "Calico v3.31.4",
		evidence: "Installation default status.calicoVersion=v3.31.4"},
	{file: "aws-vpc-cni-with-calico.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 off", "calico v3.32.0 on"}, enforced: []policy.Kind{np, cnp, cal}, semantics: policy.SemanticsCalico,
		engine:  "Calico v3.32.0",
		reasons: map[policy.Kind]string{anp: "AWS VPC CNI v1.19.0-eksbuild.1 does not enforce AdminNetworkPolicy: its policy enforcement is off"}},
	{file: "canal.yaml",
		engines: []string{"canal v3.30.3 on"}, enforced: []policy.Kind{np, anp, banp, cal}, semantics: policy.SemanticsCalico,
		engine: "Canal v3.30.3"},
	{file: "cilium.yaml",
		engines: []string{"cilium v1.18.2 on"}, enforced: []policy.Kind{np, cil}, semantics: policy.SemanticsCilium,
		engine:  "Cilium v1.18.2",
		reasons: map[policy.Kind]string{np: "enable-k8s-networkpolicy is on by default", anp: "cilium/cilium#23380", cnp: "from v1.20.0"}},
	{file: "cilium-never.yaml",
		engines: []string{"cilium v1.18.2 off"}, semantics: policy.SemanticsKubernetes,
		engine:  "Cilium v1.18.2 (policy enforcement off)",
		reasons: map[policy.Kind]string{cil: "ConfigMap kube-system/cilium-config key enable-policy=never: policy enforcement is disabled"}},
	{file: "cilium-1.20-cluster-network-policy.yaml",
		engines: []string{"cilium v1.20.2 on"}, enforced: []policy.Kind{cnp, cil}, semantics: policy.SemanticsCilium,
		engine: "Cilium v1.20.2",
		reasons: map[policy.Kind]string{np: "only with enable-k8s-networkpolicy on, and it is off: ConfigMap kube-system/cilium-config key enable-k8s-networkpolicy=false",
			cnp: "with ConfigMap kube-system/cilium-config key enable-k8s-cluster-network-policy=true"},
		warnings: []string{"cilium: eBPF host routing is on where the kernel supports it (ConfigMap kube-system/cilium-config key kube-proxy-replacement=true; ConfigMap kube-system/cilium-config key enable-bpf-masquerade=true"}},
	{file: "gke-dataplane-v2.yaml",
		engines: []string{"gke-dataplane-v2 v1.15.7-gke.300 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsCilium,
		engine:  "GKE Dataplane V2 v1.15.7-gke.300",
		reasons: map[policy.Kind]string{cil: "only CiliumClusterwideNetworkPolicy", anp: "unconfirmed"}},
	{file: "antrea.yaml",
		engines: []string{"antrea v2.2.0 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine:  "Antrea v2.2.0",
		reasons: map[policy.Kind]string{anp: "only with AdminNetworkPolicy feature gate on, and it is off: AdminNetworkPolicy feature gate is off by default"}},
	{file: "antrea-admin-network-policy.yaml",
		engines: []string{"antrea v2.2.0 on"}, enforced: []policy.Kind{np, anp, banp}, semantics: policy.SemanticsKubernetes,
		engine:  "Antrea v2.2.0",
		reasons: map[policy.Kind]string{anp: "antrea-controller.conf featureGates.AdminNetworkPolicy=true", cnp: "unconfirmed"}},
	{file: "kube-network-policies-0.2.yaml",
		engines: []string{"kube-network-policies v0.2.0 on"}, enforced: []policy.Kind{np, anp, banp}, semantics: policy.SemanticsKubernetes,
		engine:  "kube-network-policies v0.2.0",
		reasons: map[policy.Kind]string{banp: "arg --baseline-admin-network-policy=true"}},
	{file: "kube-network-policies-cnp.yaml",
		engines: []string{"kube-network-policies v1.0.0-npa-v1alpha2 on"}, enforced: []policy.Kind{np, cnp}, semantics: policy.SemanticsKubernetes,
		engine: "kube-network-policies v1.0.0-npa-v1alpha2"},
	{file: "ovn-kubernetes.yaml",
		engines: []string{"ovn-kubernetes  on"}, enforced: []policy.Kind{np, anp, banp}, semantics: policy.SemanticsKubernetes,
		engine:  "OVN-Kubernetes",
		reasons: map[policy.Kind]string{anp: "env OVN_ADMIN_NETWORK_POLICY_ENABLE=true"}},
	{file: "kube-router.yaml",
		engines: []string{"kube-router v2.5.0 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine: "kube-router v2.5.0"},
	{file: "kube-router-no-firewall.yaml",
		engines: []string{"kube-router v2.5.0 off"}, semantics: policy.SemanticsKubernetes,
		engine:  "kube-router v2.5.0 (policy enforcement off)",
		reasons: map[policy.Kind]string{np: "arg --run-firewall=false"}},
	{file: "weave-net.yaml",
		engines: []string{"weave-net v2.8.1 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine: "Weave Net v2.8.1"},
	{file: "azure-npm.yaml",
		engines: []string{"azure-npm v1.6.20 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsKubernetes,
		engine: "Azure NPM v1.6.20"},
	{file: "cilium-flags-override-config.yaml",
		engines: []string{"cilium v1.17.6 on"}, enforced: []policy.Kind{np}, semantics: policy.SemanticsCilium,
		engine:   "Cilium v1.17.6",
		reasons:  map[policy.Kind]string{cil: "enable-cilium-clusterwide-network-policy on, and it is off: DaemonSet kube-system/cilium container cilium-agent env CILIUM_ENABLE_CILIUM_CLUSTERWIDE_NETWORK_POLICY=false"},
		warnings: []string{"enable-policy=always: every endpoint denies what no policy allows, selected or not (DaemonSet kube-system/cilium container cilium-agent arg --enable-policy=always)"}},
	{file: "cilium-bad-mode.yaml",
		engines: []string{"cilium v1.18.2 off"}, semantics: policy.SemanticsKubernetes,
		engine:   "Cilium v1.18.2 (policy enforcement off)",
		problems: []string{`cilium: enable-policy="sometimes" is not default, always or never`}},
	{file: "aws-vpc-cni-on-with-calico.yaml",
		engines: []string{"aws-vpc-cni v1.19.0-eksbuild.1 on", "calico v3.31.2 on"}, enforced: []policy.Kind{np, anp, banp, cal}, semantics: policy.SemanticsCalico,
		engine:   "AWS VPC CNI v1.19.0-eksbuild.1 + Calico v3.31.2",
		reasons:  map[policy.Kind]string{np: "AWS VPC CNI v1.19.0-eksbuild.1 enforces NetworkPolicy (v1.14.0 to before v1.21.1; https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html https://aws.github.io/amazon-vpc-cni-k8s/docs/network-policy-faq.html); Calico v3.31.2 enforces NetworkPolicy"},
		warnings: []string{"AWS VPC CNI v1.19.0-eksbuild.1, Calico v3.31.2 all enforce NetworkPolicy: a connection must pass each of them; the verdict uses calico semantics"}},
	{file: "calico-latest.yaml",
		engines: []string{"calico  on"}, enforced: []policy.Kind{np, cal}, semantics: policy.SemanticsCalico,
		engine:   "Calico",
		reasons:  map[policy.Kind]string{banp: "the version is unknown (the image docker.io/calico/node:latest of DaemonSet kube-system/calico-node container calico-node has no version tag)"},
		warnings: []string{"calico: version unknown"}},
	{file: "calico-enterprise.yaml",
		engines: []string{"calico v3.21.2 on"}, enforced: []policy.Kind{np, cal}, semantics: policy.SemanticsCalico,
		engine:  "Calico Enterprise v3.21.2",
		reasons: map[policy.Kind]string{anp: "whether Calico Enterprise v3.21.2 enforces AdminNetworkPolicy is unconfirmed"}},
	{file: "no-engine.yaml",
		enforced: policy.Kinds, semantics: policy.SemanticsKubernetes, assumed: true,
		warnings: []string{"no policy engine identified"}},
}

func loadFile(t *testing.T, file string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load([]string{filepath.Join("testdata", file)}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) != 0 {
		t.Fatalf("%s: problems: %v", file, inv.Problems)
	}
	return inv
}

func TestDetect(t *testing.T) {
	for _, tc := range detectCases {
		t.Run(tc.file, func(t *testing.T) {
			checkDetection(t, Detect(loadFile(t, tc.file)), tc)
		})
	}
}

// checkDetection compares a detection with a case.
func checkDetection(t *testing.T, got Detection, tc detectCase) {
	t.Helper()
	var engines, evidence []string
	for _, e := range got.Engines {
		evidence = append(evidence, e.Evidence...)
		engines = append(engines, string(e.Name)+" "+e.Version+" "+onOff(e.Enabled))
		if len(e.Kinds) != len(policy.Kinds) {
			t.Errorf("%s: %d kinds decided, want every one of %d", e.Name, len(e.Kinds), len(policy.Kinds))
		}
		if len(e.Evidence) == 0 {
			t.Errorf("%s: no evidence", e.Name)
		}
	}
	if !slices.Equal(engines, tc.engines) {
		t.Errorf("engines %q, want %q", engines, tc.engines)
	}
	e := got.Enforcement
	if e.Assumed != tc.assumed || e.Semantics != tc.semantics || e.Engine != tc.engine {
		t.Errorf("enforcement %q, %s semantics, assumed %t; want %q, %s, %t", e.Engine, e.Semantics, e.Assumed, tc.engine, tc.semantics, tc.assumed)
	}
	for _, k := range policy.Kinds {
		ke, ok := e.Kinds[k]
		switch {
		case !ok:
			t.Errorf("%s: missing from Kinds", k)
		case ke.Enforced != slices.Contains(tc.enforced, k):
			t.Errorf("%s enforced = %t, want %t: %s", k, ke.Enforced, !ke.Enforced, ke.Reason)
		case ke.Reason == "":
			t.Errorf("%s: no reason", k)
		case tc.reasons[k] != "" && !strings.Contains(ke.Reason, tc.reasons[k]):
			t.Errorf("%s reason %q, want it to hold %q", k, ke.Reason, tc.reasons[k])
		}
	}
	if tc.evidence != "" && !slices.ContainsFunc(evidence, func(e string) bool { return strings.Contains(e, tc.evidence) }) {
		t.Errorf("evidence %q, want one holding %q", evidence, tc.evidence)
	}
	checkMessages(t, "warnings", got.Warnings, tc.warnings)
	checkMessages(t, "problems", got.Problems, tc.problems)
}

func checkMessages(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s %q, want %d holding %q", what, got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to hold %q", what, i, got[i], want[i])
		}
	}
}
