package generate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Format is how Kubernetes objects are written.
type Format string

// The formats.
const (
	// YAML is a multi-document YAML stream, each object preceded by a comment.
	YAML Format = "yaml"
	// JSON is a v1 List, as `kubectl get -o json` prints and `kubectl apply -f` reads.
	JSON Format = "json"
)

// ParseFormat parses "yaml" or "json".
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case YAML, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want yaml or json)", s)
}

// SummaryPath is the summary file written with the other files.
const SummaryPath = "SUMMARY.txt"

// ManifestPath is the file holding a layer's Kubernetes objects in an output directory.
func ManifestPath(l Layer, f Format) string { return string(l) + "." + string(f) }

// RenderManifests writes Kubernetes objects in the format: a YAML stream opens with the header
// as comment lines and puts each object's comment above it; a JSON List carries no comments.
func RenderManifests(ms []Manifest, f Format, header string) ([]byte, error) {
	objects := make([]map[string]any, len(ms))
	for i, m := range ms {
		obj, err := normalize(m.Object)
		if err != nil {
			return nil, err
		}
		objects[i] = obj
	}
	if f == JSON {
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": objects}
		js, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render JSON: %w", err)
		}
		return append(js, '\n'), nil
	}
	var b bytes.Buffer
	b.WriteString(commentLines(header))
	for i, obj := range objects {
		js, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", describe(obj), err)
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", describe(obj), err)
		}
		b.WriteString("---\n")
		b.WriteString(commentLines(ms[i].Comment))
		b.Write(y)
	}
	return b.Bytes(), nil
}

// normalize turns a typed object into the map written out, without the fields a typed Go
// object always carries but a manifest must not: a null creationTimestamp and an empty status.
func normalize(obj any) (map[string]any, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("render %T: %w", obj, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("render %T: %w", obj, err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok && meta["creationTimestamp"] == nil {
		delete(meta, "creationTimestamp")
	}
	return m, nil
}

// describe names an object for errors: "Kind name".
func describe(obj map[string]any) string {
	name := ""
	if meta, ok := obj["metadata"].(map[string]any); ok {
		name, _ = meta["name"].(string)
	}
	return fmt.Sprintf("%v %s", obj["kind"], name)
}

// commentLines renders text as YAML comment lines, wrapped at 100 columns.
func commentLines(text string) string {
	if text == "" {
		return ""
	}
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		for _, l := range wrap(line, 98) {
			b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	return b.String()
}

// wrap breaks a line at spaces so that no piece is longer than width (a word longer than the
// width stays whole). Continuation lines of an indented line are indented two more spaces.
func wrap(line string, width int) []string {
	if len(line) <= width {
		return []string{line}
	}
	indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
	var out []string
	cur := indent
	for _, word := range strings.Fields(line) {
		switch {
		case strings.TrimSpace(cur) == "":
			cur += word
		case len(cur)+1+len(word) > width:
			out = append(out, cur)
			cur = indent + word
			if indent != "" {
				cur = indent + "  " + word
			}
		default:
			cur += " " + word
		}
	}
	return append(out, cur)
}

// Summary says what was generated and what was refused, for the top of the YAML output and
// SUMMARY.txt.
func (o *Output) Summary() string {
	var b strings.Builder
	b.WriteString("imdsguard generate\n")
	fmt.Fprintf(&b, "layers: %s\n", layerList(o.Layers))
	b.WriteString("denied:\n")
	for _, ep := range credentials(o.Endpoints) {
		fmt.Fprintf(&b, "  %s\n", ep)
	}
	if kr := keepReachable(o.Endpoints); len(kr) > 0 {
		b.WriteString("kept reachable:\n")
		for _, ep := range kr {
			fmt.Fprintf(&b, "  %s\n", ep)
		}
	}
	if slices.ContainsFunc(o.Layers, selectsPods) {
		exempt := "none"
		if len(o.ExemptNamespaces) > 0 {
			exempt = strings.Join(o.ExemptNamespaces, ", ")
		}
		fmt.Fprintf(&b, "exempt namespaces: %s\n", exempt)
	}
	if len(o.Refusals) > 0 {
		layers := 0
		for _, r := range o.Refusals {
			if r.Namespace == "" {
				layers++
			}
		}
		var what []string
		if n := len(o.Refusals) - layers; n > 0 {
			what = append(what, fmt.Sprintf("%d namespaces", n))
		}
		if layers > 0 {
			what = append(what, fmt.Sprintf("%d layers", layers))
		}
		fmt.Fprintf(&b, "REFUSED: %s (nothing generated there by that layer):\n", strings.Join(what, ", "))
		for _, r := range o.Refusals {
			fmt.Fprintf(&b, "  %s\n", r)
		}
		var here []string
		for _, l := range denyCapable {
			refused := slices.ContainsFunc(o.Refusals, func(r Refusal) bool { return r.Layer == l && r.Namespace == "" })
			if slices.Contains(o.Layers, l) && !refused {
				here = append(here, string(l))
			}
		}
		if len(here) > 0 {
			fmt.Fprintf(&b, "  deny-capable layers generated in this run: %s\n", strings.Join(here, ", "))
		}
	}
	if len(o.Notes) > 0 {
		b.WriteString("notes:\n")
		for _, n := range o.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	return b.String()
}

// OutputFiles returns everything an output directory receives: per layer, its Kubernetes
// objects in one manifest file (ManifestPath) and its other files; then SUMMARY.txt. Paths are
// stable, so a rerun replaces the same files.
func (o *Output) OutputFiles(f Format) ([]File, error) {
	var files []File
	for _, l := range o.Layers {
		var ms []Manifest
		for _, m := range o.Manifests {
			if m.Layer == l {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			content, err := RenderManifests(ms, f, fmt.Sprintf("imdsguard generate: %s layer", l))
			if err != nil {
				return nil, err
			}
			files = append(files, File{Layer: l, Path: ManifestPath(l, f), Content: content,
				Description: fmt.Sprintf("%d Kubernetes objects: kubectl apply -f %s", len(ms), ManifestPath(l, f))})
		}
		for _, file := range o.Files {
			if file.Layer == l {
				files = append(files, file)
			}
		}
	}
	summary := o.Summary()
	if len(files) > 0 {
		var b strings.Builder
		b.WriteString("files:\n")
		for _, file := range files {
			fmt.Fprintf(&b, "  %s: %s\n", file.Path, file.Description)
		}
		summary += b.String()
	}
	files = append(files, File{Path: SummaryPath, Description: "what was generated and refused", Content: []byte(summary)})
	return files, nil
}

// FileLayers returns the generated layers that produced files other than Kubernetes objects.
func (o *Output) FileLayers() []Layer {
	var out []Layer
	for _, f := range o.Files {
		if !slices.Contains(out, f.Layer) {
			out = append(out, f.Layer)
		}
	}
	return out
}
