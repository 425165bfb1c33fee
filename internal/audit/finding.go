package audit

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// Severity orders findings; --fail-on compares against it.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText renders the severity name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity parses a severity name; "none" parses to a level above every finding.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	if strings.EqualFold(s, "none") {
		return Critical + 1, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high, critical or none)", s)
}

// Technique is a MITRE ATT&CK technique.
type Technique struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

// T1552005 is the technique every metadata finding maps to.
var T1552005 = Technique{
	ID:   "T1552.005",
	Name: "Unsecured Credentials: Cloud Instance Metadata API",
	URL:  "https://attack.mitre.org/techniques/T1552/005/",
}

// Rule describes one kind of finding. IDs are stable: they never change meaning.
type Rule struct {
	ID          string
	Title       string
	Severity    Severity
	Description string
	MITRE       []Technique
}

// The rules. Their IDs are part of the output contract.
var (
	RuleReach = Rule{"IMDS001", "Pod can reach a credential-bearing metadata endpoint", High,
		"No layer denies the pod a metadata endpoint that hands out node credentials or bootstrap data: no cluster policy, no node firewall, no instance setting.", []Technique{T1552005}}
	RuleHostNetwork = Rule{"IMDS002", "hostNetwork pod reaches metadata endpoints", High,
		"The pod uses the node's network namespace: NetworkPolicy, AdminNetworkPolicy and a FORWARD-chain rule do not apply. Only instance metadata settings, admission control or a cgroup-aware node rule stop it.", []Technique{T1552005}}
	RuleIPv6Gap = Rule{"IMDS003", "IPv6 gap: IPv4 metadata denied, IPv6 metadata allowed", High,
		"Policy denies the IPv4 metadata address but not its IPv6 counterpart: address families are independent, and 0.0.0.0/0 except 169.254.169.254/32 says nothing of fd00:ec2::254.", []Technique{T1552005}}
	RuleNoEgressControl = Rule{"IMDS004", "Namespace without any egress control", Medium,
		"No NetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy restricts egress of pods in the namespace.", []Technique{T1552005}}
	RuleBroadAllow = Rule{"IMDS005", "Policy allows a whole address family without excepting the metadata address", Medium,
		"The rule that decided a reachable verdict allows 0.0.0.0/0, ::/0 or every destination without an except entry for the metadata address.", []Technique{T1552005}}
	RuleWireServer = Rule{"IMDS006", "Azure WireServer reachable", High,
		"The pod can reach Azure WireServer (168.63.129.16) on TCP 80 or 32526, which serves VM extension settings. Block those ports only: 168.63.129.16:53 is Azure DNS.", []Technique{T1552005}}
	RuleAddon = Rule{"IMDS007", "Add-on reads instance metadata for discovery", Medium,
		"The workload discovers its region, VPC or instance from the metadata API and will fail once pod access to it is blocked, unless it is configured explicitly.", []Technique{T1552005}}
	RuleNoIdentity = Rule{"IMDS008", "Workload without a pod identity would lose cloud access", Info,
		"The workload can reach instance metadata and has no pod identity (IRSA, EKS Pod Identity, GKE or Azure workload identity). If it calls cloud APIs it uses the node's credentials today and loses them when metadata access is blocked: give it its own identity first.", []Technique{T1552005}}
	RuleKeepReachable = Rule{"IMDS009", "Endpoint that must stay reachable is blocked", Medium,
		"Policy denies an endpoint the workload depends on (the EKS Pod Identity agent, Azure DNS).", []Technique{T1552005}}
	RulePriorityTie = Rule{"IMDS010", "AdminNetworkPolicies share a priority", Low,
		"The order of AdminNetworkPolicies with equal priority is implementation-defined: verdicts may differ between CNIs. imdsguard orders them by name.", nil}
	RuleInput = Rule{"IMDS011", "Input could not be evaluated", High,
		"A document could not be decoded, or an object is invalid and would be rejected by the API server. The audit is incomplete: verdicts that depend on it may be wrong.", nil}
	RuleUnreadable = Rule{"IMDS012", "Cluster resource could not be read", High,
		"A resource of the live cluster could not be listed: forbidden, or its API version is not served. The audit is incomplete: the checks that resource feeds cannot be trusted.", nil}
	RuleNotEnforced = Rule{"IMDS013", "Policy is not enforced", High,
		"The cluster's policy engine does not enforce this kind of policy (it is switched off, or the engine's version no longer or not yet implements the kind): the object is stored, but protects no pod. Verdicts leave it out.", []Technique{T1552005}}

	RuleSingleLayer = Rule{"IMDS014", "Protected by a single layer", Medium,
		"Exactly one layer (cluster policy, the node firewall or the instance settings) denies the pod a credential endpoint: one mistake there (a deleted policy, an agent stopped, a launch template changed) exposes it. Defence in depth wants a second layer.", []Technique{T1552005}}
	RuleIMDSv1 = Rule{"IMDS015", "Instance allows IMDSv1", Medium,
		"The instance's HttpTokens is optional: IMDSv1 answers without a token, whatever the hop limit. Even where pods are denied, host processes and hostNetwork pods keep IMDSv1, the path a server-side request forgery uses.", []Technique{T1552005}}
	RuleDrift = Rule{"IMDS016", "Instance settings differ between sources", Medium,
		"Two sources disagree on a node's instance metadata options (an EC2NodeClass says hop limit 1, the agent measured 2): the stronger source is used, measured over configured over default, but the object that should decide no longer does.", []Technique{T1552005}}

	RuleCodeIMDSv1 = Rule{"IMDS017", "Infrastructure code leaves IMDSv1 on", Medium,
		"The launch template, instance or node group in the infrastructure code resolves to HttpTokens optional (set so, or inherited by EC2's precedence): every instance launched from it answers IMDSv1 requests, which need no token.", []Technique{T1552005}}
	RuleHopLimit = Rule{"IMDS018", "Hop limit above what the pods need", Medium,
		"The infrastructure code sets a PUT response hop limit of 2 or more with tokens required: IMDSv2 tokens reach pods on the pod network, and no pod on those nodes reads instance metadata. A hop limit of 1 keeps tokens on the node's own network.", []Technique{T1552005}}
	RuleTemplateVersion = Rule{"IMDS019", "Launch template version may not be the code's", Medium,
		"The node group launches from the template's default version or a pinned version, while the code states its newest version ($Latest): the metadata options in force may be an older version's, which the code no longer shows.", []Technique{T1552005}}
	RuleCodeUnknown = Rule{"IMDS020", "Instance setting cannot be known from the code", Low,
		"An instance metadata option is a variable without a default, a data source or an intrinsic function, or left out and inherited from account or AMI settings the input does not state. The instance layer of its nodes is unknown, never counted as a protection.", []Technique{T1552005}}
	RuleTemplateVersionsDiffer = Rule{"IMDS021", "Launch template versions differ in metadata options", Medium,
		"The EC2 API says a launch template's $Default and $Latest versions state different metadata options: node groups and instances that launch $Default (EKS's default when no version is given) run other settings than the newest version, which is usually the one the code describes.", []Technique{T1552005}}
)

