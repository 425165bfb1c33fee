package controller

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// clusterKey is the one request of the cluster-wide modes: every change leads to the same
// decision over all namespaces.
var clusterKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "imdsguard-cluster"}}

// clusterReconciler keeps one cluster-wide deny in place: the adminnetworkpolicy, calico and
// cilium modes.
type clusterReconciler struct {
	client   client.Client
	mode     Mode
	opts     *Options
	status   *Status
	recorder events.EventRecorder
	log      logr.Logger
}

// managedKinds are the kinds of the objects a cluster-wide mode keeps, with their names.
func managedKinds(mode Mode, opts *Options) ([]*unstructured.Unstructured, error) {
	d, err := DecideCluster(mode, nil, opts)
	if err != nil {
		return nil, err
	}
	return d.Desired, nil
}

// Reconcile gathers the namespaces, decides, plans and writes every managed object.
func (r *clusterReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	list := &corev1.NamespaceList{}
	if err := r.client.List(ctx, list); err != nil {
		return reconcile.Result{}, fmt.Errorf("list namespaces: %w", err)
	}
	namespaces := make([]*corev1.Namespace, len(list.Items))
	for i := range list.Items {
		namespaces[i] = &list.Items[i]
	}
	d, err := DecideCluster(r.mode, namespaces, r.opts)
	if err != nil {
		return reconcile.Result{}, err
	}
	for _, desired := range d.Desired {
		current := &unstructured.Unstructured{}
		current.SetGroupVersionKind(desired.GroupVersionKind())
		err := r.client.Get(ctx, types.NamespacedName{Name: desired.GetName()}, current)
		switch {
		case apierrors.IsNotFound(err):
			current = nil
		case err != nil:
			return reconcile.Result{}, fmt.Errorf("get %s: %w", objectName(desired), err)
		}
		w := Plan(desired, current)
		if current != nil && !Owned(current) {
			r.log.Info("not touching an object imdsguard does not own", "object", objectName(current))
			r.recorder.Eventf(current, nil, corev1.EventTypeWarning, ReasonRefused, actionReconcile,
				"%s exists without the label app.kubernetes.io/managed-by=imdsguard: imdsguard will not replace it", objectName(current))
		}
		if err := writeObject(ctx, r.client, w, r.log); err != nil {
			return reconcile.Result{}, err
		}
		if w.Action == Apply && current != nil {
			r.recorder.Eventf(current, nil, corev1.EventTypeNormal, ReasonRepaired, actionReconcile, "%s was changed by someone else: restored", objectName(desired))
		}
	}
	entries := make(map[string]Entry, len(namespaces))
	for _, ns := range d.Protected {
		entries[ns] = Entry{State: Protected}
	}
	for _, ns := range d.Exempt {
		entries[ns] = Entry{State: Exempt, Reason: "left out of the cluster-wide policy"}
	}
	r.status.Replace(entries)
	return reconcile.Result{}, nil
}

// setup registers the reconciler: every namespace change and every change to a managed object
// leads to the one cluster request.
func (r *clusterReconciler) setup(mgr manager.Manager) error {
	objs, err := managedKinds(r.mode, r.opts)
	if err != nil {
		return err
	}
	toCluster := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{clusterKey}
	})
	b := builder.ControllerManagedBy(mgr).
		Named(string(r.mode)).
		Watches(&corev1.Namespace{}, toCluster, builder.WithPredicates(predicate.LabelChangedPredicate{}))
	for _, o := range objs {
		watched := &unstructured.Unstructured{}
		watched.SetGroupVersionKind(o.GroupVersionKind())
		name := o.GetName()
		b = b.Watches(watched, toCluster, builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
			return obj.GetName() == name
		})))
	}
	return b.Complete(r)
}
