package synth

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A synthetic Terraform repository: the node-group code of many clusters, one module directory
// each, the input of the infrastructure-code benchmark (hack/bench.sh with BENCH_IAC). Module i
// is the directory nodes-NNN (NNN = i, three digits or more) and holds the ten files of
// terraformFiles, in the shape of hand-written node-group code: variables with and without
// defaults, locals, provider requirements, launch templates whose metadata_options vary from
// module to module (terraformOptions), two aws_eks_node_groups on them, an
// aws_autoscaling_group, IAM roles and policies, data sources and outputs; every tenth module
// also calls the terraform-aws-modules/eks module with one EKS managed node group. Nothing is
// random: the same number of modules always yields the same bytes.

// TerraformFilesPerModule is the number of *.tf files of each module.
const TerraformFilesPerModule = 10

// terraformFiles are the file names of every module, in writing order.
var terraformFiles = [TerraformFilesPerModule]string{
	"versions.tf", "variables.tf", "locals.tf", "data.tf", "iam.tf",
	"launch_template.tf", "node_group.tf", "asg.tf", "main.tf", "outputs.tf",
}

// TerraformStats counts what WriteTerraform wrote.
type TerraformStats struct {
	Modules int `json:"modules"`
	Files   int `json:"files"`
	// NodeGroups counts the EKS managed node groups, those named in TerraformNodeGroups.
	NodeGroups int   `json:"nodeGroups"`
	Bytes      int64 `json:"bytes"`
}

// terraformModuleName names module i: its directory and the prefix of its node group names.
func terraformModuleName(i int) string { return fmt.Sprintf("nodes-%03d", i) }

// eksModuleEvery is how often a module calls the terraform-aws-modules/eks module: module i
// does when i % eksModuleEvery == 0.
const eksModuleEvery = 10

// TerraformNodeGroups returns the names of the EKS managed node groups of the repository of
// the given number of modules (WriteTerraform), as the node label eks.amazonaws.com/nodegroup
// of their nodes carries them: module i's "nodes-NNN-general" and "nodes-NNN-compute"
// (aws_eks_node_group), then, every tenth module, "nodes-NNN-system" (the eks module's node
// group, with use_name_prefix = false). Modules come in order.
func TerraformNodeGroups(modules int) []string {
	var out []string
	for i := range modules {
		name := terraformModuleName(i)
		out = append(out, name+"-general", name+"-compute")
		if i%eksModuleEvery == 0 {
			out = append(out, name+"-system")
		}
	}
	return out
}

// WriteTerraform writes a Terraform repository of the given number of modules into dir (made
// if missing): the directories nodes-000, nodes-001, ..., TerraformFilesPerModule files each.
func WriteTerraform(dir string, modules int) (TerraformStats, error) {
	if modules < 0 {
		return TerraformStats{}, fmt.Errorf("terraform modules: %d is negative", modules)
	}
	var stats TerraformStats
	for i := range modules {
		mdir := filepath.Join(dir, terraformModuleName(i))
		if err := os.MkdirAll(mdir, 0o750); err != nil {
			return stats, fmt.Errorf("terraform module: %w", err)
		}
		files := TerraformModule(i)
		for _, name := range terraformFiles {
			if err := os.WriteFile(filepath.Join(mdir, name), []byte(files[name]), 0o600); err != nil {
				return stats, fmt.Errorf("terraform module: %w", err)
			}
			stats.Files++
			stats.Bytes += int64(len(files[name]))
		}
		stats.Modules++
		stats.NodeGroups += 2
		if i%eksModuleEvery == 0 {
			stats.NodeGroups++
		}
	}
	return stats, nil
}

