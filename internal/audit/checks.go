package audit

import (
	"cmp"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

var wireServer = netip.MustParseAddr("168.63.129.16")

// unit is the subjects of one workload in one namespace: its template and its pods (or one
// bare pod). Findings are reported per unit so a Deployment with fifty pods is one finding.
type unit []int

// units splits the (sorted) subjects into runs of the same namespace and workload.
func units(subjects []Subject) []unit {
	var out []unit
	for i := 0; i < len(subjects); {
		j := i + 1
		for j < len(subjects) && subjects[j].Namespace == subjects[i].Namespace && subjects[j].Workload == subjects[i].Workload {
			j++
		}
		u := make(unit, j-i)
		for k := range u {
			u[k] = i + k
		}
		out = append(out, u)
		i = j
	}
	return out
}

func findings(r *Report, inv *inventory.Inventory) []Finding {
	var out []Finding
	for _, p := range r.Problems {
		f := Finding{Rule: RuleInput, Severity: RuleInput.Severity, Message: p.Error(),
			Remediation: "Fix the document at " + p.Source.String() + " and run the audit again; until then verdicts that depend on it are not trustworthy."}
		if p.Object != nil {
			f.Objects = []inventory.ObjectRef{*p.Object}
			f.Namespace = p.Object.Namespace
		} else {
			f.Objects = []inventory.ObjectRef{{Kind: "File", Name: p.Source.File, Source: p.Source}}
		}
		out = append(out, f)
	}
	for _, g := range r.Gaps {
		out = append(out, Finding{Rule: RuleUnreadable, Severity: RuleUnreadable.Severity,
			Objects:     []inventory.ObjectRef{{Kind: "Resource", Name: g.Resource}},
			Message:     fmt.Sprintf("%s could not be read: %s; incomplete: %s", g.Resource, g.Reason, g.Affects),
			Remediation: gapRemedy(g)})
	}
	for _, t := range r.model.PriorityTies {
		kinds := [2]string{"AdminNetworkPolicy", "AdminNetworkPolicy"}
		what := "AdminNetworkPolicies"
		switch t.Kind {
		case "":
		case policy.TieAdminAndClusterAdmin:
			kinds[1], what = "ClusterNetworkPolicy", t.Kind+":"
		default:
			kinds, what = [2]string{"ClusterNetworkPolicy", "ClusterNetworkPolicy"}, t.Kind+" policies"
		}
		out = append(out, Finding{Rule: RulePriorityTie, Severity: RulePriorityTie.Severity,
			Objects:     []inventory.ObjectRef{{Kind: kinds[0], Name: t.Policies[0]}, {Kind: kinds[1], Name: t.Policies[1]}},
			Message:     fmt.Sprintf("%s %s and %s both have priority %d; their order is implementation-defined", what, t.Policies[0], t.Policies[1], t.Priority),
			Remediation: fmt.Sprintf("Give %s %s or %s %s a distinct priority.", kinds[0], t.Policies[0], kinds[1], t.Policies[1])})
	}
	for _, n := range r.model.NotEnforced {
		out = append(out, Finding{Rule: RuleNotEnforced, Severity: RuleNotEnforced.Severity, Namespace: n.Object.Namespace,
			Objects:     []inventory.ObjectRef{n.Object},
			Message:     fmt.Sprintf("%s is %s", refName(n.Object), n.Reason),
			Remediation: notEnforcedRemedy(r.model.Enforcement, n.Object)})
	}
	nsByName := map[string]*NamespaceSummary{}
	for i := range r.Namespaces {
		nsByName[r.Namespaces[i].Name] = &r.Namespaces[i]
	}
	out = append(out, namespaceFindings(r, nsByName)...)
	// Units are independent: split them over the cores, each part with its own findings and
	// broad-rule tally, then join the parts in order.
	all := units(r.Subjects)
	parts := min(runtime.GOMAXPROCS(0), max(1, len(all)/512))
	found := make([][]Finding, parts)
	tallies := make([]map[policy.Reason]*broadUse, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(all)/parts, (p+1)*len(all)/parts
		wg.Go(func() {
			tally := map[policy.Reason]*broadUse{}
			texts := &reachTexts{}
			var fs []Finding
			for _, u := range all[lo:hi] {
				ns := nsByName[r.Subjects[u[0]].Namespace]
				fs = appendReachFindings(fs, r, u, ns, tally, texts)
				fs = appendAddonFindings(fs, r, u)
				fs = appendIdentityFindings(fs, r, inv, u)
			}
			found[p], tallies[p] = fs, tally
		})
	}
	wg.Wait()
	broad := map[policy.Reason]*broadUse{}
	for p := range parts {
		out = append(out, found[p]...)
		for reason, use := range tallies[p] {
			b := broad[reason]
			if b == nil {
				broad[reason] = use
				continue
			}
			b.subjects += use.subjects
			for _, e := range use.endpoints {
				if !slices.Contains(b.endpoints, e) {
					b.endpoints = append(b.endpoints, e)
				}
			}
		}
	}
	out = append(out, broadFindings(r, broad)...)
	out = append(out, singleLayerFindings(r)...)
	out = append(out, instanceFindings(r)...)
	out = append(out, codeFindings(r.Infrastructure)...)
	out = append(out, templateFindings(r, r.templateVersions)...)
	// Order by severity, namespace and rule, keeping discovery order within those. Sorting
	// indices moves 4-byte ints instead of whole findings.
	order := make([]int32, len(out))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		fa, fb := &out[a], &out[b]
		return cmp.Or(
			cmp.Compare(fb.Severity, fa.Severity),
			cmp.Compare(fa.Namespace, fb.Namespace),
			cmp.Compare(fa.Rule.ID, fb.Rule.ID),
			cmp.Compare(a, b),
		)
	})
	sorted := make([]Finding, len(out))
	for i, k := range order {
		sorted[i] = out[k]
	}
	return sorted
}

