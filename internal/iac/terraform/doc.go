// Package terraform reads the EC2 instance metadata options that a Terraform configuration
// gives its instances: aws_launch_template, aws_instance and aws_launch_configuration
// metadata_options, the launch templates that aws_eks_node_group and aws_autoscaling_group
// refer to, the node groups of the terraform-aws-modules/eks module, and the resolved values of
// a `terraform show -json` plan. Every value carries the file and line it was read from.
//
// Only what is statically knowable is evaluated: literals, locals, variable defaults, the
// arguments of local module calls, toset, and each and count of a resource or module call
// with for_each or count, which is read once per instance (instance). Anything else (a
// variable without a default, a data source, a resource attribute, another function call) is
// reported as set but unknown, with the expression as written.
//
// Attribute meanings follow the Terraform AWS provider documentation:
//   - https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/launch_template#metadata-options
//   - https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/instance#metadata-options
//   - https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/launch_configuration#metadata_options
//   - https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/eks_node_group#launch_template-configuration-block
//   - https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/autoscaling_group#launch_template
package terraform
