package iac

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/layer"
)

// The AWS sources of EC2's precedence and defaults (docs/iac.md).
const (
	// PrecedenceDoc: EC2 sets each metadata option at launch from the launch parameters or
	// launch template, then the account-level default, then the AMI's imds-support, then EC2's
	// own default.
	PrecedenceDoc = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html#instance-metadata-options-order-of-precedence"
	// AMIIMDSSupportDoc (EC2 API Image.ImdsSupport): "If v2.0, it indicates that IMDSv2 is
	// specified in the AMI. Instances launched from this AMI will have HttpTokens automatically
	// set to required ... In addition, HttpPutResponseHopLimit is set to 2."
	AMIIMDSSupportDoc = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html"
	// EC2DefaultsDoc (EC2 API LaunchTemplateInstanceMetadataOptionsRequest): HttpEndpoint "If the
	// parameter is not specified, the default state is enabled"; HttpProtocolIpv6 "Default:
	// disabled"; HttpPutResponseHopLimit "Default: 1"; HttpTokens "If the parameter is not
	// specified in the request, the default state is optional".
	EC2DefaultsDoc = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchTemplateInstanceMetadataOptionsRequest.html"
	// AccountDefaultsDoc (EC2 API ModifyInstanceMetadataDefaults): the account-level defaults
	// are HttpTokens, HttpPutResponseHopLimit, HttpEndpoint and InstanceMetadataTags, each
	// "no-preference" to leave it to the other settings. There is none for HttpProtocolIpv6.
	AccountDefaultsDoc = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceMetadataDefaults.html"
)

// AccountDefaults are the EC2 account-level instance metadata defaults of the region
// (ModifyInstanceMetadataDefaults), as the user states them (--aws-account-defaults).
type AccountDefaults struct {
	// Given is true when the user stated the account defaults: an option left out then has
	// no preference, and the AMI or EC2's default decides it. When false, an option the code
	// leaves out stays unknown.
	Given bool
	// Tokens is "optional" or "required"; "" for no preference.
	Tokens string
	// HopLimit is 1 to 64; 0 for no preference.
	HopLimit int
	// Endpoint is "enabled" or "disabled"; "" for no preference.
	Endpoint string
}

// ParseAccountDefaults parses the value of --aws-account-defaults:
// "tokens=required,hop-limit=1,endpoint=enabled", each key at most once, any value
// "no-preference". An empty string states nothing (Given false).
func ParseAccountDefaults(s string) (AccountDefaults, error) {
	var d AccountDefaults
	s = strings.TrimSpace(s)
	if s == "" {
		return d, nil
	}
	d.Given = true
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" || value == "" {
			return AccountDefaults{}, fmt.Errorf("account defaults %q: %q is not key=value (keys: tokens, hop-limit, endpoint)", s, part)
		}
		if seen[key] {
			return AccountDefaults{}, fmt.Errorf("account defaults %q: %s given twice", s, key)
		}
		seen[key] = true
		if value == "no-preference" {
			continue
		}
		switch key {
		case "tokens":
			if value != "optional" && value != "required" {
				return AccountDefaults{}, fmt.Errorf("account defaults %q: tokens=%s: want optional, required or no-preference", s, value)
			}
			d.Tokens = value
		case "hop-limit":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > 64 {
				return AccountDefaults{}, fmt.Errorf("account defaults %q: hop-limit=%s: want 1 to 64 or no-preference", s, value)
			}
			d.HopLimit = n
		case "endpoint":
			if value != "enabled" && value != "disabled" {
				return AccountDefaults{}, fmt.Errorf("account defaults %q: endpoint=%s: want enabled, disabled or no-preference", s, value)
			}
			d.Endpoint = value
		default:
			return AccountDefaults{}, fmt.Errorf("account defaults %q: unknown key %q (keys: tokens, hop-limit, endpoint)", s, key)
		}
	}
	return d, nil
}