// namespaceFindings reports namespaces with pods but no egress control at all.
func namespaceFindings(r *Report, nsByName map[string]*NamespaceSummary) []Finding {
	populated := map[string]bool{}
	for i := range r.Subjects {
		if !r.Subjects[i].Spec.HostNetwork {
			populated[r.Subjects[i].Namespace] = true
		}
	}
	var out []Finding
	for _, ns := range r.Namespaces {
		if !populated[ns.Name] || ns.Control.Any() {
			continue
		}
		out = append(out, Finding{Rule: RuleNoEgressControl, Severity: RuleNoEgressControl.Severity, Namespace: ns.Name,
			Objects:     []inventory.ObjectRef{{Kind: "Namespace", Name: ns.Name}},
			Message:     fmt.Sprintf("namespace %s has no NetworkPolicy with egress rules and no AdminNetworkPolicy or BaselineAdminNetworkPolicy selects it: every pod may reach every metadata endpoint", ns.Name),
			Remediation: ns.remedy})
	}
	return out
}

// credentialPrefixes renders the except entries for every credential endpoint of one family.
func credentialPrefixes(eps []endpoint.Endpoint, v4 bool) string {
	var s []string
	for _, ep := range eps {
		p := ep.Prefix().String()
		if ep.Role == endpoint.Credentials && ep.Address.Is4() == v4 && !slices.Contains(s, p) {
			s = append(s, p)
		}
	}
	return strings.Join(s, ", ")
}

// defaultRemedy is the fix for a namespace whose pods no policy restricts.
func defaultRemedy(eps []endpoint.Endpoint, ns string, isolated bool, enf *policy.Enforcement) string {
	v4, v6 := credentialPrefixes(eps, true), credentialPrefixes(eps, false)
	except := "ipBlock 0.0.0.0/0 except [" + v4 + "]"
	if v6 != "" {
		except += " and ipBlock ::/0 except [" + v6 + "]"
	}
	deny := clusterDenyRemedy(strings.TrimSuffix(v4+", "+v6, ", "), ns, enf)
	if isolated {
		return fmt.Sprintf("Some pods in namespace %s are already egress-isolated: an allow-all-except-metadata NetworkPolicy would open them to the internet. Use a deny-capable layer instead. %s", ns, deny)
	}
	if ok, _ := enf.Enforces(policy.KindNetworkPolicy); !ok {
		return fmt.Sprintf("NetworkPolicy is not enforced in this cluster, so it cannot help here. %s", deny)
	}
	return fmt.Sprintf("No pod in namespace %s is egress-isolated, so a NetworkPolicy with podSelector {} and egress to %s, plus a namespaceSelector: {} peer for in-cluster traffic, widens nothing. %s On AWS also require IMDSv2 with a hop limit of 1.", ns, except, deny)
}

