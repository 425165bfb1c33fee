package fix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// yamlDoc is a YAML (or JSON) file being patched: its first document's root node.
type yamlDoc struct {
	f    *file
	root *yaml.Node
	json bool // the file is JSON: values are quoted and new keys need commas
}

// parseYAML parses a CloudFormation template or eksctl config being patched; ok is false
// (and a note made) when it does not parse.
func (p *patcher) parseYAML(g iac.NodeGroup, f *file) (*yamlDoc, bool) {
	var doc yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(f.data)).Decode(&doc)
	if err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("empty")
		}
		p.note(g, iac.Position{File: f.path}, "the file does not parse (%v): %s", err, p.byHand())
		return nil, false
	}
	trimmed := bytes.TrimLeft(f.data, " \t\r\n\ufeff")
	return &yamlDoc{f: f, root: doc.Content[0], json: len(trimmed) > 0 && trimmed[0] == '{'}, true
}

// pair returns the key and value nodes of key in mapping n; nil when n is not a mapping or
// lacks it.
func pair(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

func yamlPos(file string, n *yaml.Node) iac.Position {
	return iac.Position{File: file, Line: n.Line, Column: n.Column}
}

// offset returns the byte offset of a node's line and column (columns count runes).
func (d *yamlDoc) offset(n *yaml.Node) int {
	start := d.f.lineStart(n.Line)
	line, _ := d.f.lineAt(start)
	col := 0
	for i := range line {
		if col == n.Column-1 {
			return start + i
		}
		col++
	}
	return start + len(line)
}

// scalarEnd returns the offset where the scalar value starting at start ends on its line:
// after the closing quote of a quoted scalar or, for a plain one, before a comment or a
// JSON comma, trailing spaces left out.
func (d *yamlDoc) scalarEnd(start int, n *yaml.Node) int {
	line, lineStart := d.f.lineAt(start)
	rest := line[start-lineStart:]
	switch n.Style {
	case yaml.DoubleQuotedStyle:
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				return start + i + 1
			}
		}
		return -1
	case yaml.SingleQuotedStyle:
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					i++
					continue
				}
				return start + i + 1
			}
		}
		return -1
	}
	end := len(rest)
	if i := strings.Index(rest, " #"); i >= 0 {
		end = i
	}
	if d.json {
		if i := strings.IndexAny(rest, ",}]"); i >= 0 && i < end {
			end = i
		}
	}
	return start + len(strings.TrimRight(rest[:end], " \t"))
}

// replaceScalar replaces the value node v of key k with text. ok is false when the value is
// not a scalar on the key's line, which line edits cannot replace safely.
func (d *yamlDoc) replaceScalar(k, v *yaml.Node, text string) bool {
	if v.Kind != yaml.ScalarNode || v.Line != k.Line || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false
	}
	start := d.offset(v)
	end := d.scalarEnd(start, v)
	if end < start {
		return false
	}
	d.f.add(edit{start: start, end: end, text: text})
	return true
}

// insertKeys adds lines of key: value pairs to the block mapping m, the value of key node k
// (nil for a mapping in a list), after k's line or after m's first pair. lines are written
// at the indentation of m's keys; ok is false when m has no place for them (a flow or empty
// mapping, one whose first pair spans lines).
func (d *yamlDoc) insertKeys(k, m *yaml.Node, lines []string) bool {
	if m.Kind != yaml.MappingNode || len(m.Content) < 2 {
		return false
	}
	first := m.Content[0]
	if m.Style&yaml.FlowStyle != 0 && !d.json {
		return false
	}
	var at int
	switch {
	case k != nil && first.Line > k.Line:
		at = d.f.lineStart(k.Line + 1)
	case d.json:
		return false
	case m.Content[1].Kind == yaml.ScalarNode && m.Content[1].Line == first.Line && m.Content[1].Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 &&
		(len(m.Content) < 4 || m.Content[2].Line == first.Line+1):
		at = d.f.lineStart(first.Line + 1)
	default:
		return false
	}
	line, start := d.f.lineAt(d.offset(first))
	indent := line[:d.offset(first)-start]
	if strings.TrimLeft(indent, " \t") != "" { // "- name: ng-1": the keys' column
		indent = strings.Repeat(" ", len([]rune(indent)))
	}
	nl := d.f.newline()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(indent + l)
		if d.json {
			b.WriteString(",")
		}
		b.WriteString(nl)
	}
	if at > len(d.f.data) || at == len(d.f.data) && !bytes.HasSuffix(d.f.data, []byte("\n")) {
		return false
	}
	d.f.add(edit{start: at, end: at, text: b.String()})
	return true
}

// stepOf returns the indentation step of mapping m under key k: its keys' column less k's.
func stepOf(k, m *yaml.Node) int {
	if k != nil && m != nil && len(m.Content) > 0 && m.Content[0].Column > k.Column {
		return m.Content[0].Column - k.Column
	}
	return 2
}

