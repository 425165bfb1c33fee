package layer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

func known[T any](v T, s Source) Setting[T] {
	return Setting[T]{Value: v, Known: true, Source: s, Origin: "test"}
}

// options are EC2 instance metadata options, every field known and configured.
func options(endpoint bool, tokens string, hop int, ipv6 bool) AWSMetadataOptions {
	return AWSMetadataOptions{Endpoint: known(endpoint, Configured), Tokens: known(tokens, Configured),
		HopLimit: known(hop, Configured), IPv6: known(ipv6, Configured)}
}

var (
	pod         = Placement{ExtraHopsKnown: true}
	hostNetwork = Placement{HostNetwork: true}
	unknownCNI  = Placement{}
	v4, v6      = netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")
)

// TestAWSInstance is the instance layer's truth table; each row cites the documentation it
// checks.
func TestAWSInstance(t *testing.T) {
	for _, c := range []struct {
		name   string
		o      AWSMetadataOptions
		p      Placement
		addr   netip.Addr
		want   Decision
		reason string
	}{
		// "If you specify a value of disabled, you will not be able to access your instance
		// metadata." (EC2 API InstanceMetadataOptions, HttpEndpoint)
		{"HttpEndpoint disabled denies everyone", options(false, "optional", 64, true), hostNetwork, v4, Deny, "HttpEndpoint disabled"},
		// "If the state is optional, you can choose to retrieve instance metadata with or without
		// a signed token header" (HttpTokens): the hop limit bounds the token's PUT response only.
		{"HttpTokens optional allows a pod whatever the hop limit", options(true, "optional", 1, false), pod, v4, Allow, "IMDSv1 answers without a token"},
		// "In a container environment, if the hop limit is 1, the IMDSv2 response does not
		// return because going to the container is considered an additional network hop."
		{"tokens required with hop limit 1 denies a pod", options(true, "required", 1, false), pod, v4, Deny, "2 hops away"},
		{"tokens required with hop limit 1 allows a hostNetwork pod", options(true, "required", 1, false), hostNetwork, v4, Allow, "on the node's network, 1 hops away"},
		{"tokens required with hop limit 2 allows a pod of the VPC CNI", options(true, "required", 2, false), pod, v4, Allow, "the token response reaches"},
		{"tokens required with hop limit 1 denies a pod whatever its plugin adds", options(true, "required", 1, false), unknownCNI, v4, Deny, "2 hops away"},
		{"tokens required with hop limit 2 is unknown for a plugin whose hops are not documented", options(true, "required", 2, false), unknownCNI, v4, Unknown, "adds hops"},
		// HttpProtocolIpv6: "Enables or disables the IPv6 endpoint for the instance metadata
		// service" (EC2 API InstanceMetadataOptionsRequest).
		{"fd00:ec2::254 is denied without HttpProtocolIpv6", options(true, "optional", 2, false), pod, v6, Deny, "HttpProtocolIpv6 disabled"},
		{"fd00:ec2::254 follows the token rules with HttpProtocolIpv6", options(true, "required", 1, true), pod, v6, Deny, "2 hops away"},
		{"169.254.169.254 does not depend on HttpProtocolIpv6", options(true, "optional", 1, false), pod, v4, Allow, "IMDSv1"},
		{"an unknown HttpTokens is unknown, never a denial", AWSMetadataOptions{Endpoint: known(true, Configured), HopLimit: known(1, Configured)}, pod, v4, Unknown, "HttpTokens is not known"},
		{"tokens required and an unknown hop limit is unknown", AWSMetadataOptions{Endpoint: known(true, Configured), Tokens: known("required", Configured)}, pod, v4, Unknown, "HttpPutResponseHopLimit is not known"},
		{"an unknown HttpEndpoint is unknown", AWSMetadataOptions{Tokens: known("required", Configured), HopLimit: known(1, Configured)}, pod, v4, Unknown, "HttpEndpoint is not known"},
		{"another address is not governed by the options", options(false, "required", 1, false), pod, netip.MustParseAddr("169.254.170.23"), Unknown, "not governed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := AWSInstance(c.o, c.p, c.addr)
			if v.Layer != Instance || v.Decision != c.want || !strings.Contains(v.Reason, c.reason) {
				t.Errorf("got %s, want %s with a reason containing %q", v, c.want, c.reason)
			}
		})
	}
}