// clusterDenyRemedy names the cluster-wide deny that the cluster's engine enforces, preferring
// the Kubernetes API kinds; with no such kind, the node agent.
func clusterDenyRemedy(networks, ns string, enf *policy.Enforcement) string {
	enforces := func(k policy.Kind) bool { ok, _ := enf.Enforces(k); return ok }
	switch {
	case enf.Assumed:
		return fmt.Sprintf("A cluster-wide Deny for networks [%s] selecting namespace %s cannot widen anyone's egress: a ClusterNetworkPolicy in the Admin tier, or an AdminNetworkPolicy, Calico GlobalNetworkPolicy or Cilium egressDeny, whichever your network plugin enforces (imdsguard generate --layer auto picks it); the node agent works everywhere.", networks, ns)
	case enforces(policy.KindClusterNetworkPolicy):
		return fmt.Sprintf("A ClusterNetworkPolicy in the Admin tier with a Deny rule for networks [%s] selecting namespace %s cannot widen anyone's egress and is the preferred cluster-wide fix (%s enforces it).", networks, ns, enf.Engine)
	case enforces(policy.KindAdminNetworkPolicy):
		return fmt.Sprintf("An AdminNetworkPolicy with a Deny rule for networks [%s] selecting namespace %s cannot widen anyone's egress and is the preferred cluster-wide fix (%s enforces it).", networks, ns, enf.Engine)
	case enforces(policy.KindCalico):
		return fmt.Sprintf("A Calico GlobalNetworkPolicy denying networks [%s], in a tier before the default tier, cannot widen anyone's egress (%s enforces it).", networks, enf.Engine)
	case enforces(policy.KindCilium):
		return fmt.Sprintf("A CiliumClusterwideNetworkPolicy with egressDeny to [%s] and enableDefaultDeny.egress false cannot widen anyone's egress (%s enforces it).", networks, enf.Engine)
	}
	return fmt.Sprintf("No cluster-wide deny kind is enforced here: block [%s] on the node (imdsguard agent) and in the instance settings.", networks)
}

// reachRemedy names the fix for an allowed verdict, from what decided it.
func reachRemedy(eps []endpoint.Endpoint, ep endpoint.Endpoint, ns *NamespaceSummary, v policy.Verdict) string {
	d := v.DecidedBy
	switch d.Tier {
	case policy.TierDefault:
		return ns.remedy
	case policy.TierNetworkPolicy:
		if strings.HasPrefix(d.Peer, "ipBlock") {
			return fmt.Sprintf("Add %s to the except list of %s in egress rule %d of NetworkPolicy %s (or remove the allowance if the pod must not read instance metadata).", ep.Prefix(), d.Peer, d.Rule, d.Policy)
		}
		fam := "0.0.0.0/0"
		if ep.Address.Is6() {
			fam = "::/0"
		}
		return fmt.Sprintf("Egress rule %d of NetworkPolicy %s allows every destination: give it peers instead, e.g. ipBlock %s except [%s] and a namespaceSelector: {} peer for in-cluster traffic.", d.Rule, d.Policy, fam, ep.Prefix())
	case policy.TierAdmin:
		return fmt.Sprintf("AdminNetworkPolicy %s rule %d allows %s via %s: narrow that rule, or put a Deny rule for %s before it (or in an AdminNetworkPolicy with a lower priority number).", d.Policy, d.Rule, ep.Destination(), d.Peer, ep.Prefix())
	case policy.TierBaseline:
		return fmt.Sprintf("BaselineAdminNetworkPolicy %s rule %d allows %s via %s: put a Deny rule for %s before it.", d.Policy, d.Rule, ep.Destination(), d.Peer, ep.Prefix())
	case policy.TierClusterAdmin, policy.TierClusterBaseline:
		return fmt.Sprintf("%s %s (%s tier) rule %d accepts %s via %s: narrow that rule, or put a Deny rule for %s before it (or in a %s tier ClusterNetworkPolicy with a lower priority number).", d.Kind, d.Policy, d.Tier, d.Rule, ep.Destination(), d.Peer, ep.Prefix(), d.Tier)
	case policy.TierCalico:
		return fmt.Sprintf("%s %s (Calico tier %s) egress rule %d allows %s via %s: put a rule 'action: Deny, destination: {nets: [%s]}' before it, or a GlobalNetworkPolicy denying %s in a tier with a lower order.", d.Kind, d.Policy, d.CalicoTier, d.Rule, ep.Destination(), d.Peer, ep.Prefix(), ep.Prefix())
	case policy.TierCilium:
		return fmt.Sprintf("%s %s %s allows %s via %s: add an egressDeny rule with toCIDR %s (deny wins over every allow), or narrow the allow rule.", d.Kind, d.Policy, d.RuleName, ep.Destination(), d.Peer, ep.Prefix())
	}
	return ""
}

