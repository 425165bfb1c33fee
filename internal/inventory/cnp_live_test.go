package inventory

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	anpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
)

// TestLoadClusterClusterNetworkPolicies: ClusterNetworkPolicies created at v1alpha2 and at v1beta1
// are read once each, at v1beta1 (the preferred version the server serves), with their rules.
func TestLoadClusterClusterNetworkPolicies(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	client := must[*anpclient.Clientset](t)(anpclient.NewForConfig(cp.Config("admin")))
	must[*cnpv1alpha2.ClusterNetworkPolicy](t)(client.PolicyV1alpha2().ClusterNetworkPolicies().Create(ctx, &cnpv1alpha2.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "live-cnp-alpha"},
		Spec: cnpv1alpha2.ClusterNetworkPolicySpec{Tier: cnpv1alpha2.AdminTier, Priority: 10,
			Subject: cnpv1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []cnpv1alpha2.ClusterNetworkPolicyEgressRule{{Name: "deny-metadata", Action: cnpv1alpha2.ClusterNetworkPolicyRuleActionDeny,
				To: []cnpv1alpha2.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1alpha2.CIDR{"169.254.169.254/32"}}}}}},
	}, metav1.CreateOptions{}))
	must[*cnpv1beta1.ClusterNetworkPolicy](t)(client.PolicyV1beta1().ClusterNetworkPolicies().Create(ctx, &cnpv1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "live-cnp-beta"},
		Spec: cnpv1beta1.ClusterNetworkPolicySpec{Tier: cnpv1beta1.BaselineTier, Priority: 20,
			Subject: cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []cnpv1beta1.ClusterNetworkPolicyEgressRule{{Name: "accept-dns", Action: cnpv1beta1.ClusterNetworkPolicyRuleActionAccept,
				To:        []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1beta1.CIDR{"fd00:ec2::254/128"}}},
				Protocols: []cnpv1beta1.ClusterNetworkPolicyProtocol{{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1beta1.Port{Number: 53}}}}}}},
	}, metav1.CreateOptions{}))

	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 {
		t.Fatalf("gaps %v, want none", inv.Gaps)
	}
	byName := map[string]*ClusterNetworkPolicy{}
	for _, c := range inv.ClusterNetworkPolicies {
		if strings.HasPrefix(c.Policy.Name, "live-cnp-") {
			if byName[c.Policy.Name] != nil {
				t.Errorf("%s read twice", c.Policy.Name)
			}
			byName[c.Policy.Name] = c
		}
	}
	alpha, beta := byName["live-cnp-alpha"], byName["live-cnp-beta"]
	if alpha == nil || beta == nil {
		t.Fatalf("read %d ClusterNetworkPolicies, want live-cnp-alpha and live-cnp-beta among them", len(inv.ClusterNetworkPolicies))
	}
	for _, c := range []*ClusterNetworkPolicy{alpha, beta} {
		if c.APIVersion != ClusterNetworkPolicyV1Beta1 {
			t.Errorf("%s read at %s, want %s (preferred)", c.Policy.Name, c.APIVersion, ClusterNetworkPolicyV1Beta1)
		}
	}
	if a := alpha.Policy.Spec; a.Tier != cnpv1beta1.AdminTier || a.Priority != 10 || len(a.Egress) != 1 || a.Egress[0].To[0].Networks[0] != "169.254.169.254/32" {
		t.Errorf("live-cnp-alpha spec %+v", a)
	}
	if b := beta.Policy.Spec; b.Tier != cnpv1beta1.BaselineTier || len(b.Egress) != 1 || b.Egress[0].Action != cnpv1beta1.ClusterNetworkPolicyRuleActionAccept ||
		b.Egress[0].Protocols[0].UDP.DestinationPort.Number != 53 {
		t.Errorf("live-cnp-beta spec %+v", b)
	}
}

