package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// A loadCase is one sentence of the loader's behaviour: the files it is given and what it
// must make of them.
type loadCase struct {
	name  string
	files map[string]string // path relative to the test directory → content
	// args are the paths given to Load, relative to the test directory ("." is the directory
	// itself, "-" standard input); every file of files when empty.
	args  []string
	stdin *string
	opts  Options
	want  loadWant
	// check asserts what the declarative fields cannot.
	check func(t *testing.T, inv *Inventory)
}

type loadWant struct {
	// err is a substring of the error Load must return; nothing else is checked then.
	err             string
	files, docs     int
	pods            []string // "ns/name by Kind/name at SRC"
	workloads       []string // "Kind ns/name at SRC"
	netpols         []string // "ns/name at SRC"
	namespaces      []string // "name" declared, "name*" synthesized
	problems        []wantProblem
	skipped         []wantSkipped
	warnings        []string // one substring per warning, in order
	serviceAccounts []string // "ns/name"
}

type wantProblem struct {
	src   string // SRC: "file#document[item]@line"
	field string
	msg   string // substring of the message
}

type wantSkipped struct {
	src, kind, reason string // reason: substring
}

// src renders a Source compactly: "file#document", "[item]" for List items, "@line".
func src(dir string, s Source) string {
	file := s.File
	if rel, err := filepath.Rel(dir, s.File); err == nil && !strings.HasPrefix(rel, "..") {
		file = filepath.ToSlash(rel)
	}
	out := fmt.Sprintf("%s#%d", file, s.Document)
	if s.Item > 0 {
		out += fmt.Sprintf("[%d]", s.Item)
	}
	if s.Line > 0 {
		out += fmt.Sprintf("@%d", s.Line)
	}
	return out
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (c loadCase) run(t *testing.T) {
	dir := writeTree(t, c.files)
	var args []string
	if len(c.args) == 0 {
		for name := range c.files {
			args = append(args, filepath.Join(dir, filepath.FromSlash(name)))
		}
		slices.Sort(args)
	}
	for _, a := range c.args {
		switch a {
		case "-":
			args = append(args, a)
		case ".":
			args = append(args, dir)
		default:
			args = append(args, filepath.Join(dir, filepath.FromSlash(a)))
		}
	}
	opts := c.opts
	if c.stdin != nil {
		opts.Stdin = strings.NewReader(*c.stdin)
	}
	inv, err := Load(args, opts)
	if c.want.err != "" {
		if err == nil {
			t.Fatalf("Load succeeded, want an error containing %q", c.want.err)
		}
		if !strings.Contains(err.Error(), c.want.err) {
			t.Fatalf("Load error %q, want it to contain %q", err, c.want.err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Load error %q is not one line", err)
		}
		if inv != nil {
			t.Errorf("Load returned an inventory along with the error %q", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	w := c.want
	if inv.Files != w.files || inv.Documents != w.docs {
		t.Errorf("read %d files, %d documents; want %d files, %d documents", inv.Files, inv.Documents, w.files, w.docs)
	}

	var pods, workloads, netpols, namespaces, sas []string
	for _, p := range inv.Pods {
		pods = append(pods, fmt.Sprintf("%s/%s by %s/%s at %s", p.Pod.Namespace, p.Pod.Name, p.Workload.Kind, p.Workload.Name, src(dir, p.Source)))
	}
	for _, wl := range inv.Workloads {
		workloads = append(workloads, fmt.Sprintf("%s %s/%s at %s", wl.Kind, wl.Namespace, wl.Name, src(dir, wl.Source)))
	}
	for _, np := range inv.NetworkPolicies {
		netpols = append(netpols, fmt.Sprintf("%s/%s at %s", np.Policy.Namespace, np.Policy.Name, src(dir, np.Source)))
	}
	for _, name := range inv.NamespaceNames() {
		if inv.Namespaces[name].Synthesized {
			name += "*"
		}
		namespaces = append(namespaces, name)
	}
	for key := range inv.ServiceAccounts {
		sas = append(sas, key)
	}
	slices.Sort(sas)
	sameList(t, "pods", pods, w.pods)
	sameList(t, "workloads", workloads, w.workloads)
	sameList(t, "network policies", netpols, w.netpols)
	sameList(t, "namespaces", namespaces, w.namespaces)
	sameList(t, "service accounts", sas, w.serviceAccounts)

	if len(inv.Problems) != len(w.problems) {
		t.Errorf("%d problems, want %d:\n%s", len(inv.Problems), len(w.problems), problemList(inv.Problems))
	} else {
		for i, p := range inv.Problems {
			wp := w.problems[i]
			if got := src(dir, p.Source); got != wp.src || p.Field != wp.field || !strings.Contains(p.Message, wp.msg) {
				t.Errorf("problem %d: at %s field %q message %q\nwant: at %s field %q message containing %q", i, got, p.Field, p.Message, wp.src, wp.field, wp.msg)
			}
			if strings.Contains(p.Error(), "\n") {
				t.Errorf("problem %d is not one line: %q", i, p.Error())
			}
		}
	}
	if len(inv.Skipped) != len(w.skipped) {
		t.Errorf("%d skipped, want %d: %+v", len(inv.Skipped), len(w.skipped), inv.Skipped)
	} else {
		for i, s := range inv.Skipped {
			ws := w.skipped[i]
			if got := src(dir, s.Source); got != ws.src || s.Kind != ws.kind || !strings.Contains(s.Reason, ws.reason) {
				t.Errorf("skipped %d: %s %s (%s)\nwant: %s %s (reason containing %q)", i, got, s.Kind, s.Reason, ws.src, ws.kind, ws.reason)
			}
		}
	}
	if len(inv.Warnings) != len(w.warnings) {
		t.Errorf("%d warnings, want %d:\n  %s", len(inv.Warnings), len(w.warnings), strings.Join(inv.Warnings, "\n  "))
	} else {
		for i, warning := range inv.Warnings {
			if !strings.Contains(warning, w.warnings[i]) {
				t.Errorf("warning %d: %q\nwant it to contain %q", i, warning, w.warnings[i])
			}
		}
	}
	if c.check != nil {
		c.check(t, inv)
	}
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n  got  %q\n  want %q", what, got, want)
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s (field %q)\n", p.Error(), p.Field)
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }

// defaultNS is the warning about the "default" namespace every object without a namespace
// causes when the input does not declare it.
const defaultNS = `namespace "default" is not declared in the input`

const shopNamespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"

// pod renders a one-line Pod manifest.
func pod(namespace, name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s}\nspec: {containers: [{name: c, image: nginx}]}\n", name, namespace)
}

func TestLoad(t *testing.T) {
	cases := []loadCase{
		{
			name: "multi-document YAML splits on --- lines, skips empty and comment-only documents, and numbers the rest with the line each starts on",
			files: map[string]string{"m.yaml": "" +
				"# leading comment\n" + // 1
				"apiVersion: v1\n" + // 2
				"kind: Pod\n" + // 3
				"metadata: {name: a, namespace: shop}\n" + // 4
				"---\n" + // 5
				"---\n" + // 6
				"# a document of comments only\n" + // 7
				"\n" + // 8
				"--- # the marker may carry a comment\n" + // 9
				"apiVersion: v1\n" + // 10
				"kind: Pod\n" + // 11
				"metadata:\n" + // 12
				"  name: b\n" + // 13
				"  namespace: shop\n" + // 14
				"---\n" + // 15
				"--- {apiVersion: v1, kind: Pod, metadata: {name: c, namespace: shop}}\n" + // 16
				"---\n" + // 17
				shopNamespace + // 18-20
				"---\n", // 21
			},
			want: loadWant{
				files: 1, docs: 4,
				pods:       []string{"shop/a by Pod/a at m.yaml#1@1", "shop/b by Pod/b at m.yaml#2@9", "shop/c by Pod/c at m.yaml#3@16"},
				namespaces: []string{"shop"},
			},
		},
		{
			name: "a document after a ... end marker is loaded, not silently dropped by the YAML parser",
			files: map[string]string{"dots.yaml": "" +
				shopNamespace + // 1-3
				"...\n" + // 4
				pod("shop", "after-end-marker") + // 5-8
				"... # end\n", // 9
			},
			want: loadWant{
				files: 1, docs: 2,
				pods:       []string{"shop/after-end-marker by Pod/after-end-marker at dots.yaml#2@5"},
				namespaces: []string{"shop"},
			},
		},
		{
			name:  "YAML directives before the --- of their document are not a document of their own",
			files: map[string]string{"d.yaml": "%YAML 1.1\n---\n" + pod("shop", "a") + "---\n" + shopNamespace},
			want: loadWant{
				files: 1, docs: 2,
				pods:       []string{"shop/a by Pod/a at d.yaml#1@2"},
				namespaces: []string{"shop"},
			},
		},
		{
			name:  "CRLF line endings split and count lines like LF",
			files: map[string]string{"crlf.yaml": strings.ReplaceAll(shopNamespace+"---\n"+pod("shop", "a")+"---\n"+pod("shop", "b"), "\n", "\r\n")},
			want: loadWant{
				files: 1, docs: 3,
				pods:       []string{"shop/a by Pod/a at crlf.yaml#2@4", "shop/b by Pod/b at crlf.yaml#3@9"},
				namespaces: []string{"shop"},
			},
		},
		{
			name:  "a JSON file holding one object is one document, starting at its first non-blank line",
			files: map[string]string{"one.json": "\n\n  {\"apiVersion\": \"v1\", \"kind\": \"Pod\",\n   \"metadata\": {\"name\": \"a\", \"namespace\": \"shop\"}}\n"},
			want: loadWant{
				files: 1, docs: 1,
				pods:       []string{"shop/a by Pod/a at one.json#1@3"},
				namespaces: []string{"shop*"},
				warnings:   []string{`namespace "shop" is not declared`},
			},
		},
		{
			name: "a stream of JSON objects is one document per object",
			files: map[string]string{"stream.json": `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "a", "namespace": "shop"}}

{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "shop"}}{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c", "namespace": "shop"}}
`},
			want: loadWant{
				files: 1, docs: 4,
				pods:       []string{"shop/a by Pod/a at stream.json#2@2", "shop/b by Pod/b at stream.json#3@5", "shop/c by Pod/c at stream.json#4@5"},
				namespaces: []string{"shop"},
			},
		},
		{
			name: "a top-level JSON array is one document whose elements are items",
			files: map[string]string{"array.json": `[
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop"}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "shop"}}
]`},
			want: loadWant{
				files: 1, docs: 1,
				pods:       []string{"shop/a by Pod/a at array.json#1[2]@1"},
				namespaces: []string{"shop"},
				skipped:    []wantSkipped{{"array.json#1[3]@1", "ConfigMap", "kind not evaluated"}},
			},
		},
		{
			name: "a kind: List document yields its items, numbered from 1, each keeping the list's document and line",
			files: map[string]string{"list.yaml": shopNamespace + "---\n" + `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: shop}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny, namespace: shop}
  spec: {podSelector: {}, policyTypes: [Egress]}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: agent, namespace: shop}
  spec: {selector: {matchLabels: {app: agent}}, template: {metadata: {labels: {app: agent}}, spec: {containers: [{name: c, image: agent}]}}}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: web, namespace: shop}
- {}
`},
			want: loadWant{
				files: 1, docs: 2,
				pods:            []string{"shop/a by Pod/a at list.yaml#2[1]@4"},
				netpols:         []string{"shop/deny at list.yaml#2[2]@4"},
				workloads:       []string{"DaemonSet shop/agent at list.yaml#2[3]@4"},
				serviceAccounts: []string{"shop/web"},
				namespaces:      []string{"shop"},
				problems:        []wantProblem{{src: "list.yaml#2[5]@4", msg: "not a Kubernetes object: apiVersion and kind are required"}},
			},
		},
		{
			name: "a typed list (PodList) gives its apiVersion and kind to items that omit them",
			files: map[string]string{"pods.json": `{"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [
  {"metadata": {"name": "a", "namespace": "shop"}},
  {"metadata": {"name": "b", "namespace": "shop"}, "spec": {"hostNetwork": true}}
]}`},
			want: loadWant{
				files: 1, docs: 1,
				pods:       []string{"shop/a by Pod/a at pods.json#1[1]@1", "shop/b by Pod/b at pods.json#1[2]@1"},
				namespaces: []string{"shop*"},
				warnings:   []string{`namespace "shop" is not declared`},
			},
			check: func(t *testing.T, inv *Inventory) {
				if !inv.Pods[1].Pod.Spec.HostNetwork {
					t.Error("the second PodList item lost hostNetwork: true")
				}
			},
		},
		{
			name: "directories are walked recursively in lexical order for *.yaml, *.yml and *.json, skipping dot-directories, dot-files and other files",
			files: map[string]string{
				"a.yaml":               pod("shop", "a"),
				"sub/b.yml":            pod("shop", "b"),
				"sub/deeper/c.JSON":    `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c", "namespace": "shop"}}`,
				"sub/notes.txt":        pod("shop", "not-a-manifest-name"),
				"README.md":            pod("shop", "readme"),
				".git/d.yaml":          pod("shop", "in-dot-git"),
				"sub/.hidden/e.yaml":   pod("shop", "in-hidden"),
				".golangci.yml":        "version: \"2\"\nlinters: {default: none}\n",
				"sub/deeper/z.yaml.bk": pod("shop", "backup"),
				"ns.yaml":              shopNamespace,
			},
			args: []string{"."},
			want: loadWant{
				files: 4, docs: 4,
				pods:       []string{"shop/a by Pod/a at a.yaml#1@1", "shop/b by Pod/b at sub/b.yml#1@1", "shop/c by Pod/c at sub/deeper/c.JSON#1@1"},
				namespaces: []string{"shop"},
			},
		},
		{
			name:  "- reads Options.Stdin, named <stdin>, alongside files",
			files: map[string]string{"ns.yaml": shopNamespace},
			args:  []string{"ns.yaml", "-"},
			stdin: ptr("---\n" + pod("shop", "piped")),
			want: loadWant{
				files: 2, docs: 2,
				pods:       []string{"shop/piped by Pod/piped at <stdin>#1@1"},
				namespaces: []string{"shop"},
			},
		},
		{
			name:  "- given twice is an error",
			args:  []string{"-", "-"},
			stdin: ptr(pod("shop", "a")),
			want:  loadWant{err: `"-" (standard input) given more than once`},
		},
		{
			name: "- without a standard input is an error",
			args: []string{"-"},
			want: loadWant{err: "no standard input"},
		},
		{
			name:  "a missing path is an error naming it, and nothing is loaded",
			files: map[string]string{"ok.yaml": pod("shop", "a")},
			args:  []string{"ok.yaml", "missing.yaml"},
			want:  loadWant{err: "missing.yaml: no such file or directory"},
		},
		{
			name:  "a directory holding no manifests is an error naming it",
			files: map[string]string{"empty/notes.txt": "hello", "empty/.git/x.yaml": pod("shop", "a")},
			args:  []string{"empty"},
			want:  loadWant{err: "empty: directory holds no *.yaml, *.yml or *.json files"},
		},
		{
			name: "no paths at all is an error",
			args: []string{},
			want: loadWant{err: "no input"},
		},
		{
			name: "an empty file is read, holds no documents and is not a problem",
			files: map[string]string{
				"empty.yaml":    "",
				"comments.yaml": "# nothing here\n---\n\n",
			},
			want: loadWant{files: 2, docs: 0},
		},
		{
			name: "unknown kinds are skipped and counted with a reason, and are not problems",
			files: map[string]string{"mixed.yaml": pod("shop", "a") + `---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: shop}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
`},
			want: loadWant{
				files: 1, docs: 3,
				pods:       []string{"shop/a by Pod/a at mixed.yaml#1@1"},
				namespaces: []string{"shop*"},
				skipped: []wantSkipped{
					{"mixed.yaml#2@5", "ConfigMap", "kind not evaluated by imdsguard"},
					{"mixed.yaml#3@9", "Widget", "kind not evaluated by imdsguard"},
				},
				warnings: []string{`namespace "shop" is not declared`},
			},
		},
		{
			name: "a known kind in an unsupported apiVersion is skipped with a reason naming the supported version",
			files: map[string]string{"old.yaml": `apiVersion: extensions/v1beta1
kind: NetworkPolicy
metadata: {name: old, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: old, namespace: shop}
`},
			want: loadWant{
				files: 1, docs: 2,
				skipped: []wantSkipped{
					{"old.yaml#1@1", "NetworkPolicy", "apiVersion extensions/v1beta1 is not supported for NetworkPolicy (use networking.k8s.io/v1)"},
					{"old.yaml#2@5", "Deployment", "apiVersion apps/v1beta2 is not supported for Deployment (use apps/v1)"},
				},
			},
			check: func(t *testing.T, inv *Inventory) {
				if inv.Skipped[0].APIVersion != "extensions/v1beta1" {
					t.Errorf("skipped apiVersion %q, want extensions/v1beta1", inv.Skipped[0].APIVersion)
				}
			},
		},
		{
			name: "malformed YAML in document 2 of 3 is one problem at its file, document and line (in the file), and documents 1 and 3 are loaded",
			files: map[string]string{"broken.yaml": "" +
				pod("shop", "first") + // 1-4
				"---\n" + // 5
				"apiVersion: v1\n" + // 6
				"kind: Pod\n" + // 7
				"metadata:\n" + // 8
				"  name: second\n" + // 9
				"  labels: {app: [web}\n" + // 10
				"---\n" + // 11
				pod("shop", "third"), // 12-15
			},
			want: loadWant{
				files: 1, docs: 3,
				pods:       []string{"shop/first by Pod/first at broken.yaml#1@1", "shop/third by Pod/third at broken.yaml#3@11"},
				namespaces: []string{"shop*"},
				problems:   []wantProblem{{src: "broken.yaml#2@5", msg: "invalid YAML: yaml: line 10: did not find expected ',' or ']'"}},
				warnings:   []string{`namespace "shop" is not declared`},
			},
			check: func(t *testing.T, inv *Inventory) {
				p := inv.Problems[0]
				if want := "broken.yaml: document 2 (line 5): invalid YAML: yaml: line 10:"; !strings.Contains(p.Error(), want) {
					t.Errorf("problem renders as %q, want it to contain %q", p.Error(), want)
				}
			},
		},
		{
			name:  "malformed YAML in the first document reports the line in the file",
			files: map[string]string{"tab.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: a\n"},
			want: loadWant{
				files: 1, docs: 1,
				problems: []wantProblem{{src: "tab.yaml#1@1", msg: "yaml: line 4: found character that cannot start any token"}},
			},
		},
		{
			name: "malformed JSON is a problem giving the line and column in the file, and the objects before it are loaded",
			files: map[string]string{"broken.json": `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop"}}
{"apiVersion": "v1",
 "kind": "Pod" "metadata": {}}
`},
			want: loadWant{
				files: 1, docs: 2,
				pods:       []string{"shop/a by Pod/a at broken.json#1@1"},
				namespaces: []string{"shop*"},
				problems:   []wantProblem{{src: "broken.json#2@2", msg: "invalid JSON: line 3, column 16: invalid character '\"' after object value (expecting ',' or '}')"}},
				warnings:   []string{`namespace "shop" is not declared`},
			},
		},
		{
			name:  "a binary file (NUL bytes) is a problem naming the file, and the other files load",
			files: map[string]string{"a.yaml": pod("shop", "a"), "blob.yaml": "apiVersion: v1\x00\x01\x02\xff"},
			want: loadWant{
				files: 2, docs: 1,
				pods:       []string{"shop/a by Pod/a at a.yaml#1@1"},
				namespaces: []string{"shop*"},
				problems:   []wantProblem{{src: "blob.yaml#0", msg: "binary data (NUL byte at offset 14): not a YAML or JSON manifest"}},
				warnings:   []string{`namespace "shop" is not declared`},
			},
		},
		{
			name:  "a file larger than Options.MaxFileBytes is a problem mentioning --max-file-size, and the other files load",
			files: map[string]string{"big.yaml": pod("shop", "big") + strings.Repeat("# padding\n", 20), "small.yaml": pod("shop", "a")},
			opts:  Options{MaxFileBytes: 150},
			want: loadWant{
				files: 2, docs: 1,
				pods:       []string{"shop/a by Pod/a at small.yaml#1@1"},
				namespaces: []string{"shop*"},
				problems:   []wantProblem{{src: "big.yaml#0", msg: "larger than the limit of 150 bytes (raise it with --max-file-size)"}},
				warnings:   []string{`namespace "shop" is not declared`},
			},
		},
		{
			name:  "standard input larger than Options.MaxFileBytes is a problem mentioning --max-file-size",
			args:  []string{"-"},
			stdin: ptr(pod("shop", "a") + strings.Repeat("#", 200)),
			opts:  Options{MaxFileBytes: 100},
			want: loadWant{
				files: 1, docs: 0,
				problems: []wantProblem{{src: "<stdin>#0", msg: "larger than the limit of 100 bytes (raise it with --max-file-size)"}},
			},
		},
		{
			name:  "an object without metadata.name is a problem on the field metadata.name",
			files: map[string]string{"noname.yaml": pod("shop", "a") + "---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: shop}\n"},
			want: loadWant{
				files: 1, docs: 2,
				pods:       []string{"shop/a by Pod/a at noname.yaml#1@1"},
				namespaces: []string{"shop*"},
				problems:   []wantProblem{{src: "noname.yaml#2@5", field: "metadata.name", msg: "name is required"}},
				warnings:   []string{`namespace "shop" is not declared`},
			},
			check: func(t *testing.T, inv *Inventory) {
				if o := inv.Problems[0].Object; o == nil || o.Kind != "Pod" {
					t.Errorf("problem object %+v, want a Pod", o)
				}
			},
		},
		{
			name: "a field of the wrong type is a problem naming the object and the field, and the other documents load",
			files: map[string]string{"types.yaml": pod("shop", "a") + `---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: shop}
spec:
  hostNetwork: "yes"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: shop}
spec:
  podSelector: {}
  egress:
  - ports: [{port: 80, endPort: "90"}]
`},
			want: loadWant{
				files: 1, docs: 3,
				pods:       []string{"shop/a by Pod/a at types.yaml#1@1"},
				namespaces: []string{"shop*"},
				problems: []wantProblem{
					{src: "types.yaml#2@5", field: "spec.hostNetwork", msg: "cannot decode Pod: got a string, want a boolean"},
					{src: "types.yaml#3@11", field: "spec.egress[0].ports[0].endPort", msg: "cannot decode NetworkPolicy: got a string, want an integer"},
				},
				warnings: []string{`namespace "shop" is not declared`},
			},
			check: func(t *testing.T, inv *Inventory) {
				if o := inv.Problems[0].Object; o == nil || o.String() != "Pod shop/b" {
					t.Errorf("problem object %v, want Pod shop/b", o)
				}
			},
		},
		{
			name:  "a document that is not a mapping is a problem saying what it is",
			files: map[string]string{"scalars.yaml": "just a string\n---\n- 1\n---\napiVersion: 1\nkind: Pod\n"},
			want: loadWant{
				files: 1, docs: 3,
				problems: []wantProblem{
					{src: "scalars.yaml#1@1", msg: "not a Kubernetes object: got a string, want a mapping with apiVersion and kind"},
					{src: "scalars.yaml#2[1]@2", msg: "not a Kubernetes object: got a number, want a mapping with apiVersion and kind"},
					{src: "scalars.yaml#3@4", field: "apiVersion", msg: "not a Kubernetes object: got a number, want a string"},
				},
			},
		},
		{
			name:  "a Pod in an undeclared namespace synthesizes it with the kubernetes.io/metadata.name label and a warning",
			files: map[string]string{"p.yaml": pod("shop", "web") + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: bare}\n"},
			want: loadWant{
				files: 1, docs: 2,
				pods:       []string{"shop/web by Pod/web at p.yaml#1@1", "default/bare by Pod/bare at p.yaml#2@5"},
				namespaces: []string{"default*", "shop*"},
				warnings: []string{
					`namespace "shop" is not declared in the input (first referenced by Pod web at `,
					defaultNS,
				},
			},
			check: func(t *testing.T, inv *Inventory) {
				ns := inv.Namespaces["shop"]
				if len(ns.Labels) != 1 || ns.Labels["kubernetes.io/metadata.name"] != "shop" {
					t.Errorf("synthesized namespace labels %v, want only kubernetes.io/metadata.name=shop", ns.Labels)
				}
				if !strings.HasSuffix(inv.Warnings[0], "assumed to exist with only the label kubernetes.io/metadata.name=shop") {
					t.Errorf("warning %q does not say which label is assumed", inv.Warnings[0])
				}
				if inv.Objects() != 2 {
					t.Errorf("Objects() = %d, want 2 (synthesized namespaces are not objects)", inv.Objects())
				}
			},
		},
		{
			name: "declared namespaces keep their labels and get kubernetes.io/metadata.name, cluster-scoped kinds lose a namespace",
			files: map[string]string{"ns.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  namespace: ignored
  labels: {team: storefront, kubernetes.io/metadata.name: wrong}
`},
			want: loadWant{files: 1, docs: 1, namespaces: []string{"shop"}},
			check: func(t *testing.T, inv *Inventory) {
				want := map[string]string{"team": "storefront", "kubernetes.io/metadata.name": "shop"}
				if got := inv.Namespaces["shop"].Labels; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("labels %v, want %v", got, want)
				}
			},
		},
		{
			name: "Calico GlobalNetworkSets and NetworkSets of both API groups land in the inventory with their labels and nets; a GlobalNetworkSet loses a namespace",
			files: map[string]string{"sets.yaml": shopNamespace + // 1-3
				"---\n" + // 4
				"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n" + // 5-6
				"metadata: {name: metadata-endpoints, namespace: ignored, labels: {role: metadata}}\n" + // 7
				"spec: {nets: [169.254.169.254/32, \"fd00:ec2::254/128\"]}\n" + // 8
				"---\n" + // 9
				"apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkSet\n" + // 10-11
				"metadata: {name: cloud-dns, labels: {role: dns}}\n" + // 12
				"spec: {nets: [169.254.169.253/32]}\n" + // 13
				"---\n" + // 14
				"apiVersion: projectcalico.org/v3\nkind: NetworkSet\n" + // 15-16
				"metadata: {name: db, namespace: shop, labels: {role: db}}\n" + // 17
				"spec: {nets: [198.51.100.0/28, 203.0.113.0/24], allowedEgressDomains: [db.example.com]}\n" + // 18
				"---\n" + // 19
				"apiVersion: crd.projectcalico.org/v1\nkind: NetworkSet\n" + // 20-21
				"metadata: {name: cache, namespace: shop, labels: {role: cache, tier: backend}}\n" + // 22
				"spec: {nets: [192.0.2.10]}\n", // 23
			},
			want: loadWant{files: 1, docs: 5, namespaces: []string{"shop"}},
			check: func(t *testing.T, inv *Inventory) {
				var got []string
				for _, g := range inv.CalicoGlobalNetworkSets {
					got = append(got, fmt.Sprintf("GlobalNetworkSet %q/%s %v %v at document %d",
						g.Set.Namespace, g.Set.Name, g.Set.Labels, g.Set.Spec.Nets, g.Source.Document))
				}
				for _, n := range inv.CalicoNetworkSets {
					got = append(got, fmt.Sprintf("NetworkSet %q/%s %v %v %v at document %d",
						n.Set.Namespace, n.Set.Name, n.Set.Labels, n.Set.Spec.Nets, n.Set.Spec.AllowedEgressDomains, n.Source.Document))
				}
				sameList(t, "network sets", got, []string{
					`GlobalNetworkSet ""/metadata-endpoints map[role:metadata] [169.254.169.254/32 fd00:ec2::254/128] at document 2`,
					`GlobalNetworkSet ""/cloud-dns map[role:dns] [169.254.169.253/32] at document 3`,
					`NetworkSet "shop"/db map[role:db] [198.51.100.0/28 203.0.113.0/24] [db.example.com] at document 4`,
					`NetworkSet "shop"/cache map[role:cache tier:backend] [192.0.2.10] [] at document 5`,
				})
				if inv.Objects() != 5 {
					t.Errorf("Objects() = %d, want 5 (a namespace and four network sets)", inv.Objects())
				}
			},
		},
		{
			name: "a NetworkSet of an undeclared namespace synthesizes it, and one without metadata.namespace is in default, as a Calico NetworkPolicy is",
			files: map[string]string{"sets.yaml": `apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: db, namespace: payments, labels: {role: db}}
spec: {nets: [198.51.100.0/28]}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkSet
metadata: {name: bare}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: bare}
spec: {selector: all(), types: [Egress]}
`},
			want: loadWant{
				files: 1, docs: 3,
				namespaces: []string{"default*", "payments*"},
				warnings: []string{
					// Calico NetworkPolicies are referenced before NetworkSets.
					defaultNS + " (first referenced by NetworkPolicy.projectcalico.org bare at ",
					`namespace "payments" is not declared in the input (first referenced by NetworkSet db at `,
				},
			},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.CalicoNetworkSets) != 2 || len(inv.CalicoNetworkPolicies) != 1 {
					t.Fatalf("%d NetworkSets, %d Calico NetworkPolicies; want 2 and 1", len(inv.CalicoNetworkSets), len(inv.CalicoNetworkPolicies))
				}
				if ns, np := inv.CalicoNetworkSets[1].Set.Namespace, inv.CalicoNetworkPolicies[0].Policy.Namespace; ns != "default" || np != "default" {
					t.Errorf("without metadata.namespace: NetworkSet in %q, Calico NetworkPolicy in %q; want both in default", ns, np)
				}
				want := map[string]string{"kubernetes.io/metadata.name": "payments"}
				if ns := inv.Namespaces["payments"]; fmt.Sprint(ns.Labels) != fmt.Sprint(want) || ns.Source.Document != 1 {
					t.Errorf("synthesized namespace payments: labels %v from document %d, want %v from document 1", ns.Labels, ns.Source.Document, want)
				}
				if inv.Objects() != 3 {
					t.Errorf("Objects() = %d, want 3 (synthesized namespaces are not objects)", inv.Objects())
				}
			},
		},
		{
			name:  "a NetworkSet alone without metadata.namespace synthesizes default",
			files: map[string]string{"set.yaml": "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: bare}\nspec: {nets: [192.0.2.0/24]}\n"},
			want: loadWant{
				files: 1, docs: 1,
				namespaces: []string{"default*"},
				warnings:   []string{defaultNS + " (first referenced by NetworkSet bare at "},
			},
		},
		{
			name: "the same GlobalNetworkSet read from both Calico groups is one object: the later one is used",
			files: map[string]string{"dup.yaml": `apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: imds}
spec: {nets: [169.254.169.254/32]}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata: {name: imds}
spec: {nets: [169.254.169.254/32, 169.254.170.2/32]}
`},
			want: loadWant{files: 1, docs: 2, warnings: []string{"GlobalNetworkSet/imds read twice ("}},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.CalicoGlobalNetworkSets) != 1 || len(inv.CalicoGlobalNetworkSets[0].Set.Spec.Nets) != 2 {
					t.Errorf("want the later copy only: %+v", inv.CalicoGlobalNetworkSets)
				}
			},
		},
		{
			name: "an object read twice is replaced in place by the later copy, with a warning naming both places",
			files: map[string]string{
				"a.yaml": shopNamespace + "---\n" + pod("shop", "web") + "---\n" + pod("shop", "other"),
				"b.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {v: \"2\"}}\n---\n" +
					"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {v: \"2\"}}\n",
			},
			want: loadWant{
				files: 2, docs: 5,
				pods:       []string{"shop/web by Pod/web at b.yaml#2@4", "shop/other by Pod/other at a.yaml#3@9"},
				namespaces: []string{"shop"},
				warnings: []string{
					"Namespace/shop read twice (",
					"Pod shop/web read twice (",
				},
			},
			check: func(t *testing.T, inv *Inventory) {
				if v := inv.Pods[0].Pod.Labels["v"]; v != "2" {
					t.Errorf("the earlier Pod shop/web was kept (label v=%q)", v)
				}
				if v := inv.Namespaces["shop"].Labels["v"]; v != "2" {
					t.Errorf("the earlier Namespace shop was kept (label v=%q)", v)
				}
				if !strings.Contains(inv.Warnings[1], "a.yaml: document 2 (line 4) and ") || !strings.Contains(inv.Warnings[1], "b.yaml: document 2 (line 4)): the later one is used") {
					t.Errorf("duplicate warning %q does not name both places", inv.Warnings[1])
				}
			},
		},
		{
			name: "pods resolve to their top-level workload, and ReplicaSets and Jobs owned by a workload in the input are folded into it",
			files: map[string]string{"owners.yaml": shopNamespace + // 1-3
				"---\n" + // 4
				"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n" + // 5-7
				"spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: web}]}}}\n" + // 8
				"---\n" + // 9
				"apiVersion: apps/v1\nkind: ReplicaSet\n" + // 10-11
				"metadata: {name: web-5d4f8, namespace: shop, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true}]}\n" + // 12
				"spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: web}]}}}\n" + // 13
				"---\n" + // 14
				"apiVersion: v1\nkind: Pod\n" + // 15-16
				"metadata: {name: web-5d4f8-abcde, namespace: shop, labels: {app: web}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f8, uid: u2, controller: true}]}\n" + // 17
				"---\n" + // 18
				"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\n" + // 19-21
				"---\n" + // 22
				"apiVersion: v1\nkind: Pod\n" + // 23-24
				"metadata: {name: api-7c9b6-xyz12, namespace: shop, labels: {pod-template-hash: 7c9b6}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: api-7c9b6, uid: u3, controller: true}]}\n" + // 25
				"---\n" + // 26
				"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup, namespace: shop}\n" + // 27-29
				"---\n" + // 30
				"apiVersion: batch/v1\nkind: Job\n" + // 31-32
				"metadata: {name: backup-28000000, namespace: shop, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: backup, uid: u4, controller: true}]}\n" + // 33
				"---\n" + // 34
				"apiVersion: v1\nkind: Pod\n" + // 35-36
				"metadata: {name: backup-28000000-q7x, namespace: shop, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: backup-28000000, uid: u5, controller: true}]}\n" + // 37
				"---\n" + // 38
				"apiVersion: v1\nkind: Pod\n" + // 39-40
				"metadata: {name: backup-28000060-r2d, namespace: shop, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: backup-28000060, uid: u6, controller: true}]}\n" + // 41
				"---\n" + // 42
				"apiVersion: v1\nkind: Pod\nmetadata: {name: bare, namespace: shop}\n" + // 43-45
				"---\n" + // 46
				"apiVersion: v1\nkind: Pod\n" + // 47-48
				"metadata: {name: gone-6f7-abc, namespace: shop, labels: {pod-template-hash: 6f7}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: gone-6f7, uid: u7, controller: true}]}\n", // 49
			},
			want: loadWant{
				files: 1, docs: 12,
				namespaces: []string{"shop"},
				workloads: []string{
					"Deployment shop/web at owners.yaml#2@4",
					"Deployment shop/api at owners.yaml#5@18",
					"CronJob shop/backup at owners.yaml#7@26",
				},
				pods: []string{
					"shop/web-5d4f8-abcde by Deployment/web at owners.yaml#4@14",
					"shop/api-7c9b6-xyz12 by Deployment/api at owners.yaml#6@22",
					"shop/backup-28000000-q7x by CronJob/backup at owners.yaml#9@34",
					"shop/backup-28000060-r2d by CronJob/backup at owners.yaml#10@38",
					"shop/bare by Pod/bare at owners.yaml#11@42",
					"shop/gone-6f7-abc by ReplicaSet/gone-6f7 at owners.yaml#12@46",
				},
			},
		},
		{
			name: "object keys match field names exactly, as the API server decodes them: other spellings are unknown fields",
			files: map[string]string{
				"np.yaml": shopNamespace + "---\n" + `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-only, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  policytypes: [Egress]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec: {HostNetwork: true, containers: [{name: c, image: nginx}]}
---
apiVersion: v1
Kind: Pod
metadata: {name: capital-kind, namespace: shop}
`,
				"np.json": `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "json", "namespace": "shop"},
 "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "PolicyTypes": ["Egress"]}}`,
			},
			want: loadWant{
				files: 2, docs: 5,
				namespaces: []string{"shop"},
				pods:       []string{"shop/web by Pod/web at np.yaml#3@12"},
				netpols:    []string{"shop/json at np.json#1@1", "shop/ingress-only at np.yaml#2@4"},
				problems:   []wantProblem{{src: "np.yaml#4@17", msg: "not a Kubernetes object: apiVersion and kind are required"}},
			},
			check: func(t *testing.T, inv *Inventory) {
				for _, np := range inv.NetworkPolicies {
					if got := fmt.Sprint(np.Policy.Spec.PolicyTypes); got != "[Ingress]" {
						t.Errorf("NetworkPolicy %s: policyTypes %s, want [Ingress]", np.Policy.Name, got)
					}
				}
				if inv.Pods[0].Pod.Spec.HostNetwork {
					t.Error("HostNetwork: true was taken for hostNetwork: true")
				}
			},
		},
		{
			name: "an owner reference without a kind or a name names no owner: the pod and the ReplicaSet stand alone",
			files: map[string]string{"refs.yaml": shopNamespace + // 1-3
				"---\n" + // 4
				"apiVersion: apps/v1\nkind: ReplicaSet\n" + // 5-6
				"metadata: {name: rs, namespace: shop, ownerReferences: [{kind: Deployment, controller: true}]}\n" + // 7
				"---\n" + // 8
				"apiVersion: v1\nkind: Pod\n" + // 9-10
				"metadata: {name: p, namespace: shop, ownerReferences: [{name: rs}]}\n" + // 11
				"---\n" + // 12
				"apiVersion: v1\nkind: Pod\n" + // 13-14
				"metadata: {name: q, namespace: shop, ownerReferences: [{0}]}\n", // 15
			},
			want: loadWant{
				files: 1, docs: 4,
				namespaces: []string{"shop"},
				workloads:  []string{"ReplicaSet shop/rs at refs.yaml#2@4"},
				pods:       []string{"shop/p by Pod/p at refs.yaml#3@8", "shop/q by Pod/q at refs.yaml#4@12"},
			},
			check: func(t *testing.T, inv *Inventory) {
				if o := inv.Workloads[0].Owner; o != nil {
					t.Errorf("ReplicaSet owner %+v, want none", *o)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}

// billionLaughs is the classic alias bomb: 9 levels of 9 aliases, 9^9 strings once expanded.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n")
	b.WriteString(`  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for c := 'b'; c <= 'i'; c++ {
		fmt.Fprintf(&b, "  %c: &%c [", c, c)
		for i := range 9 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*%c", c-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// quietAliasBomb stays under the YAML library's alias ratio (1% of the nodes are not aliases)
// but still expands a few kilobytes into megabytes.
func quietAliasBomb() string {
	var b strings.Builder
	b.WriteString("pad: [" + strings.Repeat("x,", 3700) + "x]\n")
	b.WriteString(`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	prev := 'a'
	for c := 'b'; c <= 'e'; c++ {
		fmt.Fprintf(&b, "%c: &%c [%s*%c]\n", c, c, strings.Repeat(fmt.Sprintf("*%c,", prev), 8), prev)
		prev = c
	}
	b.WriteString("f: [*e, *e, *e]\n")
	return b.String()
}

// nestedBlockMappings nests n block mappings, one space of indentation per level.
func nestedBlockMappings(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i))
		b.WriteString("a:\n")
	}
	return b.String()
}

// TestLoadHostileInput: input built to exhaust the parser is one problem for its document,
// found quickly and without large allocations; the documents around it still load.
func TestLoadHostileInput(t *testing.T) {
	cases := []struct {
		name     string
		doc      string
		msg      string
		maxTime  time.Duration
		maxAlloc uint64 // bytes allocated by Load, beyond the input itself
	}{
		{"a billion-laughs alias bomb (9 levels of 9 aliases) is refused", billionLaughs(),
			"invalid YAML: yaml: document contains excessive aliasing", time.Second, 16 << 20},
		{"an alias bomb under the YAML library's alias ratio is refused by its expansion", quietAliasBomb(),
			"bytes through YAML aliases (from 7628 bytes): refused as a possible alias bomb", 10 * time.Second, 96 << 20},
		{"10,000 nested flow sequences are refused before parsing", "a: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n",
			"document nests deeper than 200 levels", time.Second, 1 << 20},
		{"10,000 nested flow sequences after a comment of unbalanced closers are refused before parsing",
			"# " + strings.Repeat("]", 10000) + "\na: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n",
			"document nests deeper than 200 levels", time.Second, 1 << 20},
		{"10,000 nested flow mappings are refused before parsing", strings.Repeat("{a: ", 10000) + "b" + strings.Repeat("}", 10000) + "\n",
			"document nests deeper than 200 levels", time.Second, 1 << 20},
		{"10,000 nested block mappings are refused before parsing", nestedBlockMappings(10000),
			"document nests deeper than 200 levels", 10 * time.Second, 1 << 20},
		{"10,000 nested block sequences on one line are refused before parsing", strings.Repeat("- ", 10000) + "x\n",
			"document nests deeper than 200 levels", time.Second, 1 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "hostile.yaml")
			content := pod("shop", "before") + "---\n" + c.doc + "---\n" + pod("shop", "after")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			inv, err := Load([]string{path}, Options{})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if elapsed > c.maxTime {
				t.Errorf("Load took %v, want under %v", elapsed, c.maxTime)
			}
			// Reading the file (into a growing buffer) costs a few times its size.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > c.maxAlloc+6*uint64(len(content)) {
				t.Errorf("Load allocated %d MiB for a %d KiB input", alloc>>20, len(content)>>10)
			}
			if len(inv.Problems) != 1 {
				t.Fatalf("%d problems, want 1:\n%s", len(inv.Problems), problemList(inv.Problems))
			}
			p := inv.Problems[0]
			if got := src(dir, p.Source); got != "hostile.yaml#2@5" || !strings.Contains(p.Message, c.msg) {
				t.Errorf("problem at %s: %q\nwant at hostile.yaml#2@5 a message containing %q", got, p.Message, c.msg)
			}
			if len(inv.Pods) != 2 || inv.Documents != 3 {
				t.Errorf("%d pods of 3 documents, want the 2 pods around the hostile document", len(inv.Pods))
			}
		})
	}
}