// reachTexts keeps the parts of reach findings' texts that repeat, by endpoint and reason:
// thousands of workloads share a few reasons. One per goroutine.
type reachTexts struct {
	reaches, remedies map[reachKey]string
	// The last group of subjects, its objects and its description: a unit's subjects mostly
	// form the same group for every endpoint, whose findings then share them.
	lastGroup   unit
	lastObjects []inventory.ObjectRef
	lastText    string
	// endpoints are the one-endpoint lists of findings, by endpoint index.
	endpoints map[int][]string
}

// endpoint returns the list naming endpoint j alone.
func (t *reachTexts) endpoint(eps []endpoint.Endpoint, j int) []string {
	l, ok := t.endpoints[j]
	if !ok {
		if t.endpoints == nil {
			t.endpoints = map[int][]string{}
		}
		l = []string{eps[j].Name}
		t.endpoints[j] = l
	}
	return l
}

// group returns the objects and the description of a group of subjects.
func (t *reachTexts) group(r *Report, g unit) ([]inventory.ObjectRef, string) {
	if t.lastObjects == nil || !slices.Equal(g, t.lastGroup) {
		t.lastGroup, t.lastObjects, t.lastText = g, objects(r, g), describe(r, g)
	}
	return t.lastObjects, t.lastText
}

type reachKey struct {
	endpoint int
	reason   policy.Reason
	layers   layer.Pair
}

// reach returns "NAME (DESTINATION): REASON; node LAYER; instance LAYER" for the group g and
// endpoint j: what let it through on each layer. The node and instance layers give their
// reasons when the whole group shares them, else their decisions and sources.
func (t *reachTexts) reach(r *Report, g unit, j int) string {
	eps, v, p := r.Endpoints, r.Verdict(g[0], j), r.layers[g[0]][j]
	for _, i := range g[1:] {
		if q := r.layers[i][j]; q != p {
			p = layer.Pair{Node: &layer.Verdict{Layer: layer.Node, Decision: p.Node.Decision, Source: p.Node.Source},
				Instance: &layer.Verdict{Layer: layer.Instance, Decision: p.Instance.Decision, Source: p.Instance.Source}}
			break
		}
	}
	k := reachKey{j, v.DecidedBy, p}
	if p.Node.Reason == "" {
		k.layers = layer.Pair{} // decisions only: the group's key says them
	}
	s, ok := t.reaches[k]
	if !ok || p.Node.Reason == "" {
		s = fmt.Sprintf("%s (%s): %s; %s; %s", eps[j].Name, eps[j].Destination(), v.DecidedBy, briefLayer(p.Node), briefLayer(p.Instance))
		if t.reaches == nil {
			t.reaches = map[reachKey]string{}
		}
		t.reaches[k] = s
	}
	return s
}

// briefLayer renders a layer that did not deny for a finding's message: its reason when it
// allows, only "unknown" when nothing is known (the JSON report and --explain say what would
// settle it).
func briefLayer(v *layer.Verdict) string {
	if v.Decision == layer.Unknown {
		return string(v.Layer) + " layer unknown"
	}
	if v.Reason == "" {
		return fmt.Sprintf("%s layer %s (%s) on each node", v.Layer, v.Decision, v.Source)
	}
	return v.String()
}

// remedy returns reachRemedy's text for endpoint j.
func (t *reachTexts) remedy(eps []endpoint.Endpoint, j int, ns *NamespaceSummary, v policy.Verdict) string {
	if v.DecidedBy.Tier == policy.TierDefault {
		return ns.remedy // per namespace
	}
	k := reachKey{endpoint: j, reason: v.DecidedBy}
	s, ok := t.remedies[k]
	if !ok {
		s = reachRemedy(eps, eps[j], ns, v)
		if t.remedies == nil {
			t.remedies = map[reachKey]string{}
		}
		t.remedies[k] = s
	}
	return s
}

