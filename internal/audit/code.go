package audit

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	corev1 "k8s.io/api/core/v1"
)

// CodeGroup is a node group, instance or launch setting of the infrastructure code
// (Options.Infrastructure), with its options resolved by EC2's precedence and what runs on it.
type CodeGroup struct {
	iac.NodeGroup
	// Resolved are the options instances launched from the group get (iac.Resolve).
	Resolved layer.AWSMetadataOptions
	// Nodes are the nodes that join the group (iac.Source.GroupIndex), in name order.
	Nodes []string
	// Subjects are the pods and workload templates placed on those nodes (the pod's node, or
	// the nodes a template may be scheduled on); PodNetwork counts those not on the host
	// network.
	Subjects, PodNetwork int
	// TokenReach counts the subjects on the pod network that reach the EC2 instance metadata
	// service through every layer, and so can get a token.
	TokenReach int
	// NeedIMDS names the subjects that read instance metadata themselves (needsIMDS), with why;
	// NeedIMDSPodNetwork counts those on the pod network, which need a hop limit of 2.
	NeedIMDS           []string
	NeedIMDSPodNetwork int
	// Examples name the first few subjects ("kube-system/Deployment/coredns").
	Examples []string
}

// Ref names the group's resource for findings, at the position of the resource.
func (g *CodeGroup) Ref() inventory.ObjectRef { return codeRef(g.Resource, g.At) }

// codeRef names a resource of the infrastructure code as an object at a position: a
// Terraform address is kind Terraform ("Terraform/aws_launch_template.nodes"); "AWS::EC2::
// LaunchTemplate NodeLT" is kind AWS::EC2::LaunchTemplate, name NodeLT; "eksctl nodeGroups[0]
// ng-1" is kind "eksctl nodeGroups[0]", name ng-1.
func codeRef(resource string, at iac.Position) inventory.ObjectRef {
	ref := inventory.ObjectRef{Kind: "Terraform", Name: resource, Source: inventory.Source{File: at.File, Line: at.Line}}
	if i := strings.LastIndexByte(resource, ' '); i >= 0 {
		ref.Kind, ref.Name = resource[:i], resource[i+1:]
	}
	return ref
}

// imdsNeeders are host components that read the EC2 instance metadata service themselves, besides
// the add-ons (addons) that can be configured not to: their images.
var imdsNeeders = []struct{ image, why string }{
	// The VPC CNI's ipamd reads the instance's ENIs and addresses from IMDS
	// (https://github.com/aws/amazon-vpc-cni-k8s/blob/master/pkg/awsutils/imds.go).
	{"amazon-k8s-cni", "the VPC CNI (aws-node) reads the instance's network interfaces from IMDS"},
	// The EKS Pod Identity agent exchanges the node role's credentials for pods' credentials
	// (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html).
	{"eks-pod-identity-agent", "the EKS Pod Identity agent uses the node role's credentials from IMDS"},
}

// needsIMDS says why a pod spec reads the EC2 instance metadata service itself, or "".
func needsIMDS(spec *corev1.PodSpec) string {
	for _, c := range allContainers(spec) {
		for _, n := range imdsNeeders {
			if strings.Contains(c.Image, n.image) {
				return n.why
			}
		}
		for _, a := range addons {
			if !strings.Contains(c.Image, a.image) || (a.applies != nil && !a.applies(c)) || a.configured(c) {
				continue
			}
			return a.name + " " + a.needs
		}
	}
	return ""
}

