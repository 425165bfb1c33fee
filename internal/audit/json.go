package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// SchemaVersion is the version of the JSON report contract (docs/json-schema.md). It changes
// major version when a field changes meaning or disappears; new fields bump the minor version.
const SchemaVersion = "2.3"

type jsonEndpoint struct {
	Name        string   `json:"name"`
	Address     string   `json:"address"`
	Protocol    string   `json:"protocol"`
	Port        int32    `json:"port"`
	Family      string   `json:"family"`
	Role        string   `json:"role"`
	Clouds      []string `json:"clouds"`
	Hostnames   []string `json:"hostnames,omitempty"`
	Description string   `json:"description"`
}

type jsonNamespace struct {
	Name               string            `json:"name"`
	Synthesized        bool              `json:"synthesized"`
	EgressIsolatedPods bool              `json:"egressIsolatedPods"`
	EgressControl      jsonEgressControl `json:"egressControl"`
}

type jsonEgressControl struct {
	NetworkPolicies              []string `json:"networkPolicies"`
	AdminNetworkPolicies         []string `json:"adminNetworkPolicies"`
	BaselineAdminNetworkPolicies []string `json:"baselineAdminNetworkPolicies"`
	CalicoPolicies               []string `json:"calicoPolicies,omitempty"`
	CiliumPolicies               []string `json:"ciliumPolicies,omitempty"`
	// Admin and Baseline tier ClusterNetworkPolicies (1.3).
	AdminClusterNetworkPolicies    []string `json:"adminClusterNetworkPolicies,omitempty"`
	BaselineClusterNetworkPolicies []string `json:"baselineClusterNetworkPolicies,omitempty"`
}

type jsonFinding struct {
	ID          string                `json:"id"`
	Title       string                `json:"title"`
	Severity    Severity              `json:"severity"`
	MITRE       []Technique           `json:"mitre"`
	Namespace   string                `json:"namespace,omitempty"`
	Objects     []inventory.ObjectRef `json:"objects"`
	Endpoints   []string              `json:"endpoints,omitempty"`
	Message     string                `json:"message"`
	Remediation string                `json:"remediation"`
	// Accepted is the exception that accepts the finding (2.2).
	Accepted *jsonAcceptance `json:"accepted,omitempty"`
	// Baseline is the state against the baseline report (2.2).
	Baseline BaselineState `json:"baseline,omitempty"`
}

// jsonAcceptance is an accepted finding's exception (2.2).
type jsonAcceptance struct {
	Reason  string `json:"reason"`
	Expires string `json:"expires"`
}

type jsonSummary struct {
	Files      int `json:"files"`
	Documents  int `json:"documents"`
	Namespaces int `json:"namespaces"`
	Pods       int `json:"pods"`
	Workloads  int `json:"workloads"`
	Endpoints  int `json:"endpoints"`
	Exposures  int `json:"exposures"`
	Reachable  int `json:"reachable"`
	// DeniedBy counts the exposures denied, by the layer that decided (2.0).
	DeniedBy map[layer.Name]int `json:"deniedBy"`
	Findings map[string]int     `json:"findings"`
	Skipped  int                `json:"skipped"`
	Problems int                `json:"problems"`
}

type jsonHead struct {
	SchemaVersion string          `json:"schemaVersion"`
	Tool          jsonTool        `json:"tool"`
	Complete      bool            `json:"complete"`
	Summary       jsonSummary     `json:"summary"`
	Endpoints     []jsonEndpoint  `json:"endpoints"`
	Namespaces    []jsonNamespace `json:"namespaces"`
	Cluster       string          `json:"cluster,omitempty"`
	// Clouds are the clouds audited and why (2.1).
	Clouds       []inventory.CloudEvidence `json:"clouds,omitempty"`
	PolicyEngine jsonPolicyEngine          `json:"policyEngine"`
	Nodes        []jsonNode                `json:"nodes"`
	Drifts       []jsonDrift               `json:"drifts"`
	// Infrastructure are the groups of the infrastructure code given, joined to the nodes (2.3).
	Infrastructure []jsonCodeGroup     `json:"infrastructure,omitempty"`
	LayerVerdicts  []jsonLayerVerdict  `json:"layerVerdicts"`
	Gaps           []inventory.Gap     `json:"gaps"`
	Problems       []inventory.Problem `json:"problems"`
	Skipped        []inventory.Skipped `json:"skipped"`
	Warnings       []string            `json:"warnings"`
}

