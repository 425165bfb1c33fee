// Command livecluster serves a cluster from a real kube-apiserver and etcd, for the live-audit
// benchmark (hack/bench-live.sh) and for trying live audits without a cluster: it starts the
// test control plane, installs the AdminNetworkPolicy, Calico and Cilium CRDs, creates every
// object of a synthetic cluster (internal/synth) or of manifests (-f), writes a kubeconfig and
// serves until it is interrupted.
//
//	go run ./hack/livecluster -pods 20000 -namespaces 2000 -kubeconfig _output/bench/live.kubeconfig
//	go run ./hack/livecluster -f examples/cluster -kubeconfig /tmp/example.kubeconfig
//
// Run it from the repository root after hack/kube-apiserver.sh.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/imdsguard/imdsguard/internal/synth"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "livecluster: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	pods := flag.Int("pods", 20000, "number of pods")
	namespaces := flag.Int("namespaces", 2000, "number of namespaces")
	kubeconfig := flag.String("kubeconfig", "", "write the kubeconfig here (required)")
	workers := flag.Int("workers", 32, "concurrent create requests")
	manifests := flag.String("f", "", "create the objects of these manifests (a file or directory) instead of a synthetic cluster")
	flag.Parse()
	if *kubeconfig == "" {
		return errors.New("-kubeconfig is required")
	}

	var objs []*unstructured.Unstructured
	var what string
	if *manifests != "" {
		var err error
		if objs, err = kubetest.DecodeFiles(*manifests); err != nil {
			return err
		}
		what = *manifests
	} else {
		cfg := synth.Scaled(*pods)
		cfg.Namespaces = *namespaces
		var buf bytes.Buffer
		stats, err := synth.Generate(&buf, cfg)
		if err != nil {
			return err
		}
		if objs, err = kubetest.Decode(buf.Bytes()); err != nil {
			return fmt.Errorf("decode synthetic cluster: %w", err)
		}
		what = fmt.Sprintf("%d pods, %d namespaces, %d NetworkPolicies, %d AdminNetworkPolicies", stats.Pods, stats.Namespaces, stats.NetworkPolicies, stats.AdminNetworkPolicies)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cp, err := kubetest.Start(ctx, kubetest.Options{APIServerArgs: []string{"--max-requests-inflight", "800", "--max-mutating-requests-inflight", "400"}})
	if err != nil {
		return err
	}
	defer cp.Stop()
	admin := cp.Config("admin")
	admin.Timeout = 5 * time.Minute
	if err := kubetest.InstallCRDs(ctx, admin, kubetest.AdminNetworkPolicy, kubetest.Calico, kubetest.Cilium); err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(admin)
	if err != nil {
		return err
	}

	started := time.Now()
	if *manifests != "" {
		applier, err := kubetest.NewApplier(admin)
		if err != nil {
			return err
		}
		if err := applier.Apply(ctx, objs, false); err != nil {
			return err
		}
		objs = nil // applied
	}
	var first, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			first = append(first, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, batch := range [][]*unstructured.Unstructured{first, rest} {
		if err := create(ctx, client, batch, *workers); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "livecluster: created the objects of %s in %s\n", what, time.Since(started).Round(time.Second))

	path, err := cp.Kubeconfig()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*kubeconfig+".tmp", data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(*kubeconfig+".tmp", *kubeconfig); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "livecluster: serving at %s; kubeconfig %s\n", cp.URL, *kubeconfig)
	<-ctx.Done()
	_ = os.Remove(*kubeconfig)
	return nil
}

// create creates the objects with a pool of workers; the first failure stops it.
func create(ctx context.Context, client dynamic.Interface, objs []*unstructured.Unstructured, workers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(objs) || ctx.Err() != nil {
					return
				}
				o := objs[i]
				if err := createOne(ctx, client, o); err != nil {
					cancel(fmt.Errorf("create %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err))
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// resources maps the synthetic cluster's kinds to their resources.
var resources = map[string]schema.GroupVersionResource{
	"Namespace":          {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":     {Version: "v1", Resource: "serviceaccounts"},
	"Pod":                {Version: "v1", Resource: "pods"},
	"Deployment":         {Group: "apps", Version: "v1", Resource: "deployments"},
	"ReplicaSet":         {Group: "apps", Version: "v1", Resource: "replicasets"},
	"DaemonSet":          {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"StatefulSet":        {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"Job":                {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":            {Group: "batch", Version: "v1", Resource: "cronjobs"},
	"NetworkPolicy":      {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"AdminNetworkPolicy": {Group: "policy.networking.k8s.io", Version: "v1alpha1", Resource: "adminnetworkpolicies"},
}

func createOne(ctx context.Context, client dynamic.Interface, o *unstructured.Unstructured) error {
	gvr, ok := resources[o.GetKind()]
	if !ok {
		return fmt.Errorf("kind %s not known to livecluster", o.GetKind())
	}
	o.SetResourceVersion("")
	o.SetUID("")
	o.SetCreationTimestamp(metav1.Time{})
	var res dynamic.ResourceInterface = client.Resource(gvr)
	if ns := o.GetNamespace(); ns != "" {
		res = client.Resource(gvr).Namespace(ns)
	}
	_, err := res.Create(ctx, o, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) && o.GetKind() == "Namespace" {
		return nil // kube-system and default exist from the start
	}
	return err
}
