// Package scan finds the infrastructure code among the paths an audit is given, apart from the
// Kubernetes manifests beside it, and reads each piece with the reader of its format: Terraform
// modules and plans (internal/iac/terraform), CloudFormation templates and eksctl
// ClusterConfigs (internal/iac).
package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/terraform"
	"github.com/imdsguard/imdsguard/internal/inventory"
)

// Format is a kind of infrastructure code.
type Format string

// The formats Split recognises.
const (
	// Terraform: the *.tf files of one directory, one module.
	Terraform Format = "Terraform"
	// TerraformPlan: the output of `terraform show -json PLANFILE`.
	TerraformPlan Format = "Terraform plan"
	// CloudFormation: a template, YAML or JSON.
	CloudFormation Format = "CloudFormation"
	// Eksctl: an eksctl ClusterConfig.
	Eksctl Format = "eksctl"
)

// Input is one piece of infrastructure code: a Terraform module (the *.tf files of one
// directory) or one file of another format.
type Input struct {
	Format Format
	Files  []string
}

// codeAndManifestExtensions are the files Split takes from a directory.
var codeAndManifestExtensions = []string{".yaml", ".yml", ".json", ".tf"}

// headSize is how much of a YAML or JSON file Sniff sees: the first top-level keys are there.
const headSize = 64 << 10

// Split sorts paths (files, directories and "-") into Kubernetes manifests and infrastructure
// code. Directories are walked the way the manifest loader walks them (dot-directories and
// dot-files skipped): *.tf files make one Terraform module per directory, and *.yaml, *.yml
// and *.json files are manifests unless their first top-level keys say they are a
// CloudFormation template, an eksctl ClusterConfig or a Terraform plan (Sniff). A file named
// explicitly is a manifest unless it ends in .tf or Sniff recognises it. "-" is always a
// manifest. Manifests keep the order the walk finds them in.
//
// A path that does not exist, and a directory that holds neither manifests nor code, are errors.
func Split(paths []string) (manifests []string, code []Input, err error) {
	files, err := inventory.Expand(paths, codeAndManifestExtensions)
	if err != nil {
		return nil, nil, err
	}
	modules := map[string]int{} // directory → index in code
	for _, f := range files {
		switch strings.ToLower(filepath.Ext(f)) {
		case ".tf":
			dir := filepath.Dir(f)
			i, ok := modules[dir]
			if !ok {
				i = len(code)
				modules[dir] = i
				code = append(code, Input{Format: Terraform})
			}
			code[i].Files = append(code[i].Files, f)
			continue
		case ".yaml", ".yml", ".json":
			head, err := readHead(f)
			if err != nil {
				return nil, nil, err
			}
			if format := Sniff(head); format != "" {
				code = append(code, Input{Format: format, Files: []string{f}})
				continue
			}
		}
		manifests = append(manifests, f) // "-", other names given explicitly, manifests
	}
	return manifests, code, nil
}

func readHead(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the user names the files to audit.
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	head, err := io.ReadAll(io.LimitReader(f, headSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return head, nil
}

// cfnSections are the top-level sections of a CloudFormation template ("Template anatomy",
// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-anatomy.html). No
// Kubernetes object has a capitalised top-level key.
var cfnSections = []string{"AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Rules", "Mappings", "Conditions", "Transform", "Resources", "Outputs", "Hooks"}

// Sniff says which format of infrastructure code the start of a YAML or JSON file is, or ""
// for anything else (a Kubernetes manifest): a CloudFormation template when its first
// top-level key is a template section, a Terraform plan when it is "format_version" (the first
// key `terraform show -json` writes), an eksctl ClusterConfig when its first document's
// apiVersion is eksctl.io/*.
func Sniff(head []byte) Format {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if trimmed := bytes.TrimLeft(head, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		return sniffJSON(trimmed)
	}
	first := true
	for line := range bytes.Lines(head) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 || line[0] == '#' || line[0] == '%' || line[0] == ' ' || line[0] == '\t' || line[0] == '-' && !bytes.HasPrefix(line, []byte("---")) {
			continue
		}
		if bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("...")) {
			if first {
				continue // the document marker before the first document
			}
			return "" // the first document ended
		}
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		k := strings.Trim(string(key), `"'`)
		if first && slices.Contains(cfnSections, k) {
			return CloudFormation
		}
		first = false
		if k == "apiVersion" && strings.HasPrefix(strings.Trim(strings.TrimSpace(string(value)), `"'`), "eksctl.io/") {
			return Eksctl
		}
	}
	return ""
}