// jsonNode is what the audit knows of a node's instance and node layers (2.0).
type jsonNode struct {
	Name  string `json:"name"`
	Cloud string `json:"cloud,omitempty"`
	// InstanceMetadata is set when some source knows the node's EC2 metadata options.
	InstanceMetadata *jsonAWSOptions `json:"instanceMetadata,omitempty"`
	Agent            *jsonAgent      `json:"agent,omitempty"`
}

type jsonAWSOptions struct {
	HTTPEndpoint            *jsonSetting `json:"httpEndpoint,omitempty"`
	HTTPTokens              *jsonSetting `json:"httpTokens,omitempty"`
	HTTPPutResponseHopLimit *jsonSetting `json:"httpPutResponseHopLimit,omitempty"`
	HTTPProtocolIPv6        *jsonSetting `json:"httpProtocolIpv6,omitempty"`
}

type jsonSetting struct {
	Value  any          `json:"value"`
	Source layer.Source `json:"source"`
	Origin string       `json:"origin"`
}

// jsonAgent is the imdsguard agent's published state (layer.AgentState), as read.
type jsonAgent struct {
	Mode                      string                     `json:"mode"`
	Dropped                   []string                   `json:"dropped"`
	HostNetworkCovered        bool                       `json:"hostNetworkCovered"`
	Generation                int64                      `json:"generation"`
	Synced                    time.Time                  `json:"synced"`
	Filtered                  []string                   `json:"filtered,omitempty"`
	FilterObserve             bool                       `json:"filterObserve,omitempty"`
	CiliumRouting             string                     `json:"ciliumRouting,omitempty"`
	Exempt                    []layer.PodSelector        `json:"exempt,omitempty"`
	AllowHostNetwork          []layer.PodSelector        `json:"allowHostNetwork,omitempty"`
	AllowedHostNetworkPodUIDs []string                   `json:"allowedHostNetworkPodUIDs,omitempty"`
	Instance                  *layer.InstanceMeasurement `json:"instance,omitempty"`
}

type jsonDrift struct {
	Node   string `json:"node"`
	Option string `json:"option"`
	Used   string `json:"used"`
	Other  string `json:"other"`
}

func setting[T any](s layer.Setting[T], render func(T) any) *jsonSetting {
	if !s.Known {
		return nil
	}
	return &jsonSetting{Value: render(s.Value), Source: s.Source, Origin: s.Origin}
}

