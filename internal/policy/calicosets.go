package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/policy/calicoselector"
)

// Calico network sets. A GlobalNetworkSet or NetworkSet is a labelled list of networks: a rule's
// destination selector selects the network sets whose labels match it as well as endpoints, so
// an address outside the cluster, which no pod has, matches a destination selector exactly when
// a selected network set holds it. How a rule's selector, namespaceSelector, serviceAccounts and
// notSelector combine follows Calico's conversion of rules for Felix (libcalico-go
// updateprocessors/rules.go, GetEntityRuleSelector):
//
//   - In a namespaced NetworkPolicy, a destination with a selector, serviceAccounts, notSelector
//     or namespaceSelector selects only resources of the policy's namespace, unless a
//     namespaceSelector says which namespaces; in a GlobalNetworkPolicy, resources of every
//     namespace and global ones, unless a namespaceSelector says which.
//   - A namespaceSelector's all() selects every namespaced resource, global() only resources
//     without a namespace (GlobalNetworkSets); its labels are the namespace's.
//   - serviceAccounts select endpoints by their service account: names never select a network
//     set, and a service account selector sees no labels on one.
//   - notSelector excludes what it selects, in every namespace.
//
// A namespaced NetworkSet carries, for selectors, its own labels, projectcalico.org/namespace and
// its namespace's labels as pcns.<key> (libcalico-go networksetprocessor.go: the namespace's
// profile is its parent); a GlobalNetworkSet only its own labels.

// calicoNetworkSet is a compiled GlobalNetworkSet (namespace "") or NetworkSet.
type calicoNetworkSet struct {
	name      string
	namespace string
	labels    map[string]string
	nsLabels  calicoNamedLabels
	nets      []netip.Prefix
}

// Get implements calicoselector.Labels: the set's labels as Calico's selectors see them.
func (s *calicoNetworkSet) Get(key string) (string, bool) {
	if s.namespace != "" {
		if key == "projectcalico.org/namespace" {
			return s.namespace, true
		}
		if k, ok := strings.CutPrefix(key, "pcns."); ok {
			return s.nsLabels.Get(k)
		}
	}
	v, ok := s.labels[key]
	return v, ok
}

// selectedBy evaluates a selector for the set: global() selects a GlobalNetworkSet.
func (s *calicoNetworkSet) selectedBy(sel *calicoselector.Selector) bool {
	if s.namespace == "" {
		return sel.MatchesGlobal(s)
	}
	return sel.Matches(s)
}

// selectedWithoutLabels evaluates a selector over no labels, as one that reads labels a set
// cannot have (a service account's) sees it.
func (s *calicoNetworkSet) selectedWithoutLabels(sel *calicoselector.Selector) bool {
	if s.namespace == "" {
		return sel.MatchesGlobal(calicoselector.Set(nil))
	}
	return sel.Matches(calicoselector.Set(nil))
}

// namespaceLabels are the labels a rule's namespaceSelector sees: the namespace's, none for a
// GlobalNetworkSet.
func (s *calicoNetworkSet) namespaceLabels() calicoselector.Labels {
	if s.namespace == "" {
		return calicoselector.Set(nil)
	}
	return &s.nsLabels
}

// ref names the set in reasons: "GlobalNetworkSet name" or "NetworkSet namespace/name".
func (s *calicoNetworkSet) ref() string {
	if s.namespace == "" {
		return "GlobalNetworkSet " + s.name
	}
	return "NetworkSet " + s.namespace + "/" + s.name
}

