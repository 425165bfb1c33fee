package policy

import (
	"fmt"
	"hash/maphash"
	"maps"
	"runtime"
	"slices"
	"sync"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"k8s.io/apimachinery/pkg/labels"
)

// Model is the compiled policy of a cluster. It is immutable once built and safe for concurrent
// use.
type Model struct {
	namespaces map[string]*namespaceIndex
	anps       []*adminPolicy
	banps      []*adminPolicy
	// engine evaluates the policies, as the cluster's policy engine combines them.
	engine engine
	// Enforcement is what the model was compiled for: which kinds take part.
	Enforcement Enforcement

	// cnpAdmin and cnpBaseline are the ClusterNetworkPolicies by tier (cnp.go).
	cnpAdmin, cnpBaseline []*adminPolicy
	// nsSelectors are the distinct namespace selectors of the admin policies above
	// (indexNamespaceSelectors).
	nsSelectors []labels.Selector

	// Calico: the tiers by name, the egress policies, and service accounts' labels (by
	// namespace/name) for serviceAccountSelector.
	calicoTiers     map[string]*calicoTier
	calicoPolicies  []*calicoPolicy
	calicoGlobal    []*calicoPolicy // the GlobalNetworkPolicies of calicoPolicies
	serviceAccounts map[string]map[string]string

	// Cilium: the CiliumClusterwideNetworkPolicy rules that govern pod egress, by policy name.
	ciliumClusterwide []*ciliumSpec

	// Rejected lists policies the API server would refuse, and policies that use what imdsguard
	// cannot evaluate faithfully; they take no part in evaluation.
	Rejected []inventory.Problem
	// HostEndpointPolicies lists Calico policies that govern host endpoints rather than, or as
	// well as, pod egress.
	HostEndpointPolicies []HostEndpointPolicy
	// PriorityTies lists AdminNetworkPolicies sharing a priority.
	PriorityTies []PriorityTie
	// NotEnforced lists policies that the cluster's policy engine does not enforce (Enforcement
	// says so, or, when it is assumed, Cilium policies in the input show that admin policies
	// are not). They take no part in evaluation.
	NotEnforced []Note
}

// Note says why a policy takes no part in evaluation.
type Note struct {
	Object inventory.ObjectRef
	Reason string
}

// String renders the note for a report.
func (n Note) String() string {
	s := n.Object.String()
	if src := n.Object.Source.String(); src != "" {
		s += " (" + src + ")"
	}
	return s + ": " + n.Reason
}

// namespaceIndex holds, per namespace, the policies that can select its pods, so that the cost
// of evaluating a pod grows with the policies of its own namespace only.
type namespaceIndex struct {
	name   string
	labels labels.Set
	// netpols are the namespace's egress NetworkPolicies.
	netpols []*netpol
	// anps and banps are the admin policies whose subject selects this namespace.
	anps, banps []adminBinding
	// cnpAdmin and cnpBaseline are the ClusterNetworkPolicies whose subject selects it.
	cnpAdmin, cnpBaseline []adminBinding
	// calicoMembers are, with Calico, every policy that may select the namespace's pods, in
	// evaluation order.
	calicoMembers []calicoMember
	// calicoPolicies are, with Calico, the namespace's own Calico NetworkPolicies.
	calicoPolicies []*calicoPolicy
	// ciliumSpecs are, with Cilium, the rules of the namespace's CiliumNetworkPolicies, by
	// policy name.
	ciliumSpecs []*ciliumSpec
}

// Compile validates and indexes the policies of an inventory, assuming that every kind of
// policy in it is enforced (AssumedEnforcement). Invalid policies are rejected (listed in
// Rejected) and take no part in evaluation, as the API server would refuse them.
func Compile(inv *inventory.Inventory) *Model {
	return CompileFor(inv, AssumedEnforcement(inv))
}

