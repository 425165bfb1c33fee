package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/layer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
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

// PodWatcher is a PodLister that keeps a copy of the node's pods from a watch, so that listing
// them never waits for the API server, and reports the changes that matter to the firewall.
type PodWatcher interface {
	PodLister
	// WatchPods keeps the copy current until the watch ends or ctx does, and sends on changed
	// (without blocking) whenever a pod on the node appears, goes, or changes its addresses,
	// phase, host network or service account. The copy outlives the call; call again to
	// resume.
	WatchPods(ctx context.Context, changed chan<- struct{}) error
	// PodsSynced reports whether the copy holds the whole list yet.
	PodsSynced() bool
}

// ErrPodsNotSynced is ListPods' answer before the watch has delivered the first list.
var ErrPodsNotSynced = errors.New("the pods on this node are not known yet")

// Kube is the agent's Kubernetes API client: pods on its node, its node's taints, and its state
// on its node. RBAC: list and watch pods (cluster-wide, filtered by field selector), get,
// update and patch nodes; deploy/agent's ValidatingAdmissionPolicy keeps the node writes to the
// agent's own Node, its startup taint and its state annotation.
type Kube struct {
	Client   kubernetes.Interface
	NodeName string

	mu              sync.Mutex
	watching        bool                   // WatchPods has run: ListPods answers from pods
	synced          bool                   // pods holds a whole list
	pods            map[string]*corev1.Pod // by namespace/name, slimmed
	resourceVersion string                 // where the next watch resumes; "" to list first
}

var (
	_ PodWatcher     = (*Kube)(nil)
	_ NodeTainter    = (*Kube)(nil)
	_ StatePublisher = (*Kube)(nil)
)

// FieldManager names the agent in the Node's managedFields.
const FieldManager = "imdsguard-agent"

// PublishState implements StatePublisher: a JSON merge patch (RFC 7386) that sets the
// annotation layer.AgentStateAnnotation on the state's node and touches nothing else, so it
// never conflicts with the kubelet or anyone else writing the Node.
func (k *Kube) PublishState(ctx context.Context, s layer.AgentState) error {
	value, err := layer.EncodeAgentState(s)
	if err != nil {
		return err
	}
	patch, err := statePatch(value)
	if err != nil {
		return err
	}
	if _, err := k.Client.CoreV1().Nodes().Patch(ctx, s.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("patch node %s annotation %s: %w", s.Node, layer.AgentStateAnnotation, err)
	}
	return nil
}

// statePatch is the merge patch setting the state annotation to value.
func statePatch(value string) ([]byte, error) {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{layer.AgentStateAnnotation: value}}}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("state patch: %w", err)
	}
	return b, nil
}

// selector selects the pods scheduled to this node.
func (k *Kube) selector() string {
	return fields.OneTermEqualSelector("spec.nodeName", k.NodeName).String()
}

// ListPods implements PodLister: from the watched copy once WatchPods has run
// (ErrPodsNotSynced until its first list arrived), otherwise with one field-selected list.
func (k *Kube) ListPods(ctx context.Context) ([]Pod, error) {
	k.mu.Lock()
	if k.watching {
		defer k.mu.Unlock()
		if !k.synced {
			return nil, ErrPodsNotSynced
		}
		out := make([]Pod, 0, len(k.pods))
		for _, p := range k.pods {
			if !terminated(p) {
				out = append(out, podOf(p))
			}
		}
		slices.SortFunc(out, func(a, b Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
		return out, nil
	}
	k.mu.Unlock()
	list, err := k.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: k.selector()})
	if err != nil {
		return nil, err
	}
	out := make([]Pod, 0, len(list.Items))
	for i := range list.Items {
		if !terminated(&list.Items[i]) {
			out = append(out, podOf(&list.Items[i]))
		}
	}
	return out, nil
}

// PodsSynced implements PodWatcher.
func (k *Kube) PodsSynced() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.synced
}

