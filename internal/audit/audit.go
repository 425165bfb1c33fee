// Package audit answers, for every pod and workload template, whether it can reach each
// metadata endpoint and what decided it (the exposure), and turns the answers into findings
// with a severity, a MITRE ATT&CK mapping and a concrete remediation. It also renders reports:
// a table for humans, a versioned JSON document and SARIF 2.1.0.
package audit

import (
	"cmp"
	"slices"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/engine"
	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Subject is a pod, or a workload's pod template, to evaluate.
type Subject struct {
	Namespace string
	// Pod is the pod's name; empty for a workload template.
	Pod      string
	Workload inventory.WorkloadRef
	Meta     *metav1.ObjectMeta
	Spec     *corev1.PodSpec
	Source   inventory.Source
}

// IsTemplate reports whether the subject is a workload's pod template.
func (s *Subject) IsTemplate() bool { return s.Pod == "" }

// Ref names the subject's object: the pod, or the workload.
func (s *Subject) Ref() inventory.ObjectRef {
	if s.IsTemplate() {
		return inventory.ObjectRef{Kind: s.Workload.Kind, Namespace: s.Namespace, Name: s.Workload.Name, Source: s.Source}
	}
	return inventory.ObjectRef{Kind: "Pod", Namespace: s.Namespace, Name: s.Pod, Source: s.Source}
}

// Label renders "Deployment/web" for a template, "Pod/web-1" for a pod.
func (s *Subject) Label() string {
	if s.IsTemplate() {
		return s.Workload.Kind + "/" + s.Workload.Name
	}
	return "Pod/" + s.Pod
}

// PolicySubject is the subject as the evaluator sees it: namespace, labels, host networking and
// service account (Calico and Cilium select pods by it).
func (s *Subject) PolicySubject() policy.Subject {
	sa := s.Spec.ServiceAccountName
	if sa == "" {
		sa = s.Spec.DeprecatedServiceAccount
	}
	return policy.Subject{Namespace: s.Namespace, Labels: s.Meta.Labels, HostNetwork: s.Spec.HostNetwork, ServiceAccount: sa}
}

// Subjects lists the pods and workload templates of an inventory, ordered by namespace, then
// workload, then templates before pods, then pod name.
func Subjects(inv *inventory.Inventory) []Subject {
	out := make([]Subject, 0, len(inv.Pods)+len(inv.Workloads))
	for _, w := range inv.Workloads {
		out = append(out, Subject{Namespace: w.Namespace, Workload: inventory.WorkloadRef{Kind: w.Kind, Name: w.Name},
			Meta: &w.Template.ObjectMeta, Spec: &w.Template.Spec, Source: w.Source})
	}
	for _, p := range inv.Pods {
		out = append(out, Subject{Namespace: p.Pod.Namespace, Pod: p.Pod.Name, Workload: p.Workload,
			Meta: &p.Pod.ObjectMeta, Spec: &p.Pod.Spec, Source: p.Source})
	}
	slices.SortFunc(out, func(a, b Subject) int {
		return cmp.Or(
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Workload.Kind, b.Workload.Kind),
			cmp.Compare(a.Workload.Name, b.Workload.Name),
			cmp.Compare(a.Pod, b.Pod),
		)
	})
	return out
}

// NamespaceSummary says what governs egress in a namespace.
type NamespaceSummary struct {
	Name        string
	Synthesized bool
	Control     policy.EgressControl
	// Isolated is set when some pod or template of the namespace is egress-isolated by a
	// NetworkPolicy: an allow-all NetworkPolicy would widen its egress.
	Isolated bool
	// remedy is the fix for pods of the namespace that no policy restricts, built once.
	remedy string
}

