package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Pod is what the agent needs to know of a pod on its node.
type Pod struct {
	Namespace, Name, UID, ServiceAccount string
	HostNetwork                          bool
	IPs                                  []netip.Addr
}

// PodSelector selects pods by namespace and, optionally, service account: the agent's own
// configuration, never anything a pod's author can set on their pod.
type PodSelector struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// Matches reports whether the selector selects p.
func (s PodSelector) Matches(p Pod) bool {
	if s.Namespace == "" || s.Namespace != p.Namespace {
		return false
	}
	sa := p.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return s.ServiceAccount == "" || s.ServiceAccount == sa
}

func matchesAny(p Pod, sels []PodSelector) bool {
	return slices.ContainsFunc(sels, func(s PodSelector) bool { return s.Matches(p) })
}

// PodLister lists the pods on this node.
type PodLister interface {
	ListPods(ctx context.Context) ([]Pod, error)
}

// Taint is a node taint by key and effect.
type Taint struct {
	Key    string
	Effect corev1.TaintEffect
}

// ParseTaint parses "key:Effect" (the effect defaults to NoSchedule).
func ParseTaint(s string) (Taint, error) {
	key, effect, found := strings.Cut(strings.TrimSpace(s), ":")
	t := Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}
	if found {
		t.Effect = corev1.TaintEffect(effect)
	}
	if strings.Contains(key, "=") {
		return Taint{}, fmt.Errorf("taint %q: give key:Effect (the value does not matter)", s)
	}
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute, corev1.TaintEffectPreferNoSchedule:
	default:
		return Taint{}, fmt.Errorf("taint %q: effect %q (want NoSchedule, PreferNoSchedule or NoExecute)", s, t.Effect)
	}
	if t.Key == "" {
		return Taint{}, fmt.Errorf("taint %q: empty key", s)
	}
	return t, nil
}

func (t Taint) String() string { return t.Key + ":" + string(t.Effect) }

// NodeTainter removes a taint from a node.
type NodeTainter interface {
	// RemoveTaint removes every taint with t's key and effect from the node and reports
	// whether there was one.
	RemoveTaint(ctx context.Context, node string, t Taint) (bool, error)
}

// Kube is the agent's Kubernetes API client: pods on its node, and its node's taints. RBAC:
// list pods (cluster-wide, filtered by field selector), get and update nodes.
type Kube struct {
	Client   kubernetes.Interface
	NodeName string
}

var (
	_ PodLister   = (*Kube)(nil)
	_ NodeTainter = (*Kube)(nil)
)

// ListPods implements PodLister with one field-selected list per sync.
func (k *Kube) ListPods(ctx context.Context) ([]Pod, error) {
	list, err := k.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + k.NodeName})
	if err != nil {
		return nil, err
	}
	out := make([]Pod, 0, len(list.Items))
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pod := Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), ServiceAccount: p.Spec.ServiceAccountName, HostNetwork: p.Spec.HostNetwork}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				pod.IPs = append(pod.IPs, a)
			}
		}
		if len(pod.IPs) == 0 {
			if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				pod.IPs = append(pod.IPs, a)
			}
		}
		out = append(out, pod)
	}
	return out, nil
}

// RemoveTaint implements NodeTainter: read, filter, update, retried on conflict so a
// concurrent change to the node (another taint, a label) is never lost.
func (k *Kube) RemoveTaint(ctx context.Context, node string, t Taint) (bool, error) {
	removed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := k.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		kept := make([]corev1.Taint, 0, len(n.Spec.Taints))
		for _, taint := range n.Spec.Taints {
			if taint.Key == t.Key && taint.Effect == t.Effect {
				continue
			}
			kept = append(kept, taint)
		}
		if len(kept) == len(n.Spec.Taints) {
			removed = false
			return nil
		}
		n.Spec.Taints = kept
		_, err = k.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		removed = err == nil
		return err
	})
	return removed, err
}
