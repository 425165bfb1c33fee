package controller

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// CheckNamespace makes sure the controller can use its namespace before it starts: the namespace
// exists, the status ConfigMap can be written there, and, with leader election, the Lease
// LeaseName can be read and written. Without this check a missing namespace or a missing grant
// shows only as client-go's leader election retrying forever. Every write is a server-side dry
// run: nothing is changed. The error says what is missing and how to provide it.
func CheckNamespace(ctx context.Context, cfg *rest.Config, namespace string, leaderElection bool) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dryRun := []string{metav1.DryRunAll}
	status := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StatusConfigMapName, Namespace: namespace}}
	_, err = cs.CoreV1().ConfigMaps(namespace).Create(ctx, status, metav1.CreateOptions{DryRun: dryRun, FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return namespaceError(namespace, "write the status ConfigMap "+StatusConfigMapName, "create", "configmaps", err)
	}
	if !leaderElection {
		return nil
	}
	leases := cs.CoordinationV1().Leases(namespace)
	lease, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		fresh := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: namespace}}
		if _, err := leases.Create(ctx, fresh, metav1.CreateOptions{DryRun: dryRun, FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return namespaceError(namespace, "create the leader election Lease "+LeaseName, "create", "leases", err)
		}
	case err != nil:
		return namespaceError(namespace, "read the leader election Lease "+LeaseName, "get", "leases", err)
	default:
		if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{DryRun: dryRun, FieldManager: FieldManager}); err != nil && !apierrors.IsConflict(err) {
			return namespaceError(namespace, "renew the leader election Lease "+LeaseName, "update", "leases", err)
		}
	}
	return nil
}

// namespaceError explains why the controller cannot use its namespace: the namespace is
// missing, or a grant is.
func namespaceError(namespace, what, verb, resource string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s does not exist, so the controller cannot %s there: create it (kubectl create namespace %s, as deploy/controller does), or give --namespace the namespace it runs in: %w",
			namespace, what, namespace, err)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("the controller may not %s in namespace %s (%s %s): grant it the Role of deploy/controller/rbac.yaml in that namespace, or give --namespace the namespace where it has it: %w",
			what, namespace, verb, resource, err)
	}
	return fmt.Errorf("cannot %s in namespace %s: %w", what, namespace, err)
}