// AssumedEnforcement is the enforcement an input implies when nothing in it identifies the
// policy engine: every kind is enforced, combined as Calico does when the input holds Calico
// objects, as Cilium does when it holds Cilium policies (and no Calico object), else as the
// Kubernetes APIs define.
func AssumedEnforcement(inv *inventory.Inventory) Enforcement {
	sem := SemanticsKubernetes
	switch {
	case hasCalico(inv):
		sem = SemanticsCalico
	case len(inv.CiliumNetworkPolicies)+len(inv.CiliumClusterwideNetworkPolicies) > 0:
		sem = SemanticsCilium
	}
	return Enforcement{Semantics: sem, Assumed: true}
}

func hasCalico(inv *inventory.Inventory) bool {
	return len(inv.CalicoGlobalNetworkPolicies)+len(inv.CalicoNetworkPolicies)+len(inv.CalicoTiers) > 0
}

// CompileFor validates and indexes the policies of an inventory that the given enforcement
// enforces, combined by its semantics. Policies of other kinds are listed in NotEnforced with
// the reason and take no part in evaluation.
func CompileFor(inv *inventory.Inventory, enf Enforcement) *Model {
	m := &Model{namespaces: map[string]*namespaceIndex{}, Enforcement: enf}
	inv, m.NotEnforced = enforcedOnly(inv, &enf)
	for _, name := range inv.NamespaceNames() {
		m.namespaces[name] = &namespaceIndex{name: name, labels: labels.Set(inv.Namespaces[name].Labels)}
	}
	compileNetworkPolicies(inv.NetworkPolicies, m)
	compileAdminPolicies(inv.AdminNetworkPolicies, inv.BaselineAdminNetworkPolicies, m)
	compileClusterNetworkPolicies(inv, m)
	switch enf.Semantics {
	case SemanticsCalico:
		compileCalico(inv, m)
		m.engine = calicoEngine{m}
		m.serviceAccounts = map[string]map[string]string{}
		for key, sa := range inv.ServiceAccounts {
			m.serviceAccounts[key] = sa.ServiceAccount.Labels
		}
		for _, p := range m.calicoPolicies {
			if p.namespace == "" {
				m.calicoGlobal = append(m.calicoGlobal, p)
				continue
			}
			ns := m.namespace(p.namespace)
			ns.calicoPolicies = append(ns.calicoPolicies, p)
		}
		reportCiliumBesideCalico(inv, m)
	case SemanticsCilium:
		compileCilium(inv, m)
		m.engine = ciliumEngine{m}
		reportAdminNotEnforced(inv, m)
		reportClusterNetworkPoliciesBesideCilium(inv, m)
	default:
		m.engine = kubernetesEngine{tiers: plainTiers(len(m.cnpAdmin)+len(m.cnpBaseline) > 0)}
	}
	m.indexNamespaceSelectors()
	for _, ns := range m.namespaces {
		m.bindNamespace(ns)
	}
	return m
}

// reportCiliumBesideCalico reports Cilium policies in an input that holds Calico objects too: a
// cluster's pod egress is enforced by one of them, and imdsguard evaluates Calico's.
func reportCiliumBesideCalico(inv *inventory.Inventory, m *Model) {
	why := fieldErrors{{"spec", "the input holds Calico policies too; a cluster enforces pod egress with one of them, and imdsguard evaluates Calico's"}}
	for _, c := range inv.CiliumNetworkPolicies {
		m.unsupported(inventory.ObjectRef{Kind: kindCiliumNetworkPolicy, Namespace: c.Policy.Namespace, Name: c.Policy.Name, Source: c.Source}, why)
	}
	for _, c := range inv.CiliumClusterwideNetworkPolicies {
		m.unsupported(inventory.ObjectRef{Kind: kindCiliumClusterwideNetworkPolicy, Name: c.Policy.Name, Source: c.Source}, why)
	}
}