// sniffJSON looks at the first key of a JSON object, and at the apiVersion when it comes first.
func sniffJSON(data []byte) Format {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	t, err := dec.Token()
	key, ok := t.(string)
	if err != nil || !ok {
		return ""
	}
	switch {
	case slices.Contains(cfnSections, key):
		return CloudFormation
	case key == "format_version":
		return TerraformPlan
	case key == "apiVersion":
		if v, err := dec.Token(); err == nil {
			if s, ok := v.(string); ok && strings.HasPrefix(s, "eksctl.io/") {
				return Eksctl
			}
		}
	}
	return ""
}

// Code is what Read found: the node groups of every input, in input order, and the problems
// of the code it could not use.
type Code struct {
	Groups   []iac.NodeGroup
	Problems []iac.Problem
	// Files counts the files read.
	Files int
}

// Read reads inputs with the reader of each format, several at a time. The Terraform modules
// are read together (terraform.LoadModules), so that a module another one calls with a local
// source is read as that call, with its arguments; their groups come first. Content that
// cannot be used (a file that does not parse, a reference to nothing, a file larger than
// iac.MaxFileSize) is a Problem and the rest is read; the error is for a file that cannot be
// read at all.
func Read(inputs []Input) (Code, error) {
	var c Code
	modules := map[string][]string{}
	var others []Input
	for _, in := range inputs {
		c.Files += len(in.Files)
		if in.Format == Terraform && len(in.Files) > 0 {
			dir := filepath.Dir(in.Files[0])
			modules[dir] = append(modules[dir], in.Files...)
			continue
		}
		others = append(others, in)
	}
	if len(modules) > 0 {
		groups, problems, err := terraform.LoadModules(modules)
		if err != nil {
			return Code{}, err
		}
		c.Groups, c.Problems = groups, problems
	}
	type result struct {
		groups   []iac.NodeGroup
		problems []iac.Problem
		err      error
	}
	results := make([]result, len(others))
	iac.Parallel(len(others), func(i int) {
		r := &results[i]
		r.groups, r.problems, r.err = read(others[i])
	})
	for _, r := range results {
		if r.err != nil {
			return Code{}, r.err
		}
		c.Groups = append(c.Groups, r.groups...)
		c.Problems = append(c.Problems, r.problems...)
	}
	return c, nil
}

// read reads one input other than a Terraform module (Read reads those together).
func read(in Input) ([]iac.NodeGroup, []iac.Problem, error) {
	switch in.Format {
	case TerraformPlan:
		if len(in.Files) != 1 {
			return nil, nil, fmt.Errorf("%s: want one file, got %d", in.Format, len(in.Files))
		}
		return terraform.LoadPlan(in.Files[0])
	case CloudFormation, Eksctl:
		if len(in.Files) != 1 {
			return nil, nil, fmt.Errorf("%s: want one file, got %d", in.Format, len(in.Files))
		}
		return readYAML(in.Format, in.Files[0])
	}
	return nil, nil, fmt.Errorf("unknown format %q", in.Format)
}

// readYAML reads a CloudFormation template or an eksctl ClusterConfig. A file Sniff took for one
// that turns out not to be one is a Problem of the reader, so that it is not silently left out.
func readYAML(f Format, path string) ([]iac.NodeGroup, []iac.Problem, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if info.Size() > iac.MaxFileSize {
		return nil, []iac.Problem{{At: iac.Position{File: path}, Message: fmt.Sprintf("%d bytes, larger than %d: not read", info.Size(), iac.MaxFileSize)}}, nil
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the user names the files to audit.
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var groups []iac.NodeGroup
	var problems []iac.Problem
	if f == CloudFormation {
		groups, problems, err = iac.ReadCloudFormation(path, data)
	} else {
		groups, problems, err = iac.ReadEksctl(path, data)
	}
	if pe, ok := errors.AsType[*iac.ParseError](err); ok {
		return nil, []iac.Problem{{At: pe.At, Message: "not YAML or JSON: " + pe.Err.Error()}}, nil
	}
	if err != nil {
		return nil, []iac.Problem{{At: iac.Position{File: path, Line: 1}, Message: err.Error()}}, nil
	}
	return groups, problems, nil
}