// Report is the outcome of an audit.
type Report struct {
	Endpoints  []endpoint.Endpoint
	Subjects   []Subject
	Namespaces []NamespaceSummary
	// Verdicts holds the cluster-policy layer: one row per subject, one verdict per endpoint.
	// Subjects that share a verdict (same namespace, labels and host networking) share a row.
	Verdicts [][]policy.Verdict
	// layers holds the instance and node layers, one row per subject, shared between subjects
	// with the same placement.
	layers   [][]layer.Pair
	Findings []Finding
	// Nodes are the nodes the layers were assessed on, with what is known of each.
	Nodes []layer.NodeAssessment
	// Drifts are disagreements between the sources of the instance layer.
	Drifts []layer.Drift
	// Infrastructure are the groups of the infrastructure code (Options.Infrastructure), joined
	// to the nodes; nil when the audit was given none. CodeFiles counts the code's files.
	Infrastructure []CodeGroup
	CodeFiles      int

	Problems []inventory.Problem
	// Gaps are cluster resources that could not be read.
	Gaps     []inventory.Gap
	Skipped  []inventory.Skipped
	Warnings []string
	Files    int
	Docs     int
	// Clouds are the clouds audited and why they were chosen (Options.Clouds); empty when the
	// caller did not say.
	Clouds []inventory.CloudEvidence
	// Cluster names the live cluster audited; empty for manifests.
	Cluster string

	model *policy.Model
	// templateVersions are Options.TemplateVersions, for the findings.
	templateVersions []TemplateVersions
}

// Verdict returns subject i's cluster-policy verdict for endpoint j.
func (r *Report) Verdict(i, j int) policy.Verdict { return r.Verdicts[i][j] }

// Reachable is the overall verdict of subject i for endpoint j: reachable unless some layer
// denies it. Unknown never counts as a denial.
func (r *Report) Reachable(i, j int) bool {
	if !r.Verdicts[i][j].Allowed {
		return false
	}
	p := r.layers[i][j]
	return p.Instance.Decision != layer.Deny && p.Node.Decision != layer.Deny
}

// Exposure is one subject and endpoint with every layer's verdict.
type Exposure struct {
	// Reachable is the overall verdict.
	Reachable bool
	// Policy is the cluster-policy evaluation, with the rule that decided it.
	Policy policy.Verdict
	// ClusterPolicy, Node and Instance are the layers' verdicts.
	ClusterPolicy, Node, Instance layer.Verdict
	// DecidedBy is the deciding layer's verdict: the first denial, outermost layer first
	// (cluster policy, node, instance), else the cluster-policy verdict.
	DecidedBy layer.Verdict
}

// Exposure returns subject i's exposure to endpoint j.
func (r *Report) Exposure(i, j int) Exposure {
	pv := r.Verdicts[i][j]
	p := r.layers[i][j]
	e := Exposure{Policy: pv, ClusterPolicy: r.policyLayer(pv), Node: *p.Node, Instance: *p.Instance}
	e.Reachable, e.DecidedBy = layer.Combine(e.ClusterPolicy, e.Node, e.Instance)
	if e.Reachable {
		e.DecidedBy = e.ClusterPolicy
	}
	return e
}

// Layers returns the node and instance layers' verdicts of subject i for endpoint j.
func (r *Report) Layers(i, j int) layer.Pair { return r.layers[i][j] }

// policyLayer renders a cluster-policy verdict as a layer verdict. Its source is configured when
// a policy decided it, default when none selects the subject (Kubernetes allows all egress) or
// the subject is on the host network, and assumed when no engine was identified.
func (r *Report) policyLayer(v policy.Verdict) layer.Verdict {
	out := layer.Verdict{Layer: layer.ClusterPolicy, Decision: layer.Allow, Source: r.policySource(v), Reason: v.DecidedBy.String()}
	if !v.Allowed {
		out.Decision = layer.Deny
	}
	return out
}

