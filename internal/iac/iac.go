// Package iac reads the instance metadata settings that infrastructure code gives EC2 instances
// (Terraform, CloudFormation, eksctl), with the position of every value, models EC2's
// precedence between the launch template, the account default and the AMI, and joins node
// groups to the cluster's nodes as an instance source of the audit (layer.InstanceSource).
package iac

import "fmt"

// Position is where a value was read: file and 1-based line (column when known).
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column,omitempty"`
}

// Value is one metadata option as the code states it. Set is false when the code leaves it
// out (the block or the attribute is missing): EC2's precedence then decides (Resolve).
// Known is false when the code sets it to something not knowable statically (a variable
// without a default, a data source): it stays unknown, never a guess.
type Value[T any] struct {
	Value T
	Set   bool
	Known bool
	At    Position
	// Expr is the expression as written when it is not a literal ("var.hop_limit").
	Expr string
	// Attr names the attribute as the code spells it
	// ("LaunchTemplateData.MetadataOptions.HttpTokens", "disableIMDSv1").
	Attr string
	// Default is set when a tool's documented default supplied the value rather than the
	// code: it names the default and its source.
	Default string
}

// MetadataOptions are the EC2 instance metadata options a resource states.
type MetadataOptions struct {
	HTTPEndpoint     Value[string] // "enabled" | "disabled"
	HTTPTokens       Value[string] // "optional" | "required"
	HopLimit         Value[int]    // 1–64
	HTTPProtocolIPv6 Value[string] // "enabled" | "disabled"
	// Resource names the resource that states the options ("AWS::EC2::LaunchTemplate NodeLT")
	// and At is where it or its metadata options block is: the origin of an option the
	// resource leaves out.
	Resource string
	At       Position
}

// NodeGroup is a group of instances the code launches, with the keys that join it to nodes.
type NodeGroup struct {
	// Resource names the resource: "aws_eks_node_group.workers", "AWS::EKS::Nodegroup Workers",
	// "eksctl nodeGroups[0] ng-1"; a resource of a called Terraform module has the call's
	// address ("module.nodes.aws_eks_node_group.this").
	Resource string
	// Root is the directory of the Terraform root module whose call reads a called module's
	// resource (two roots calling one module give two groups of the same Resource); empty
	// otherwise.
	Root string
	At   Position
	// Join keys, any of which may be empty: the EKS node group name (node label
	// eks.amazonaws.com/nodegroup), the eksctl node group name (alpha.eksctl.io/nodegroup-name),
	// the launch template ID and version (eks.amazonaws.com/sourceLaunchTemplateId/Version).
	EKSNodeGroup, EksctlNodeGroup           string
	LaunchTemplateID, LaunchTemplateVersion string
	// Options are the metadata options of the launch template or launch parameters in force.
	Options MetadataOptions
	// VersionInDoubt says why the launch template version the group runs may not be the one
	// the code states (the template's default version where the template does not follow
	// its newest, a pinned version number); Newest are then the options the code states for
	// the newest version. Options are unknown in that case.
	VersionInDoubt string
	Newest         *MetadataOptions
	// Defaulted is set when the tool itself supplies the options (eksctl's disableIMDSv1 and
	// disablePodIMDS, the terraform-aws-modules/eks module's defaults): their source is then
	// documented defaults, not the code.
	Defaulted bool
}

// String renders the position as file:line (file:line:column when the column is known).
func (p Position) String() string {
	if p.Column > 0 {
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Problem is input a reader could not use, with its position: an unparsable file, a
// reference to nothing, a value outside the documented ones. The reader goes on; the values
// concerned stay unknown.
type Problem struct {
	At      Position `json:"at"`
	Message string   `json:"message"`
}

func (p Problem) String() string { return p.At.String() + ": " + p.Message }
