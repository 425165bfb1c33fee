package engine

import (
	"fmt"
	"slices"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Name identifies a policy engine, as Parse accepts it.
type Name string

// The engines imdsguard recognises.
const (
	AWSVPCCNI           Name = "aws-vpc-cni"
	EKSAutoMode         Name = "eks-auto-mode"
	Calico              Name = "calico"
	Canal               Name = "canal"
	Cilium              Name = "cilium"
	GKEDataplaneV2      Name = "gke-dataplane-v2"
	Antrea              Name = "antrea"
	KubeNetworkPolicies Name = "kube-network-policies"
	OVNKubernetes       Name = "ovn-kubernetes"
	KubeRouter          Name = "kube-router"
	WeaveNet            Name = "weave-net"
	AzureNPM            Name = "azure-npm"
)

// engineInfo describes an engine: how reports name it, how it combines policies, and what
// Detect reads to find it (for docs/engines.md).
type engineInfo struct {
	name      Name
	display   string
	semantics policy.Semantics
	// detection says what Detect looks at, and which setting turns the engine's enforcement off.
	detection string
	// enforcementSince is the first version in which enforcement can be on at all (the VPC
	// CNI's agent ships with v1.14.0): with enforcement on and the version unknown, earlier rows
	// do not apply.
	enforcementSince string
}

// engines lists every engine, in the order Detect reports them.
var engines = []engineInfo{
	{name: AWSVPCCNI, display: "AWS VPC CNI", semantics: policy.SemanticsKubernetes,
		detection:        "DaemonSet `kube-system/aws-node`: version from the `aws-node` container's image; the network policy agent is the `aws-eks-nodeagent` container, on only with `--enable-network-policy=true` (off by default; the EKS add-on setting `enableNetworkPolicy` sets it); ConfigMap `kube-system/amazon-vpc-cni` key `enable-network-policy-controller` (`false` turns the controller off)",
		enforcementSince: "1.14.0"},
	{name: EKSAutoMode, display: "EKS Auto Mode", semantics: policy.SemanticsKubernetes,
		detection: "NodeClass objects (`eks.amazonaws.com/v1`): `spec.networkPolicy` (DefaultAllow, DefaultDeny); enforcement is on only when ConfigMap `kube-system/amazon-vpc-cni` has `enable-network-policy-controller: \"true\"`"},
	{name: Calico, display: "Calico", semantics: policy.SemanticsCalico,
		detection: "DaemonSet `calico-node` (`kube-system` for manifest installs, `calico-system` for the operator): version from the `calico-node` container's image (`cnx-node` is Calico Enterprise); Tigera operator `Installation` (`spec.variant`, `spec.cni.type`, `spec.calicoNetwork.linuxDataplane`; `status.calicoVersion` is the version when the DaemonSet is absent) and Deployment `tigera-operator`"},
	{name: Canal, display: "Canal", semantics: policy.SemanticsCalico,
		detection: "DaemonSet `canal` (Calico's `calico-node` and flannel's `kube-flannel` containers): version from the `calico-node` container's image; Calico's rows apply"},
	{name: Cilium, display: "Cilium", semantics: policy.SemanticsCilium,
		detection: "DaemonSet `cilium` (container `cilium-agent`): version from its image; settings from the agent's flags, `CILIUM_*` environment and ConfigMap `kube-system/cilium-config`: `enable-policy` (`never` turns enforcement off), `enable-k8s-networkpolicy`, `enable-cilium-network-policy`, `enable-cilium-clusterwide-network-policy`, `enable-k8s-cluster-network-policy`; a warning when `kube-proxy-replacement` and `enable-bpf-masquerade` turn on eBPF host routing (netfilter bypassed)"},
	{name: GKEDataplaneV2, display: "GKE Dataplane V2", semantics: policy.SemanticsCilium,
		detection: "DaemonSet `kube-system/anetd` (Cilium-based): version from the `cilium-agent` container's image"},
	{name: Antrea, display: "Antrea", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `antrea-agent`: version from the `antrea-agent` container's image; ConfigMap `kube-system/antrea-config` key `antrea-controller.conf`, `featureGates` `AdminNetworkPolicy` and `AntreaPolicy`"},
	{name: KubeNetworkPolicies, display: "kube-network-policies", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `kube-network-policies`: version and image variant (`-npa-v1alpha1`, `-npa-v1alpha2`) from the container's image tag; flags `--admin-network-policy`, `--baseline-admin-network-policy` (before v1.0.0)"},
	{name: OVNKubernetes, display: "OVN-Kubernetes", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `ovnkube-node` or Deployment `ovnkube-control-plane`/`ovnkube-master`; flag `--enable-admin-network-policy` or environment `OVN_ADMIN_NETWORK_POLICY_ENABLE=true` on any of their containers (the `ovnkube-config` ConfigMap is not read)"},
	{name: KubeRouter, display: "kube-router", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `kube-router`: version from its image; `--run-firewall=false` turns enforcement off (on by default)"},
	{name: WeaveNet, display: "Weave Net", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `weave-net`: enforcement is the `weave-npc` container (absent: off); version from its image"},
	{name: AzureNPM, display: "Azure NPM", semantics: policy.SemanticsKubernetes,
		detection: "DaemonSet `azure-npm` (or `azure-npm-win`): version from the `azure-npm` container's image"},
}

func infoOf(n Name) (engineInfo, bool) {
	i := slices.IndexFunc(engines, func(e engineInfo) bool { return e.name == n })
	if i < 0 {
		return engineInfo{}, false
	}
	return engines[i], true
}

// Support is whether an engine enforces a kind.
type Support int

// The answers the table gives.
const (
	// NotEnforced: the engine does not enforce the kind (the default for a kind a row omits).
	NotEnforced Support = iota
	// Enforced: the engine enforces the kind, when every gate of the rule is on.
	Enforced
	// Unconfirmed: no source confirms either way; counted as not enforced.
	Unconfirmed
)

// Gate is a switch in an engine's configuration that a kind's enforcement needs.
type Gate struct {
	// Name is how the engine's configuration names it ("enable-k8s-networkpolicy").
	Name string
	// Default is its value when the configuration does not set it.
	Default bool
}

// KindRule is whether an engine enforces one kind in a row's versions.
type KindRule struct {
	Support Support
	// Gates must all be on for the kind to be enforced.
	Gates []Gate
	Note  string
}

// Row is one line of the enforcement table: an engine (and image variant), a version range,
// which kinds it enforces there, and the sources of those facts.
type Row struct {
	Engine Name
	// Variant is an image variant ("npa-v1alpha2") or edition ("enterprise"); "" for the
	// plain engine.
	Variant string
	// Since is the first version the row covers and Before the first it no longer does;
	// empty means unbounded.
	Since, Before string
	// Kinds holds the kinds the row says anything about; a kind it omits is not enforced.
	Kinds   map[policy.Kind]KindRule
	Sources []string
}

var (
	yes         = KindRule{Support: Enforced}
	unconfirmed = KindRule{Support: Unconfirmed}
)

func gated(gates ...Gate) KindRule { return KindRule{Support: Enforced, Gates: gates} }

func no(note string) KindRule { return KindRule{Support: NotEnforced, Note: note} }

// The gates of the table.
var (
	// Cilium's agent settings, with their defaults in Cilium v1.20.2:
	// https://github.com/cilium/cilium/blob/v1.20.2/pkg/defaults/defaults.go
	gateCiliumK8sNetworkPolicy         = Gate{Name: "enable-k8s-networkpolicy", Default: true}
	gateCiliumNetworkPolicy            = Gate{Name: "enable-cilium-network-policy", Default: true}
	gateCiliumClusterwideNetworkPolicy = Gate{Name: "enable-cilium-clusterwide-network-policy", Default: true}
	gateCiliumK8sClusterNetworkPolicy  = Gate{Name: "enable-k8s-cluster-network-policy", Default: false}
	// Antrea's feature gates: AdminNetworkPolicy is alpha, off by default; it needs AntreaPolicy,
	// on by default since v1.0.
	// https://github.com/antrea-io/antrea/blob/main/docs/admin-network-policy.md
	gateAntreaANP    = Gate{Name: "AdminNetworkPolicy feature gate", Default: false}
	gateAntreaPolicy = Gate{Name: "AntreaPolicy feature gate", Default: true}
	// kube-network-policies before v1.0.0: flags, off by default.
	// https://github.com/kubernetes-sigs/kube-network-policies/blob/v0.2.0/cmd/main.go
	gateKNPAdmin    = Gate{Name: "--admin-network-policy", Default: false}
	gateKNPBaseline = Gate{Name: "--baseline-admin-network-policy", Default: false}
	// OVN-Kubernetes: OVNKubernetesFeatureConfig.EnableAdminNetworkPolicy, off by default.
	// https://github.com/ovn-org/ovn-kubernetes/blob/master/go-controller/pkg/config/config.go
	gateOVNKAdmin = Gate{Name: "--enable-admin-network-policy", Default: false}
)

// table is the enforcement table: the one place that says which engine enforces which kind.
// docs/engines.md renders it (TestDocsTable keeps the two equal). Each row carries its sources.
var table = append(calicoRows(Calico), append(calicoRows(Canal), []Row{
	// AWS VPC CNI: the network policy agent ships with v1.14.0 and is off by default.
	{Engine: AWSVPCCNI, Before: "1.14.0",
		Kinds:   map[policy.Kind]KindRule{policy.KindNetworkPolicy: no("no network policy agent before v1.14.0")},
		Sources: []string{"https://github.com/aws/aws-network-policy-agent#readme", "https://aws.github.io/amazon-vpc-cni-k8s/docs/network-policy-faq.html"}},
	{Engine: AWSVPCCNI, Since: "1.14.0", Before: "1.21.1",
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAWSClusterNetworkPolicy: no("needs VPC CNI v1.21.1")},
		Sources: []string{"https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html", "https://aws.github.io/amazon-vpc-cni-k8s/docs/network-policy-faq.html"}},
	// networking.k8s.aws ClusterNetworkPolicy ("admin network policies"): VPC CNI v1.21.1+ on
	// EC2 nodes (the version is from a community write-up of the announcement).
	{Engine: AWSVPCCNI, Since: "1.21.1",
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes, policy.KindAWSClusterNetworkPolicy: yes},
		Sources: []string{"https://aws.amazon.com/blogs/containers/amazon-eks-introduces-enhanced-network-policy-capabilities",
			"https://dev.to/aws-builders/amazon-eks-enhanced-network-policies-admin-and-dns-based-controls-explained-5cmd"}},
	// EKS Auto Mode: managed; network policies are enforced once the ConfigMap turns the
	// controller on; admin (cluster) network policies are supported in Auto Mode.
	{Engine: EKSAutoMode,
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes, policy.KindAWSClusterNetworkPolicy: yes},
		Sources: []string{"https://docs.aws.amazon.com/eks/latest/userguide/auto-net-pol.html",
			"https://aws.amazon.com/blogs/containers/enhance-amazon-eks-network-security-posture-with-dns-and-admin-network-policies"}},
	// Cilium: no AdminNetworkPolicy (cilium/cilium#23380 is open); Kubernetes
	// ClusterNetworkPolicy (v1alpha2) from v1.20, behind a flag that is off by default.
	{Engine: Cilium, Before: "1.20.0",
		Kinds: map[policy.Kind]KindRule{
			policy.KindNetworkPolicy:              gated(gateCiliumK8sNetworkPolicy),
			policy.KindCilium:                     gated(gateCiliumNetworkPolicy, gateCiliumClusterwideNetworkPolicy),
			policy.KindAdminNetworkPolicy:         no("not implemented (cilium/cilium#23380)"),
			policy.KindBaselineAdminNetworkPolicy: no("not implemented (cilium/cilium#23380)"),
			policy.KindClusterNetworkPolicy:       no("from v1.20.0"),
		},
		Sources: []string{"https://docs.cilium.io/en/stable/security/policy/intro/", "https://github.com/cilium/cilium/pull/23127", "https://github.com/cilium/cilium/issues/23380"}},
	{Engine: Cilium, Since: "1.20.0",
		Kinds: map[policy.Kind]KindRule{
			policy.KindNetworkPolicy:              gated(gateCiliumK8sNetworkPolicy),
			policy.KindCilium:                     gated(gateCiliumNetworkPolicy, gateCiliumClusterwideNetworkPolicy),
			policy.KindAdminNetworkPolicy:         no("not implemented (cilium/cilium#23380)"),
			policy.KindBaselineAdminNetworkPolicy: no("not implemented (cilium/cilium#23380)"),
			policy.KindClusterNetworkPolicy:       {Support: Enforced, Gates: []Gate{gateCiliumK8sClusterNetworkPolicy}, Note: "v1alpha2"},
		},
		Sources: []string{"https://github.com/cilium/cilium/blob/v1.20.2/Documentation/network/kubernetes/policy.rst", "https://github.com/cilium/cilium/blob/v1.20.2/pkg/defaults/defaults.go"}},
	// GKE Dataplane V2 enforces NetworkPolicy always. GKE serves CiliumClusterwideNetworkPolicy
	// behind the cluster flag --enable-cilium-clusterwide-network-policy, but not
	// CiliumNetworkPolicy: the Cilium kind (both) is not counted.
	{Engine: GKEDataplaneV2,
		Kinds: map[policy.Kind]KindRule{
			policy.KindNetworkPolicy:              yes,
			policy.KindCilium:                     no("only CiliumClusterwideNetworkPolicy, and only with the cluster flag --enable-cilium-clusterwide-network-policy; not CiliumNetworkPolicy"),
			policy.KindAdminNetworkPolicy:         unconfirmed,
			policy.KindBaselineAdminNetworkPolicy: unconfirmed,
			policy.KindClusterNetworkPolicy:       unconfirmed,
		},
		Sources: []string{"https://cloud.google.com/kubernetes-engine/docs/concepts/dataplane-v2", "https://cloud.google.com/kubernetes-engine/docs/how-to/cilium-network-policy"}},
	// ("Kubernetes NetworkPolicy is always on in clusters with GKE Dataplane V2.")
	// Antrea: AdminNetworkPolicy and BaselineAdminNetworkPolicy from v1.13, alpha feature gate.
	{Engine: Antrea, Before: "1.13.0",
		Kinds:   map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes},
		Sources: []string{"https://github.com/antrea-io/antrea/blob/main/docs/admin-network-policy.md"}},
	{Engine: Antrea, Since: "1.13.0",
		Kinds: map[policy.Kind]KindRule{
			policy.KindNetworkPolicy:              yes,
			policy.KindAdminNetworkPolicy:         gated(gateAntreaANP, gateAntreaPolicy),
			policy.KindBaselineAdminNetworkPolicy: gated(gateAntreaANP, gateAntreaPolicy),
			policy.KindClusterNetworkPolicy:       unconfirmed,
		},
		Sources: []string{"https://github.com/antrea-io/antrea/blob/main/docs/admin-network-policy.md", "https://github.com/antrea-io/antrea/blob/main/docs/feature-gates.md"}},
	// kube-network-policies: flags before v1.0.0; from v1.0.0 one image per API: the plain
	// image enforces NetworkPolicy, -npa-v1alpha1 adds ANP and BANP, -npa-v1alpha2 adds
	// ClusterNetworkPolicy v1alpha2.
	{Engine: KubeNetworkPolicies, Before: "0.2.0",
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAdminNetworkPolicy: unconfirmed, policy.KindBaselineAdminNetworkPolicy: unconfirmed},
		Sources: []string{"https://github.com/kubernetes-sigs/kube-network-policies#readme"}},
	{Engine: KubeNetworkPolicies, Since: "0.2.0", Before: "1.0.0",
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAdminNetworkPolicy: gated(gateKNPAdmin), policy.KindBaselineAdminNetworkPolicy: gated(gateKNPBaseline)},
		Sources: []string{"https://github.com/kubernetes-sigs/kube-network-policies/blob/main/install-anp.yaml"}},
	{Engine: KubeNetworkPolicies, Since: "1.0.0",
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAdminNetworkPolicy: no("the -npa-v1alpha1 image enforces it"), policy.KindBaselineAdminNetworkPolicy: no("the -npa-v1alpha1 image enforces it"),
			policy.KindClusterNetworkPolicy: no("the -npa-v1alpha2 image enforces it")},
		Sources: []string{"https://github.com/kubernetes-sigs/kube-network-policies/blob/main/cmd/kube-network-policies/standard/main.go"}},
	{Engine: KubeNetworkPolicies, Variant: "npa-v1alpha1", Since: "1.0.0",
		Kinds:   map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes, policy.KindAdminNetworkPolicy: yes, policy.KindBaselineAdminNetworkPolicy: yes},
		Sources: []string{"https://github.com/kubernetes-sigs/kube-network-policies/blob/main/cmd/kube-network-policies/npa-v1alpha1/main.go"}},
	{Engine: KubeNetworkPolicies, Variant: "npa-v1alpha2", Since: "1.0.0",
		Kinds:   map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes, policy.KindClusterNetworkPolicy: {Support: Enforced, Note: "v1alpha2"}},
		Sources: []string{"https://github.com/kubernetes-sigs/kube-network-policies/blob/main/install-cnp.yaml"}},
	// OVN-Kubernetes: ANP and BANP behind enable-admin-network-policy. ovnkube.sh passes the
	// flag only when OVN_ADMIN_NETWORK_POLICY_ENABLE=true; the feature's documentation says it is
	// on by default in clusters OpenShift's network operator deploys (through the ovnkube-config
	// ConfigMap, which imdsguard does not read): counted only where the flag or variable is seen.
	{Engine: OVNKubernetes,
		Kinds: map[policy.Kind]KindRule{
			policy.KindNetworkPolicy:              yes,
			policy.KindAdminNetworkPolicy:         {Support: Enforced, Gates: []Gate{gateOVNKAdmin}, Note: "OpenShift enables it through ovnkube-config, which is not read"},
			policy.KindBaselineAdminNetworkPolicy: {Support: Enforced, Gates: []Gate{gateOVNKAdmin}, Note: "OpenShift enables it through ovnkube-config, which is not read"},
			policy.KindClusterNetworkPolicy:       unconfirmed,
		},
		Sources: []string{"https://github.com/ovn-org/ovn-kubernetes/blob/master/docs/features/network-security-controls/admin-network-policy.md",
			"https://github.com/ovn-org/ovn-kubernetes/blob/master/go-controller/pkg/config/config.go",
			"https://github.com/ovn-org/ovn-kubernetes/blob/master/dist/images/ovnkube.sh"}},
	// kube-router: NetworkPolicy with --run-firewall (default true); egress rules since
	// cloudnativelabs/kube-router#186 (2017).
	{Engine: KubeRouter,
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: {Support: Enforced, Note: "egress rules since kube-router#186 (2017)"},
			policy.KindAdminNetworkPolicy: unconfirmed, policy.KindBaselineAdminNetworkPolicy: unconfirmed, policy.KindClusterNetworkPolicy: unconfirmed},
		Sources: []string{"https://github.com/cloudnativelabs/kube-router/blob/master/docs/user-guide.md", "https://github.com/cloudnativelabs/kube-router/pull/186"}},
	// Weave Net: NetworkPolicy through the weave-npc container. The project is archived.
	{Engine: WeaveNet,
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAdminNetworkPolicy: unconfirmed, policy.KindBaselineAdminNetworkPolicy: unconfirmed, policy.KindClusterNetworkPolicy: unconfirmed},
		Sources: []string{"https://github.com/weaveworks/weave/blob/master/site/kubernetes/kube-addon.md"}},
	// Azure Network Policy Manager: NetworkPolicy.
	{Engine: AzureNPM,
		Kinds: map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes,
			policy.KindAdminNetworkPolicy: unconfirmed, policy.KindBaselineAdminNetworkPolicy: unconfirmed, policy.KindClusterNetworkPolicy: unconfirmed},
		Sources: []string{"https://learn.microsoft.com/en-us/azure/aks/use-network-policies"}},
}...)...)