func enabledJSON(b bool) any {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (r *Report) nodesJSON() []jsonNode {
	out := make([]jsonNode, 0, len(r.Nodes))
	for _, n := range r.Nodes {
		j := jsonNode{Name: n.Node.Name, Cloud: layer.Cloud(n.Node)}
		if n.AWS {
			o := n.Options
			j.InstanceMetadata = &jsonAWSOptions{
				HTTPEndpoint:            setting(o.Endpoint, enabledJSON),
				HTTPTokens:              setting(o.Tokens, func(s string) any { return s }),
				HTTPPutResponseHopLimit: setting(o.HopLimit, func(h int) any { return h }),
				HTTPProtocolIPv6:        setting(o.IPv6, enabledJSON),
			}
		}
		if a := n.Agent; a != nil {
			j.Agent = &jsonAgent{Mode: a.Mode, Dropped: nonNil(a.Dropped), HostNetworkCovered: a.HostNetworkCovered, Generation: a.Generation,
				Synced: a.Synced, Filtered: a.Filtered, FilterObserve: a.FilterObserve, CiliumRouting: a.CiliumRouting, Exempt: a.Exempt, AllowHostNetwork: a.AllowHostNetwork,
				AllowedHostNetworkPodUIDs: a.AllowedHostNetworkPodUIDs, Instance: a.Instance}
		}
		out = append(out, j)
	}
	return out
}

func (r *Report) driftsJSON() []jsonDrift {
	out := make([]jsonDrift, 0, len(r.Drifts))
	for _, d := range r.Drifts {
		out = append(out, jsonDrift{Node: d.Node, Option: d.Option, Used: d.Used, Other: d.Other})
	}
	return out
}

// jsonPolicyEngine is what enforces pod egress policy, as the audit used it (1.3).
type jsonPolicyEngine struct {
	Engine    string           `json:"engine,omitempty"`
	Semantics string           `json:"semantics"`
	Assumed   bool             `json:"assumed"`
	Kinds     []jsonKindStatus `json:"kinds"`
}

type jsonKindStatus struct {
	Kind     string `json:"kind"`
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason,omitempty"`
}

func policyEngineJSON(e policy.Enforcement) jsonPolicyEngine {
	out := jsonPolicyEngine{Engine: e.Engine, Semantics: string(e.Semantics), Assumed: e.Assumed, Kinds: []jsonKindStatus{}}
	for _, k := range policy.Kinds {
		ok, why := e.Enforces(k)
		if ok {
			why = e.Kinds[k].Reason
		}
		out.Kinds = append(out.Kinds, jsonKindStatus{Kind: string(k), Enforced: ok, Reason: why})
	}
	return out
}

type jsonTool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Summary counts what the report holds.
func (r *Report) summary() jsonSummary {
	s := jsonSummary{Files: r.Files, Documents: r.Docs, Namespaces: len(r.Namespaces), Endpoints: len(r.Endpoints),
		Exposures: r.Exposures(), Findings: map[string]int{}, Skipped: len(r.Skipped), Problems: len(r.Problems),
		DeniedBy: map[layer.Name]int{layer.ClusterPolicy: 0, layer.Node: 0, layer.Instance: 0}}
	for i := range r.Subjects {
		if r.Subjects[i].IsTemplate() {
			s.Workloads++
		} else {
			s.Pods++
		}
	}
	for i, row := range r.Verdicts {
		for j, v := range row {
			p := r.layers[i][j]
			switch {
			case !v.Allowed:
				s.DeniedBy[layer.ClusterPolicy]++
			case p.Node.Decision == layer.Deny:
				s.DeniedBy[layer.Node]++
			case p.Instance.Decision == layer.Deny:
				s.DeniedBy[layer.Instance]++
			default:
				s.Reachable++
			}
		}
	}
	for _, n := range severityNames {
		s.Findings[n] = 0
	}
	for _, f := range r.Findings {
		s.Findings[f.Severity.String()]++
	}
	return s
}

// WriteJSON writes the report as the versioned JSON document described in docs/json-schema.md.
// The exposure list comes last, one entry per line, and is streamed.
func (r *Report) WriteJSON(w io.Writer, version string) error {
	index, verdicts := r.layerVerdicts()
	head := jsonHead{
		SchemaVersion:  SchemaVersion,
		Tool:           jsonTool{Name: "imdsguard", Version: version},
		Complete:       r.Complete(),
		Summary:        r.summary(),
		Endpoints:      []jsonEndpoint{},
		Namespaces:     []jsonNamespace{},
		Cluster:        r.Cluster,
		Clouds:         r.Clouds,
		PolicyEngine:   policyEngineJSON(r.model.Enforcement),
		Nodes:          r.nodesJSON(),
		Drifts:         r.driftsJSON(),
		Infrastructure: r.infrastructureJSON(),
		LayerVerdicts:  verdicts,
		Gaps:           nonNil(r.Gaps),
		Problems:       nonNil(r.Problems),
		Skipped:        nonNil(r.Skipped),
		Warnings:       nonNil(r.Warnings),
	}
	for _, ep := range r.Endpoints {
		clouds := make([]string, len(ep.Clouds))
		for i, c := range ep.Clouds {
			clouds[i] = string(c)
		}
		head.Endpoints = append(head.Endpoints, jsonEndpoint{Name: ep.Name, Address: ep.Address.String(), Protocol: string(ep.Protocol),
			Port: ep.Port, Family: ep.Family(), Role: string(ep.Role), Clouds: clouds, Hostnames: ep.Hostnames, Description: ep.Description})
	}
	for _, ns := range r.Namespaces {
		head.Namespaces = append(head.Namespaces, jsonNamespace{Name: ns.Name, Synthesized: ns.Synthesized, EgressIsolatedPods: ns.Isolated,
			EgressControl: jsonEgressControl{NetworkPolicies: nonNil(ns.Control.NetworkPolicies), AdminNetworkPolicies: nonNil(ns.Control.Admin),
				BaselineAdminNetworkPolicies: nonNil(ns.Control.Baseline), CalicoPolicies: ns.Control.Calico, CiliumPolicies: ns.Control.Cilium,
				AdminClusterNetworkPolicies: ns.Control.ClusterAdmin, BaselineClusterNetworkPolicies: ns.Control.ClusterBaseline}})
	}
	data, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	// Drop the closing "\n}" to append the findings and exposure lists, one entry per line. A
	// bufio.Writer keeps the first write error and returns it from every later call, so
	// checking the last one is enough.
	_, _ = bw.Write(data[:len(data)-2])
	_, _ = bw.WriteString(",\n  \"findings\": [")
	if err := r.writeFindings(bw); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, _ = bw.WriteString("\n  ],\n  \"exposure\": [")
	if err := r.writeExposures(bw, index); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, _ = bw.WriteString("\n  ]\n}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeFindings writes one compact JSON object per finding and line.
func (r *Report) writeFindings(w *bufio.Writer) error {
	for i, f := range r.Findings {
		sep := ",\n    "
		if i == 0 {
			sep = "\n    "
		}
		jf := jsonFinding{ID: f.Rule.ID, Title: f.Rule.Title, Severity: f.Severity, MITRE: nonNil(f.Rule.MITRE),
			Namespace: f.Namespace, Objects: nonNil(f.Objects), Endpoints: f.Endpoints, Message: f.Message, Remediation: f.Remediation, Baseline: f.Baseline}
		if a := f.Accepted; a != nil {
			jf.Accepted = &jsonAcceptance{Reason: a.Reason, Expires: a.Expires.Format(dateLayout)}
		}
		data, err := json.Marshal(jf)
		if err != nil {
			return fmt.Errorf("encode finding: %w", err)
		}
		_, _ = w.WriteString(sep)
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// writeExposures appends one JSON object per subject and endpoint, one per line. Chunks of
// subjects are rendered on every core and written in order; strings that repeat are encoded
// once (endpoints up front, subjects once each, reasons once per distinct reason and core).
// It stops at the first write error (a closed pipe, a full disk).
func (r *Report) writeExposures(w *bufio.Writer, index map[*layer.Verdict]int) error {
	eps := make([][]byte, len(r.Endpoints))
	for j, ep := range r.Endpoints {
		eps[j] = mustJSON(struct {
			Name     string `json:"name"`
			Address  string `json:"address"`
			Protocol string `json:"protocol"`
			Port     int32  `json:"port"`
		}{ep.Name, ep.Address.String(), string(ep.Protocol), ep.Port})
	}
	const chunk = 1024 // subjects per rendered piece: about half a megabyte of output
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]byte, workers)
	reasons := make([]map[policy.Reason][]byte, workers)
	pairs := make([]map[layer.Pair][]byte, workers)
	for k := range reasons {
		reasons[k] = map[policy.Reason][]byte{}
		pairs[k] = map[layer.Pair][]byte{}
	}
	first := true
	// Each round renders up to workers chunks in parallel, then writes them in order.
	for lo := 0; lo < len(r.Subjects); lo += chunk * workers {
		var wg sync.WaitGroup
		for k := range workers {
			from := lo + k*chunk
			to := min(from+chunk, len(r.Subjects))
			if from >= to {
				bufs[k] = bufs[k][:0]
				continue
			}
			wg.Go(func() { bufs[k] = r.renderExposures(bufs[k][:0], from, to, eps, reasons[k], pairs[k], index) })
		}
		wg.Wait()
		for k := range workers {
			out := bufs[k]
			if first && len(out) > 0 {
				out, first = out[1:], false // no comma before the first entry
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
	}
	return nil
}

// renderExposures appends the exposure entries of subjects [from, to), each preceded by
// ",\n    ". reasons caches the encoded cluster-policy reasons and layer, pairs the encoded
// node and instance layers.
func (r *Report) renderExposures(buf []byte, from, to int, eps [][]byte, reasons map[policy.Reason][]byte, pairs map[layer.Pair][]byte, index map[*layer.Verdict]int) []byte {
	for i := from; i < to; i++ {
		s := &r.Subjects[i]
		prefix := fmt.Appendf(nil, `{"namespace":%s,"pod":%s,"workload":{"kind":%s,"name":%s},"hostNetwork":%t,"endpoint":`,
			mustJSON(s.Namespace), mustJSON(s.Pod), mustJSON(s.Workload.Kind), mustJSON(s.Workload.Name), s.Spec.HostNetwork)
		for j := range r.Endpoints {
			v := r.Verdict(i, j)
			reason, ok := reasons[v.DecidedBy]
			if !ok {
				reason = r.encodeReason(v)
				reasons[v.DecidedBy] = reason
			}
			p := r.layers[i][j]
			layers, ok := pairs[p]
			if !ok {
				layers = fmt.Appendf(nil, `,"node":%q,"instance":%q},"layerVerdicts":{"node":%d,"instance":%d}`,
					p.Node.Decision, p.Instance.Decision, index[p.Node], index[p.Instance])
				pairs[p] = layers
			}
			buf = append(buf, ",\n    "...)
			buf = append(buf, prefix...)
			buf = append(buf, eps[j]...)
			buf = append(buf, `,"allowed":`...)
			buf = strconv.AppendBool(buf, r.Reachable(i, j))
			buf = append(buf, `,"deniedBy":`...)
			switch {
			case !v.Allowed:
				buf = append(buf, `"cluster-policy"`...)
			case p.Node.Decision == layer.Deny:
				buf = append(buf, `"node"`...)
			case p.Instance.Decision == layer.Deny:
				buf = append(buf, `"instance"`...)
			default:
				buf = append(buf, `null`...)
			}
			buf = append(buf, reason...)
			buf = append(buf, layers...)
			buf = append(buf, '}')
		}
	}
	return buf
}

// jsonLayerVerdict is one node or instance layer verdict, listed once in layerVerdicts and
// referred to by index from the exposures (2.0).
type jsonLayerVerdict struct {
	Layer    layer.Name     `json:"layer"`
	Decision layer.Decision `json:"decision"`
	Source   layer.Source   `json:"source"`
	Reason   string         `json:"reason"`
}

// layerVerdicts numbers the distinct node and instance verdicts of the report, in order of
// first use, and lists them. Thousands of subjects share a few hundred verdicts: the
// exposures refer to them by number rather than repeat their reasons.
func (r *Report) layerVerdicts() (map[*layer.Verdict]int, []jsonLayerVerdict) {
	index := map[*layer.Verdict]int{}
	list := []jsonLayerVerdict{}
	add := func(v *layer.Verdict) {
		if _, ok := index[v]; !ok {
			index[v] = len(list)
			list = append(list, jsonLayerVerdict{v.Layer, v.Decision, v.Source, v.Reason})
		}
	}
	var last []layer.Pair
	for _, row := range r.layers {
		if len(row) > 0 && len(last) > 0 && &row[0] == &last[0] {
			continue // the previous subject's row: shared rows are common
		}
		last = row
		for _, p := range row {
			add(p.Node)
			add(p.Instance)
		}
	}
	return index, list
}

// encodeReason renders the cluster-policy parts of an exposure: the rule that decided it, and
// the opening of the layers object with the cluster-policy decision.
func (r *Report) encodeReason(v policy.Verdict) []byte {
	out := []byte(`,"decidedBy":`)
	out = append(out, encodeRule(v.DecidedBy)...)
	l := r.policyLayer(v)
	return fmt.Appendf(out, `,"layers":{"clusterPolicy":%q`, l.Decision)
}

func encodeRule(d policy.Reason) []byte {
	var rule *int
	if d.Rule != policy.NoRule {
		rule = &d.Rule
	}
	return mustJSON(struct {
		Tier       string `json:"tier"`
		Kind       string `json:"kind,omitempty"`
		CalicoTier string `json:"calicoTier,omitempty"`
		Policy     string `json:"policy"`
		Rule       *int   `json:"rule"`
		RuleName   string `json:"ruleName,omitempty"`
		Action     string `json:"action"`
		Peer       string `json:"peer,omitempty"`
	}{string(d.Tier), d.Kind, d.CalicoTier, d.Policy, rule, d.RuleName, string(d.Action), d.Peer})
}

// mustJSON encodes values that cannot fail to encode (strings, plain structs).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return b
}
