package layer

import (
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Candidates returns the nodes a pod or pod template runs on or may be scheduled on: the node
// spec.nodeName names, else every node whose labels meet the template's nodeSelector and
// required node affinity and whose NoSchedule and NoExecute taints it tolerates. The matching is
// the scheduler's own (k8s.io/component-helpers), not a copy of it. Resources, preferred
// affinity and topology spread only choose among these nodes and are not modelled: a template
// may land on any of them.
func Candidates(spec *corev1.PodSpec, nodes []*inventory.Node) []*inventory.Node {
	if spec.NodeName != "" {
		for _, n := range nodes {
			if n.Name == spec.NodeName {
				return []*inventory.Node{n}
			}
		}
		return nil
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: *spec})
	hard := func(t *corev1.Taint) bool {
		return (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !conditionTaint(t)
	}
	var out []*inventory.Node
	for _, n := range nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}, Spec: corev1.NodeSpec{Taints: n.Taints}}
		if ok, err := affinity.Match(node); err != nil || !ok {
			continue
		}
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), n.Taints, spec.Tolerations, hard, false); untolerated {
			continue
		}
		out = append(out, n)
	}
	return out
}

// conditionTaint reports whether a taint reflects a node's passing condition (not ready,
// unreachable, under pressure, cordoned), which the node lifecycle controller and the
// TaintNodesByCondition admission plugin add and remove as the condition comes and goes
// (https://kubernetes.io/docs/reference/labels-annotations-taints/, node.kubernetes.io/*). A
// node is a candidate whatever its condition now: the audit asks where a template may run, not
// where it may run this minute.
func conditionTaint(t *corev1.Taint) bool {
	return strings.HasPrefix(t.Key, "node.kubernetes.io/")
}

// Weakest is the weakest protection among the verdicts of the nodes a subject may run on: an
// allow on any of them, else an unknown, else the denial. No verdict at all (no node in the
// input, or none the subject may run on) is unknown.
func Weakest(layer Name, verdicts []Verdict) Verdict {
	for _, d := range []Decision{Allow, Unknown, Deny} {
		for _, v := range verdicts {
			if v.Decision == d {
				return v
			}
		}
	}
	what := "instance settings"
	if layer == Node {
		what = "node firewall"
	}
	return Verdict{Layer: layer, Decision: Unknown, Source: Assumed,
		Reason: "no node the subject may run on is in the input: add the nodes (kubectl get nodes -o yaml) to know their " + what}
}
