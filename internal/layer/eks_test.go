package layer

import (
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// TestEKSNodeGroup is the truth table of EKS managed node groups' documented defaults; each row
// quotes the source it checks.
func TestEKSNodeGroup(t *testing.T) {
	group := map[string]string{EKSNodeGroupLabel: "ng-1"}
	custom := map[string]string{EKSNodeGroupLabel: "ng-1", EKSLaunchTemplateLabel: "lt-0abc"}
	type want struct {
		found    bool
		tokens   string
		hop      int
		pod      Decision // the verdict for a pod of the VPC CNI on 169.254.169.254
		hostNet  Decision
		inOrigin string
	}
	for _, c := range []struct {
		name    string
		labels  map[string]string
		osImage string
		want    want
	}{
		// "AL2023 requires IMDSv2 by default" and "For IMDSv2, the default hop count for managed
		// node groups is set to 1. This means that containers won't have access to the node's
		// credentials using IMDS" (https://docs.aws.amazon.com/eks/latest/userguide/al2023.html).
		{"AL2023 without a launch template: tokens required, hop limit 1", group, "Amazon Linux 2023.6.20241010",
			want{true, "required", 1, Deny, Allow, "EKS managed node group ng-1 on Amazon Linux 2023"}},
		// "newly launched and updated EKS managed node groups will be configured with a metadata
		// token response hop limit of 2", customers "can choose to disable IMDSv1"
		// (https://aws.amazon.com/about-aws/whats-new/2020/08/amazon-eks-supports-ec2-instance-metadata-service-v2/).
		{"AL2 without a launch template: tokens optional, hop limit 2", group, "Amazon Linux 2",
			want{true, "optional", 2, Allow, Allow, "EKS managed node group ng-1 on Amazon Linux 2 "}},
		// AWS documents no default of EKS's launch template for Bottlerocket or Windows.
		{"Bottlerocket is unknown", group, "Bottlerocket OS 1.20.3 (aws-k8s-1.30)", want{}},
		{"Windows is unknown", group, "Windows Server 2022 Datacenter", want{}},
		{"an empty osImage is unknown", group, "", want{}},
		// "These are the Amazon EKS applied labels on the worker nodes in a custom launch template
		// or AMI node group: ... eks.amazonaws.com/sourceLaunchTemplateId"
		// (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html):
		// the custom template decides, and it is not read here.
		{"AL2023 with a custom launch template is unknown", custom, "Amazon Linux 2023.6.20241010", want{}},
		{"AL2 with a custom launch template is unknown", custom, "Amazon Linux 2", want{}},
		{"a node outside a managed node group is unknown", map[string]string{"kubernetes.io/os": "linux"}, "Amazon Linux 2023.6.20241010", want{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &inventory.Node{Name: "ip-10-0-1-5", Labels: c.labels, OSImage: c.osImage}
			o, found := EKSNodeGroup{}.AWSOptions(n)
			if found != c.want.found {
				t.Fatalf("found %t, want %t (%+v)", found, c.want.found, o)
			}
			if !found {
				if o.Endpoint.Known || o.Tokens.Known || o.HopLimit.Known || o.IPv6.Known {
					t.Errorf("nothing found, but options are known: %+v", o)
				}
				return
			}
			if !o.Endpoint.Known || !o.Endpoint.Value || !o.Tokens.Known || o.Tokens.Value != c.want.tokens || !o.HopLimit.Known || o.HopLimit.Value != c.want.hop {
				t.Errorf("options %+v, want endpoint enabled, HttpTokens %s, hop limit %d", o, c.want.tokens, c.want.hop)
			}
			if o.IPv6.Known {
				t.Errorf("HttpProtocolIpv6 %+v: AWS documents no default, want unknown", o.IPv6)
			}
			for _, s := range []Setting[string]{o.Tokens} {
				if s.Source != Default || !strings.Contains(s.Origin, c.want.inOrigin) {
					t.Errorf("HttpTokens source %s, origin %q; want default naming %q", s.Source, s.Origin, c.want.inOrigin)
				}
			}
			if o.Endpoint.Source != Default || o.HopLimit.Source != Default || !strings.Contains(o.HopLimit.Origin, "HttpPutResponseHopLimit") {
				t.Errorf("endpoint %+v, hop limit %+v: want defaults naming the option", o.Endpoint, o.HopLimit)
			}
			if v := AWSInstance(o, pod, v4); v.Decision != c.want.pod || v.Source != Default {
				t.Errorf("pod: %s, want %s (default)", v, c.want.pod)
			}
			if v := AWSInstance(o, hostNetwork, v4); v.Decision != c.want.hostNet {
				t.Errorf("hostNetwork pod: %s, want %s", v, c.want.hostNet)
			}
			if v := AWSInstance(o, pod, v6); v.Decision != Unknown {
				t.Errorf("fd00:ec2::254: %s, want unknown (HttpProtocolIpv6 not documented)", v)
			}
		})
	}
}

// TestAMIFamilyOf: AL2023's osImage starts with AL2's, and must not be taken for it.
func TestAMIFamilyOf(t *testing.T) {
	for image, want := range map[string]AMIFamily{
		"Amazon Linux 2023.6.20241010":          AMIFamilyAL2023,
		"Amazon Linux 2023":                     AMIFamilyAL2023,
		"Amazon Linux 2":                        AMIFamilyAL2,
		"Amazon Linux 2 (Karoo)":                AMIFamilyAL2,
		"Bottlerocket OS 1.20.3 (aws-k8s-1.30)": AMIFamilyUnknown,
		"Ubuntu 22.04.4 LTS":                    AMIFamilyUnknown,
		"Amazon Linux 20":                       AMIFamilyUnknown,
	} {
		if got := AMIFamilyOf(image); got != want {
			t.Errorf("AMIFamilyOf(%q) = %q, want %q", image, got, want)
		}
	}
}

// TestEKSNodeGroupMerge: the agent's measurement outranks a documented default, and the
// disagreement is reported as drift.
func TestEKSNodeGroupMerge(t *testing.T) {
	n := &inventory.Node{Name: "ip-10-0-1-5", Labels: map[string]string{EKSNodeGroupLabel: "ng-1"}, OSImage: "Amazon Linux 2023.6.20241010"}
	measured := fixedSource{options(true, "required", 2, false)}
	measured.o.HopLimit.Source = Measured
	o, drifts, found := MergeAWS(n, []InstanceSource{EKSNodeGroup{}, measured})
	if !found || o.HopLimit.Value != 2 || o.HopLimit.Source != Measured {
		t.Fatalf("merged hop limit %+v, want 2 (measured)", o.HopLimit)
	}
	if len(drifts) != 1 || drifts[0].Option != "HttpPutResponseHopLimit" || !strings.Contains(drifts[0].Other, "EKS managed node group ng-1") {
		t.Errorf("drifts %v, want one on HttpPutResponseHopLimit naming the node group default", drifts)
	}
}

// fixedSource knows the same options of every node.
type fixedSource struct{ o AWSMetadataOptions }

func (fixedSource) Name() string { return "fixed" }

func (f fixedSource) AWSOptions(*inventory.Node) (AWSMetadataOptions, bool) { return f.o, true }