// Rules lists every rule, in ID order.
var Rules = []Rule{RuleReach, RuleHostNetwork, RuleIPv6Gap, RuleNoEgressControl, RuleBroadAllow, RuleWireServer, RuleAddon, RuleNoIdentity, RuleKeepReachable, RulePriorityTie, RuleInput, RuleUnreadable, RuleNotEnforced, RuleSingleLayer, RuleIMDSv1, RuleDrift,
	RuleCodeIMDSv1, RuleHopLimit, RuleTemplateVersion, RuleCodeUnknown, RuleTemplateVersionsDiffer}

// Finding is one problem found, with the objects concerned, why, and the concrete fix.
type Finding struct {
	Rule      Rule
	Severity  Severity
	Namespace string
	Objects   []inventory.ObjectRef
	// Endpoints names the endpoints concerned, if any.
	Endpoints   []string
	Message     string
	Remediation string
	// Accepted is set when an exception accepts the finding (ApplyExceptions).
	Accepted *Acceptance
	// Baseline is the finding's state against a baseline report (ApplyBaseline); empty
	// without one.
	Baseline BaselineState
}

// Counts reports whether the finding counts toward --fail-on: it does unless an exception
// accepts it or the baseline already holds it, at the same or a higher severity.
func (f Finding) Counts() bool {
	return f.Accepted == nil && f.Baseline != BaselineUnchanged
}