// broadUse aggregates the uses of one broad allow rule.
type broadUse struct {
	namespace string
	endpoints []string
	subjects  int
}

// appendReachFindings appends, for one unit, reachable credential endpoints, hostNetwork,
// WireServer, IPv6 gaps and blocked keep-reachable endpoints.
func appendReachFindings(out []Finding, r *Report, u unit, ns *NamespaceSummary, broad map[policy.Reason]*broadUse, texts *reachTexts) []Finding {
	var host, pod unit
	for _, i := range u {
		if r.Subjects[i].Spec.HostNetwork {
			host = append(host, i)
		} else {
			pod = append(pod, i)
		}
	}
	if len(host) > 0 {
		var names []string
		for j, ep := range r.Endpoints {
			if ep.Role != endpoint.Credentials {
				continue
			}
			for _, i := range host {
				if r.Reachable(i, j) {
					names = append(names, ep.Name)
					break
				}
			}
		}
		if len(names) > 0 {
			out = append(out, Finding{Rule: RuleHostNetwork, Severity: RuleHostNetwork.Severity, Namespace: ns.Name,
				Objects: objects(r, host), Endpoints: names,
				Message:     fmt.Sprintf("%s uses hostNetwork: it reaches %s whatever NetworkPolicy or AdminNetworkPolicy says, and no node or instance layer denies it", describe(r, host), strings.Join(names, ", ")),
				Remediation: "Run it without hostNetwork if it can. Otherwise restrict hostNetwork to allow-listed namespaces with a ValidatingAdmissionPolicy, and block the metadata endpoints for pod processes with a cgroup-aware node rule (nftables 'socket cgroupv2' on the output hook matching the kubepods cgroup). On AWS, IMDSv2 with hop limit 1 does not stop hostNetwork pods: they are one hop away.",
			})
		}
	}
	for j, ep := range r.Endpoints {
		groups := groupByVerdict(r, pod, j)
		for _, g := range groups {
			v := r.Verdict(g[0], j)
			reachable := r.Reachable(g[0], j)
			switch {
			case ep.Role == endpoint.Credentials && reachable:
				rule := RuleReach
				if ep.Address == wireServer {
					rule = RuleWireServer
				}
				objs, what := texts.group(r, g)
				out = append(out, Finding{Rule: rule, Severity: rule.Severity, Namespace: ns.Name,
					Objects: objs, Endpoints: texts.endpoint(r.Endpoints, j),
					Message:     what + " can reach " + texts.reach(r, g, j),
					Remediation: texts.remedy(r.Endpoints, j, ns, v)})
				if v.DecidedBy.Broad {
					b := broad[v.DecidedBy]
					if b == nil {
						b = &broadUse{namespace: ns.Name}
						broad[v.DecidedBy] = b
					}
					if !slices.Contains(b.endpoints, ep.Name) {
						b.endpoints = append(b.endpoints, ep.Name)
					}
					b.subjects += len(g)
				}
			case ep.Role == endpoint.KeepReachable && !reachable:
				if deps := dependsOn(r, g, ep); len(deps) > 0 {
					out = append(out, Finding{Rule: RuleKeepReachable, Severity: RuleKeepReachable.Severity, Namespace: ns.Name,
						Objects: objects(r, deps), Endpoints: []string{ep.Name},
						Message:     fmt.Sprintf("%s depends on %s (%s) but it is denied: %s", describe(r, deps), ep.Name, ep.Destination(), r.Exposure(g[0], j).DecidedBy),
						Remediation: fmt.Sprintf("Allow egress to %s %s %d for these pods (a NetworkPolicy ipBlock %s with that port), and keep it out of every metadata deny rule.", ep.Prefix(), ep.Protocol, ep.Port, ep.Prefix())})
				}
			}
		}
	}
	return appendIPv6Gaps(out, r, pod, ns)
}

