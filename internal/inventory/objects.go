package inventory

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// CacheSource is the Source of objects read from an informer cache rather than a file.
var CacheSource = Source{File: "<cluster>"}

// FromObjects builds an inventory from API objects already in memory, such as a controller's
// informer cache: typed built-in objects, AdminNetworkPolicies and ClusterNetworkPolicies
// (v1beta1 or v1alpha2), and custom resources (Calico, Cilium, the AWS ClusterNetworkPolicy) as
// unstructured objects, which go through the manifest decoder like LoadCluster's. The objects are not copied: callers must not modify them afterwards.
func FromObjects(objs []runtime.Object) (*Inventory, error) {
	b := newBuilder()
	for _, obj := range objs {
		b.inv.Documents++
		if u, ok := obj.(*unstructured.Unstructured); ok {
			data, err := u.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
			d := decodeDoc(rawDoc{data: data, source: CacheSource})
			b.add(d)
			continue
		}
		b.add(decoded{obj: obj, source: CacheSource})
	}
	b.finish()
	return b.inv, nil
}
