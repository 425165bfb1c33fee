package controller

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/imdsguard/imdsguard/internal/generate"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// actionReconcile is the action of every Event the controller records (events.k8s.io/v1
// requires one).
const actionReconcile = "Reconcile"

// Event reasons.
const (
	ReasonRefused  = "Refused"
	ReasonRepaired = "Repaired"
	ReasonExempt   = "Exempt"
	ReasonRemoved  = "Removed"
)

// namespaceReconciler keeps the managed NetworkPolicy in one namespace at a time: the
// networkpolicy mode.
type namespaceReconciler struct {
	client   client.Client
	opts     *Options
	kinds    []watchedKind
	status   *Status
	recorder events.EventRecorder
	log      logr.Logger
}

// Reconcile gathers, decides, plans and writes for one namespace.
func (r *namespaceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	name := req.Name
	ns := &corev1.Namespace{}
	if err := r.client.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			r.status.Forget(name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get namespace %s: %w", name, err)
	}
	if ns.DeletionTimestamp != nil {
		// Its objects go with it; creating one now would fail.
		r.status.Forget(name)
		return reconcile.Result{}, nil
	}
	objs, err := gatherNamespace(ctx, r.client, r.kinds, name)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("namespace %s: %w", name, err)
	}
	decision := DecideNamespace(ns, objs, r.opts)
	current, err := managedPolicyIn(objs)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("namespace %s: %w", name, err)
	}
	write := Plan(decision.Desired, current)
	if err := r.write(ctx, write); err != nil {
		return reconcile.Result{}, fmt.Errorf("namespace %s: %w", name, err)
	}
	prev, known := r.status.Set(name, Entry{State: decision.State, Reason: decision.Reason})
	r.report(ns, decision, write, prev, known)
	return reconcile.Result{}, nil
}

// managedPolicyIn finds the NetworkPolicy named like the managed one among the gathered
// objects, whoever owns it.
func managedPolicyIn(objs []runtime.Object) (*unstructured.Unstructured, error) {
	for _, obj := range objs {
		np, ok := obj.(*networkingv1.NetworkPolicy)
		if !ok || np.Name != generate.PolicyName {
			continue
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(np)
		if err != nil {
			return nil, fmt.Errorf("encode NetworkPolicy %s: %w", np.Name, err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion("networking.k8s.io/v1")
		u.SetKind("NetworkPolicy")
		return u, nil
	}
	return nil, nil
}

func (r *namespaceReconciler) write(ctx context.Context, w Write) error {
	return writeObject(ctx, r.client, w, r.log)
}

// writeObject makes one planned write.
func writeObject(ctx context.Context, c client.Client, w Write, log logr.Logger) error {
	switch w.Action {
	case None:
		return nil
	case Apply:
		var err error
		if w.Current == nil {
			err = c.Create(ctx, w.Object.DeepCopy(), client.FieldOwner(FieldManager))
			if err != nil {
				err = fmt.Errorf("create %s: %w", objectName(w.Object), err)
			}
		} else {
			obj := w.Object.DeepCopy()
			obj.SetResourceVersion(w.Current.GetResourceVersion())
			err = apply(ctx, c, obj)
		}
		if err != nil {
			metrics.writeErrors.WithLabelValues(w.Object.GetKind()).Inc()
			return err
		}
	case Delete:
		// Only the object seen in the cache, with the ownership label: a same-named object
		// someone created in between is not deleted.
		pre := client.Preconditions{UID: ptrTo(w.Object.GetUID()), ResourceVersion: ptrTo(w.Object.GetResourceVersion())}
		if err := c.Delete(ctx, w.Object, pre); err != nil && !apierrors.IsNotFound(err) {
			metrics.writeErrors.WithLabelValues(w.Object.GetKind()).Inc()
			return fmt.Errorf("delete %s: %w", objectName(w.Object), err)
		}
	}
	metrics.writes.WithLabelValues(w.Object.GetKind(), string(w.Action)).Inc()
	log.Info("wrote", "action", w.Action, "object", objectName(w.Object), "why", w.Why)
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// report emits the Events a namespace's change of state deserves: a Warning when it is
// refused (or refused for a new reason), Normal ones when the managed policy was repaired or
// removed.
func (r *namespaceReconciler) report(ns *corev1.Namespace, d NamespaceDecision, w Write, prev Entry, known bool) {
	switch {
	case d.State == Refused && (!known || prev.State != Refused || prev.Reason != d.Reason):
		r.recorder.Eventf(ns, nil, corev1.EventTypeWarning, ReasonRefused, actionReconcile, "%s", truncate(d.Reason, 1000))
		r.log.Info("refused", "namespace", ns.Name, "reason", d.Reason)
	case w.Action == Apply && w.Why != "missing":
		r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, ReasonRepaired, actionReconcile, "NetworkPolicy %s was %s: restored", generate.PolicyName, w.Why)
	case w.Action == Apply && known && prev.State == Protected:
		r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, ReasonRepaired, actionReconcile, "NetworkPolicy %s was deleted: restored", generate.PolicyName)
	case w.Action == Delete && d.State == Exempt:
		r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, ReasonExempt, actionReconcile, "namespace %s: NetworkPolicy %s removed", d.Reason, generate.PolicyName)
	case w.Action == Delete:
		r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, ReasonRemoved, actionReconcile, "NetworkPolicy %s removed: it would widen egress here", generate.PolicyName)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// setup registers the reconciler: namespaces, and every kind the safety rule reads, mapped to
// the namespaces whose decision it can change.
func (r *namespaceReconciler) setup(mgr manager.Manager) error {
	toOwnNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: obj.GetNamespace()}}}
	})
	toEveryNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := &corev1.NamespaceList{}
		if err := r.client.List(ctx, list); err != nil {
			r.log.Error(err, "list namespaces")
			return nil
		}
		out := make([]reconcile.Request, len(list.Items))
		for i := range list.Items {
			out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}}
		}
		return out
	})
	b := builder.ControllerManagedBy(mgr).
		Named("namespace").
		For(&corev1.Namespace{}).
		WithOptions(ctrl.Options{MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles})
	for _, k := range r.kinds {
		h := toEveryNamespace
		if k.namespaced {
			h = toOwnNamespace
		}
		var opts []builder.WatchesOption
		if k.workload {
			// Only labels and templates matter: status updates are not worth a decision.
			opts = append(opts, builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{})))
		}
		b = b.Watches(k.object, h, opts...)
	}
	return b.Complete(r)
}