// AMISupport is the AMI's imds-support attribute, as far as the caller knows it:
// AMISupportUnknown (an option only the AMI could settle stays unknown), AMISupportNone (the
// AMI is known and has no imds-support) or AMISupportV2 (imds-support v2.0: tokens required and
// hop limit 2, AMIIMDSSupportDoc).
type AMISupport string

// The values of AMISupport.
const (
	AMISupportUnknown AMISupport = ""
	AMISupportNone    AMISupport = "none"
	AMISupportV2      AMISupport = "v2.0"
)

// ParseAMISupport parses the value of --aws-ami-imds-support: "" (unknown), "none" or "v2.0".
func ParseAMISupport(s string) (AMISupport, error) {
	switch a := AMISupport(strings.TrimSpace(s)); a {
	case AMISupportUnknown, AMISupportNone, AMISupportV2:
		return a, nil
	}
	return "", fmt.Errorf("%q: want v2.0 (the AMI sets tokens required and hop limit 2) or none", s)
}

// Resolve applies EC2's precedence (PrecedenceDoc) to the options a resource states, option
// by option:
//
//  1. the launch template or launch parameters, when they set the option (unknown when they
//     set it to something not knowable statically);
//  2. the account default (HttpTokens, HttpPutResponseHopLimit, HttpEndpoint);
//  3. the AMI's imds-support v2.0 (HttpTokens required, HttpPutResponseHopLimit 2), once the
//     account defaults are stated and leave the option to it;
//  4. EC2's default (tokens optional, hop limit 1, endpoint enabled, IPv6 disabled), only
//     when every level above is known to leave the option unset;
//  5. otherwise unknown: the option is inherited from settings the code does not show.
//
// HttpProtocolIpv6 has neither an account default nor an AMI setting (AccountDefaultsDoc), so
// EC2's default decides it whenever the code leaves it out.
func Resolve(o MetadataOptions, acct AccountDefaults, ami AMISupport) layer.AWSMetadataOptions {
	r := resolver{o: o, acct: acct, ami: ami}
	return layer.AWSMetadataOptions{
		Endpoint: toBool(r.endpoint()),
		Tokens:   r.tokens(),
		HopLimit: r.hopLimit(),
		IPv6:     toBool(r.ipv6()),
	}
}

type resolver struct {
	o    MetadataOptions
	acct AccountDefaults
	ami  AMISupport
}

// stated returns the setting of an option the code sets, and false when it leaves it out.
func stated[T any](r resolver, v Value[T], option string) (layer.Setting[T], bool) {
	if !v.Set {
		return layer.Setting[T]{}, false
	}
	where := fmt.Sprintf("%s %s %s", v.At, r.o.Resource, v.Attr)
	switch {
	case !v.Known:
		expr := v.Expr
		if expr == "" {
			expr = "a value not known statically"
		}
		return layer.Setting[T]{Source: layer.Configured, Origin: fmt.Sprintf("%s is %s: %s not known statically", where, expr, option)}, true
	case v.Default != "":
		return layer.Setting[T]{Value: v.Value, Known: true, Source: layer.Default, Origin: where + ": " + v.Default}, true
	}
	if v.Expr != "" {
		where += " = " + v.Expr // an expression, a variable, a module call's argument
	}
	return layer.Setting[T]{Value: v.Value, Known: true, Source: layer.Configured, Origin: where}, true
}

func (r resolver) leavesOut(option string) string {
	return fmt.Sprintf("%s %s leaves %s out", r.o.At, r.o.Resource, option)
}

// ec2DefaultApplies reports whether EC2's default decides an option the code leaves out:
// the account defaults are stated without a preference for it and, for an option the AMI
// can set, the AMI is known not to set it.
func (r resolver) ec2DefaultApplies(amiSets bool) bool {
	if !r.acct.Given {
		return false
	}
	return !amiSets || r.ami == AMISupportNone
}

func (r resolver) tokens() layer.Setting[string] {
	return inherited(r, r.o.HTTPTokens, "HttpTokens", r.acct.Tokens, r.acct.Tokens != "", "required", "optional")
}

