package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/synth"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// TestDecodingMatchesKubernetes decodes every object of a synthetic cluster and of the example
// cluster both with imdsguard's decoder and with the one the API server uses
// (k8s.io/apimachinery/pkg/util/json), and requires identical objects.
func TestDecodingMatchesKubernetes(t *testing.T) {
	var list bytes.Buffer
	if _, err := synth.Generate(&list, synth.Scaled(400)); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	var doc struct{ Items []json.RawMessage }
	if err := json.Unmarshal(list.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	items = append(items, doc.Items...)
	files, _ := filepath.Glob("../../examples/cluster/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for d := range yamlDocuments(data) {
			if isEmptyYAML(d) {
				continue
			}
			js, err := yaml.YAMLToJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, js)
		}
	}
	kinds := map[string]int{}
	for i, item := range items {
		apiVersion, kind, err := sniff(item)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		newObj, ok := newObject[kindKey{apiVersion, kind}]
		if !ok {
			continue
		}
		ours, theirs := newObj(), newObj()
		if err := unmarshal(item, ours); err != nil {
			t.Fatalf("item %d (%s): %v", i, kind, err)
		}
		if err := utiljson.Unmarshal(item, theirs); err != nil {
			t.Fatalf("item %d (%s): Kubernetes' decoder: %v", i, kind, err)
		}
		if diff := cmp.Diff(theirs, ours); diff != "" {
			t.Fatalf("item %d (%s) decodes differently (-kubernetes +imdsguard):\n%s", i, kind, diff)
		}
		kinds[kind]++
	}
	for _, k := range []string{"Pod", "Deployment", "NetworkPolicy", "AdminNetworkPolicy", "Namespace", "ServiceAccount", "StatefulSet", "DaemonSet", "CronJob"} {
		if kinds[k] == 0 {
			t.Errorf("no %s compared", k)
		}
	}
}
