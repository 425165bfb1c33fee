package inventory

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// LoadEngineEvidence reads from a live cluster only what identifies its policy engine (package
// engine): DaemonSets and Deployments of every namespace, the engine ConfigMaps by name, and the
// Tigera operator's Installations and EKS Auto Mode's NodeClasses where they are served. It is
// what a long-running component (the controller) reads at start instead of the whole cluster.
// A resource it may not read is an error that names it: detection must not guess.
func LoadEngineEvidence(ctx context.Context, cfg *rest.Config) (*Inventory, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	var objs []runtime.Object
	page := metav1.ListOptions{Limit: DefaultPageSize}
	for opts := page; ; {
		list, err := core.AppsV1().DaemonSets("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list daemonsets: %w", err)
		}
		for i := range list.Items {
			list.Items[i].Kind, list.Items[i].APIVersion = "DaemonSet", "apps/v1"
			objs = append(objs, &list.Items[i])
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	for opts := page; ; {
		list, err := core.AppsV1().Deployments("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		for i := range list.Items {
			list.Items[i].Kind, list.Items[i].APIVersion = "Deployment", "apps/v1"
			objs = append(objs, &list.Items[i])
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	for _, ref := range EngineConfigMaps {
		cm, err := core.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("get configmap %s: %w", ref, err)
		}
		cm.Kind, cm.APIVersion = "ConfigMap", "v1"
		objs = append(objs, cm)
	}
	for _, gvr := range []schema.GroupVersionResource{operatorGroupVersion.WithResource("installations"), eksGroupVersion.WithResource("nodeclasses")} {
		if _, err := disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String()); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("discover %s: %w", gvr.GroupVersion(), err)
		}
		list, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	return FromObjects(objs)
}
