package iac

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseYAML parses the first document of data (YAML or JSON, which YAML reads too) into its
// node tree, which keeps every value's line and tag. An empty file is a nil node.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &ParseError{At: positionOfYAMLError(file, err), Err: err}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return deref(doc.Content[0]), nil
}

// ParseError is a file that is not YAML or JSON, with the position the parser names.
type ParseError struct {
	At  Position
	Err error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s: not YAML or JSON: %v", e.At, e.Err) }

// Unwrap returns the parser's error.
func (e *ParseError) Unwrap() error { return e.Err }

var yamlErrorLine = regexp.MustCompile(`line (\d+)`)

// positionOfYAMLError finds the line a YAML error names ("yaml: line 3: ...").
func positionOfYAMLError(file string, err error) Position {
	p := Position{File: file}
	if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
	}
	return p
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// field returns the value of key in mapping n, or nil when n is not a mapping or lacks key.
func field(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

// pairs returns the keys and values of mapping n in order.
func pairs(n *yaml.Node) (keys, values []*yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i])
		values = append(values, deref(n.Content[i+1]))
	}
	return keys, values
}

// scalar returns n's text when n is an untagged (plain or standard-tagged) scalar.
func scalar(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isCustomTag(n.Tag) {
		return "", false
	}
	return n.Value, true
}

// isCustomTag reports a local tag ("!Ref"), as opposed to YAML's own ("!!str").
func isCustomTag(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

func at(file string, n *yaml.Node) Position {
	if n == nil {
		return Position{File: file}
	}
	return Position{File: file, Line: n.Line, Column: n.Column}
}

// parseBool reads a YAML boolean as eksctl's loader does (YAML 1.1 words included).
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "y":
		return true, true
	case "false", "no", "off", "n":
		return false, true
	}
	return false, false
}