// appendIPv6Gaps appends subjects denied an IPv4 credential endpoint but allowed its IPv6
// counterpart of the same cloud and port.
func appendIPv6Gaps(out []Finding, r *Report, pod unit, ns *NamespaceSummary) []Finding {
	for a, v4 := range r.Endpoints {
		if !v4.Address.Is4() || v4.Role != endpoint.Credentials {
			continue
		}
		for b, v6 := range r.Endpoints {
			if !v6.Address.Is6() || v6.Role != endpoint.Credentials || v6.Port != v4.Port || v6.Protocol != v4.Protocol || !sharesCloud(v4, v6) {
				continue
			}
			var gap unit
			for _, i := range pod {
				if !r.Reachable(i, a) && r.Reachable(i, b) {
					gap = append(gap, i)
				}
			}
			if len(gap) == 0 {
				continue
			}
			out = append(out, Finding{Rule: RuleIPv6Gap, Severity: RuleIPv6Gap.Severity, Namespace: ns.Name,
				Objects: objects(r, gap), Endpoints: []string{v4.Name, v6.Name},
				Message:     fmt.Sprintf("%s is denied %s (%s) by the %s layer but can reach %s (%s): %s", describe(r, gap), v4.Name, v4.Address, r.Exposure(gap[0], a).DecidedBy.Layer, v6.Name, v6.Address, r.Verdict(gap[0], b).DecidedBy),
				Remediation: fmt.Sprintf("Deny %s as well: add %s to the except list next to %s (an ipBlock ::/0 except [%s] rule), or use an AdminNetworkPolicy Deny listing both addresses.", v6.Address, v6.Prefix(), v4.Prefix(), v6.Prefix())})
		}
	}
	return out
}

func sharesCloud(a, b endpoint.Endpoint) bool {
	for _, c := range a.Clouds {
		if b.HasCloud(c) {
			return true
		}
	}
	return false
}

// layerKey is what findings tell apart of the node and instance layers: decision and source.
// Their reasons name nodes, and a workload's pods run on many.
type layerKey struct {
	node, instance layer.Decision
	nodeSource     layer.Source
	instanceSource layer.Source
}

func layerKeyOf(p layer.Pair) layerKey {
	return layerKey{p.Node.Decision, p.Instance.Decision, p.Node.Source, p.Instance.Source}
}

// groupByVerdict splits subjects into groups with the same verdict for endpoint j (the
// cluster-policy verdict, the decisions and sources of the other layers), in order of first
// appearance.
func groupByVerdict(r *Report, subjects unit, j int) []unit {
	if len(subjects) == 0 {
		return nil
	}
	type key struct {
		policy.Verdict
		layers layerKey
	}
	at := func(i int) key { return key{r.Verdict(i, j), layerKeyOf(r.layers[i][j])} }
	uniform := true
	first := at(subjects[0])
	for _, i := range subjects[1:] {
		if at(i) != first {
			uniform = false
			break
		}
	}
	if uniform {
		return []unit{subjects} // the common case: the template and its pods agree
	}
	// A unit has few distinct verdicts: a linear search beats a map.
	var groups []unit
	var verdicts []key
	for _, i := range subjects {
		v := at(i)
		k := slices.Index(verdicts, v)
		if k < 0 {
			k = len(groups)
			verdicts = append(verdicts, v)
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], i)
	}
	return groups
}