// reportAdminNotEnforced lists the admin policies of an input with Cilium policies: Cilium does
// not implement AdminNetworkPolicy or BaselineAdminNetworkPolicy (policy.networking.k8s.io
// v1alpha1), so they protect no pod.
func reportAdminNotEnforced(inv *inventory.Inventory, m *Model) {
	const why = "Cilium does not implement AdminNetworkPolicy or BaselineAdminNetworkPolicy (v1alpha1): with Cilium enforcing pod egress this policy has no effect and is not evaluated"
	for _, a := range inv.AdminNetworkPolicies {
		m.NotEnforced = append(m.NotEnforced, Note{Object: inventory.ObjectRef{Kind: "AdminNetworkPolicy", Name: a.Policy.Name, Source: a.Source}, Reason: why})
	}
	for _, b := range inv.BaselineAdminNetworkPolicies {
		m.NotEnforced = append(m.NotEnforced, Note{Object: inventory.ObjectRef{Kind: "BaselineAdminNetworkPolicy", Name: b.Policy.Name, Source: b.Source}, Reason: why})
	}
}

// bindNamespace binds the cluster-wide policies to a namespace.
func (m *Model) bindNamespace(ns *namespaceIndex) {
	matched := make([]bool, len(m.nsSelectors))
	for i, sel := range m.nsSelectors {
		matched[i] = sel.Matches(ns.labels)
	}
	ns.anps = bindAdmin(m.anps, matched)
	ns.banps = bindAdmin(m.banps, matched)
	ns.cnpAdmin = bindAdmin(m.cnpAdmin, matched)
	ns.cnpBaseline = bindAdmin(m.cnpBaseline, matched)
	if m.engine.semantics() == SemanticsCalico {
		m.bindCalicoNamespace(ns)
	}
}

// bindAdmin lists the admin policies (in their order) whose namespace selector matched a
// namespace: matched[i] is whether m.nsSelectors[i] matches it.
func bindAdmin(policies []*adminPolicy, matched []bool) []adminBinding {
	var out []adminBinding
	for _, p := range policies {
		if matched[p.subject.nsSelector] {
			out = append(out, adminBinding{policy: p, pods: p.subject.pods})
		}
	}
	return out
}

// indexNamespaceSelectors collects the distinct namespace selectors of the admin policies (ANP,
// BANP, ClusterNetworkPolicy of both kinds) into m.nsSelectors and points each policy at its
// own. Many policies share one (a team's policies select the team's namespaces), so binding a
// namespace matches each distinct selector once: with 5,000 ClusterNetworkPolicies and 5,000
// namespaces that is the difference between 25 million selector matches and a few thousand.
func (m *Model) indexNamespaceSelectors() {
	index := map[string]int{}
	for _, list := range [][]*adminPolicy{m.anps, m.banps, m.cnpAdmin, m.cnpBaseline} {
		for _, p := range list {
			key := p.subject.namespaces.String()
			i, ok := index[key]
			if !ok {
				i = len(m.nsSelectors)
				index[key] = i
				m.nsSelectors = append(m.nsSelectors, p.subject.namespaces)
			}
			p.subject.nsSelector = i
		}
	}
}

// namespace returns the index of a namespace, creating it (with only the metadata.name label)
// when the inventory did not list it. Only Compile may call it: it writes the index.
func (m *Model) namespace(name string) *namespaceIndex {
	ns, ok := m.namespaces[name]
	if !ok {
		ns = &namespaceIndex{name: name, labels: labels.Set{"kubernetes.io/metadata.name": name}}
		m.namespaces[name] = ns
	}
	return ns
}

// lookup returns the index of a namespace without writing the model; a namespace the model
// does not know gets a throw-away index bound to the admin policies.
func (m *Model) lookup(name string) *namespaceIndex {
	if ns, ok := m.namespaces[name]; ok {
		return ns
	}
	ns := &namespaceIndex{name: name, labels: labels.Set{"kubernetes.io/metadata.name": name}}
	m.bindNamespace(ns)
	return ns
}

// Why a policy is left out of evaluation, appended to each of its problems.
const (
	whyInvalid     = "the API server would reject this policy; it is not evaluated"
	whyUnsupported = "imdsguard cannot evaluate this policy faithfully; it is not evaluated"
	whyRefused     = "Cilium's agent refuses this policy and does not enforce it; it is not evaluated"
)

