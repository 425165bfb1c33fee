package layer

import (
	"fmt"
	"net/netip"
)

// The AWS instance metadata addresses (docs/endpoints.md).
var (
	awsIMDSv4 = netip.MustParseAddr("169.254.169.254")
	awsIMDSv6 = netip.MustParseAddr("fd00:ec2::254")
)

// IsAWSIMDS reports whether addr is an address of the EC2 instance metadata service, the one
// the instance's metadata options govern.
func IsAWSIMDS(addr netip.Addr) bool { return addr == awsIMDSv4 || addr == awsIMDSv6 }

// Setting is one metadata option as a source knows it.
type Setting[T any] struct {
	Value T
	// Known is false when no source says: the option is then unknown, never a default.
	Known  bool
	Source Source
	// Origin names where the value came from: "EC2NodeClass default spec.metadataOptions
	// .httpTokens", "measured by the imdsguard agent on ip-10-0-1-5".
	Origin string
}

// AWSMetadataOptions are an EC2 instance's metadata options (EC2 API InstanceMetadataOptions).
type AWSMetadataOptions struct {
	// Endpoint is HttpEndpoint: true when enabled.
	Endpoint Setting[bool]
	// Tokens is HttpTokens: "optional" or "required".
	Tokens Setting[string]
	// HopLimit is HttpPutResponseHopLimit, 1 to 64.
	HopLimit Setting[int]
	// IPv6 is HttpProtocolIpv6: true when enabled.
	IPv6 Setting[bool]
}

// Placement is where a subject's requests to the instance metadata service come from.
type Placement struct {
	// HostNetwork: the subject shares the node's network namespace; its requests are one hop
	// from the instance's own.
	HostNetwork bool
	// ExtraHops are the IP hops the network plugin adds between a pod and the node, beyond the
	// one every pod network adds; ExtraHopsKnown is false when the plugin is not in CNIHops.
	ExtraHops      int
	ExtraHopsKnown bool
}

// hops is how many IP hops a response travels to reach the subject: 1 on the node's network,
// 2 on the pod network (the node routes it once more), plus what the plugin adds. AWS: "In a
// container environment, if the hop limit is 1, the IMDSv2 response does not return because
// going to the container is considered an additional network hop"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-v2-how-it-works.html).
func (p Placement) hops() int {
	if p.HostNetwork {
		return 1
	}
	return 2 + p.ExtraHops
}

// CNIHops are the extra hops per network plugin (policy engine names of package engine) that are
// documented. A plugin missing here leaves pods' hop count unknown beyond the minimum of 2.
var CNIHops = map[string]int{
	// Pods get their own ENI IP and the node routes to them directly: the container environment
	// of the AWS documentation above, hop limit 2 reaches them.
	"aws-vpc-cni": 0,
}

// AWSInstance is the instance layer's verdict for a subject's requests to an EC2 instance
// metadata address (IsAWSIMDS), from the instance's metadata options:
//   - HttpEndpoint disabled: nothing answers (deny);
//   - fd00:ec2::254 answers only with HttpProtocolIpv6 enabled;
//   - HttpTokens optional: IMDSv1 answers without a token, whatever the hop limit, which only
//     bounds the token's PUT response (allow);
//   - HttpTokens required: the subject gets a token only when the hop limit reaches it
//     (Placement.hops): allow when it does, deny when it does not.
//
// A fact no source knows makes the verdict unknown, never allow or deny by guess. The source of
// the verdict is the weakest source among the facts it rests on.
func AWSInstance(o AWSMetadataOptions, p Placement, addr netip.Addr) Verdict {
	v := Verdict{Layer: Instance}
	unknown := func(what string) Verdict {
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = what + " is not known: add the node's EC2NodeClass or launch template, or run the imdsguard agent, which measures it"
		return v
	}
	if !IsAWSIMDS(addr) {
		v.Decision, v.Source = Unknown, Assumed
		v.Reason = fmt.Sprintf("%s is not governed by EC2 instance metadata options", addr)
		return v
	}
	if !o.Endpoint.Known {
		return unknown("HttpEndpoint")
	}
	if !o.Endpoint.Value {
		v.Decision, v.Source = Deny, o.Endpoint.Source
		v.Reason = "HttpEndpoint disabled (" + o.Endpoint.Origin + "): the instance metadata service does not answer"
		return v
	}
	sources := []Source{o.Endpoint.Source}
	if addr == awsIMDSv6 {
		if !o.IPv6.Known {
			return unknown("HttpProtocolIpv6")
		}
		if !o.IPv6.Value {
			v.Decision, v.Source = Deny, o.IPv6.Source
			v.Reason = "HttpProtocolIpv6 disabled (" + o.IPv6.Origin + "): fd00:ec2::254 does not answer"
			return v
		}
		sources = append(sources, o.IPv6.Source)
	}
	if !o.Tokens.Known {
		return unknown("HttpTokens")
	}
	sources = append(sources, o.Tokens.Source)
	switch o.Tokens.Value {
	case "optional":
		v.Decision, v.Source = Allow, weakest(sources)
		v.Reason = "HttpTokens optional (" + o.Tokens.Origin + "): IMDSv1 answers without a token; the hop limit bounds only the token response"
		return v
	case "required":
	default:
		return unknown(fmt.Sprintf("HttpTokens %q (want optional or required)", o.Tokens.Value))
	}
	if !o.HopLimit.Known {
		return unknown("HttpPutResponseHopLimit")
	}
	sources = append(sources, o.HopLimit.Source)
	limit, need := o.HopLimit.Value, p.hops()
	where := "on the pod network"
	if p.HostNetwork {
		where = "on the node's network"
	}
	switch {
	case limit < need:
		// Even an unknown plugin adds hops, never removes them.
		v.Decision, v.Source = Deny, weakest(sources)
		v.Reason = fmt.Sprintf("HttpTokens required and HttpPutResponseHopLimit %d (%s): the token response does not reach a subject %s, %d hops away", limit, o.HopLimit.Origin, where, need)
	case !p.HostNetwork && !p.ExtraHopsKnown:
		return unknown(fmt.Sprintf("whether the network plugin adds hops beyond %d (HttpPutResponseHopLimit %d)", need, limit))
	default:
		v.Decision, v.Source = Allow, weakest(sources)
		v.Reason = fmt.Sprintf("HttpTokens required and HttpPutResponseHopLimit %d (%s): the token response reaches a subject %s, %d hops away", limit, o.HopLimit.Origin, where, need)
	}
	return v
}

// weakest returns the least certain of the sources.
func weakest(sources []Source) Source {
	rank := map[Source]int{Measured: 0, Configured: 1, Default: 2, Assumed: 3}
	out := Measured
	for _, s := range sources {
		if rank[s] > rank[out] {
			out = s
		}
	}
	return out
}