// policySource is the source of a cluster-policy verdict (policyLayer).
func (r *Report) policySource(v policy.Verdict) layer.Source {
	switch {
	case v.DecidedBy.Tier == policy.TierDefault || v.DecidedBy.Tier == policy.TierHostNetwork:
		return layer.Default
	case r.model.Enforcement.Assumed:
		return layer.Assumed
	}
	return layer.Configured
}

// Exposures is the number of subject and endpoint pairs.
func (r *Report) Exposures() int { return len(r.Subjects) * len(r.Endpoints) }

// Complete reports whether every document, object and cluster resource could be evaluated.
func (r *Report) Complete() bool { return len(r.Problems) == 0 && len(r.Gaps) == 0 }

// Run evaluates an inventory against the endpoints and derives the findings, assuming every
// kind of policy in it is enforced (policy.AssumedEnforcement).
func Run(inv *inventory.Inventory, eps []endpoint.Endpoint) *Report {
	return RunFor(inv, eps, policy.AssumedEnforcement(inv))
}

// RunFor is RunWith with only the enforcement set.
func RunFor(inv *inventory.Inventory, eps []endpoint.Endpoint, enf policy.Enforcement) *Report {
	return RunWith(inv, eps, Options{Enforcement: enf})
}

// Options are what an audit needs besides the inventory and the endpoints.
type Options struct {
	// Enforcement says which policy kinds the cluster's policy engine enforces.
	Enforcement policy.Enforcement
	// InstanceSources add to the instance sources the inventory holds (layer.Sources), e.g. the
	// EC2 API.
	InstanceSources []layer.InstanceSource
	// Now is the time the agents' published states are judged against; zero means now.
	Now time.Time
	// Clouds say which clouds the endpoints were selected for, and why (inventory.InferClouds,
	// or --cloud); reported as they are.
	Clouds []inventory.CloudEvidence
	// Namespace, when set, restricts the report to the pods, workloads and findings of one
	// namespace, plus the cluster-wide findings. Everything else in the inventory (other
	// namespaces' add-ons, cluster-scoped policies, nodes) still informs the verdicts.
	Namespace string
	// Infrastructure is the infrastructure code's node groups (internal/iac): an instance
	// source after InstanceSources, and the groups the code findings (IMDS017–IMDS020) and
	// Report.Infrastructure describe.
	Infrastructure *iac.Source
	// InfrastructureFiles counts the files of infrastructure code read, for the report's
	// header.
	InfrastructureFiles int
	// TemplateVersions are the launch templates the nodes were launched from, as the EC2 API
	// describes their $Latest and $Default versions (finding IMDS021).
	TemplateVersions []TemplateVersions
}