// WatchPods implements PodWatcher: it lists the node's pods (unless a previous call left a
// resource version to resume from) and follows them with a watch until the watch ends, the
// server expires the resource version (the next call lists again) or ctx ends. The copy outlives
// the call: during an API server outage the last known pods stay. Call it again to resume.
func (k *Kube) WatchPods(ctx context.Context, changed chan<- struct{}) error {
	k.mu.Lock()
	k.watching = true
	rv := k.resourceVersion
	k.mu.Unlock()
	pods := k.Client.CoreV1().Pods(metav1.NamespaceAll)
	if rv == "" {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: k.selector()})
		if err != nil {
			return fmt.Errorf("list pods on node %s: %w", k.NodeName, err)
		}
		fresh := make(map[string]*corev1.Pod, len(list.Items))
		for i := range list.Items {
			p := slimPod(&list.Items[i])
			fresh[p.Namespace+"/"+p.Name] = p
		}
		k.mu.Lock()
		differ := !k.synced || len(fresh) != len(k.pods)
		for key, p := range fresh {
			if old, ok := k.pods[key]; !ok || !samePod(old, p) {
				differ = true
			}
		}
		k.pods, k.synced, k.resourceVersion = fresh, true, list.ResourceVersion
		k.mu.Unlock()
		rv = list.ResourceVersion
		if differ {
			notify(changed)
		}
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: k.selector(), ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			k.resume("")
		}
		return fmt.Errorf("watch pods on node %s: %w", k.NodeName, err)
	}
	defer w.Stop()
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return nil
		case ev, open = <-w.ResultChan():
		}
		if !open {
			return nil // the server ends watches now and then; resume from the last version
		}
		if ev.Type == watch.Error {
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				k.resume("")
			}
			return fmt.Errorf("watch pods on node %s: %w", k.NodeName, err)
		}
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		if ev.Type == watch.Bookmark {
			k.resume(p.ResourceVersion)
			continue
		}
		slim, key := slimPod(p), p.Namespace+"/"+p.Name
		k.mu.Lock()
		old, had := k.pods[key]
		switch ev.Type {
		case watch.Added, watch.Modified:
			k.pods[key] = slim
		case watch.Deleted:
			delete(k.pods, key)
		}
		k.resourceVersion = p.ResourceVersion
		k.mu.Unlock()
		switch ev.Type {
		case watch.Added, watch.Modified:
			if !had || !samePod(old, slim) {
				notify(changed)
			}
		case watch.Deleted:
			if had {
				notify(changed)
			}
		}
	}
}

func (k *Kube) resume(rv string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.resourceVersion = rv
}

func notify(changed chan<- struct{}) {
	select {
	case changed <- struct{}{}:
	default: // a sync is already pending
	}
}

// slimPod keeps what podOf and terminated read: the copy of a node's pods stays small.
func slimPod(p *corev1.Pod) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		Spec:       corev1.PodSpec{HostNetwork: p.Spec.HostNetwork, ServiceAccountName: p.Spec.ServiceAccountName},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
}

// samePod reports whether two slimmed pods look the same to the firewall.
func samePod(a, b *corev1.Pod) bool {
	pa, pb := podOf(a), podOf(b)
	return terminated(a) == terminated(b) && pa.UID == pb.UID && pa.ServiceAccount == pb.ServiceAccount &&
		pa.HostNetwork == pb.HostNetwork && slices.Equal(pa.IPs, pb.IPs)
}

func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func podOf(p *corev1.Pod) Pod {
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
	return pod
}

// taintRetry outlasts the node's other writers (kubelet, labellers, autoscalers): an update
// conflicts whenever any of them wrote in between, so a busy node needs more than client-go's
// default five attempts.
var taintRetry = wait.Backoff{Steps: 30, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Cap: time.Second}

// RemoveTaint implements NodeTainter: read, filter, update, retried on conflict so a
// concurrent change to the node (another taint, a label) is never lost.
func (k *Kube) RemoveTaint(ctx context.Context, node string, t Taint) (bool, error) {
	removed := false
	err := retry.RetryOnConflict(taintRetry, func() error {
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