// codeGroups resolves the infrastructure code's groups and joins them to the nodes and the
// subjects placed on them: the nodes a subject runs on or may be scheduled on
// (layer.Assessor.Placed). The groups of those nodes are found once per scheduling key
// (layer.SchedulingKey), since a workload template may be placed on every node of the cluster.
func codeGroups(r *Report, src *iac.Source, assessor *layer.Assessor) []CodeGroup {
	out := make([]CodeGroup, len(src.Groups))
	byNode := map[string]int{}
	for i, g := range src.Groups {
		out[i] = CodeGroup{NodeGroup: g, Resolved: iac.Resolve(g.Options, src.Account, src.AMI)}
	}
	for _, n := range r.Nodes {
		if k := src.GroupIndex(n.Node); k >= 0 {
			out[k].Nodes = append(out[k].Nodes, n.Node.Name)
			byNode[n.Node.Name] = k
		}
	}
	if len(byNode) == 0 {
		return out
	}
	var imds []int
	for j, ep := range r.Endpoints {
		if ep.Role == endpoint.Credentials && ep.HasCloud(endpoint.AWS) && layer.IsAWSIMDS(ep.Address) {
			imds = append(imds, j)
		}
	}
	groupsOf := map[string][]int{} // placement key → the groups of its nodes, each once
	seen := make([]bool, len(out))
	for i := range r.Subjects {
		s := &r.Subjects[i]
		key := layer.SchedulingKey(s.Spec)
		in, ok := groupsOf[key]
		if !ok {
			for _, n := range assessor.Placed(s.Spec) {
				if k, ok := byNode[n.Name]; ok && !seen[k] {
					seen[k] = true
					in = append(in, k)
				}
			}
			for _, k := range in {
				seen[k] = false
			}
			groupsOf[key] = in
		}
		if len(in) == 0 {
			continue
		}
		reach := slices.ContainsFunc(imds, func(j int) bool { return r.Reachable(i, j) })
		why := needsIMDS(s.Spec)
		for _, k := range in {
			g := &out[k]
			g.Subjects++
			if len(g.Examples) < maxExamples {
				g.Examples = append(g.Examples, s.Namespace+"/"+s.Label())
			}
			if !s.Spec.HostNetwork {
				g.PodNetwork++
				if reach {
					g.TokenReach++
				}
			}
			if why != "" {
				g.NeedIMDS = append(g.NeedIMDS, s.Namespace+"/"+s.Label()+": "+why)
				if !s.Spec.HostNetwork {
					g.NeedIMDSPodNetwork++
				}
			}
		}
	}
	return out
}

// codeFindings reports, per group of the infrastructure code, with the position of the value
// that decides: IMDSv1 left on (IMDS017), a hop limit above what the pods need (IMDS018), an
// launch template version that may not be the code's (IMDS019), and settings the code does
// not make knowable (IMDS020). An endpoint no pod needs is not reported: every node the code
// joins boots from EKS's images, whose nodeadm and bootstrap.sh read the instance's metadata
// (https://github.com/awslabs/amazon-eks-ami/tree/main/nodeadm/internal/aws/imds), and user
// data reaches every instance through it.
func codeFindings(groups []CodeGroup) []Finding {
	var out []Finding
	for i := range groups {
		g := &groups[i]
		o := g.Resolved
		endpointOff := o.Endpoint.Known && !o.Endpoint.Value
		runs := g.runs()
		if g.VersionInDoubt != "" {
			newest := "unknown"
			if g.Newest != nil {
				n := iac.Resolve(*g.Newest, iac.AccountDefaults{}, iac.AMISupportUnknown)
				newest = describeOptions(n)
			}
			out = append(out, Finding{Rule: RuleTemplateVersion, Severity: RuleTemplateVersion.Severity, Objects: g.objects(g.At),
				Message: fmt.Sprintf("%s at %s; the code states %s for the newest version, which these instances may not run%s",
					g.Resource, g.VersionInDoubt, newest, runs),
				Remediation: "Launch from the version the code states: version = aws_launch_template.NAME.latest_version, or update_default_version = true on the template (then run the instance refresh or node group update that replaces the nodes)."})
			continue // its options are unknown for that reason alone
		}
		if endpointOff {
			continue // no metadata at all: the other settings do not matter
		}
		if t := o.Tokens; t.Known && t.Value == "optional" {
			out = append(out, Finding{Rule: RuleCodeIMDSv1, Severity: RuleCodeIMDSv1.Severity, Objects: g.objects(g.Options.HTTPTokens.At),
				Message: fmt.Sprintf("%s leaves IMDSv1 on: HttpTokens optional (%s)%s; host processes and hostNetwork pods read instance metadata without a token, the path a server-side request forgery uses",
					g.name(g.Options.HTTPTokens.At), t.Origin, runs),
				Remediation: "Require IMDSv2 in the code, in " + g.optionsResource() + ": " + tokensFix(g.optionsResource()) + " (imdsguard generate --layer ec2 writes the patch)."})
		}
		if t, h := o.Tokens, o.HopLimit; t.Known && t.Value == "required" && h.Known && h.Value >= 2 && g.NeedIMDSPodNetwork == 0 {
			sev := RuleHopLimit.Severity
			if len(g.Nodes) > 0 && g.TokenReach == 0 {
				sev = Low // every pod is denied by another layer: one layer short of defence in depth
			}
			reach := "no node in the input joins it, so any pod on the pod network of its instances can get a token"
			if len(g.Nodes) > 0 {
				reach = fmt.Sprintf("%s of %s on the pod network of its %s can get a token, and no pod there needs one",
					podsOrWorkloads(g.TokenReach), fmt.Sprint(g.PodNetwork), count(len(g.Nodes), "node"))
			}
			out = append(out, Finding{Rule: RuleHopLimit, Severity: sev, Objects: g.objects(g.Options.HopLimit.At),
				Message: fmt.Sprintf("%s sets hop limit %d (%s): IMDSv2 tokens reach pods on the pod network; %s",
					g.name(g.Options.HopLimit.At), h.Value, h.Origin, reach),
				Remediation: "Lower the hop limit to 1 so that only the node's own network gets a token, in " + g.optionsResource() + ": " + hopFix(g.optionsResource()) + " (imdsguard generate --layer ec2 writes the patch)."})
		}
		// An unknown endpoint alone changes nothing the tokens and hop limit do not decide, and
		// neither does the hop limit where IMDSv1 is on.
		decides := !o.Tokens.Known || (o.Tokens.Value == "required" && !o.HopLimit.Known)
		if unknown := unknownOptions(o); decides {
			out = append(out, Finding{Rule: RuleCodeUnknown, Severity: RuleCodeUnknown.Severity, Objects: g.objects(g.Options.At),
				Message:     fmt.Sprintf("%s: %s cannot be known from the code: %s%s", g.name(g.Options.At), strings.Join(optionNames(unknown), ", "), strings.Join(unknownOrigins(unknown), "; "), runs),
				Remediation: "Settle it: state the option with a literal value in the code, give the variable a default, or state the account's defaults (--aws-account-defaults tokens=required,hop-limit=1). Until then the instance layer of these nodes is unknown, and unknown is never counted as a protection."})
		}
	}
	return out
}

