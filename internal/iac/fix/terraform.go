package fix

import (
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/imdsguard/imdsguard/internal/iac"
)

// setting is one attribute the fix writes, as HCL or YAML source: name and value.
type setting struct{ name, value string }

// settings are the attributes the fix writes, as the Terraform provider names them.
func (p *patcher) tfSettings(n needs) []setting {
	var out []setting
	if n.tokens {
		out = append(out, setting{"http_tokens", `"required"`})
	}
	if n.hop {
		out = append(out, setting{"http_put_response_hop_limit", strconv.Itoa(p.target.HopLimit)})
	}
	return out
}

// parseHCL parses a Terraform file being patched; ok is false (and a note made) when it does
// not parse.
func (p *patcher) parseHCL(g iac.NodeGroup, f *file) (*hclsyntax.Body, bool) {
	parsed, diags := hclsyntax.ParseConfig(f.data, f.path, hcl.InitialPos)
	if diags.HasErrors() || parsed == nil {
		p.note(g, iac.Position{File: f.path}, "the file does not parse (%s): %s", diags.Error(), p.byHand())
		return nil, false
	}
	body, ok := parsed.Body.(*hclsyntax.Body)
	if !ok {
		p.note(g, iac.Position{File: f.path}, "the file is not HCL native syntax: %s", p.byHand())
		return nil, false
	}
	return body, true
}

func findBlock(body *hclsyntax.Body, typ string, labels ...string) *hclsyntax.Block {
	for _, b := range body.Blocks {
		if b.Type != typ || len(b.Labels) != len(labels) {
			continue
		}
		match := true
		for i := range labels {
			match = match && b.Labels[i] == labels[i]
		}
		if match {
			return b
		}
	}
	return nil
}

func tfPos(r hcl.Range) iac.Position {
	return iac.Position{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column}
}

// terraform patches the metadata_options block of an aws_launch_template, aws_instance or
// aws_launch_configuration.
func (p *patcher) terraform(g iac.NodeGroup, n needs) error {
	o := g.Options
	f, err := p.file(o.At.File)
	if err != nil {
		return err
	}
	body, ok := p.parseHCL(g, f)
	if !ok {
		return nil
	}
	typ, name := tfBlock(o.Resource)
	res := findBlock(body, "resource", typ, name)
	if res == nil {
		p.note(g, o.At, "resource %s is not in %s: %s", o.Resource, f.path, p.byHand())
		return nil
	}
	if dyn := findBlock(res.Body, "dynamic", "metadata_options"); dyn != nil {
		p.note(g, tfPos(dyn.DefRange()), `a dynamic "metadata_options" block sets the options: %s in its content, or in what it iterates over`, p.byHand())
		return nil
	}
	set := p.tfSettings(n)
	var block *hclsyntax.Block
	for _, b := range res.Body.Blocks {
		if b.Type == "metadata_options" {
			block = b
			break
		}
	}
	if block == nil {
		return p.insertBlock(g, f, res, set)
	}
	if block.OpenBraceRange.Start.Line == block.CloseBraceRange.Start.Line {
		p.rewriteOneLineBlock(f, res, block, set)
		return nil
	}
	indent := p.childIndent(f, block.OpenBraceRange.Start.Byte, block.Body)
	var missing []setting
	for _, s := range set {
		if attr, ok := block.Body.Attributes[s.name]; ok {
			p.replaceExpr(g, f, attr, s)
			continue
		}
		missing = append(missing, s)
	}
	width := align(f, blockLines(f, block.Body), names(missing))
	var insert strings.Builder
	nl := f.newline()
	for _, s := range missing {
		insert.WriteString(indent + pad(s.name, width) + " = " + s.value + nl)
	}
	if insert.Len() > 0 {
		off := f.afterLine(block.OpenBraceRange.Start.Byte)
		f.add(edit{start: off, end: off, text: insert.String()})
	}
	return nil
}