// TestLoadYAMLErrorLines: a YAML syntax error names the line in the file where the parser found
// it, whether the YAML library's scanner or its parser found it, in any document.
func TestLoadYAMLErrorLines(t *testing.T) {
	const head = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n" // document 2 starts on line 4
	cases := []struct {
		name, doc, msg string
	}{
		{"a tab used for indentation (scanner)", "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: a\n",
			"yaml: line 8: found character that cannot start any token"},
		{"a second mapping value on one line (scanner)", "apiVersion: v1\nkind: Pod: x\n",
			"yaml: line 6: mapping values are not allowed in this context"},
		{"a key indented less than its siblings (parser)", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n labels: x\n",
			"yaml: line 9: did not find expected key"},
		{"a sequence entry among mapping keys (parser)", "a: b\n- c\n",
			"yaml: line 6: did not find expected key"},
		{"a mapping key among sequence entries (parser)", "- a\nb: c\n",
			"yaml: line 6: did not find expected '-' indicator"},
		{"an unclosed flow sequence (parser)", "apiVersion: v1\nkind: [Pod\nmetadata: {}\n",
			"yaml: line 7: did not find expected ',' or ']'"},
		{"an alias to an anchor that does not exist", "apiVersion: v1\nkind: Pod\nmetadata: *nowhere\n",
			"yaml: unknown anchor 'nowhere' referenced"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.yaml")
			if err := os.WriteFile(path, []byte(head+c.doc+"---\n"+pod("shop", "after")), 0o644); err != nil {
				t.Fatal(err)
			}
			inv, err := Load([]string{path}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Problems) != 1 || len(inv.Pods) != 1 {
				t.Fatalf("%d problems and %d pods, want 1 and 1:\n%s", len(inv.Problems), len(inv.Pods), problemList(inv.Problems))
			}
			p := inv.Problems[0]
			if got := src(dir, p.Source); got != "x.yaml#2@4" || p.Message != "invalid YAML: "+c.msg {
				t.Errorf("problem at %s: %q\nwant at x.yaml#2@4: %q", got, p.Message, "invalid YAML: "+c.msg)
			}
		})
	}
}

// TestLoadErrorsLeaveNoGoroutines: a Load that fails before reading anything stops every
// goroutine it started.
func TestLoadErrorsLeaveNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 20 {
		if _, err := Load([]string{"-", "-"}, Options{Stdin: strings.NewReader("")}); err == nil {
			t.Fatal(`Load of "-" twice succeeded`)
		}
		if _, err := Load([]string{"-"}, Options{}); err == nil {
			t.Fatal(`Load of "-" without standard input succeeded`)
		}
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines: %d before, %d after 40 failed loads", before, after)
	}
}
