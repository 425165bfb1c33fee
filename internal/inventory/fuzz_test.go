package inventory

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzLoadSeeds are realistic manifests and the hostile shapes the loader must survive. More
// seeds, and inputs the fuzzer once found interesting, are in testdata/fuzz/FuzzLoad.
var fuzzLoadSeeds = []string{
	// A small cluster in multi-document YAML.
	`# shop
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: storefront}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d4f8
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-5d4f8-x2k8p
  namespace: shop
  labels: {app: web, pod-template-hash: 5d4f8}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f8, uid: u2, controller: true}]
spec:
  hostNetwork: false
  containers: [{name: web, image: nginx}]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: shop
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/web"}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-except-imds, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}
    ports: [{protocol: TCP, port: 80, endPort: 8080}, {port: dns, protocol: UDP}]
`,
	// Admin policies and a CronJob.
	`apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-imds}
spec:
  priority: 10
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]}}
  egress:
  - name: deny-imds
    action: Deny
    to: [{networks: [169.254.169.254/32, "fd00:ec2::254/128"]}]
    ports: [{portNumber: {protocol: TCP, port: 80}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  egress:
  - {name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: ops}
spec:
  schedule: "0 * * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: b, image: backup}]}}}}
`,
	// A JSON List, as printed by kubectl get -o json.
	`{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop"}, "spec": {"hostNetwork": true}},
  {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backup-1", "namespace": "shop",
   "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "u", "controller": true}]}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
]}`,
	// A typed list, a JSON stream, a top-level array.
	`{"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": {"name": "a"}}, {"metadata": {}}]}
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}`,
	`[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}, 5, "x", [], null]`,
	// Problems: malformed documents between good ones, wrong types, old versions, no name.
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: [\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n",
	"{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n{\"kind\": }\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {hostNetwork: \"yes\", containers: 5}\n",
	"apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: old}\n---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n",
	// Markers, directives, comments, CRLF.
	"%YAML 1.1\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n...\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n--- # c\n...\n",
	"apiVersion: v1\r\nkind: Pod\r\nmetadata: {name: a}\r\n---\r\n--- {apiVersion: v1, kind: Pod, metadata: {name: b}}\r\n",
	// Hostile shapes (small; the fuzzer grows them).
	"a: &a [x,x,x]\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\nd: [*c,*c,*c]\n",
	"a: &a [*a]\n",
	"a: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]\n",
	"- - - - - - - - - - - - x\n",
	"\x00\x01binary",
	"\xef\xbb\xbfapiVersion: v1\nkind: Pod\nmetadata: {name: bom}\n",
	"",
}

func FuzzLoad(f *testing.F) {
	for _, s := range fuzzLoadSeeds {
		f.Add([]byte(s))
	}
	// One file per fuzzing process, rewritten for each input: a directory per input would
	// cost more than loading it.
	path := filepath.Join(f.TempDir(), "input.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := Options{MaxFileBytes: 1 << 20}
		inv, err := Load([]string{path}, opts)
		if err != nil {
			t.Fatalf("Load of an existing file failed: %v", err)
		}
		checkInventory(t, inv, path, data)

		again, err := Load([]string{path}, opts)
		if err != nil {
			t.Fatalf("second Load failed: %v", err)
		}
		if !reflect.DeepEqual(inv, again) {
			t.Fatalf("loading twice gave different results:\n%s\n---\n%s", fingerprint(inv, path), fingerprint(again, path))
		}

		opts.Stdin = bytes.NewReader(data)
		piped, err := Load([]string{"-"}, opts)
		if err != nil {
			t.Fatalf("Load from standard input failed: %v", err)
		}
		if got, want := fingerprint(piped, "<stdin>"), fingerprint(inv, path); got != want {
			t.Fatalf("standard input and a file with the same bytes load differently:\n%s\n---\n%s", got, want)
		}
	})
}