// objects names the group's resource at pos (the value that decides, else the resource), then
// its nodes.
func (g *CodeGroup) objects(pos iac.Position) []inventory.ObjectRef {
	if pos.File == "" {
		pos = g.At
	}
	out := []inventory.ObjectRef{codeRef(g.Resource, pos)}
	for _, n := range g.Nodes {
		out = append(out, inventory.ObjectRef{Kind: "Node", Name: n})
	}
	return out
}

// name renders the resource with a position: "aws_launch_template.nodes (infra/main.tf:12)".
func (g *CodeGroup) name(pos iac.Position) string {
	if pos.File == "" {
		pos = g.At
	}
	where := pos.String()
	if pos.File == "" {
		where = ""
	}
	if g.Root != "" {
		where = strings.TrimPrefix(where+", root module "+g.Root, ", ")
	}
	if where == "" {
		return g.Resource
	}
	return g.Resource + " (" + where + ")"
}

// optionsResource names the resource that states the options: the launch template of a node
// group, else the group itself.
func (g *CodeGroup) optionsResource() string {
	if g.Options.Resource != "" {
		return g.Options.Resource
	}
	return g.Resource
}

// podsOrWorkloads renders "1 pod or workload", "2 pods or workloads".
func podsOrWorkloads(n int) string {
	if n == 1 {
		return "1 pod or workload"
	}
	return fmt.Sprintf("%d pods or workloads", n)
}

// maxExamples bounds CodeGroup.Examples.
const maxExamples = 3

// runs says what runs on the group: its nodes and pods, with a few named, and how many of those
// reach the metadata service through every layer.
func (g *CodeGroup) runs() string {
	if len(g.Nodes) == 0 {
		return ""
	}
	out := fmt.Sprintf("; it runs %s with %s", count(len(g.Nodes), "node"), podsOrWorkloads(g.Subjects))
	if len(g.Examples) > 0 {
		more := ""
		if g.Subjects > len(g.Examples) {
			more = ", ..."
		}
		out += " (" + strings.Join(g.Examples, ", ") + more + ")"
	}
	if g.PodNetwork > 0 {
		out += fmt.Sprintf(", %d of %d on the pod network reaching the metadata service through every layer", g.TokenReach, g.PodNetwork)
	}
	return out
}