// cloudFormation patches MetadataOptions of an AWS::EC2::LaunchTemplate (under
// LaunchTemplateData), AWS::EC2::Instance or AWS::AutoScaling::LaunchConfiguration.
func (p *patcher) cloudFormation(g iac.NodeGroup, n needs) error {
	o := g.Options
	f, err := p.file(o.At.File)
	if err != nil {
		return err
	}
	d, ok := p.parseYAML(g, f)
	if !ok {
		return nil
	}
	typ, name, _ := strings.Cut(o.Resource, " ")
	_, resources := pair(d.root, "Resources")
	_, res := pair(resources, name)
	propsKey, props := pair(res, "Properties")
	parentKey, parent := propsKey, props
	if typ == "AWS::EC2::LaunchTemplate" {
		parentKey, parent = pair(props, "LaunchTemplateData")
	}
	if parent == nil || parent.Kind != yaml.MappingNode {
		where := "Properties"
		if typ == "AWS::EC2::LaunchTemplate" {
			where = "LaunchTemplateData"
		}
		p.note(g, o.At, "%s has no %s mapping to add MetadataOptions to: %s", o.Resource, where, p.byHand())
		return nil
	}
	hop := strconv.Itoa(p.target.HopLimit)
	tokens := "required"
	if d.json {
		tokens = `"required"`
	}
	moKey, mo := pair(parent, "MetadataOptions")
	if mo == nil {
		var lines []string
		if d.json {
			lines = []string{fmt.Sprintf(`"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": %s}`, hop)}
		} else {
			step := strings.Repeat(" ", stepOf(parentKey, parent))
			lines = []string{"MetadataOptions:", step + "HttpTokens: required", step + "HttpPutResponseHopLimit: " + hop}
		}
		if !d.insertKeys(parentKey, parent, lines) {
			p.note(g, o.At, "%s is not written so that lines can be added to it: %s", parentKey.Value, p.byHand())
		}
		return nil
	}
	if mo.Kind != yaml.MappingNode {
		p.note(g, yamlPos(f.path, mo), "MetadataOptions is not a mapping written here (%s): %s", mo.Tag, p.byHand())
		return nil
	}
	var add []string
	for _, s := range []struct {
		key, value string
		need       bool
	}{{"HttpTokens", tokens, n.tokens}, {"HttpPutResponseHopLimit", hop, n.hop}} {
		if !s.need {
			continue
		}
		k, v := pair(mo, s.key)
		if k == nil {
			if d.json {
				add = append(add, strconv.Quote(s.key)+": "+s.value)
			} else {
				add = append(add, s.key+": "+s.value)
			}
			continue
		}
		if !d.replaceScalar(k, v, s.value) {
			p.note(g, yamlPos(f.path, v), "%s is not a single value on its key's line: %s", s.key, p.byHand())
			continue
		}
		if v.Tag != "" && !strings.HasPrefix(v.Tag, "!!") {
			p.note(g, yamlPos(f.path, v), "%s was %s %s; the patch replaces it with %s, and the parameter or condition may be used elsewhere", s.key, v.Tag, v.Value, s.value)
		}
	}
	if len(add) > 0 && !d.insertKeys(moKey, mo, add) {
		p.note(g, yamlPos(f.path, mo), "MetadataOptions is not written so that lines can be added to it: %s", p.byHand())
	}
	return nil
}

// eksctl patches an eksctl node group: disablePodIMDS: true for a hop limit of 1 (eksctl then
// writes HttpTokens required and hop limit 1), else disableIMDSv1: true (tokens required, hop
// limit 2).
func (p *patcher) eksctl(g iac.NodeGroup, n needs) error {
	o := g.Options
	if o.HTTPTokens.Attr == "launchTemplate" {
		p.note(g, o.At, "the managed node group runs from its own launchTemplate, which eksctl does not write: %s in that launch template", p.byHand())
		return nil
	}
	// Resource is "eksctl LIST[INDEX] NAME".
	var list string
	var index int
	fields := strings.Fields(strings.TrimPrefix(o.Resource, "eksctl "))
	if len(fields) > 0 {
		if l, rest, ok := strings.Cut(fields[0], "["); ok {
			list = l
			index, _ = strconv.Atoi(strings.TrimSuffix(rest, "]"))
		}
	}
	f, err := p.file(o.At.File)
	if err != nil {
		return err
	}
	d, ok := p.parseYAML(g, f)
	if !ok {
		return nil
	}
	_, seq := pair(d.root, list)
	if seq == nil || seq.Kind != yaml.SequenceNode || index < 0 || index >= len(seq.Content) || seq.Content[index].Kind != yaml.MappingNode {
		p.note(g, o.At, "the node group is not written here as a mapping: %s", p.byHand())
		return nil
	}
	ng := seq.Content[index]
	want := map[string]string{}
	if p.target.HopLimit < 2 {
		want["disablePodIMDS"] = "true"
	} else {
		if n.tokens {
			want["disableIMDSv1"] = "true"
		}
		if !o.HopLimit.Known {
			want["disablePodIMDS"] = "false"
		}
	}
	// A disableIMDSv1 that is not a boolean leaves the tokens unknown whatever disablePodIMDS is.
	if _, v := pair(ng, "disableIMDSv1"); v != nil && !isBool(v) {
		want["disableIMDSv1"] = "true"
	}
	var add []string
	for _, key := range []string{"disableIMDSv1", "disablePodIMDS"} {
		value, ok := want[key]
		if !ok {
			continue
		}
		k, v := pair(ng, key)
		if k == nil {
			add = append(add, key+": "+value)
			continue
		}
		if !d.replaceScalar(k, v, value) {
			p.note(g, yamlPos(f.path, v), "%s is not a single value on its key's line: set %s: %s by hand", key, key, value)
		}
	}
	if len(add) > 0 && !d.insertKeys(nil, ng, add) {
		p.note(g, o.At, "the node group is not written so that lines can be added to it: set %s by hand", strings.Join(add, ", "))
	}
	return nil
}

func isBool(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch strings.ToLower(n.Value) {
	case "true", "false", "yes", "no", "on", "off", "y", "n":
		return true
	}
	return false
}
