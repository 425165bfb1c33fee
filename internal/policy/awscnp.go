package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory/awsv1alpha1"
	corev1 "k8s.io/api/core/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// The AWS VPC CNI's own ClusterNetworkPolicy (networking.k8s.aws/v1alpha1, VPC CNI v1.21 and
// later) has network-policy-api's tiers, priorities and actions, and is evaluated by the same
// code in the same two tiers (cnp.go), with Reason.Kind KindAWSClusterNetworkPolicy. Its schema
// (internal/inventory/awsv1alpha1, with its source) differs from upstream's: v1alpha1-style ports,
// up to 100 rules and peers, domainNames allowed in Pass rules, no nodes peer, and no CEL rule on
// networks. What the schema leaves open (a network that is not a CIDR, a port entry with several
// fields) the API server stores and the agent's handling is not documented: such a policy is
// reported as not evaluated rather than guessed.

// kindAWSCNP is the kind of the AWS ClusterNetworkPolicy in object references and reasons.
const kindAWSCNP = string(KindAWSClusterNetworkPolicy)

// Limits of the AWS CRD (api/v1alpha1/clusternetworkpolicy_types.go).
const (
	awsMaxRules    = 100 // MaxItems=100 on ingress and egress
	awsMaxPeers    = 100 // MaxItems=100 on to and from
	awsMaxPorts    = 100 // MaxItems=100 on ports
	awsMaxItems    = 25  // MaxItems=25 on networks and domainNames
	awsMaxCIDR     = 43  // MaxLength=43 on CIDR
	awsMaxRuleName = 100 // MaxLength=100 on a rule's name
)

// compileAWSCNP validates an AWS ClusterNetworkPolicy with its CRD's rules (invalid: the API
// server refuses it) and compiles its egress rules; unsupported lists what the API server
// accepts but imdsguard cannot evaluate faithfully.
func compileAWSCNP(in *awsv1alpha1.ClusterNetworkPolicy) (p *adminPolicy, invalid, unsupported fieldErrors) {
	p = &adminPolicy{kind: kindAWSCNP, name: in.Name, priority: in.Spec.Priority}
	switch in.Spec.Tier {
	case "Admin":
		p.tier = TierClusterAdmin
	case "Baseline":
		p.tier = TierClusterBaseline
	default:
		invalid.add("spec.tier", "unknown tier %q (want Admin or Baseline)", in.Spec.Tier)
	}
	if in.Spec.Priority < 0 || in.Spec.Priority > cnpMaxPriority {
		invalid.add("spec.priority", "priority %d is out of range 0-%d", in.Spec.Priority, cnpMaxPriority)
	}
	subject := anpv1alpha1.AdminNetworkPolicySubject{Namespaces: in.Spec.Subject.Namespaces}
	if s := in.Spec.Subject.Pods; s != nil {
		subject.Pods = &anpv1alpha1.NamespacedPod{NamespaceSelector: s.NamespaceSelector, PodSelector: s.PodSelector}
	}
	// A CRD schema does not check label selectors, so an invalid one can exist; what the agent
	// selects with it is not documented.
	var subjectErrs fieldErrors
	p.subject = compileSubject(subject, &subjectErrs)
	for _, e := range subjectErrs {
		if strings.HasPrefix(e.message, "invalid selector") {
			unsupported = append(unsupported, e)
		} else {
			invalid = append(invalid, e)
		}
	}
	if len(in.Spec.Egress) > awsMaxRules {
		invalid.add("spec.egress", "%d rules; at most %d are allowed", len(in.Spec.Egress), awsMaxRules)
	}
	if len(in.Spec.Ingress) > awsMaxRules {
		invalid.add("spec.ingress", "%d rules; at most %d are allowed", len(in.Spec.Ingress), awsMaxRules)
	}
	for i := range in.Spec.Egress {
		r := &in.Spec.Egress[i]
		field := fmt.Sprintf("spec.egress[%d]", i)
		p.rules = append(p.rules, compileAWSEgressRule(r, field, &invalid, &unsupported))
	}
	for i := range in.Spec.Ingress {
		r := &in.Spec.Ingress[i]
		field := fmt.Sprintf("spec.ingress[%d]", i)
		awsAction(r.Action, field+".action", &invalid)
		if len(r.Name) > awsMaxRuleName {
			invalid.add(field+".name", "rule name is %d characters; at most %d are allowed", len(r.Name), awsMaxRuleName)
		}
		if len(r.From) == 0 || len(r.From) > awsMaxPeers {
			invalid.add(field+".from", "%d peers; 1 to %d are allowed", len(r.From), awsMaxPeers)
		}
		for j, peer := range r.From {
			if (peer.Namespaces != nil) == (peer.Pods != nil) {
				invalid.add(fmt.Sprintf("%s.from[%d]", field, j), "exactly one of namespaces or pods must be set")
			}
		}
		compileAWSPorts(r.Ports, field+".ports", &invalid, &unsupported)
	}
	return p, invalid, unsupported
}

func awsAction(a, field string, invalid *fieldErrors) Action {
	switch a {
	case "Accept":
		return ActionAllow
	case "Deny":
		return ActionDeny
	case "Pass":
		return actionPass
	}
	invalid.add(field, "unknown action %q (want Accept, Deny or Pass)", a)
	return ""
}

