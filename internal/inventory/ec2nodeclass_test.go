package inventory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imdsguard/imdsguard/internal/kubetest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const ec2NodeClasses = `apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: default}
spec:
  role: KarpenterNodeRole
  amiSelectorTerms: [{alias: al2023@latest}]
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: legacy}
spec:
  role: KarpenterNodeRole
  metadataOptions: {httpTokens: optional, httpPutResponseHopLimit: 2}
`

// checkEC2NodeClasses: the class without metadataOptions keeps them nil (Karpenter's defaults
// apply), the other keeps the fields set and only those.
func checkEC2NodeClasses(t *testing.T, inv *Inventory) {
	t.Helper()
	got := map[string]*EC2NodeClassMetadataOptions{}
	for _, c := range inv.EC2NodeClasses {
		got[c.NodeClass.Name] = c.NodeClass.Spec.MetadataOptions
	}
	if len(got) != 2 || got["default"] != nil {
		t.Fatalf("EC2NodeClasses %v, want default (no metadataOptions) and legacy", got)
	}
	m := got["legacy"]
	if m == nil || m.HTTPTokens == nil || *m.HTTPTokens != "optional" || m.HTTPPutResponseHopLimit == nil || *m.HTTPPutResponseHopLimit != 2 || m.HTTPEndpoint != nil {
		t.Errorf("legacy metadataOptions %+v, want httpTokens optional, hop limit 2, the rest left out", m)
	}
}

// TestLoadEC2NodeClasses: Karpenter's EC2NodeClasses are read from manifests.
func TestLoadEC2NodeClasses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "karpenter.yaml")
	if err := os.WriteFile(path, []byte(ec2NodeClasses), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := Load([]string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems)+len(inv.Skipped) > 0 {
		t.Fatalf("problems %v, skipped %v", inv.Problems, inv.Skipped)
	}
	checkEC2NodeClasses(t, inv)
}

// TestLoadClusterEC2NodeClasses: the same classes served by a real API server (Karpenter's
// group, with a structural schema of our own) are read live with the audit ClusterRole alone,
// as from the files.
func TestLoadClusterEC2NodeClasses(t *testing.T) {
	ctx := testContext(t)
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), kubetest.Karpenter); err != nil {
		t.Fatal(err)
	}
	objs := must[[]*unstructured.Unstructured](t)(kubetest.Decode([]byte(ec2NodeClasses)))
	if err := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin"))).Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	inv := loadAsAuditor(t, cp)
	if len(inv.Gaps) != 0 {
		t.Fatalf("gaps: %v", inv.Gaps)
	}
	checkEC2NodeClasses(t, inv)
}