func (r resolver) hopLimit() layer.Setting[int] {
	return inherited(r, r.o.HopLimit, "HttpPutResponseHopLimit", r.acct.HopLimit, r.acct.HopLimit != 0, 2, 1)
}

// inherited resolves an option the account default and the AMI can both set (HttpTokens,
// HttpPutResponseHopLimit): the code's value, else the account default (acct, when acctSet),
// else the AMI's imds-support v2.0 value (amiV2) once the account defaults are stated, else
// EC2's default (ec2) when the AMI is known to set nothing; otherwise it stays unknown.
func inherited[T comparable](r resolver, v Value[T], option string, acct T, acctSet bool, amiV2, ec2 T) layer.Setting[T] {
	if s, ok := stated(r, v, option); ok {
		return s
	}
	out := r.leavesOut(option)
	switch {
	case acctSet:
		return layer.Setting[T]{Value: acct, Known: true, Source: layer.Configured,
			Origin: fmt.Sprintf("%s: account default %s %v (--aws-account-defaults; %s)", out, option, acct, PrecedenceDoc)}
	case r.acct.Given && r.ami == AMISupportV2:
		return layer.Setting[T]{Value: amiV2, Known: true, Source: layer.Configured,
			Origin: fmt.Sprintf("%s: the AMI's imds-support v2.0 sets %s %v (%s)", out, option, amiV2, AMIIMDSSupportDoc)}
	case r.ec2DefaultApplies(true):
		return layer.Setting[T]{Value: ec2, Known: true, Source: layer.Default,
			Origin: fmt.Sprintf("%s, and neither the account default nor the AMI sets it: EC2's default %s %v (%s)", out, option, ec2, EC2DefaultsDoc)}
	}
	return layer.Setting[T]{Source: layer.Configured,
		Origin: out + ": inherited from the account default or the AMI; settle with --aws-account-defaults"}
}

func (r resolver) endpoint() layer.Setting[string] {
	const option = "HttpEndpoint"
	if s, ok := stated(r, r.o.HTTPEndpoint, option); ok {
		return s
	}
	out := r.leavesOut(option)
	switch {
	case r.acct.Endpoint != "":
		return layer.Setting[string]{Value: r.acct.Endpoint, Known: true, Source: layer.Configured,
			Origin: fmt.Sprintf("%s: account default HttpEndpoint %s (--aws-account-defaults; %s)", out, r.acct.Endpoint, PrecedenceDoc)}
	case r.ec2DefaultApplies(false):
		return layer.Setting[string]{Value: "enabled", Known: true, Source: layer.Default,
			Origin: fmt.Sprintf("%s, and the account default does not set it: EC2's default HttpEndpoint enabled (%s)", out, EC2DefaultsDoc)}
	}
	return layer.Setting[string]{Source: layer.Configured,
		Origin: out + ": inherited from the account default; settle with --aws-account-defaults"}
}

func (r resolver) ipv6() layer.Setting[string] {
	const option = "HttpProtocolIpv6"
	if s, ok := stated(r, r.o.HTTPProtocolIPv6, option); ok {
		return s
	}
	return layer.Setting[string]{Value: "disabled", Known: true, Source: layer.Default,
		Origin: fmt.Sprintf("%s, which no account default or AMI sets: EC2's default HttpProtocolIpv6 disabled (%s)", r.leavesOut(option), EC2DefaultsDoc)}
}

// toBool turns an "enabled"/"disabled" setting into the layer's boolean; any other value is
// unknown (readers report such values as problems).
func toBool(s layer.Setting[string]) layer.Setting[bool] {
	out := layer.Setting[bool]{Source: s.Source, Origin: s.Origin}
	if !s.Known {
		return out
	}
	switch s.Value {
	case "enabled":
		out.Value, out.Known = true, true
	case "disabled":
		out.Known = true
	}
	return out
}