type unknownOption struct{ name, origin string }

func unknownOptions(o layer.AWSMetadataOptions) []unknownOption {
	var out []unknownOption
	if !o.Endpoint.Known {
		out = append(out, unknownOption{"HttpEndpoint", o.Endpoint.Origin})
	}
	if !o.Tokens.Known {
		out = append(out, unknownOption{"HttpTokens", o.Tokens.Origin})
	}
	if !o.HopLimit.Known {
		out = append(out, unknownOption{"HttpPutResponseHopLimit", o.HopLimit.Origin})
	}
	return out
}

func optionNames(u []unknownOption) []string {
	out := make([]string, len(u))
	for i, o := range u {
		out[i] = o.name
	}
	return out
}

// unknownOrigins lists the distinct origins: options unknown for one reason are named once.
func unknownOrigins(u []unknownOption) []string {
	var out []string
	for _, o := range u {
		if !slices.Contains(out, o.origin) {
			out = append(out, o.origin)
		}
	}
	return out
}

// describeOptions renders resolved options as "HttpTokens required, hop limit 1".
func describeOptions(o layer.AWSMetadataOptions) string {
	tokens, hop := "unknown", "unknown"
	if o.Tokens.Known {
		tokens = o.Tokens.Value
	}
	if o.HopLimit.Known {
		hop = fmt.Sprint(o.HopLimit.Value)
	}
	return "HttpTokens " + tokens + ", hop limit " + hop
}

// tokensFix and hopFix name the setting to change in the resource's own format.
func tokensFix(resource string) string {
	switch {
	case strings.HasPrefix(resource, "eksctl "):
		return "remove disableIMDSv1: false from the node group (or set disablePodIMDS: true)"
	case strings.HasPrefix(resource, "AWS::"):
		return "HttpTokens: required in its MetadataOptions"
	case strings.Contains(resource, ".eks_managed_node_groups["):
		return "metadata_options = { http_tokens = \"required\", ... } in the node group's entry"
	}
	return "http_tokens = \"required\" in its metadata_options block"
}

func hopFix(resource string) string {
	switch {
	case strings.HasPrefix(resource, "eksctl "):
		return "disablePodIMDS: true on the node group"
	case strings.HasPrefix(resource, "AWS::"):
		return "HttpPutResponseHopLimit: 1 in its MetadataOptions"
	case strings.Contains(resource, ".eks_managed_node_groups["):
		return "http_put_response_hop_limit = 1 in the node group's metadata_options"
	}
	return "http_put_response_hop_limit = 1 in its metadata_options block"
}

// jsonCodeGroup is a group of the infrastructure code as the JSON report gives it (2.3).
type jsonCodeGroup struct {
	Resource string       `json:"resource"`
	At       iac.Position `json:"at"`
	// Root is the root module whose call reads a called module's resource.
	Root string `json:"root,omitempty"`
	// OptionsFrom names the resource that states the options (a node group's launch template).
	OptionsFrom string          `json:"optionsFrom,omitempty"`
	Join        jsonCodeJoin    `json:"join"`
	Options     jsonCodeOptions `json:"options"`
	// VersionInDoubt: the launch template version the group runs may not be the code's.
	VersionInDoubt string   `json:"versionInDoubt,omitempty"`
	Nodes          []string `json:"nodes"`
	Subjects       int      `json:"subjects"`
	PodNetwork     int      `json:"podNetwork"`
	TokenReach     int      `json:"tokenReach"`
	NeedIMDS       []string `json:"needIMDS,omitempty"`
}

type jsonCodeJoin struct {
	EKSNodeGroup          string `json:"eksNodeGroup,omitempty"`
	EksctlNodeGroup       string `json:"eksctlNodeGroup,omitempty"`
	LaunchTemplateID      string `json:"launchTemplateId,omitempty"`
	LaunchTemplateVersion string `json:"launchTemplateVersion,omitempty"`
}

type jsonCodeOptions struct {
	HTTPEndpoint            jsonCodeSetting `json:"httpEndpoint"`
	HTTPTokens              jsonCodeSetting `json:"httpTokens"`
	HTTPPutResponseHopLimit jsonCodeSetting `json:"httpPutResponseHopLimit"`
	HTTPProtocolIPv6        jsonCodeSetting `json:"httpProtocolIpv6"`
}

