variable "tokens" {
  type = string
}

resource "aws_launch_template" "legacy" {
  name = "legacy"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "optional"
    http_put_response_hop_limit = 1
  }
}

resource "aws_eks_node_group" "legacy" {
  node_group_name = "legacy"
  launch_template {
    id      = aws_launch_template.legacy.id
    version = aws_launch_template.legacy.latest_version
  }
}

resource "aws_launch_template" "hop2" {
  name = "hop2"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}

resource "aws_eks_node_group" "hop2" {
  node_group_name = "hop2"
  launch_template {
    id      = aws_launch_template.hop2.id
    version = aws_launch_template.hop2.latest_version
  }
}

resource "aws_eks_node_group" "lb" {
  node_group_name = "lb"
  launch_template {
    id      = aws_launch_template.hop2.id
    version = aws_launch_template.hop2.latest_version
  }
}

resource "aws_launch_template" "pinned" {
  name = "pinned"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
}

resource "aws_eks_node_group" "pinned" {
  node_group_name = "pinned"
  launch_template {
    id      = aws_launch_template.pinned.id
    version = "3"
  }
}

resource "aws_launch_template" "vars" {
  name = "vars"
  metadata_options {
    http_tokens                 = var.tokens
    http_put_response_hop_limit = 1
  }
}

resource "aws_eks_node_group" "vars" {
  node_group_name = "vars"
  launch_template {
    id      = aws_launch_template.vars.id
    version = aws_launch_template.vars.latest_version
  }
}

resource "aws_launch_template" "orphan" {
  name = "orphan"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}