func broadFindings(r *Report, broad map[policy.Reason]*broadUse) []Finding {
	var out []Finding
	for reason, use := range broad {
		kind := string(reason.Tier)
		if reason.Kind != "" {
			kind = reason.Kind
		}
		var fix string
		switch {
		case reason.Tier == policy.TierNetworkPolicy && strings.HasPrefix(reason.Peer, "ipBlock"):
			fix = fmt.Sprintf("Add the metadata addresses to the except list of %s in egress rule %d of NetworkPolicy %s: except [%s] for 0.0.0.0/0, [%s] for ::/0.", reason.Peer, reason.Rule, reason.Policy, credentialPrefixes(r.Endpoints, true), credentialPrefixes(r.Endpoints, false))
		case reason.Tier == policy.TierNetworkPolicy:
			fix = fmt.Sprintf("Egress rule %d of NetworkPolicy %s has no 'to': replace it with ipBlock 0.0.0.0/0 except [%s], ipBlock ::/0 except [%s] and a namespaceSelector: {} peer.", reason.Rule, reason.Policy, credentialPrefixes(r.Endpoints, true), credentialPrefixes(r.Endpoints, false))
		default:
			fix = fmt.Sprintf("Put a Deny rule for [%s, %s] before rule %d of %s %s.", credentialPrefixes(r.Endpoints, true), credentialPrefixes(r.Endpoints, false), reason.Rule, kind, reason.Policy)
		}
		name, namespace := reason.Policy, ""
		if ns, n, ok := strings.Cut(reason.Policy, "/"); ok {
			namespace, name = ns, n
		}
		slices.Sort(use.endpoints)
		out = append(out, Finding{Rule: RuleBroadAllow, Severity: RuleBroadAllow.Severity, Namespace: namespace,
			Objects: []inventory.ObjectRef{{Kind: kind, Namespace: namespace, Name: name}}, Endpoints: use.endpoints,
			Message:     fmt.Sprintf("%s %s egress rule %d allows %s without excepting %s; it decides %s", kind, reason.Policy, reason.Rule, reason.Peer, strings.Join(use.endpoints, ", "), count(use.subjects, "reachable verdict")),
			Remediation: fix})
	}
	slices.SortFunc(out, func(a, b Finding) int { return cmp.Compare(a.Message, b.Message) })
	return out
}

// objects lists the objects of a group of subjects.
func objects(r *Report, g unit) []inventory.ObjectRef {
	out := make([]inventory.ObjectRef, len(g))
	for k, i := range g {
		out[k] = r.Subjects[i].Ref()
	}
	return out
}

// describe renders a group of subjects: "Deployment shop/web (template and 3 pods)".
func describe(r *Report, g unit) string {
	s := &r.Subjects[g[0]]
	pods := 0
	template := false
	for _, i := range g {
		if r.Subjects[i].IsTemplate() {
			template = true
		} else {
			pods++
		}
	}
	if len(g) == 1 {
		ref := s.Ref()
		return ref.Kind + " " + ref.Namespace + "/" + ref.Name
	}
	what := count(pods, "pod")
	if template {
		what = "template and " + what
	}
	return s.Workload.Kind + " " + s.Namespace + "/" + s.Workload.Name + " (" + what + ")"
}

// gapRemedy says how to close a gap: grant the read, or evaluate the policies another way.
func gapRemedy(g inventory.Gap) string {
	switch {
	case g.Resource == "policy engine":
		return "State the cluster's policy engine with --policy-engine NAME[@VERSION] (names and versions: docs/engines.md), or let the audit read the engine's workloads and configuration, and run the audit again."
	case strings.HasPrefix(g.Resource, "configmaps ") && strings.HasPrefix(g.Reason, "forbidden"):
		return "Grant the audit's identity get permission on ConfigMap " + strings.TrimPrefix(g.Resource, "configmaps ") + " (deploy/rbac/audit-clusterrole.yaml grants exactly the engine ConfigMaps, by name) and run the audit again."
	case strings.HasPrefix(g.Reason, "forbidden"):
		return "Grant the audit's identity list permission on " + g.Resource + " (deploy/rbac/audit-clusterrole.yaml is the least-privilege role) and run the audit again."
	}
	return "Until " + g.Resource + " can be evaluated, treat every verdict as unproven and check the policies of this kind by hand."
}

// refName names an object as "Kind namespace/name".
func refName(o inventory.ObjectRef) string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// notEnforcedRemedy says how to make a policy count: switch its kind on in the engine, or
// express it in a kind the engine enforces.
func notEnforcedRemedy(enf policy.Enforcement, o inventory.ObjectRef) string {
	kinds := enf.EnforcedKinds()
	if len(kinds) == 0 {
		return fmt.Sprintf("Nothing in the cluster enforces network policy. Switch on the policy engine (for the AWS VPC CNI: enableNetworkPolicy in the add-on configuration, or enable-network-policy-controller in ConfigMap kube-system/amazon-vpc-cni), or protect pods on another layer: the node agent (imdsguard agent) or the instance settings. Until then %s protects no pod.", refName(o))
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return fmt.Sprintf("Express what %s does as a kind %s enforces (%s), for example with imdsguard generate, or switch its kind on in the engine; then delete it, since it protects no pod and misleads readers.",
		refName(o), enf.Engine, strings.Join(names, ", "))
}