// RunWith evaluates an inventory against the endpoints on every layer and derives the findings:
// the cluster-policy layer with only the policy kinds the cluster's engine enforces (a policy of
// a kind it does not enforce is a finding, IMDS013, and takes no part in any verdict), the node
// and instance layers from the nodes each subject runs on or may be scheduled on.
func RunWith(inv *inventory.Inventory, eps []endpoint.Endpoint, opts Options) *Report {
	enf := opts.Enforcement
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	model := policy.CompileFor(inv, enf)
	subjects := Subjects(inv)
	if opts.Namespace != "" {
		subjects = slices.DeleteFunc(subjects, func(s Subject) bool { return s.Namespace != opts.Namespace })
	}
	ps := make([]policy.Subject, len(subjects))
	for i := range subjects {
		ps[i] = subjects[i].PolicySubject()
	}
	var plugins []string
	for _, d := range engine.Detect(inv).Engines {
		plugins = append(plugins, string(d.Name))
	}
	given := slices.Clone(opts.InstanceSources)
	if opts.Infrastructure != nil {
		given = append(given, *opts.Infrastructure)
	}
	sources := layer.Sources(inv, now, given...)
	assessor := layer.NewAssessor(inv.Nodes, eps, sources, layer.PodNetwork(plugins), now)
	rows := make([][]layer.Pair, len(subjects))
	for i := range subjects {
		rows[i] = assessor.Row(layer.Who{Namespace: ps[i].Namespace, ServiceAccount: ps[i].ServiceAccount, UID: string(subjects[i].Meta.UID)}, subjects[i].Spec)
	}
	r := &Report{
		Endpoints: eps,
		Subjects:  subjects,
		Verdicts:  model.EvaluateAll(ps, eps),
		layers:    rows,
		Nodes:     assessor.Nodes,
		Drifts:    assessor.Drifts,
		Problems:  append(slices.Clone(inv.Problems), model.Rejected...),
		Gaps:      inv.Gaps,
		Cluster:   inv.Cluster,
		Clouds:    opts.Clouds,
		Skipped:   inv.Skipped,
		Warnings:  append(hostEndpointWarnings(inv, model), assessor.Warnings...),
		Files:     inv.Files,
		Docs:      inv.Documents,
		model:     model,

		templateVersions: opts.TemplateVersions,
	}
	isolated := map[string]bool{}
	for i := range ps {
		if !isolated[ps[i].Namespace] && model.Isolated(ps[i]) {
			isolated[ps[i].Namespace] = true
		}
	}
	for _, name := range inv.NamespaceNames() {
		if opts.Namespace != "" && name != opts.Namespace {
			continue
		}
		r.Namespaces = append(r.Namespaces, NamespaceSummary{
			Name:        name,
			Synthesized: inv.Namespaces[name].Synthesized,
			Control:     model.EgressControl(name),
			Isolated:    isolated[name],
			remedy:      defaultRemedy(eps, name, isolated[name], &model.Enforcement),
		})
	}
	if opts.Infrastructure != nil {
		r.Infrastructure = codeGroups(r, opts.Infrastructure, assessor)
		r.CodeFiles = opts.InfrastructureFiles
	}
	r.Findings = findings(r, inv)
	if opts.Namespace != "" {
		r.Findings = slices.DeleteFunc(r.Findings, func(f Finding) bool { return f.Namespace != "" && f.Namespace != opts.Namespace })
	}
	locate(r.Findings, inv)
	return r
}

// Explain returns the evaluation trace of subject i for every endpoint.
func (r *Report) Explain(i int) ([]policy.Verdict, [][]policy.Step) {
	return r.model.Explain(r.Subjects[i].PolicySubject(), r.Endpoints)
}

// hostEndpointWarnings adds to the input's warnings the Calico and Cilium policies that govern
// host endpoints, and, when nothing identifies the policy engine, that every kind of policy is
// assumed enforced.
func hostEndpointWarnings(inv *inventory.Inventory, model *policy.Model) []string {
	out := slices.Clone(inv.Warnings)
	if model.Enforcement.Assumed && hasPolicies(inv) {
		out = append(out, "no policy engine identified in the input: every kind of policy in it is assumed enforced, which overstates protection where the engine is off or does not implement a kind; add the engine's workloads and configuration to the input, or state it with --policy-engine NAME[@VERSION] (docs/engines.md)")
	}
	for _, h := range model.HostEndpointPolicies {
		out = append(out, h.String())
	}
	return out
}

// hasPolicies reports whether the input holds any network policy object.
func hasPolicies(inv *inventory.Inventory) bool {
	return len(inv.NetworkPolicies)+len(inv.AdminNetworkPolicies)+len(inv.BaselineAdminNetworkPolicies)+
		len(inv.ClusterNetworkPolicies)+len(inv.AWSClusterNetworkPolicies)+
		len(inv.CalicoGlobalNetworkPolicies)+len(inv.CalicoNetworkPolicies)+
		len(inv.CiliumNetworkPolicies)+len(inv.CiliumClusterwideNetworkPolicies) > 0
}

// Enforcement is what enforces pod egress policy in the audited cluster, as the audit used it.
func (r *Report) Enforcement() policy.Enforcement { return r.model.Enforcement }
