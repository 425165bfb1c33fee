locals {
  spot = {
    spot-a = { hop = 1 }
    spot-b = { hop = 3 }
  }
  zones = ["a", "b"]
}

resource "aws_launch_template" "this" {
  for_each = var.node_groups
  name     = "${var.cluster_name}-${each.key}"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = each.value.tokens
    http_put_response_hop_limit = each.value.hop
  }
}

resource "aws_eks_node_group" "this" {
  for_each        = var.node_groups
  cluster_name    = var.cluster_name
  node_group_name = each.key
  launch_template {
    id      = aws_launch_template.this[each.key].id
    version = aws_launch_template.this[each.key].latest_version
  }
}

resource "aws_launch_template" "spot" {
  for_each = local.spot
  name     = each.key
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = each.value.hop
  }
}

resource "aws_eks_node_group" "spot_a" {
  cluster_name    = var.cluster_name
  node_group_name = "spot-a"
  launch_template {
    name    = aws_launch_template.spot["spot-a"].name
    version = aws_launch_template.spot["spot-a"].latest_version
  }
}

resource "aws_instance" "zone" {
  for_each = toset(local.zones)
  metadata_options {
    http_tokens = each.key == "a" ? "required" : "optional"
  }
}

resource "aws_launch_template" "bastion" {
  count = var.bastion_count
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = count.index + 1
  }
}

resource "aws_autoscaling_group" "bastion" {
  name = "bastion"
  launch_template {
    id      = aws_launch_template.bastion[0].id
    version = "$Latest"
  }
}

resource "aws_launch_template" "extra" {
  for_each = var.extra_node_groups
  metadata_options {
    http_tokens                 = each.value.tokens
    http_put_response_hop_limit = 1
  }
}

resource "aws_eks_node_group" "extra" {
  for_each        = var.extra_node_groups
  cluster_name    = var.cluster_name
  node_group_name = each.key
  launch_template {
    id      = aws_launch_template.extra[each.key].id
    version = aws_launch_template.extra[each.key].latest_version
  }
}
