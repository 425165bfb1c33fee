package layer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// nodeClaim is a NodeClaim of class for the instance providerID.
func nodeClaim(name, class, providerID string) *inventory.NodeClaim {
	return &inventory.NodeClaim{NodeClaim: &inventory.NodeClaimObject{
		Spec:   inventory.NodeClaimSpec{NodeClassRef: &inventory.NodeClassReference{Group: inventory.EC2NodeClassGroup, Kind: inventory.EC2NodeClassKind, Name: class}},
		Status: inventory.NodeClaimStatus{ProviderID: providerID},
	}}
}

// TestKarpenterNodeClaims: a node reaches its EC2NodeClass through the label Karpenter sets or,
// without it, through the NodeClaim whose status.providerID is the node's spec.providerID
// (https://karpenter.sh/docs/concepts/nodeclaims/); the label decides first.
func TestKarpenterNodeClaims(t *testing.T) {
	two, optional := int64(2), "optional"
	classes := map[string]*inventory.EC2NodeClassMetadataOptions{
		"default": nil,
		"legacy":  {HTTPTokens: &optional, HTTPPutResponseHopLimit: &two},
	}
	claims := KarpenterNodeClaims([]*inventory.NodeClaim{
		nodeClaim("default-abcde", "default", "aws:///eu-west-1a/i-0aaa"),
		nodeClaim("legacy-fghij", "legacy", "aws:///eu-west-1b/i-0bbb"),
		nodeClaim("pending-klmno", "legacy", ""),
		nodeClaim("missing-class", "gone", "aws:///eu-west-1c/i-0ddd"),
		// Two claims giving one instance different classes: neither is trusted.
		nodeClaim("twin-1", "default", "aws:///eu-west-1a/i-0eee"),
		nodeClaim("twin-2", "legacy", "aws:///eu-west-1a/i-0eee"),
	})
	k := Karpenter{Classes: classes, NodeClaims: claims}
	for _, c := range []struct {
		name       string
		labels     map[string]string
		providerID string
		found      bool
		tokens     string
		origin     string
	}{
		{"the label names the class", map[string]string{EC2NodeClassLabel: "legacy"}, "", true, "optional", "EC2NodeClass legacy"},
		{"without the label, the NodeClaim of the provider ID names it", nil, "aws:///eu-west-1a/i-0aaa", true, "required", "EC2NodeClass default"},
		{"the label wins over the NodeClaim", map[string]string{EC2NodeClassLabel: "legacy"}, "aws:///eu-west-1a/i-0aaa", true, "optional", "EC2NodeClass legacy"},
		{"a label naming a class not in the input is unknown, whatever the NodeClaim says", map[string]string{EC2NodeClassLabel: "gone"}, "aws:///eu-west-1a/i-0aaa", false, "", ""},
		{"no NodeClaim for the provider ID is unknown", nil, "aws:///eu-west-1a/i-0fff", false, "", ""},
		{"a NodeClaim whose class is not in the input is unknown", nil, "aws:///eu-west-1c/i-0ddd", false, "", ""},
		{"conflicting NodeClaims are unknown", nil, "aws:///eu-west-1a/i-0eee", false, "", ""},
		{"a node without a provider ID is unknown", nil, "", false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, found := k.AWSOptions(&inventory.Node{Name: "n", Labels: c.labels, ProviderID: c.providerID})
			if found != c.found {
				t.Fatalf("found %t, want %t", found, c.found)
			}
			if found && (o.Tokens.Value != c.tokens || !strings.Contains(o.Tokens.Origin, c.origin)) {
				t.Errorf("HttpTokens %+v, want %s from %q", o.Tokens, c.tokens, c.origin)
			}
		})
	}
	if _, ok := claims[""]; ok {
		t.Error("a NodeClaim without a provider ID was indexed")
	}
}

// TestKarpenterWithoutNodeClaims: the source as built before NodeClaims were read still works.
func TestKarpenterWithoutNodeClaims(t *testing.T) {
	k := Karpenter{Classes: map[string]*inventory.EC2NodeClassMetadataOptions{"default": nil}}
	if _, found := k.AWSOptions(&inventory.Node{Labels: map[string]string{EC2NodeClassLabel: "default"}}); !found {
		t.Error("labelled node: not found")
	}
	if _, found := k.AWSOptions(&inventory.Node{ProviderID: "aws:///eu-west-1a/i-0aaa"}); found {
		t.Error("unlabelled node without NodeClaims: found")
	}
}

// TestKarpenterNodeClaimFixture: the inventory's fixture (a Node without the class label, its
// NodeClaim and the EC2NodeClass legacy; read from manifests and live alike in package
// inventory's tests) gives the node the class's options: httpTokens optional, so a pod reaches
// IMDSv1.
func TestKarpenterNodeClaimFixture(t *testing.T) {
	inv, err := inventory.Load([]string{"../inventory/testdata/karpenter-nodeclaims.yaml"}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 1 || len(inv.Problems) != 0 {
		t.Fatalf("nodes %v, problems %v", inv.Nodes, inv.Problems)
	}
	k := Karpenter{Classes: KarpenterClasses(inv.EC2NodeClasses), NodeClaims: KarpenterNodeClaims(inv.NodeClaims)}
	o, found := k.AWSOptions(inv.Nodes[0])
	if !found {
		t.Fatal("the node's class was not found through its NodeClaim")
	}
	if v := AWSInstance(o, pod, v4); v.Decision != Allow || !strings.Contains(v.Reason, "EC2NodeClass legacy spec.metadataOptions.httpTokens") {
		t.Errorf("pod: %s, want allow naming the EC2NodeClass legacy", v)
	}
	if _, found := (Karpenter{Classes: k.Classes}).AWSOptions(inv.Nodes[0]); found {
		t.Error("without the NodeClaims the unlabelled node's class was found")
	}
	// With the classes' positions, the origin names the file and line, as infrastructure
	// code's does.
	k.At = KarpenterPositions(inv.EC2NodeClasses)
	at := inv.EC2NodeClasses[0].Source
	o, _ = k.AWSOptions(inv.Nodes[0])
	if want := fmt.Sprintf("(%s:%d)", at.File, at.Line); at.Line == 0 || !strings.HasSuffix(o.Tokens.Origin, want) {
		t.Errorf("origin %q, want it to end in %s", o.Tokens.Origin, want)
	}
}
