package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// singleLayerFindings reports, per namespace and layer, the workloads and pods that exactly one
// layer keeps from a credential endpoint (IMDS014).
func singleLayerFindings(r *Report) []Finding {
	type key struct {
		namespace string
		layer     layer.Name
		source    layer.Source
	}
	type use struct {
		objects   []inventory.ObjectRef
		seen      map[inventory.ObjectRef]bool
		endpoints []string
		example   string
	}
	uses := map[key]*use{}
	var order []key
	for i := range r.Subjects {
		s := &r.Subjects[i]
		for j, ep := range r.Endpoints {
			if ep.Role != endpoint.Credentials || r.Reachable(i, j) {
				continue
			}
			// Count the denials without rendering the cluster-policy reason: this runs for
			// every denied exposure.
			p := r.layers[i][j]
			policyDenies := !r.Verdicts[i][j].Allowed
			nodeDenies, instanceDenies := p.Node.Decision == layer.Deny, p.Instance.Decision == layer.Deny
			var k key
			switch {
			case policyDenies && !nodeDenies && !instanceDenies:
				k = key{s.Namespace, layer.ClusterPolicy, r.policySource(r.Verdicts[i][j])}
			case !policyDenies && nodeDenies && !instanceDenies:
				k = key{s.Namespace, layer.Node, p.Node.Source}
			case !policyDenies && !nodeDenies && instanceDenies:
				k = key{s.Namespace, layer.Instance, p.Instance.Source}
			default:
				continue
			}
			u := uses[k]
			if u == nil {
				e := r.Exposure(i, j)
				u = &use{seen: map[inventory.ObjectRef]bool{}, example: e.DecidedBy.Reason}
				uses[k] = u
				order = append(order, k)
			}
			obj := unitRef(s)
			if !u.seen[obj] {
				u.seen[obj] = true
				u.objects = append(u.objects, obj)
			}
			if !slices.Contains(u.endpoints, ep.Name) {
				u.endpoints = append(u.endpoints, ep.Name)
			}
		}
	}
	out := make([]Finding, 0, len(order))
	for _, k := range order {
		u := uses[k]
		slices.Sort(u.endpoints)
		out = append(out, Finding{Rule: RuleSingleLayer, Severity: RuleSingleLayer.Severity, Namespace: k.namespace,
			Objects: u.objects, Endpoints: u.endpoints,
			Message: fmt.Sprintf("%s in namespace %s %s kept from %s by the %s layer alone (%s), e.g. %s",
				count(len(u.objects), "workload or pod"), k.namespace, isAre(len(u.objects)), strings.Join(u.endpoints, ", "), k.layer, k.source, u.example),
			Remediation: secondLayerRemedy(k.layer)})
	}
	return out
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// unitRef names the object a subject belongs to: its workload, or the bare pod.
func unitRef(s *Subject) inventory.ObjectRef {
	if s.Workload.Kind != "" {
		return inventory.ObjectRef{Kind: s.Workload.Kind, Namespace: s.Namespace, Name: s.Workload.Name}
	}
	return s.Ref()
}

// secondLayerRemedy names the layers to add next to the one that protects.
func secondLayerRemedy(only layer.Name) string {
	const node = "run the imdsguard agent in enforce mode on the nodes (it drops the metadata addresses for pods, hostNetwork pods included)"
	const instance = "on AWS require IMDSv2 with a hop limit of 1 (EC2NodeClass spec.metadataOptions, the launch template's MetadataOptions)"
	const policy = "add a cluster-wide deny the policy engine enforces (imdsguard generate --layer auto)"
	switch only {
	case layer.ClusterPolicy:
		return "Add a second layer: " + node + "; and " + instance + "."
	case layer.Node:
		return "Add a second layer: " + policy + "; and " + instance + "."
	}
	return "Add a second layer: " + policy + "; and " + node + "."
}

// instanceFindings reports nodes whose instance allows IMDSv1 (IMDS015), grouped by what says
// so, and the sources' drifts (IMDS016).
func instanceFindings(r *Report) []Finding {
	type group struct {
		origin string
		nodes  []inventory.ObjectRef
	}
	var groups []*group
	// A node whose HttpTokens the infrastructure code decides is reported with the code's
	// resource and position (IMDS017).
	byCode := map[string]string{}
	for _, g := range r.Infrastructure {
		for _, n := range g.Nodes {
			byCode[n] = g.Resolved.Tokens.Origin
		}
	}
	for _, n := range r.Nodes {
		t := n.Options.Tokens
		if !n.AWS || !t.Known || t.Value != "optional" || (n.Options.Endpoint.Known && !n.Options.Endpoint.Value) {
			continue
		}
		if origin, ok := byCode[n.Node.Name]; ok && origin == t.Origin {
			continue
		}
		origin := string(t.Source) + ": " + t.Origin
		if t.Source == layer.Measured {
			origin = "measured by the imdsguard agent"
		}
		k := slices.IndexFunc(groups, func(g *group) bool { return g.origin == origin })
		if k < 0 {
			k = len(groups)
			groups = append(groups, &group{origin: origin})
		}
		groups[k].nodes = append(groups[k].nodes, inventory.ObjectRef{Kind: "Node", Name: n.Node.Name, Source: n.Node.Source})
	}
	var out []Finding
	for _, g := range groups {
		names := make([]string, 0, min(len(g.nodes), 5))
		for _, n := range g.nodes[:min(len(g.nodes), 5)] {
			names = append(names, n.Name)
		}
		more := ""
		if len(g.nodes) > 5 {
			more = fmt.Sprintf(" and %d more", len(g.nodes)-5)
		}
		out = append(out, Finding{Rule: RuleIMDSv1, Severity: RuleIMDSv1.Severity, Objects: g.nodes,
			Message: fmt.Sprintf("%s (%s%s) allow IMDSv1: HttpTokens optional (%s); host processes and hostNetwork pods read instance metadata without a token",
				count(len(g.nodes), "node"), strings.Join(names, ", "), more, g.origin),
			Remediation: "Require IMDSv2: httpTokens: required in the EC2NodeClass's spec.metadataOptions, HttpTokens=required in the launch template's MetadataOptions, or aws ec2 modify-instance-metadata-options --http-tokens required on running instances (imdsguard generate --layer ec2 writes each form)."})
	}
	for _, d := range r.Drifts {
		out = append(out, Finding{Rule: RuleDrift, Severity: RuleDrift.Severity,
			Objects:     []inventory.ObjectRef{{Kind: "Node", Name: d.Node}},
			Message:     "instance settings drift on " + d.String() + "; the first is used",
			Remediation: fmt.Sprintf("Make the object that should decide %s on node %s agree with the instance: replace the node (Karpenter drift replaces it when the EC2NodeClass changes), or fix the setting that overrides it.", d.Option, d.Node)})
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return cmp.Compare(a.Rule.ID, b.Rule.ID) })
	return out
}
