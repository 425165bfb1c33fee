package inventory

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// nodeClaimFixture is a Node without the EC2NodeClass label, its NodeClaim and the class.
const nodeClaimFixture = "testdata/karpenter-nodeclaims.yaml"

// checkNodeClaimFixture: the node, its NodeClaim (class and provider ID) and the class are read,
// and the claim's status.providerID is the node's spec.providerID.
func checkNodeClaimFixture(t *testing.T, inv *Inventory) {
	t.Helper()
	const providerID = "aws:///eu-west-1a/i-0123456789abcdef0"
	i := slices.IndexFunc(inv.Nodes, func(n *Node) bool { return n.Name == "ip-10-0-1-5.eu-west-1.compute.internal" })
	if i < 0 || inv.Nodes[i].ProviderID != providerID {
		t.Fatalf("nodes %v: want ip-10-0-1-5 with provider ID %s", inv.Nodes, providerID)
	}
	if len(inv.NodeClaims) != 1 {
		t.Fatalf("%d NodeClaims read, want 1", len(inv.NodeClaims))
	}
	c := inv.NodeClaims[0].NodeClaim
	if c.Name != "default-x7k2p" || c.Namespace != "" || c.Status.ProviderID != providerID ||
		c.Spec.NodeClassRef == nil || *c.Spec.NodeClassRef != (NodeClassReference{Group: EC2NodeClassGroup, Kind: EC2NodeClassKind, Name: "legacy"}) {
		t.Errorf("NodeClaim %s (namespace %q): nodeClassRef %+v, providerID %q", c.Name, c.Namespace, c.Spec.NodeClassRef, c.Status.ProviderID)
	}
	if len(inv.EC2NodeClasses) != 1 || inv.EC2NodeClasses[0].NodeClass.Name != "legacy" {
		t.Errorf("EC2NodeClasses %v, want legacy", inv.EC2NodeClasses)
	}
}

// TestLoadNodeClaims: Karpenter's NodeClaims are read from manifests.
func TestLoadNodeClaims(t *testing.T) {
	inv, err := Load([]string{nodeClaimFixture}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems)+len(inv.Skipped) > 0 {
		t.Fatalf("problems %v, skipped %v", inv.Problems, inv.Skipped)
	}
	checkNodeClaimFixture(t, inv)
}

// TestLoadNodeClaimProblems: a NodeClaim whose spec.nodeClassRef does not name an EC2NodeClass
// is a problem naming the document and the field; it is not read.
func TestLoadNodeClaimProblems(t *testing.T) {
	for _, c := range []struct {
		name, ref, field, message string
	}{
		{"another provider's group", "{group: karpenter.azure.com, kind: AKSNodeClass, name: default}", "spec.nodeClassRef.group", `group "karpenter.azure.com" is not supported`},
		{"another kind of Karpenter's AWS group", "{group: karpenter.k8s.aws, kind: NodeClass, name: default}", "spec.nodeClassRef.kind", `kind "NodeClass" is not supported`},
		{"no class name", "{group: karpenter.k8s.aws, kind: EC2NodeClass}", "spec.nodeClassRef.name", "name is required"},
		{"no reference", "null", "spec.nodeClassRef", "nodeClassRef is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := "apiVersion: karpenter.sh/v1\nkind: NodeClaim\nmetadata: {name: bad}\nspec:\n  nodeClassRef: " + c.ref + "\nstatus: {providerID: 'aws:///eu-west-1a/i-0abc'}\n"
			path := t.TempDir() + "/claims.yaml"
			if err := os.WriteFile(path, []byte("# first document is empty\n---\n"+doc), 0o600); err != nil {
				t.Fatal(err)
			}
			inv, err := Load([]string{path}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.NodeClaims) != 0 || len(inv.Problems) != 1 {
				t.Fatalf("NodeClaims %v, problems %v: want no claim and one problem", inv.NodeClaims, inv.Problems)
			}
			p := inv.Problems[0]
			if p.Source.File != path || p.Source.Document != 1 || p.Object == nil || p.Object.Kind != "NodeClaim" || p.Object.Name != "bad" ||
				p.Field != c.field || !strings.Contains(p.Message, c.message) {
				t.Errorf("problem %q (%+v), want %s in %s: %s", p.Error(), p, c.field, path, c.message)
			}
		})
	}
}

// TestLoadClusterNodeClaims: the fixture served by a real API server (Karpenter's groups, with
// structural schemas of our own) is read live with the audit ClusterRole alone, as from the file.
func TestLoadClusterNodeClaims(t *testing.T) {
	ctx := testContext(t)
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	if err := kubetest.InstallCRDs(ctx, cp.Config("admin"), kubetest.Karpenter); err != nil {
		t.Fatal(err)
	}
	objs := must[[]*unstructured.Unstructured](t)(kubetest.DecodeFiles(nodeClaimFixture))
	if err := must[*kubetest.Applier](t)(kubetest.NewApplier(cp.Config("admin"))).Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	// status is a subresource: the apply above left it out, as Karpenter's own API server would.
	claims := must[*dynamic.DynamicClient](t)(dynamic.NewForConfig(cp.Config("admin"))).
		Resource(schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"})
	for _, o := range objs {
		if o.GetKind() != "NodeClaim" {
			continue
		}
		live, err := claims.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		live.Object["status"] = o.Object["status"]
		if _, err := claims.UpdateStatus(ctx, live, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("set NodeClaim %s status: %v", o.GetName(), err)
		}
	}
	inv := loadAsAuditor(t, cp)
	if len(inv.Gaps)+len(inv.Problems) != 0 {
		t.Fatalf("gaps %v, problems %v", inv.Gaps, inv.Problems)
	}
	checkNodeClaimFixture(t, inv)
}