// holding returns the set's first net that holds addr.
func (s *calicoNetworkSet) holding(addr netip.Addr) (netip.Prefix, bool) {
	for _, n := range s.nets {
		if n.Contains(addr) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// calicoSets is a list of network sets.
type calicoSets []*calicoNetworkSet

// containing returns the first set that holds addr, or nil.
func (l calicoSets) containing(addr netip.Addr) *calicoNetworkSet {
	for _, s := range l {
		if _, ok := s.holding(addr); ok {
			return s
		}
	}
	return nil
}

// describe lists the sets for a trace.
func (l calicoSets) describe() string {
	if len(l) == 0 {
		return "no network set of the input (and no pod has an address outside the cluster)"
	}
	names := make([]string, 0, 3)
	for _, s := range l[:min(len(l), 3)] {
		names = append(names, s.ref())
	}
	if len(l) > 3 {
		names = append(names, fmt.Sprintf("%d more", len(l)-3))
	}
	return strings.Join(names, ", ")
}

// calicoDestination is a rule's destination selection, resolved against the network sets.
type calicoDestination struct {
	// selects is set when the destination must be a selected endpoint or network set; selected
	// are the network sets it selects.
	selects  bool
	selected calicoSets
	// excluded are the network sets notSelector selects.
	excluded    calicoSets
	notSelector string
	// text describes the selection in reasons ("selector role == 'imds'").
	text string
	// services is "namespace/name" of a destination services match: Service endpoints only.
	services string
}

// compileCalicoDestination validates a rule's destination selectors and resolves them against
// the network sets. namespace is the policy's ("" for a GlobalNetworkPolicy).
func compileCalicoDestination(d *calicov3.EntityRule, field, namespace string, sets []*calicoNetworkSet, errs *fieldErrors) calicoDestination {
	var dst calicoDestination
	sel := parseCalicoSelector(d.Selector, field+".selector", errs)
	nsSel := parseCalicoSelector(d.NamespaceSelector, field+".namespaceSelector", errs)
	notSel := parseCalicoSelector(d.NotSelector, field+".notSelector", errs)
	var saNames []string
	var saSel *calicoselector.Selector
	if sa := d.ServiceAccounts; sa != nil {
		saSel = parseCalicoSelector(sa.Selector, field+".serviceAccounts.selector", errs)
		saNames = sa.Names
	}
	if d.Services != nil {
		dst.services = d.Services.Namespace + "/" + d.Services.Name
	}
	hasSA := len(saNames) > 0 || saSel != nil
	scoped := nsSel != nil || namespace != ""
	dst.selects = sel != nil || hasSA || (scoped && (notSel != nil || nsSel != nil))
	var text []string
	if sel != nil {
		text = append(text, "selector "+d.Selector)
	}
	if nsSel != nil {
		text = append(text, "namespaceSelector "+d.NamespaceSelector)
	}
	if hasSA {
		text = append(text, "serviceAccounts")
	}
	if len(text) == 0 && dst.selects {
		text = append(text, "notSelector's scope, namespace "+namespace)
	}
	dst.text = strings.Join(text, ", ")
	if notSel != nil {
		dst.notSelector = d.NotSelector
	}
	for _, s := range sets {
		if notSel != nil && s.selectedBy(notSel) {
			dst.excluded = append(dst.excluded, s)
		}
		if !dst.selects {
			continue
		}
		// Calico turns serviceAccounts into a selector over the pcsa.<key> labels and
		// projectcalico.org/serviceaccount, which no network set has: names never select a
		// set, and a selector is evaluated over no labels (so "role != 'ci'" does).
		if len(saNames) > 0 || (saSel != nil && !s.selectedWithoutLabels(saSel)) {
			continue
		}
		if sel != nil && !s.selectedBy(sel) {
			continue
		}
		switch {
		case nsSel != nil:
			if !nsSel.MatchesNamespaceOf(s.namespaceLabels(), s.namespace != "") {
				continue
			}
		case namespace != "":
			if s.namespace != namespace {
				continue
			}
		}
		dst.selected = append(dst.selected, s)
	}
	return dst
}

// compileCalicoNetworkSets validates and compiles the network sets of an inventory.
func compileCalicoNetworkSets(inv *inventory.Inventory, m *Model) []*calicoNetworkSet {
	var out []*calicoNetworkSet
	add := func(ref inventory.ObjectRef, meta *calicov3.NetworkSetSpec, set *calicoNetworkSet) {
		var errs fieldErrors
		for i, n := range meta.Nets {
			p, err := parseCalicoNet(n)
			if err != nil {
				errs.add(fmt.Sprintf("spec.nets[%d]", i), "%v", err)
				continue
			}
			set.nets = append(set.nets, p.Masked())
		}
		if len(errs) > 0 {
			m.leaveOut(ref, errs, "the network set is left out: rules that select it are evaluated without it")
			return
		}
		if len(meta.AllowedEgressDomains) > 0 {
			m.leaveOut(ref, fieldErrors{{"spec.allowedEgressDomains", "domain names in network sets are a Calico Enterprise feature"}},
				"imdsguard evaluates the set's nets only")
		}
		out = append(out, set)
	}
	for _, g := range inv.CalicoGlobalNetworkSets {
		add(inventory.ObjectRef{Kind: "GlobalNetworkSet", Name: g.Set.Name, Source: g.Source}, &g.Set.Spec,
			&calicoNetworkSet{name: g.Set.Name, labels: g.Set.Labels})
	}
	for _, n := range inv.CalicoNetworkSets {
		ns := m.namespace(n.Set.Namespace)
		add(inventory.ObjectRef{Kind: "NetworkSet", Namespace: n.Set.Namespace, Name: n.Set.Name, Source: n.Source}, &n.Set.Spec,
			&calicoNetworkSet{name: n.Set.Name, namespace: n.Set.Namespace, labels: n.Set.Labels, nsLabels: calicoNamedLabels{ns.labels, ns.name}})
	}
	return out
}