// TestAWSInstanceSource: a verdict is only as certain as the weakest fact it rests on.
func TestAWSInstanceSource(t *testing.T) {
	o := options(true, "required", 1, false)
	o.HopLimit.Source = Default
	if v := AWSInstance(o, pod, v4); v.Decision != Deny || v.Source != Default {
		t.Errorf("hop limit from a default: %s, want deny (default)", v)
	}
	o = options(true, "required", 2, false)
	o.Endpoint.Source, o.Tokens.Source, o.HopLimit.Source = Measured, Measured, Measured
	if v := AWSInstance(o, pod, v4); v.Decision != Allow || v.Source != Measured {
		t.Errorf("all measured: %s, want allow (measured)", v)
	}
}

// TestFromEC2NodeClass: a field left out takes Karpenter v1's default ("httpEndpoint: enabled,
// httpProtocolIPv6: disabled, httpPutResponseHopLimit: 1, httpTokens: required"), reported as a
// default; a field set is configured.
func TestFromEC2NodeClass(t *testing.T) {
	o := FromEC2NodeClass("default", nil)
	if !o.Endpoint.Value || o.IPv6.Value || o.HopLimit.Value != 1 || o.Tokens.Value != "required" || o.Tokens.Source != Default {
		t.Fatalf("defaults: %+v", o)
	}
	if v := AWSInstance(o, pod, v4); v.Decision != Deny || v.Source != Default || !strings.Contains(v.Reason, "EC2NodeClass default") {
		t.Errorf("Karpenter's defaults for a pod: %s, want deny by default naming the EC2NodeClass", v)
	}
	if v := AWSInstance(o, hostNetwork, v4); v.Decision != Allow {
		t.Errorf("Karpenter's defaults for a hostNetwork pod: %s, want allow", v)
	}
	two, optional := int64(2), "optional"
	o = FromEC2NodeClass("legacy", &inventory.EC2NodeClassMetadataOptions{HTTPPutResponseHopLimit: &two, HTTPTokens: &optional})
	if o.Tokens.Source != Configured || o.HopLimit.Value != 2 || o.Endpoint.Source != Default {
		t.Fatalf("configured fields: %+v", o)
	}
	// httpEndpoint was left out: the verdict rests on a default too.
	if v := AWSInstance(o, pod, v4); v.Decision != Allow || v.Source != Default || !strings.Contains(v.Reason, "EC2NodeClass legacy spec.metadataOptions.httpTokens") {
		t.Errorf("httpTokens optional: %s, want allow (default) naming the field", v)
	}
	bad := "sometimes"
	if v := AWSInstance(FromEC2NodeClass("bad", &inventory.EC2NodeClassMetadataOptions{HTTPTokens: &bad}), pod, v4); v.Decision != Unknown {
		t.Errorf("an invalid httpTokens: %s, want unknown", v)
	}
}

// TestCombine: reachable unless some layer denies; unknown never counts as a denial.
func TestCombine(t *testing.T) {
	allow := Verdict{Layer: ClusterPolicy, Decision: Allow}
	deny := Verdict{Layer: Instance, Decision: Deny}
	unknown := Verdict{Layer: Node, Decision: Unknown}
	for _, c := range []struct {
		layers    []Verdict
		reachable bool
		by        Name
	}{
		{[]Verdict{allow, unknown, deny}, false, Instance},
		{[]Verdict{unknown, allow}, true, ClusterPolicy},
		{[]Verdict{unknown, unknown}, true, Node},
	} {
		if r, by := Combine(c.layers...); r != c.reachable || by.Layer != c.by {
			t.Errorf("Combine(%v) = %t by %s, want %t by %s", c.layers, r, by.Layer, c.reachable, c.by)
		}
	}
	if r, by := Combine(); !r || by.Decision != Unknown {
		t.Errorf("Combine() = %t, %s", r, by)
	}
}