// calicoRows are Calico's rows, for Calico itself and for Canal (Calico's policy engine,
// calico-node, with flannel networking).
func calicoRows(engine Name) []Row {
	calicoKinds := func(extra map[policy.Kind]KindRule) map[policy.Kind]KindRule {
		m := map[policy.Kind]KindRule{policy.KindNetworkPolicy: yes, policy.KindCalico: yes}
		for k, r := range extra {
			m[k] = r
		}
		return m
	}
	return []Row{
		{Engine: engine, Before: "3.29.0",
			Kinds:   calicoKinds(map[policy.Kind]KindRule{policy.KindAdminNetworkPolicy: no("from v3.29.0")}),
			Sources: []string{"https://github.com/projectcalico/calico/issues/7578"}},
		// AdminNetworkPolicy: projectcalico/calico#9206, released in v3.29.0.
		{Engine: engine, Since: "3.29.0", Before: "3.30.0",
			Kinds:   calicoKinds(map[policy.Kind]KindRule{policy.KindAdminNetworkPolicy: yes, policy.KindBaselineAdminNetworkPolicy: no("from v3.30.0")}),
			Sources: []string{"https://github.com/projectcalico/calico/pull/9206", "https://github.com/projectcalico/calico/issues/7578"}},
		// BaselineAdminNetworkPolicy: projectcalico/calico#9464, released in v3.30.0.
		{Engine: engine, Since: "3.30.0", Before: "3.32.0",
			Kinds:   calicoKinds(map[policy.Kind]KindRule{policy.KindAdminNetworkPolicy: yes, policy.KindBaselineAdminNetworkPolicy: yes}),
			Sources: []string{"https://github.com/projectcalico/calico/pull/9464", "https://github.com/tigera/operator/pull/3634"}},
		// v3.32.0 removes AdminNetworkPolicy and BaselineAdminNetworkPolicy and enforces
		// ClusterNetworkPolicy in the kube-admin and kube-baseline tiers.
		{Engine: engine, Since: "3.32.0",
			Kinds: calicoKinds(map[policy.Kind]KindRule{
				policy.KindAdminNetworkPolicy:         no("removed in v3.32.0 for ClusterNetworkPolicy"),
				policy.KindBaselineAdminNetworkPolicy: no("removed in v3.32.0 for ClusterNetworkPolicy"),
				policy.KindClusterNetworkPolicy:       yes}),
			Sources: []string{"https://github.com/projectcalico/calico/issues/10745", "https://github.com/kubernetes-sigs/network-policy-api/pull/376", "https://github.com/tigera/docs/pull/2416"}},
		// Calico Enterprise has its own version line; only NetworkPolicy and Calico's kinds are
		// confirmed.
		{Engine: engine, Variant: "enterprise",
			Kinds: calicoKinds(map[policy.Kind]KindRule{policy.KindAdminNetworkPolicy: unconfirmed,
				policy.KindBaselineAdminNetworkPolicy: unconfirmed, policy.KindClusterNetworkPolicy: unconfirmed}),
			Sources: []string{"https://docs.tigera.io/calico-enterprise/latest/network-policy/"}},
	}
}

