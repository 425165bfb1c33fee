package layer

import (
	"slices"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
)

func nodeNames(nodes []*inventory.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// TestCandidates: the nodes a template may be scheduled on, as the scheduler's helpers decide.
func TestCandidates(t *testing.T) {
	gpu := corev1.Taint{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	nodes := []*inventory.Node{
		{Name: "a", Labels: map[string]string{"pool": "general", EC2NodeClassLabel: "default"}},
		{Name: "b", Labels: map[string]string{"pool": "general", EC2NodeClassLabel: "legacy"}},
		{Name: "gpu", Labels: map[string]string{"pool": "gpu"}, Taints: []corev1.Taint{gpu}},
		{Name: "soft", Labels: map[string]string{"pool": "spot"}, Taints: []corev1.Taint{{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule},
			// A new node's condition taint: it passes, and the node stays a candidate.
			{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}},
	}
	for _, c := range []struct {
		name string
		spec corev1.PodSpec
		want []string
	}{
		{"spec.nodeName names the node", corev1.PodSpec{NodeName: "b"}, []string{"b"}},
		{"a node not in the input leaves none", corev1.PodSpec{NodeName: "gone"}, nil},
		{"no constraint: every node without a NoSchedule taint", corev1.PodSpec{}, []string{"a", "b", "soft"}},
		{"nodeSelector", corev1.PodSpec{NodeSelector: map[string]string{"pool": "general"}}, []string{"a", "b"}},
		{"required node affinity", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: EC2NodeClassLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"legacy"}}}}}}}}},
			[]string{"b"}},
		{"a toleration admits the tainted node", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}}},
			[]string{"a", "b", "gpu", "soft"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := nodeNames(Candidates(&c.spec, nodes)); !slices.Equal(got, c.want) {
				t.Errorf("candidates %v, want %v", got, c.want)
			}
		})
	}
}

// TestTemplateInstanceVerdict: a template on two Karpenter node classes takes the weakest
// verdict: a class with httpTokens optional makes it reachable at the instance layer even where
// the default class denies it.
func TestTemplateInstanceVerdict(t *testing.T) {
	optional := "optional"
	classes := map[string]*inventory.EC2NodeClassMetadataOptions{"default": nil, "legacy": {HTTPTokens: &optional}}
	nodes := []*inventory.Node{
		{Name: "a", Labels: map[string]string{EC2NodeClassLabel: "default"}},
		{Name: "b", Labels: map[string]string{EC2NodeClassLabel: "legacy"}},
		{Name: "c", Labels: map[string]string{}},
	}
	verdictOn := func(spec corev1.PodSpec) Verdict {
		var vs []Verdict
		for _, n := range Candidates(&spec, nodes) {
			o, _ := NodeOptions(n.Labels, classes)
			vs = append(vs, AWSInstance(o, Placement{HostNetwork: spec.HostNetwork, ExtraHopsKnown: true}, v4))
		}
		return Weakest(Instance, vs)
	}
	onDefault := corev1.PodSpec{NodeSelector: map[string]string{EC2NodeClassLabel: "default"}}
	if v := verdictOn(onDefault); v.Decision != Deny {
		t.Errorf("a template on the default class: %s, want deny", v)
	}
	onKarpenter := corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: EC2NodeClassLabel, Operator: corev1.NodeSelectorOpExists}}}}}}}}
	if v := verdictOn(onKarpenter); v.Decision != Allow || v.Source != Default {
		t.Errorf("a template on both classes: %s, want allow (the legacy class's httpTokens optional)", v)
	}
	// Anywhere: node c has no known settings, so without the legacy class the weakest is unknown.
	delete(classes, "legacy")
	if v := verdictOn(corev1.PodSpec{}); v.Decision != Unknown {
		t.Errorf("a template that may land on a node of unknown settings: %s, want unknown", v)
	}
	if v := Weakest(Instance, nil); v.Decision != Unknown {
		t.Errorf("no candidate node: %s, want unknown", v)
	}
}