// replaceExpr replaces an attribute's value with the fix's, noting when the value was an
// expression that may be used elsewhere.
func (p *patcher) replaceExpr(g iac.NodeGroup, f *file, attr *hclsyntax.Attribute, s setting) {
	r := attr.Expr.Range()
	switch {
	case refersTo(attr.Expr, "each", "count"):
		// Every instance of the for_each or count then has the fix's value, which is what
		// the patch is for; one that had a lower hop limit gets the target's.
		p.note(g, tfPos(r), "%s was %s, which differs by instance; the patch sets %s for every instance of the resource's for_each or count", s.name, strings.TrimSpace(string(f.data[r.Start.Byte:r.End.Byte])), s.value)
	case !isLiteral(attr.Expr):
		p.note(g, tfPos(r), "%s was %s; the patch replaces it with %s, and what it refers to may be used elsewhere", s.name, strings.TrimSpace(string(f.data[r.Start.Byte:r.End.Byte])), s.value)
	}
	f.add(edit{start: r.Start.Byte, end: r.End.Byte, text: s.value})
}

// refersTo reports whether expr refers to any of the given root names (each, count).
func refersTo(expr hclsyntax.Expression, roots ...string) bool {
	for _, t := range expr.Variables() {
		for _, r := range roots {
			if t.RootName() == r {
				return true
			}
		}
	}
	return false
}

func isLiteral(expr hclsyntax.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return true
	case *hclsyntax.TemplateExpr:
		return e.IsStringLiteral()
	}
	return false
}

// insertBlock adds a metadata_options block after the resource's opening line.
func (p *patcher) insertBlock(g iac.NodeGroup, f *file, res *hclsyntax.Block, set []setting) error {
	nl := f.newline()
	outer := f.indentAt(res.OpenBraceRange.Start.Byte)
	indent := p.childIndent(f, res.OpenBraceRange.Start.Byte, res.Body)
	step := strings.TrimPrefix(indent, outer)
	if step == "" {
		step = "  "
	}
	width := 0
	for _, s := range set {
		width = max(width, len(s.name))
	}
	var b strings.Builder
	b.WriteString(indent + "metadata_options {" + nl)
	for _, s := range set {
		b.WriteString(indent + step + pad(s.name, width) + " = " + s.value + nl)
	}
	b.WriteString(indent + "}" + nl)
	if res.OpenBraceRange.Start.Line == res.CloseBraceRange.Start.Line {
		// resource "aws_instance" "x" {}: only an empty one-line body is rewritten.
		if len(res.Body.Attributes) > 0 || len(res.Body.Blocks) > 0 {
			p.note(g, tfPos(res.DefRange()), "the resource is written on one line: %s", p.byHand())
			return nil
		}
		f.add(edit{start: res.OpenBraceRange.Start.Byte, end: res.CloseBraceRange.End.Byte, text: "{" + nl + b.String() + outer + "}"})
		return nil
	}
	off := f.afterLine(res.OpenBraceRange.Start.Byte)
	f.add(edit{start: off, end: off, text: b.String()})
	return nil
}

// rewriteOneLineBlock rewrites `metadata_options { http_tokens = "optional" }` as a block of
// several lines with the fix's attributes.
func (p *patcher) rewriteOneLineBlock(f *file, res, block *hclsyntax.Block, set []setting) {
	nl := f.newline()
	outer := f.indentAt(block.TypeRange.Start.Byte)
	step := strings.TrimPrefix(outer, f.indentAt(res.OpenBraceRange.Start.Byte))
	if step == "" {
		step = "  "
	}
	var attrs []setting
	for _, attr := range block.Body.Attributes {
		r := attr.Expr.Range()
		attrs = append(attrs, setting{attr.Name, string(f.data[r.Start.Byte:r.End.Byte])})
	}
	attrs = merge(attrs, set)
	width := 0
	for _, s := range attrs {
		width = max(width, len(s.name))
	}
	var b strings.Builder
	b.WriteString("{" + nl)
	for _, s := range attrs {
		b.WriteString(outer + step + pad(s.name, width) + " = " + s.value + nl)
	}
	b.WriteString(outer + "}")
	f.add(edit{start: block.OpenBraceRange.Start.Byte, end: block.CloseBraceRange.End.Byte, text: b.String()})
}