// TestLoadClusterClusterNetworkPolicyVersions: without the CRD no ClusterNetworkPolicy can exist
// (a warning, no gap); a cluster serving only v1alpha2 (network-policy-api v0.2.x) is read at
// v1alpha2; one serving the resource only at a version imdsguard does not read is a gap. The
// AdminNetworkPolicy CRDs are absent throughout: the policy group being served for
// ClusterNetworkPolicy does not make them a gap.
func TestLoadClusterClusterNetworkPolicyVersions(t *testing.T) {
	ctx := testContext(t)
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 || !slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.Contains(w, "ClusterNetworkPolicy CRD not installed") }) {
		t.Fatalf("without the CRD: gaps %v, warnings %q; want no gap and a warning", inv.Gaps, inv.Warnings)
	}

	// Serve only v1alpha2, as network-policy-api v0.2.x does.
	files := must[[]string](t)(kubetest.CRDFiles(kubetest.ClusterNetworkPolicy))
	crd := must[[]*unstructured.Unstructured](t)(kubetest.DecodeFiles(files...))[0]
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var alphaOnly []any
	for _, v := range versions {
		m := v.(map[string]any)
		if m["name"] == "v1alpha2" {
			m["storage"] = true
			alphaOnly = append(alphaOnly, m)
		}
	}
	if len(alphaOnly) != 1 {
		t.Fatalf("the CRD has no v1alpha2 version")
	}
	if err := unstructured.SetNestedSlice(crd.Object, alphaOnly, "spec", "versions"); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/cnp-v1alpha2.json"
	if err := os.WriteFile(path, must[[]byte](t)(crd.MarshalJSON()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kubetest.InstallCRDFiles(ctx, cp.Config("admin"), path); err != nil {
		t.Fatal(err)
	}
	client := must[*anpclient.Clientset](t)(anpclient.NewForConfig(cp.Config("admin")))
	must[*cnpv1alpha2.ClusterNetworkPolicy](t)(client.PolicyV1alpha2().ClusterNetworkPolicies().Create(ctx, &cnpv1alpha2.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "alpha-only"},
		Spec: cnpv1alpha2.ClusterNetworkPolicySpec{Tier: cnpv1alpha2.AdminTier, Priority: 1,
			Subject: cnpv1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}},
	}, metav1.CreateOptions{}))
	inv, err = LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 || len(inv.ClusterNetworkPolicies) != 1 || inv.ClusterNetworkPolicies[0].APIVersion != ClusterNetworkPolicyV1Alpha2 {
		t.Fatalf("with v1alpha2 only: gaps %v, %d ClusterNetworkPolicies; want no gap and alpha-only read at v1alpha2", inv.Gaps, len(inv.ClusterNetworkPolicies))
	}
	// generate writes the version the cluster serves.
	if inv.ClusterNetworkPolicyAPIVersion != ClusterNetworkPolicyV1Alpha2 {
		t.Errorf("served ClusterNetworkPolicy version %q, want %q", inv.ClusterNetworkPolicyAPIVersion, ClusterNetworkPolicyV1Alpha2)
	}
	if !slices.ContainsFunc(inv.Warnings, func(w string) bool { return strings.Contains(w, "AdminNetworkPolicy CRDs not installed") }) {
		t.Errorf("warnings %q: want the AdminNetworkPolicy CRDs reported absent, not a gap", inv.Warnings)
	}
}

// TestLoadClusterAWSClusterNetworkPolicies: the AWS VPC CNI's ClusterNetworkPolicy is read live
// through the manifest decoder, named apart from network-policy-api's kind.
func TestLoadClusterAWSClusterNetworkPolicies(t *testing.T) {
	cp := cluster(t)
	ctx := testContext(t)
	objs := must[[]*unstructured.Unstructured](t)(kubetest.Decode([]byte(`apiVersion: networking.k8s.aws/v1alpha1
kind: ClusterNetworkPolicy
metadata: {name: live-aws-deny-imds}
spec:
  tier: Admin
  priority: 7
  subject: {namespaces: {}}
  egress:
  - name: deny-imds
    action: Deny
    to: [{networks: [169.254.169.254/32]}]
    ports: [{portNumber: {protocol: TCP, port: 80}}]
`)))
	applier := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin")))
	if err := applier.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	inv, err := LoadCluster(ctx, cp.Config("admin"), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Gaps) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("gaps %v, problems %v; want none", inv.Gaps, inv.Problems)
	}
	var found bool
	for _, c := range inv.AWSClusterNetworkPolicies {
		if c.Policy.Name != "live-aws-deny-imds" {
			continue
		}
		found = true
		s := c.Policy.Spec
		if s.Tier != "Admin" || s.Priority != 7 || len(s.Egress) != 1 || s.Egress[0].To[0].Networks[0] != "169.254.169.254/32" || (*s.Egress[0].Ports)[0].PortNumber.Port != 80 {
			t.Errorf("live-aws-deny-imds read as %+v", s)
		}
	}
	if !found {
		t.Errorf("live-aws-deny-imds not read (%d AWS ClusterNetworkPolicies)", len(inv.AWSClusterNetworkPolicies))
	}
	if slices.ContainsFunc(inv.ClusterNetworkPolicies, func(c *ClusterNetworkPolicy) bool { return c.Policy.Name == "live-aws-deny-imds" }) {
		t.Error("the AWS policy was read as a network-policy-api ClusterNetworkPolicy too")
	}
}