// leaveOut records a policy left out of evaluation, one problem per field error, so the report
// says it is incomplete.
func (m *Model) leaveOut(ref inventory.ObjectRef, errs fieldErrors, why string) {
	r := ref
	for _, e := range errs {
		m.Rejected = append(m.Rejected, inventory.Problem{
			Source:  ref.Source,
			Object:  &r,
			Field:   e.field,
			Message: e.message + " (" + why + ")",
		})
	}
}

// reject records a policy the API server would reject.
func (m *Model) reject(ref inventory.ObjectRef, errs fieldErrors) { m.leaveOut(ref, errs, whyInvalid) }

// unsupported records a policy that uses what imdsguard cannot evaluate faithfully.
func (m *Model) unsupported(ref inventory.ObjectRef, errs fieldErrors) {
	m.leaveOut(ref, errs, whyUnsupported)
}

// EgressControl says which policy tiers can restrict egress of pods in a namespace.
type EgressControl struct {
	NetworkPolicies []string // egress NetworkPolicies in the namespace
	Admin           []string // AdminNetworkPolicies whose subject includes the namespace
	Baseline        []string // BaselineAdminNetworkPolicy, when its subject includes it
	// ClusterAdmin and ClusterBaseline are the ClusterNetworkPolicies of the Admin and Baseline
	// tiers whose subject includes the namespace.
	ClusterAdmin, ClusterBaseline []string
	// Calico lists the Calico egress policies that may select pods of the namespace: its
	// NetworkPolicies and the GlobalNetworkPolicies whose namespaceSelector includes it.
	Calico []string
	// Cilium lists the Cilium egress policies that may select pods of the namespace.
	Cilium []string
	// Isolating lists, of the policies above, those that may egress-isolate pods of the
	// namespace (Model.Isolated): next to them a NetworkPolicy allowing all egress could widen
	// what they restrict.
	Isolating []string
}

// Any reports whether any policy can restrict egress in the namespace.
func (c EgressControl) Any() bool {
	return len(c.NetworkPolicies)+len(c.Admin)+len(c.Baseline)+len(c.ClusterAdmin)+len(c.ClusterBaseline)+len(c.Calico)+len(c.Cilium) > 0
}

// EgressControl returns the policies that can restrict egress in a namespace, as the model's
// engine enforces them.
func (m *Model) EgressControl(namespace string) EgressControl {
	ns, ok := m.namespaces[namespace]
	if !ok {
		return EgressControl{}
	}
	return m.engine.control(ns)
}

// Evaluate decides each endpoint for one subject; out must have len(eps) elements.
func (m *Model) Evaluate(s Subject, eps []endpoint.Endpoint, out []Verdict) {
	m.evaluate(s, eps, out, nil)
}

// Explain decides one subject for each endpoint and returns, per endpoint, the verdict and the
// full trace of the tiers, policies and rules consulted.
func (m *Model) Explain(s Subject, eps []endpoint.Endpoint) ([]Verdict, [][]Step) {
	out := make([]Verdict, len(eps))
	traces := make([][]Step, len(eps))
	for i := range eps {
		tr := &tracer{}
		m.evaluate(s, eps[i:i+1], out[i:i+1], tr)
		traces[i] = tr.steps
	}
	return out, traces
}

func (m *Model) evaluate(s Subject, eps []endpoint.Endpoint, out []Verdict, tr *tracer) {
	if s.HostNetwork {
		tr.add(TierHostNetwork, "", NoRule, "hostNetwork: true: the pod shares the node's network namespace; AdminNetworkPolicy, NetworkPolicy and BaselineAdminNetworkPolicy do not apply")
		for i := range out {
			out[i] = Verdict{Allowed: true, DecidedBy: Reason{Tier: TierHostNetwork, Rule: NoRule, Action: ActionAllow}}
		}
		return
	}
	b := m.engine.bind(m.lookup(s.Namespace), s, tr)
	for i := range eps {
		out[i] = decided(b, &eps[i], tr)
	}
}

