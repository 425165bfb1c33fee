locals {
  cluster = "prod"
  ng_name = "${local.cluster}-workers"
  tokens  = "required"
}

resource "aws_launch_template" "workers" {
  name                   = "workers"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = local.tokens
    http_put_response_hop_limit = var.hop_limit
    http_protocol_ipv6          = "disabled"
  }
}

resource "aws_launch_template" "pinned" {
  name = "pinned"

  metadata_options {
    http_tokens = var.tokens
  }
}

resource "aws_eks_node_group" "workers" {
  cluster_name    = local.cluster
  node_group_name = local.ng_name

  launch_template {
    id      = aws_launch_template.workers.id
    version = aws_launch_template.workers.latest_version
  }
}

resource "aws_eks_node_group" "default_version" {
  node_group_name = "default"

  launch_template {
    name    = aws_launch_template.workers.name
    version = aws_launch_template.workers.default_version
  }
}

resource "aws_eks_node_group" "pinned" {
  node_group_name = "pinned"

  launch_template {
    name    = "pinned"
    version = "$Default"
  }
}

resource "aws_eks_node_group" "external" {
  node_group_name = "external"

  launch_template {
    id      = "lt-0123456789abcdef0"
    version = "3"
  }
}

resource "aws_eks_node_group" "eks_template" {
  node_group_name = data.aws_ssm_parameter.name.value
}