// terraformOptions are the metadata_options of module i's "general" launch template, by
// i % len(terraformOptions): IMDSv2 with hop limit 1 or 2, IMDSv1 allowed, no block at all
// (EC2's and the AMI's defaults), a variable without a default (unknown), and a local and a
// variable with a default.
var terraformOptions = []string{
	`
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }
`,
	`
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
`,
	`
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "optional"
    http_put_response_hop_limit = 2
  }
`,
	``,
	`
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = var.http_tokens
    http_put_response_hop_limit = var.hop_limit
  }
`,
	`
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = local.http_tokens
    http_put_response_hop_limit = var.hop_limit
    http_protocol_ipv6          = "disabled"
  }
`,
}

// TerraformModule returns the files of module i of the repository, by file name.
func TerraformModule(i int) map[string]string {
	name := terraformModuleName(i)
	f := map[string]string{}
	f["versions.tf"] = `terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0"
    }
  }

  backend "s3" {
    bucket         = "example-terraform-state"
    key            = "eks/` + name + `/terraform.tfstate"
    region         = "us-east-1"
    dynamodb_table = "terraform-locks"
    encrypt        = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
`
	// Variables with defaults, and http_tokens without one in the modules that use it.
	var v strings.Builder
	v.WriteString(`variable "region" {
  description = "AWS region of the cluster."
  type        = string
  default     = "us-east-1"
}

variable "cluster_name" {
  description = "Name of the EKS cluster the node groups join."
  type        = string
  default     = "` + name + `"
}

variable "cluster_version" {
  description = "Kubernetes version of the cluster."
  type        = string
  default     = "1.31"
}

variable "subnet_ids" {
  description = "Private subnets the nodes are placed in."
  type        = list(string)
  default     = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
  default     = "vpc-0a1b2c3d4e5f60000"
}

variable "instance_types" {
  description = "Instance types of the general node group."
  type        = list(string)
  default     = ["m6i.large", "m6a.large", "m5.large"]
}

variable "desired_size" {
  description = "Desired number of nodes per node group."
  type        = number
  default     = 3
}

variable "hop_limit" {
  description = "Hop limit of the instance metadata service's responses."
  type        = number
  default     = 2
}
`)
	if i%len(terraformOptions) == 4 {
		v.WriteString(`
variable "http_tokens" {
  description = "Whether IMDSv2 tokens are required (required or optional). No default: set per environment."
  type        = string
}
`)
	}
	v.WriteString(`
variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default = {
    team        = "platform"
    cost-center = "cc-` + fmt.Sprintf("%04d", 1000+i) + `"
  }
}
`)
	f["variables.tf"] = v.String()

	f["locals.tf"] = `locals {
  name        = "` + name + `"
  http_tokens = "required"
  ami_type    = "AL2023_x86_64_STANDARD"

  tags = merge(var.tags, {
    "kubernetes.io/cluster/${var.cluster_name}" = "owned"
    environment                                 = "` + [...]string{"prod", "staging", "dev"}[i%3] + `"
    module                                      = local.name
  })

  node_labels = {
    "example.com/team" = "platform"
    "example.com/tier" = "general"
  }
}
`
	f["data.tf"] = `data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_ssm_parameter" "ami" {
  name = "/aws/service/eks/optimized-ami/${var.cluster_version}/amazon-linux-2023/x86_64/standard/recommended/image_id"
}

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "EKSNodeAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.${data.aws_partition.current.dns_suffix}"]
    }
  }
}
`
	f["iam.tf"] = `resource "aws_iam_role" "nodes" {
  name                  = "${local.name}-nodes"
  assume_role_policy    = data.aws_iam_policy_document.assume_role.json
  force_detach_policies = true
  tags                  = local.tags
}

resource "aws_iam_role_policy_attachment" "worker" {
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSWorkerNodePolicy"
}

resource "aws_iam_role_policy_attachment" "cni" {
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"
}

resource "aws_iam_role_policy_attachment" "ecr" {
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_policy" "nodes_extra" {
  name        = "${local.name}-nodes-extra"
  description = "Logs and volume snapshots for the nodes of ${local.name}."

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        Resource = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/eks/${local.name}/*"
      },
      {
        Sid      = "Volumes"
        Effect   = "Allow"
        Action   = ["ec2:CreateSnapshot", "ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:CreateTags"]
        Resource = "*"
        Condition = {
          StringEquals = {
            "aws:RequestedRegion" = var.region
          }
        }
      },
    ]
  })

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "nodes_extra" {
  role       = aws_iam_role.nodes.name
  policy_arn = aws_iam_policy.nodes_extra.arn
}

resource "aws_iam_instance_profile" "nodes" {
  name = "${local.name}-nodes"
  role = aws_iam_role.nodes.name
  tags = local.tags
}
`
	// The general template varies; compute always requires tokens; batch (the ASG's) keeps
	// its default version, which it moves to the newest.
	f["launch_template.tf"] = `resource "aws_launch_template" "general" {
  name_prefix            = "${local.name}-general-"
  description            = "General-purpose nodes of ${local.name}."
  update_default_version = true
  ebs_optimized          = true

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 80
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }
` + terraformOptions[i%len(terraformOptions)] + `
  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.name}-general" })
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_launch_template" "compute" {
  name                   = "${local.name}-compute"
  update_default_version = ` + fmt.Sprint(i%4 != 3) + `

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size = 120
      volume_type = "gp3"
      encrypted   = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = ` + fmt.Sprint(1+i%2) + `
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.name}-compute" })
  }
}

resource "aws_launch_template" "batch" {
  name_prefix            = "${local.name}-batch-"
  image_id               = data.aws_ssm_parameter.ami.value
  instance_type          = "c6i.2xlarge"
  update_default_version = true

  iam_instance_profile {
    name = aws_iam_instance_profile.nodes.name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "` + [...]string{"required", "optional"}[i%2] + `"
    http_put_response_hop_limit = 1
  }

  user_data = base64encode(<<-EOT
    #!/bin/bash
    set -o xtrace
    /etc/eks/bootstrap.sh ${var.cluster_name} --kubelet-extra-args '--node-labels=example.com/tier=batch'
  EOT
  )
}
`
	// The compute group leaves its version out in one module of four: the template's default
	// version, which is the newest only where update_default_version is true (it is not there).
	computeVersion := "\n    version = aws_launch_template.compute.latest_version"
	if i%4 == 3 {
		computeVersion = ""
	}
	f["node_group.tf"] = `resource "aws_eks_node_group" "general" {
  cluster_name    = var.cluster_name
  node_group_name = "${local.name}-general"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = var.subnet_ids
  ami_type        = local.ami_type
  instance_types  = var.instance_types
  capacity_type   = "ON_DEMAND"
  labels          = local.node_labels

  scaling_config {
    desired_size = var.desired_size
    min_size     = 1
    max_size     = 10
  }

  update_config {
    max_unavailable_percentage = 33
  }

  launch_template {
    id      = aws_launch_template.general.id
    version = aws_launch_template.general.latest_version
  }

  tags = local.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [
    aws_iam_role_policy_attachment.worker,
    aws_iam_role_policy_attachment.cni,
    aws_iam_role_policy_attachment.ecr,
  ]
}

resource "aws_eks_node_group" "compute" {
  cluster_name    = var.cluster_name
  node_group_name = "` + name + `-compute"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = var.subnet_ids
  ami_type        = local.ami_type
  instance_types  = ["c6i.4xlarge", "c6a.4xlarge"]
  capacity_type   = "SPOT"

  scaling_config {
    desired_size = 2
    min_size     = 0
    max_size     = 20
  }

  launch_template {
    id = aws_launch_template.compute.id` + computeVersion + `
  }

  taint {
    key    = "example.com/compute"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy_attachment.worker]
}
`
	// Self-managed batch nodes: a plain launch template reference, or in every third module a
	// mixed instances policy.
	asgTemplate := `
  launch_template {
    id      = aws_launch_template.batch.id
    version = "$Latest"
  }
`
	if i%3 == 2 {
		asgTemplate = `
  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = 20
      spot_allocation_strategy                 = "price-capacity-optimized"
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.batch.id
        version            = aws_launch_template.batch.latest_version
      }

      override {
        instance_type = "c6i.2xlarge"
      }

      override {
        instance_type = "c6a.2xlarge"
      }

      override {
        instance_type = "c5.2xlarge"
      }
    }
  }
`
	}
	f["asg.tf"] = `resource "aws_autoscaling_group" "batch" {
  name_prefix         = "${local.name}-batch-"
  vpc_zone_identifier = var.subnet_ids
  min_size            = 0
  max_size            = 50
  desired_capacity    = 0
  capacity_rebalance  = true
` + asgTemplate + `
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 90
    }
  }

  tag {
    key                 = "kubernetes.io/cluster/${var.cluster_name}"
    value               = "owned"
    propagate_at_launch = true
  }

  tag {
    key                 = "k8s.io/cluster-autoscaler/enabled"
    value               = "true"
    propagate_at_launch = false
  }

  lifecycle {
    create_before_destroy = true
    ignore_changes        = [desired_capacity]
  }
}
`
	// Node security group, and every tenth module the eks module's own node group.
	var m strings.Builder
	m.WriteString(`resource "aws_security_group" "nodes" {
  name_prefix = "${local.name}-nodes-"
  description = "Nodes of ${local.name}."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "nodes_self" {
  security_group_id            = aws_security_group.nodes.id
  referenced_security_group_id = aws_security_group.nodes.id
  ip_protocol                  = "-1"
  description                  = "Node to node."
}

resource "aws_vpc_security_group_ingress_rule" "control_plane" {
  security_group_id            = aws_security_group.nodes.id
  referenced_security_group_id = data.aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  description                  = "Control plane to webhooks."
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.nodes.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_cloudwatch_log_group" "nodes" {
  name              = "/eks/${local.name}/nodes"
  retention_in_days = 30
  tags              = local.tags
}
`)
	if i%eksModuleEvery == 0 {
		opts := ""
		if i%(2*eksModuleEvery) == 0 {
			opts = `
      metadata_options = {
        http_endpoint               = "enabled"
        http_tokens                 = "required"
        http_put_response_hop_limit = 1
      }
`
		}
		m.WriteString(`
module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.0"

  cluster_name    = "${local.name}-system"
  cluster_version = var.cluster_version
  vpc_id          = var.vpc_id
  subnet_ids      = var.subnet_ids

  eks_managed_node_group_defaults = {
    ami_type       = local.ami_type
    instance_types = ["m6i.large"]
  }

  eks_managed_node_groups = {
    system = {
      name            = "` + name + `-system"
      use_name_prefix = false
      min_size        = 2
      max_size        = 4
      desired_size    = 2
` + opts + `
      labels = {
        "example.com/tier" = "system"
      }
    }
  }

  tags = local.tags
}
`)
	}
	f["main.tf"] = m.String()
	f["outputs.tf"] = `output "node_role_arn" {
  description = "ARN of the nodes' IAM role."
  value       = aws_iam_role.nodes.arn
}

output "general_node_group" {
  description = "Name of the general node group."
  value       = aws_eks_node_group.general.node_group_name
}

output "compute_node_group" {
  description = "Name of the compute node group."
  value       = aws_eks_node_group.compute.node_group_name
}

output "launch_template_ids" {
  description = "Launch templates of the node groups."
  value = {
    general = aws_launch_template.general.id
    compute = aws_launch_template.compute.id
    batch   = aws_launch_template.batch.id
  }
}

output "batch_asg" {
  description = "Name of the batch Auto Scaling group."
  value       = aws_autoscaling_group.batch.name
}

output "security_group_id" {
  description = "Security group of the nodes."
  value       = aws_security_group.nodes.id
}
`
	return f
}