// decided is the bound engine's verdict for one endpoint; when no policy decides, the traffic
// is allowed, as Kubernetes allows what no policy restricts.
func decided(b boundTier, ep *endpoint.Endpoint, tr *tracer) Verdict {
	switch o, r := b.decide(ep, tr); o {
	case allow:
		return Verdict{Allowed: true, DecidedBy: r}
	case deny:
		return Verdict{Allowed: false, DecidedBy: r}
	}
	tr.add(TierDefault, "", NoRule, "no tier decided: allowed by default")
	return Verdict{Allowed: true, DecidedBy: Reason{Tier: TierDefault, Rule: NoRule, Action: ActionAllow}}
}

// EvaluateAll decides every endpoint for every subject, in parallel, and returns one row of
// verdicts per subject (row[j] for eps[j]). Subjects with the same namespace, service account,
// labels and host networking share one evaluation and one row: rows must not be modified.
func (m *Model) EvaluateAll(subjects []Subject, eps []endpoint.Endpoint) [][]Verdict {
	out := make([][]Verdict, len(subjects))
	if len(subjects) == 0 {
		return out
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, len(subjects)/256))
	chunk := (len(subjects) + workers - 1) / workers
	seed := maphash.MakeSeed()
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(subjects))
		if lo >= hi {
			break
		}
		wg.Go(func() {
			// memo maps what a verdict depends on to the subjects evaluated with it so far;
			// the label hash is checked by comparing the labels themselves.
			memo := map[memoKey][]int{}
			// Pods with different labels mostly get the same verdicts as the pod before
			// them: such a row is shared too, and the fresh one reused for the next pod.
			var last, fresh []Verdict
			for i := lo; i < hi; i++ {
				s := &subjects[i]
				k := memoKey{namespace: s.Namespace, serviceAccount: s.serviceAccount(), hostNetwork: s.HostNetwork, labels: labelHash(seed, s.Labels)}
				if first, ok := findEqual(memo[k], subjects, s.Labels); ok {
					out[i] = out[first]
					continue
				}
				memo[k] = append(memo[k], i)
				if fresh == nil {
					fresh = make([]Verdict, len(eps))
				}
				m.Evaluate(*s, eps, fresh)
				if slices.Equal(fresh, last) {
					out[i] = last
					continue
				}
				out[i], last, fresh = fresh, fresh, nil
			}
		})
	}
	wg.Wait()
	return out
}

// memoKey is what a verdict depends on: destinations are outside the cluster, so only the
// namespace, service account, host networking and labels of a subject matter.
type memoKey struct {
	namespace      string
	serviceAccount string
	hostNetwork    bool
	labels         uint64
}

// labelHash hashes a label set independently of map order (a sum of per-label hashes).
func labelHash(seed maphash.Seed, labels map[string]string) uint64 {
	var sum uint64
	for k, v := range labels {
		h := maphash.String(seed, k)
		sum += (h ^ maphash.String(seed, v)*0x9e3779b97f4a7c15) * 0xff51afd7ed558ccd
	}
	return sum
}

// findEqual returns the first of candidates whose labels equal labels.
func findEqual(candidates []int, subjects []Subject, labels map[string]string) (int, bool) {
	for _, c := range candidates {
		if maps.Equal(subjects[c].Labels, labels) {
			return c, true
		}
	}
	return 0, false
}

// String renders a verdict as "allowed by ..." or "denied by ...".
func (v Verdict) String() string {
	word := "denied"
	if v.Allowed {
		word = "allowed"
	}
	return fmt.Sprintf("%s: %s", word, v.DecidedBy)
}

// Isolated reports whether the policies the engine enforces restrict the subject's egress so
// that a namespaced NetworkPolicy allowing all egress could widen it: a Kubernetes
// NetworkPolicy selects it, or with Calico a policy in a tier that denies what it does not
// allow, or with Cilium a rule that puts it into egress default-deny.
func (m *Model) Isolated(s Subject) bool {
	if s.HostNetwork {
		return false
	}
	return m.engine.isolated(m.lookup(s.Namespace), s)
}