// jsonCodeSetting is a resolved option; an unknown one has a null value and its origin says
// what would settle it.
type jsonCodeSetting struct {
	Value  any          `json:"value"`
	Known  bool         `json:"known"`
	Source layer.Source `json:"source"`
	Origin string       `json:"origin"`
}

func codeSetting[T any](s layer.Setting[T], render func(T) any) jsonCodeSetting {
	out := jsonCodeSetting{Known: s.Known, Source: s.Source, Origin: s.Origin}
	if s.Known {
		out.Value = render(s.Value)
	}
	return out
}

func (r *Report) infrastructureJSON() []jsonCodeGroup {
	if r.Infrastructure == nil {
		return nil
	}
	out := make([]jsonCodeGroup, 0, len(r.Infrastructure))
	for _, g := range r.Infrastructure {
		o := g.Resolved
		j := jsonCodeGroup{Resource: g.Resource, At: g.At, Root: g.Root, VersionInDoubt: g.VersionInDoubt,
			Join: jsonCodeJoin{EKSNodeGroup: g.EKSNodeGroup, EksctlNodeGroup: g.EksctlNodeGroup, LaunchTemplateID: g.LaunchTemplateID, LaunchTemplateVersion: g.LaunchTemplateVersion},
			Options: jsonCodeOptions{
				HTTPEndpoint:            codeSetting(o.Endpoint, enabledJSON),
				HTTPTokens:              codeSetting(o.Tokens, func(s string) any { return s }),
				HTTPPutResponseHopLimit: codeSetting(o.HopLimit, func(h int) any { return h }),
				HTTPProtocolIPv6:        codeSetting(o.IPv6, enabledJSON),
			},
			Nodes: nonNil(g.Nodes), Subjects: g.Subjects, PodNetwork: g.PodNetwork, TokenReach: g.TokenReach, NeedIMDS: g.NeedIMDS}
		if g.Options.Resource != g.Resource {
			j.OptionsFrom = g.Options.Resource
		}
		out = append(out, j)
	}
	return out
}

// writeInfrastructure writes the table's section on the infrastructure code: each group with
// the options EC2 resolves for it, where they come from and the nodes that join it.
// With more than MaxScreenRows groups, only --show all lists them; otherwise one line counts them.
func (r *Report) writeInfrastructure(w io.Writer, p palette, show Show) {
	if len(r.Infrastructure) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s  %s, options as EC2 resolves them\n", p.paint("1", "INFRASTRUCTURE CODE"), count(len(r.Infrastructure), "launch setting"))
	if len(r.Infrastructure) > MaxScreenRows && show != ShowAll {
		joined, optional, unknown := 0, 0, 0
		for _, g := range r.Infrastructure {
			if len(g.Nodes) > 0 {
				joined++
			}
			switch t := g.Resolved.Tokens; {
			case !t.Known:
				unknown++
			case t.Value == "optional":
				optional++
			}
		}
		fmt.Fprintf(w, "  %d joined to nodes, %d with HttpTokens optional, %d unknown; --show all lists them\n", joined, optional, unknown)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  RESOURCE\tAT\tTOKENS\tHOP LIMIT\tENDPOINT\tNODES")
	for _, g := range r.Infrastructure {
		o := g.Resolved
		resource := g.Resource
		if g.Root != "" {
			resource += " (" + g.Root + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", resource, g.At, settingText(o.Tokens, func(s string) string { return s }),
			settingText(o.HopLimit, func(h int) string { return fmt.Sprint(h) }), settingText(o.Endpoint, func(b bool) string { return enabledJSON(b).(string) }),
			nodesText(g.Nodes))
	}
	_ = tw.Flush()
}

// settingText renders a resolved option: its value, "(default)" when a documented default gave
// it, "unknown" when nothing says.
func settingText[T any](s layer.Setting[T], render func(T) string) string {
	if !s.Known {
		return "unknown"
	}
	if s.Source == layer.Default {
		return render(s.Value) + " (default)"
	}
	return render(s.Value)
}

func nodesText(nodes []string) string {
	switch len(nodes) {
	case 0:
		return "none joined"
	case 1, 2, 3:
		return strings.Join(nodes, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(nodes[:3], ", "), len(nodes)-3)
}
