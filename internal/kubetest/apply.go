package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"os"
	"path/filepath"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager of objects applied by tests.
const FieldManager = "imdsguard-kubetest"

// Decode reads every object of a multi-document YAML or JSON stream.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, u)
	}
}

// DecodeFiles reads every object of the YAML and JSON files given, directories walked.
func DecodeFiles(paths ...string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if path != p && !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml") && !strings.HasSuffix(path, ".json") {
				return nil
			}
			data, err := os.ReadFile(path) //nolint:gosec // test fixtures named by the test itself
			if err != nil {
				return err
			}
			objs, err := Decode(data)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, objs...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
	}
	return out, nil
}

// Applier server-side applies objects through discovery, like kubectl apply --server-side.
type Applier struct {
	client dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier returns an Applier for the configuration's user.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	return &Applier{client: client, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// Apply server-side applies the objects, namespaces and CRDs first. With dryRun the server
// validates and admits each object without storing it. The first failure is returned, naming
// the object.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) error {
	ordered := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(ordered, func(i, j int) bool { return rank(ordered[i]) < rank(ordered[j]) })
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, obj := range ordered {
		gvk := obj.GroupVersionKind()
		mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			a.mapper.Reset() // a CRD applied just now
			if mapping, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				return fmt.Errorf("kubetest: %s %s: %w", gvk, obj.GetName(), err)
			}
		}
		var res dynamic.ResourceInterface = a.client.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = metav1.NamespaceDefault
			}
			res = a.client.Resource(mapping.Resource).Namespace(ns)
		}
		if _, err := res.Apply(ctx, obj.GetName(), obj, opts); err != nil {
			return fmt.Errorf("kubetest: apply %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		// A Node's status is what its kubelet reports (status.nodeInfo.osImage), a NodeClaim's
		// what Karpenter does (status.providerID); neither runs here, so the manifest's status
		// is applied to the status subresource as they would write it.
		if _, hasStatus := obj.Object["status"]; hasStatus && statusWriters[gvk.GroupKind()] {
			if _, err := res.ApplyStatus(ctx, obj.GetName(), obj, opts); err != nil {
				return fmt.Errorf("kubetest: apply status of %s %s: %w", gvk.Kind, obj.GetName(), err)
			}
		}
	}
	return nil
}

// statusWriters are the kinds whose status Apply writes from the manifest.
var statusWriters = map[schema.GroupKind]bool{{Kind: "Node"}: true, {Group: "karpenter.sh", Kind: "NodeClaim"}: true}

// rank orders namespaces and CRDs before the objects that need them.
func rank(o *unstructured.Unstructured) int {
	switch o.GetKind() {
	case "Namespace", "CustomResourceDefinition":
		return 0
	}
	return 1
}