// merge overrides the settings in list by set and appends those of set it lacks.
func merge(list, set []setting) []setting {
	out := append([]setting(nil), list...)
	for _, s := range set {
		found := false
		for i := range out {
			if out[i].name == s.name {
				out[i].value, found = s.value, true
			}
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

// childIndent returns the indentation of the first line inside a body opened at open: that
// of its first attribute or block, else the opening line's indentation and two spaces.
func (p *patcher) childIndent(f *file, open int, body *hclsyntax.Body) string {
	first := -1
	for _, a := range body.Attributes {
		if s := a.SrcRange.Start.Byte; first < 0 || s < first {
			first = s
		}
	}
	for _, b := range body.Blocks {
		if s := b.TypeRange.Start.Byte; first < 0 || s < first {
			first = s
		}
	}
	if first >= 0 {
		if line, start := f.lineAt(first); start > open && strings.TrimSpace(line[:first-start]) == "" {
			return line[:first-start]
		}
	}
	return f.indentAt(open) + "  "
}

// attrLine is an attribute or object item written on a line of its own with a one-line
// value: where its name ends and its "=" starts.
type attrLine struct {
	name      string
	nameEnd   int
	eq, eqCol int
}

// blockLines returns the attributes of body on lines of their own.
func blockLines(f *file, body *hclsyntax.Body) []attrLine {
	var out []attrLine
	for _, a := range body.Attributes {
		if !ownLine(f, a.NameRange.Start.Byte) || a.Expr.Range().Start.Line != a.Expr.Range().End.Line {
			continue
		}
		out = append(out, attrLine{name: a.Name, nameEnd: a.NameRange.End.Byte, eq: a.EqualsRange.Start.Byte, eqCol: a.EqualsRange.Start.Column})
	}
	return out
}

// objectLines returns the items of obj on lines of their own, written with "=".
func objectLines(f *file, obj *hclsyntax.ObjectConsExpr) []attrLine {
	var out []attrLine
	for _, it := range obj.Items {
		k, v := it.KeyExpr.Range(), it.ValueExpr.Range()
		if !ownLine(f, k.Start.Byte) || v.Start.Line != v.End.Line {
			continue
		}
		eq := k.End.Byte
		for eq < len(f.data) && (f.data[eq] == ' ' || f.data[eq] == '\t') {
			eq++
		}
		if eq >= len(f.data) || f.data[eq] != '=' {
			continue
		}
		out = append(out, attrLine{name: f.source(k), nameEnd: k.End.Byte, eq: eq, eqCol: k.End.Column + (eq - k.End.Byte)})
	}
	return out
}

// ownLine reports whether only whitespace precedes offset off on its line.
func ownLine(f *file, off int) bool {
	line, start := f.lineAt(off)
	return off-start <= len(line) && strings.TrimSpace(line[:off-start]) == ""
}

// align returns the width to pad inserted names to so that the "=" of the lines of a block
// or object line up, as terraform fmt writes them, and moves the "=" of the existing lines
// when an inserted name is longer. Existing lines whose "=" are not aligned are left as they
// are, and inserted names are not padded.
func align(f *file, existing []attrLine, inserted []string) int {
	width := 0
	for i, a := range existing {
		if i > 0 && a.eqCol != existing[0].eqCol {
			return 0
		}
		width = max(width, len(a.name))
	}
	for _, n := range inserted {
		width = max(width, len(n))
	}
	for _, a := range existing {
		gap := strings.Repeat(" ", width-len(a.name)+1)
		if string(f.data[a.nameEnd:a.eq]) != gap {
			f.add(edit{start: a.nameEnd, end: a.eq, text: gap})
		}
	}
	return width
}

func pad(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return s + strings.Repeat(" ", width-len(s))
}

// eksModule patches a node group of the terraform-aws-modules/eks module:
// eks_managed_node_groups[KEY].metadata_options.
func (p *patcher) eksModule(g iac.NodeGroup, n needs) error {
	// Resource is module.NAME.eks_managed_node_groups["KEY"].
	rest := strings.TrimPrefix(g.Options.Resource, "module.")
	modName, keyPart, _ := strings.Cut(rest, ".eks_managed_node_groups[")
	key, err := strconv.Unquote(strings.TrimSuffix(keyPart, "]"))
	if err != nil {
		p.note(g, g.At, "cannot read the node group's key: %s", p.byHand())
		return nil
	}
	path := g.At.File
	if path == "" {
		path = g.Options.At.File
	}
	f, err := p.file(path)
	if err != nil {
		return err
	}
	body, ok := p.parseHCL(g, f)
	if !ok {
		return nil
	}
	mod := findBlock(body, "module", modName)
	if mod == nil {
		p.note(g, g.At, "module %s is not in %s: %s", modName, f.path, p.byHand())
		return nil
	}
	attr, ok := mod.Body.Attributes["eks_managed_node_groups"]
	if !ok {
		p.note(g, tfPos(mod.DefRange()), "module %s has no eks_managed_node_groups: %s", modName, p.byHand())
		return nil
	}
	groups, ok := localObject(body, attr.Expr)
	if !ok {
		p.note(g, tfPos(attr.Expr.Range()), "eks_managed_node_groups is not written as an object in this file: set metadata_options = { http_endpoint = \"enabled\", http_tokens = \"required\", http_put_response_hop_limit = %d } in the node group by hand", p.target.HopLimit)
		return nil
	}
	item := objectItem(groups, key)
	if item == nil {
		p.note(g, g.At, "node group %q is not in eks_managed_node_groups of %s: %s", key, f.path, p.byHand())
		return nil
	}
	ng, ok := item.ValueExpr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		p.note(g, tfPos(item.ValueExpr.Range()), "the node group is not written as an object: set metadata_options = { http_endpoint = \"enabled\", http_tokens = \"required\", http_put_response_hop_limit = %d } in it by hand", p.target.HopLimit)
		return nil
	}
	if it := objectItem(ng, "use_custom_launch_template"); it != nil && f.source(it.ValueExpr.Range()) == "false" {
		p.note(g, tfPos(it.ValueExpr.Range()), "use_custom_launch_template = false: the node group runs on EKS's own launch template, which metadata_options does not reach; use the module's launch template, then set metadata_options")
		return nil
	}
	mo := objectItem(ng, "metadata_options")
	if mo == nil {
		opts := []setting{{"http_endpoint", `"enabled"`}, {"http_tokens", `"required"`}, {"http_put_response_hop_limit", strconv.Itoa(p.target.HopLimit)}}
		p.setItems(f, ng, []setting{{"metadata_options", ""}}, opts)
		return nil
	}
	obj, ok := mo.ValueExpr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		p.note(g, tfPos(mo.ValueExpr.Range()), "metadata_options is %s, not an object written here: %s", f.source(mo.ValueExpr.Range()), p.byHand())
		return nil
	}
	for _, it := range obj.Items {
		if !isLiteral(it.ValueExpr) {
			if name, _ := keyName(it.KeyExpr); name == "http_tokens" && n.tokens || name == "http_put_response_hop_limit" && n.hop {
				p.note(g, tfPos(it.ValueExpr.Range()), "%s was %s; the patch replaces it, and what it refers to may be used elsewhere", name, f.source(it.ValueExpr.Range()))
			}
		}
	}
	p.setItems(f, obj, p.tfSettings(n), nil)
	return nil
}

// source returns the text of a range.
func (f *file) source(r hcl.Range) string {
	if r.Start.Byte < 0 || r.End.Byte > len(f.data) || r.Start.Byte > r.End.Byte {
		return ""
	}
	return strings.TrimSpace(string(f.data[r.Start.Byte:r.End.Byte]))
}

// keyName returns an object key written as a bare name or a literal string.
func keyName(expr hclsyntax.Expression) (string, bool) {
	if name := hcl.ExprAsKeyword(expr); name != "" {
		return name, true
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || !v.Type().Equals(cty.String) {
		return "", false
	}
	return v.AsString(), true
}

func objectItem(obj *hclsyntax.ObjectConsExpr, key string) *hclsyntax.ObjectConsItem {
	for i := range obj.Items {
		if name, ok := keyName(obj.Items[i].KeyExpr); ok && name == key {
			return &obj.Items[i]
		}
	}
	return nil
}

// setItems sets items of an object expression: each of set replaces the item's value or is
// added. When nested is given, set holds one item whose value is an object of nested (the
// item is then added, never replaced). A multi-line object gets new items after its opening
// line; a one-line object is rewritten on one line.
func (p *patcher) setItems(f *file, obj *hclsyntax.ObjectConsExpr, set, nested []setting) {
	nl := f.newline()
	open := obj.SrcRange.Start.Byte
	oneLine := obj.SrcRange.Start.Line == obj.SrcRange.End.Line
	if oneLine {
		var items []setting
		for _, it := range obj.Items {
			items = append(items, setting{f.source(it.KeyExpr.Range()), f.source(it.ValueExpr.Range())})
		}
		if nested != nil {
			set = []setting{{set[0].name, inlineObject(nested)}}
		}
		items = merge(items, set)
		parts := make([]string, len(items))
		for i, s := range items {
			parts[i] = s.name + " = " + s.value
		}
		text := "{}"
		if len(parts) > 0 {
			text = "{ " + strings.Join(parts, ", ") + " }"
		}
		f.add(edit{start: open, end: obj.SrcRange.End.Byte, text: text})
		return
	}
	indent := objIndent(f, obj)
	step := strings.TrimPrefix(indent, f.indentAt(open))
	if step == "" {
		step = "  "
	}
	var missing []string
	for _, s := range set {
		if nested == nil && objectItem(obj, s.name) == nil {
			missing = append(missing, s.name)
		}
	}
	width := 0
	if nested == nil {
		width = align(f, objectLines(f, obj), missing)
	}
	var insert strings.Builder
	for _, s := range set {
		if nested != nil {
			width := 0
			for _, n := range nested {
				width = max(width, len(n.name))
			}
			insert.WriteString(indent + s.name + " = {" + nl)
			for _, n := range nested {
				insert.WriteString(indent + step + pad(n.name, width) + " = " + n.value + nl)
			}
			insert.WriteString(indent + "}" + nl)
			continue
		}
		if it := objectItem(obj, s.name); it != nil {
			r := it.ValueExpr.Range()
			f.add(edit{start: r.Start.Byte, end: r.End.Byte, text: s.value})
			continue
		}
		insert.WriteString(indent + pad(s.name, width) + " = " + s.value + nl)
	}
	if insert.Len() > 0 {
		off := f.afterLine(open)
		f.add(edit{start: off, end: off, text: insert.String()})
	}
}

func inlineObject(items []setting) string {
	parts := make([]string, len(items))
	for i, s := range items {
		parts[i] = s.name + " = " + s.value
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// objIndent returns the indentation of an object's items: that of its first item on a line
// of its own, else the opening line's and two spaces.
func objIndent(f *file, obj *hclsyntax.ObjectConsExpr) string {
	for _, it := range obj.Items {
		s := it.KeyExpr.Range().Start.Byte
		if line, start := f.lineAt(s); start > obj.SrcRange.Start.Byte && strings.TrimSpace(line[:s-start]) == "" {
			return line[:s-start]
		}
	}
	return f.indentAt(obj.SrcRange.Start.Byte) + "  "
}

// localObject returns the object expression expr is, following a local.NAME reference to a
// locals block of the same file.
func localObject(body *hclsyntax.Body, expr hclsyntax.Expression) (*hclsyntax.ObjectConsExpr, bool) {
	for depth := 0; depth < 8; depth++ {
		switch e := expr.(type) {
		case *hclsyntax.ObjectConsExpr:
			return e, true
		case *hclsyntax.ScopeTraversalExpr:
			t := e.Traversal
			ok := false
			if len(t) != 2 || t.RootName() != "local" {
				return nil, false
			}
			name, isAttr := t[1].(hcl.TraverseAttr)
			if !isAttr {
				return nil, false
			}
			for _, b := range body.Blocks {
				if b.Type != "locals" {
					continue
				}
				if attr, found := b.Body.Attributes[name.Name]; found {
					expr, ok = attr.Expr, true
					break
				}
			}
			if !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return nil, false
}

func names(list []setting) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.name
	}
	return out
}
