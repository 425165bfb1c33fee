package iac

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// EKSLaunchTemplateVersionLabel is the label EKS puts next to layer.EKSLaunchTemplateLabel on
// the nodes of a managed node group with a custom launch template: the template's version
// (EKS's bootstrap passes both, "--node-labels=eks.amazonaws.com/sourceLaunchTemplateVersion=1,
// ...,eks.amazonaws.com/sourceLaunchTemplateId=lt-...").
const EKSLaunchTemplateVersionLabel = "eks.amazonaws.com/sourceLaunchTemplateVersion"

// MaxFileSize bounds the files Load reads: a larger one is a Problem, not read.
const MaxFileSize = 16 << 20

// Source is the instance source of nodes whose node group the infrastructure code launches:
// the group's options, resolved with EC2's precedence (Resolve).
type Source struct {
	Groups  []NodeGroup
	Account AccountDefaults
	// AMI is the imds-support of the groups' AMI when the caller knows it.
	AMI AMISupport
}

var _ layer.InstanceSource = Source{}

// Name implements layer.InstanceSource.
func (Source) Name() string { return "infrastructure code" }

// AWSOptions implements layer.InstanceSource. A node joins the first group (in Groups order)
// that matches, by the first of its labels that one does: the EKS node group name
// (eks.amazonaws.com/nodegroup), the eksctl node group name (alpha.eksctl.io/nodegroup-name),
// then the launch template ID (eks.amazonaws.com/sourceLaunchTemplateId) and, when both the
// node and the group name one, the version.
func (s Source) AWSOptions(n *inventory.Node) (layer.AWSMetadataOptions, bool) {
	g, ok := s.Group(n)
	if !ok {
		return layer.AWSMetadataOptions{}, false
	}
	return Resolve(g.Options, s.Account, s.AMI), true
}

// Group returns the node group node n joins (AWSOptions), and false when none does.
func (s Source) Group(n *inventory.Node) (NodeGroup, bool) {
	if name := n.Labels[layer.EKSNodeGroupLabel]; name != "" {
		for _, g := range s.Groups {
			if g.EKSNodeGroup == name {
				return g, true
			}
		}
	}
	if name := n.Labels[EksctlNodeGroupLabel]; name != "" {
		for _, g := range s.Groups {
			if g.EksctlNodeGroup == name {
				return g, true
			}
		}
	}
	if id := n.Labels[layer.EKSLaunchTemplateLabel]; id != "" {
		version := n.Labels[EKSLaunchTemplateVersionLabel]
		for _, g := range s.Groups {
			if g.LaunchTemplateID != id {
				continue
			}
			if version != "" && g.LaunchTemplateVersion != "" && version != g.LaunchTemplateVersion {
				continue
			}
			return g, true
		}
	}
	return NodeGroup{}, false
}

// Load reads the node groups of the CloudFormation templates and eksctl ClusterConfigs among
// paths (files, or directories walked for them): .yaml, .yml and .json files, recognised by
// their content (IsCloudFormation, IsEksctl); other files and other YAML or JSON are skipped.
// A file that does not parse, or is larger than MaxFileSize, is a Problem and the rest is
// read. The error is for a path that cannot be read at all.
func Load(paths []string) ([]NodeGroup, []Problem, error) {
	var groups []NodeGroup
	var problems []Problem
	read := func(path string) error {
		g, p, err := loadFile(path)
		groups = append(groups, g...)
		problems = append(problems, p...)
		return err
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, nil, fmt.Errorf("load infrastructure code: %w", err)
		}
		if !info.IsDir() {
			if err := read(root); err != nil {
				return nil, nil, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !isIaCFile(path) {
				return nil
			}
			return read(path)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("load infrastructure code under %s: %w", root, err)
		}
	}
	return groups, problems, nil
}

func isIaCFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// loadFile reads one file given by path; one that is not .yaml/.yml/.json is skipped.
func loadFile(path string) ([]NodeGroup, []Problem, error) {
	if !isIaCFile(path) {
		return nil, nil, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if info.Size() > MaxFileSize {
		return nil, []Problem{{At: Position{File: path}, Message: fmt.Sprintf("%d bytes, larger than %d: not read", info.Size(), MaxFileSize)}}, nil
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the user names the files to audit.
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	root, err := parseYAML(path, data)
	var perr *ParseError
	if errors.As(err, &perr) {
		return nil, []Problem{{At: perr.At, Message: "not YAML or JSON: " + perr.Err.Error()}}, nil
	}
	switch {
	case IsCloudFormation(root):
		g, p, err := ReadCloudFormation(path, data)
		if err != nil {
			return nil, []Problem{{At: Position{File: path}, Message: err.Error()}}, nil
		}
		return g, p, nil
	case IsEksctl(root):
		g, p, err := ReadEksctl(path, data)
		if err != nil {
			return nil, []Problem{{At: Position{File: path}, Message: err.Error()}}, nil
		}
		return g, p, nil
	}
	return nil, nil, nil
}