// parsedRow is a row with its bounds parsed.
type parsedRow struct {
	Row
	since, before *Version
}

func (r parsedRow) covers(v Version) bool {
	return (r.since == nil || !v.Less(*r.since)) && (r.before == nil || v.Less(*r.before))
}

// rangeText is the row's versions for a reason or the docs: "v3.29.0 to before v3.32.0".
func (r parsedRow) rangeText() string {
	switch {
	case r.since == nil && r.before == nil:
		return "all versions"
	case r.since == nil:
		return "before " + r.before.String()
	case r.before == nil:
		return r.since.String() + " and later"
	}
	return r.since.String() + " to before " + r.before.String()
}

// parsedTable is table with its versions parsed; a bad version in the table is a programming
// error caught by the package's tests at start-up.
var parsedTable = func() []parsedRow {
	out := make([]parsedRow, 0, len(table))
	for _, r := range table {
		p := parsedRow{Row: r}
		for _, b := range []struct {
			text string
			dst  **Version
		}{{r.Since, &p.since}, {r.Before, &p.before}} {
			if b.text == "" {
				continue
			}
			v, _, err := ParseVersion(b.text)
			if err != nil {
				panic(fmt.Sprintf("engine table: %s: %v", r.Engine, err))
			}
			*b.dst = &v
		}
		out = append(out, p)
	}
	return out
}()

// rowsFor returns an engine variant's rows, in table order.
func rowsFor(n Name, variant string) []parsedRow {
	var out []parsedRow
	for _, r := range parsedTable {
		if r.Engine == n && r.Variant == variant {
			out = append(out, r)
		}
	}
	return out
}

// Table returns the enforcement table's rows, for reports that show them.
func Table() []Row { return slices.Clone(table) }