// checkInventory asserts what must hold of any inventory loaded from the one file path.
func checkInventory(t *testing.T, inv *Inventory, path string, data []byte) {
	t.Helper()
	if inv.Files != 1 {
		t.Errorf("Files = %d, want 1", inv.Files)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	// Every document becomes at most one thing: an object, a skip or a problem (List items
	// each become one).
	seen := map[[2]int]string{}
	claim := func(what string, s Source) {
		t.Helper()
		if s.File != path {
			t.Errorf("%s: source file %q, want %q", what, s.File, path)
		}
		if s.Document < 0 || s.Document > inv.Documents {
			t.Errorf("%s: document %d of %d", what, s.Document, inv.Documents)
		}
		if s.Document > 0 && (s.Line < 1 || s.Line > lines) {
			t.Errorf("%s: line %d, the file has %d lines", what, s.Line, lines)
		}
		if s.Item < 0 || (s.Document == 0 && s.Item != 0) {
			t.Errorf("%s: item %d of document %d", what, s.Item, s.Document)
		}
		key := [2]int{s.Document, s.Item}
		if prev, ok := seen[key]; ok {
			t.Errorf("%s and %s both come from %s", prev, what, s)
		}
		seen[key] = what
	}
	fileProblems := 0
	for i, p := range inv.Problems {
		what := fmt.Sprintf("problem %d (%s)", i, p.Error())
		if p.Message == "" {
			t.Errorf("%s has no message", what)
		}
		if strings.ContainsAny(p.Error(), "\r\n") {
			t.Errorf("%s is not one line", what)
		}
		if p.Source.Document == 0 {
			fileProblems++
		}
		claim(what, p.Source)
	}
	// A problem with the file as a whole (binary, too large) means no document was read.
	if fileProblems > 0 && (fileProblems > 1 || inv.Documents > 0 || len(inv.Problems) > 1) {
		t.Errorf("a file-level problem along with %d documents and %d problems", inv.Documents, len(inv.Problems))
	}
	for i, s := range inv.Skipped {
		if s.Kind == "" || s.APIVersion == "" || s.Reason == "" {
			t.Errorf("skipped %d is incomplete: %+v", i, s)
		}
		claim("skipped "+s.Kind, s.Source)
	}
	for _, p := range inv.Pods {
		name := "Pod " + p.Pod.Namespace + "/" + p.Pod.Name
		if p.Pod.Name == "" || p.Pod.Namespace == "" || p.Workload.Kind == "" || p.Workload.Name == "" {
			t.Errorf("%s: incomplete (workload %+v)", name, p.Workload)
		}
		if _, ok := inv.Namespaces[p.Pod.Namespace]; !ok {
			t.Errorf("%s: its namespace is not in the inventory", name)
		}
		claim(name, p.Source)
	}
	for _, w := range inv.Workloads {
		name := w.Kind + " " + w.Namespace + "/" + w.Name
		if w.Name == "" || w.Namespace == "" {
			t.Errorf("%s: incomplete", name)
		}
		if _, ok := inv.Namespaces[w.Namespace]; !ok {
			t.Errorf("%s: its namespace is not in the inventory", name)
		}
		claim(name, w.Source)
	}
	for _, np := range inv.NetworkPolicies {
		claim("NetworkPolicy "+np.Policy.Name, np.Source)
	}
	for _, a := range inv.AdminNetworkPolicies {
		claim("AdminNetworkPolicy "+a.Policy.Name, a.Source)
	}
	for _, b := range inv.BaselineAdminNetworkPolicies {
		claim("BaselineAdminNetworkPolicy "+b.Policy.Name, b.Source)
	}
	for _, key := range sortedKeys(inv.ServiceAccounts) {
		claim("ServiceAccount "+key, inv.ServiceAccounts[key].Source)
	}
	for _, name := range inv.NamespaceNames() {
		ns := inv.Namespaces[name]
		if ns.Name != name || name == "" || ns.Labels["kubernetes.io/metadata.name"] != name {
			t.Errorf("namespace %q: name %q, labels %v", name, ns.Name, ns.Labels)
		}
		if !ns.Synthesized {
			claim("Namespace "+name, ns.Source)
		}
	}
	documents := map[int]bool{}
	for key := range seen {
		if key[0] > 0 {
			documents[key[0]] = true
		}
	}
	// Fewer can be: an empty List, a null document, an object replaced by a later duplicate, a
	// ReplicaSet folded into its Deployment.
	if len(documents) > inv.Documents {
		t.Errorf("%d documents accounted for, but only %d read", len(documents), inv.Documents)
	}
}

// fingerprint renders what was loaded, with the file name replaced, to compare loads.
func fingerprint(inv *Inventory, file string) string {
	var lines []string
	add := func(format string, args ...any) {
		lines = append(lines, strings.ReplaceAll(fmt.Sprintf(format, args...), file, "FILE"))
	}
	add("files=%d documents=%d objects=%d", inv.Files, inv.Documents, inv.Objects())
	for _, p := range inv.Problems {
		add("problem %s", p.Error())
	}
	for _, s := range inv.Skipped {
		add("skipped %s %s %s: %s", s.Source, s.APIVersion, s.Kind, s.Reason)
	}
	for _, w := range inv.Warnings {
		add("warning %s", w)
	}
	for _, p := range inv.Pods {
		add("pod %s/%s by %+v at %s labels %v hostNetwork=%t", p.Pod.Namespace, p.Pod.Name, p.Workload, p.Source, p.Pod.Labels, p.Pod.Spec.HostNetwork)
	}
	for _, w := range inv.Workloads {
		add("workload %s %s/%s at %s", w.Kind, w.Namespace, w.Name, w.Source)
	}
	for _, np := range inv.NetworkPolicies {
		add("netpol %s/%s at %s", np.Policy.Namespace, np.Policy.Name, np.Source)
	}
	for _, name := range inv.NamespaceNames() {
		ns := inv.Namespaces[name]
		add("namespace %s synthesized=%t labels %v at %s", name, ns.Synthesized, ns.Labels, ns.Source)
	}
	return strings.Join(lines, "\n")
}