func compileAWSEgressRule(r *awsv1alpha1.ClusterNetworkPolicyEgressRule, field string, invalid, unsupported *fieldErrors) adminRule {
	if len(r.Name) > awsMaxRuleName {
		invalid.add(field+".name", "rule name is %d characters; at most %d are allowed", len(r.Name), awsMaxRuleName)
	}
	rule := adminRule{name: r.Name, action: awsAction(r.Action, field+".action", invalid)}
	rule.ports = compileAWSPorts(r.Ports, field+".ports", invalid, unsupported)
	if len(r.To) == 0 || len(r.To) > awsMaxPeers {
		invalid.add(field+".to", "%d peers; 1 to %d are allowed", len(r.To), awsMaxPeers)
	}
	for j := range r.To {
		peer := &r.To[j]
		pf := fmt.Sprintf("%s.to[%d]", field, j)
		set := 0
		if peer.Namespaces != nil {
			set++
			validateSelector(peer.Namespaces, pf+".namespaces", unsupported)
			rule.clusterPeers++
		}
		if peer.Pods != nil {
			set++
			validateSelector(&peer.Pods.NamespaceSelector, pf+".pods.namespaceSelector", unsupported)
			validateSelector(&peer.Pods.PodSelector, pf+".pods.podSelector", unsupported)
			rule.clusterPeers++
		}
		if peer.Networks != nil {
			set++
			if len(peer.Networks) == 0 || len(peer.Networks) > awsMaxItems {
				invalid.add(pf+".networks", "%d CIDRs; 1 to %d are allowed", len(peer.Networks), awsMaxItems)
			}
			for k, n := range peer.Networks {
				f := fmt.Sprintf("%s.networks[%d]", pf, k)
				switch {
				case slices.Contains(peer.Networks[:k], n):
					invalid.add(f, "duplicate value %q (networks is a set: +listType=set)", n)
				case len(n) > awsMaxCIDR:
					invalid.add(f, "%q is longer than %d characters", n, awsMaxCIDR)
				default:
					// The CRD has no CIDR rule: the API server stores any string, and how the
					// agent reads one that is not a CIDR is not documented.
					prefix, err := parseCIDR(n)
					if err != nil {
						unsupported.add(f, "%v: the API server accepts it, and the agent's handling is not documented", err)
						continue
					}
					rule.cidrs = append(rule.cidrs, cidrPeer{prefix: prefix, label: "networks " + prefix.String()})
				}
			}
		}
		if peer.DomainNames != nil {
			set++
			if len(peer.DomainNames) == 0 || len(peer.DomainNames) > awsMaxItems {
				invalid.add(pf+".domainNames", "%d domain names; 1 to %d are allowed", len(peer.DomainNames), awsMaxItems)
			}
			if r.Action == "Deny" {
				// CEL: "domainNames peer cannot be used with Deny action, only Accept and Pass
				// actions are supported for domainNames".
				invalid.add(pf+".domainNames", "domainNames peer cannot be used with Deny action, only Accept and Pass actions are supported for domainNames")
			}
			for k, d := range peer.DomainNames {
				if slices.Contains(peer.DomainNames[:k], d) {
					invalid.add(fmt.Sprintf("%s.domainNames[%d]", pf, k), "duplicate value %q (domainNames is a set: +listType=set)", d)
					continue
				}
				rule.domains = append(rule.domains, d)
			}
		}
		if set != 1 {
			invalid.add(pf, "exactly one of namespaces, pods, networks or domainNames must be set")
		}
	}
	return rule
}

// compileAWSPorts compiles v1alpha1-style ports: nil is every port ("If Ports is not set then the
// rule does not filter traffic via port"); a port number (1-65535) or range (start < end), with
// a protocol defaulted to TCP; a named port never matches an address outside the cluster.
func compileAWSPorts(in *[]awsv1alpha1.ClusterNetworkPolicyPort, field string, invalid, unsupported *fieldErrors) ports {
	if in == nil {
		return ports{all: true}
	}
	if len(*in) == 0 || len(*in) > awsMaxPorts {
		invalid.add(field, "%d ports; 1 to %d are allowed", len(*in), awsMaxPorts)
	}
	var out ports
	for i, p := range *in {
		pf := fmt.Sprintf("%s[%d]", field, i)
		set := 0
		for _, b := range []bool{p.PortNumber != nil, p.PortRange != nil, p.NamedPort != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			// The schema does not require exactly one field, so the API server stores this;
			// how the agent reads it is not documented.
			unsupported.add(pf, "%d of portNumber, portRange and namedPort are set: the API server accepts it, and the agent's handling is not documented", set)
			continue
		}
		var r portRange
		switch {
		case p.NamedPort != nil:
			r = portRange{protocol: corev1.ProtocolTCP, named: *p.NamedPort}
		case p.PortNumber != nil:
			r = portRange{protocol: defaultProtocol(p.PortNumber.Protocol), start: p.PortNumber.Port, end: p.PortNumber.Port}
			if !validPort(r.start) {
				invalid.add(pf+".portNumber.port", "port %d is out of range 1-65535", r.start)
				continue
			}
		default:
			r = portRange{protocol: defaultProtocol(p.PortRange.Protocol), start: p.PortRange.Start, end: p.PortRange.End}
			if !validPort(r.start) || !validPort(r.end) || r.start >= r.end {
				invalid.add(pf+".portRange", "range %d-%d is not within 1-65535 with start < end", r.start, r.end)
				continue
			}
		}
		if !validProtocol(r.protocol) {
			unsupported.add(pf, "protocol %q: imdsguard evaluates TCP, UDP and SCTP", r.protocol)
			continue
		}
		out.ranges = append(out.ranges, r)
	}
	return out
}
