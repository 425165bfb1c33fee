# The EKS managed node group for cluster add-ons (CoreDNS, the VPC CNI). Its launch template
# predates the move to IMDSv2: it still leaves IMDSv1 on, with the hop limit raised for pods.
resource "aws_launch_template" "system" {
  name_prefix            = "${var.cluster_name}-system-"
  instance_type          = var.system_instance_type
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "optional"
    http_put_response_hop_limit = 2
  }
}

resource "aws_eks_node_group" "system" {
  cluster_name    = var.cluster_name
  node_group_name = "system"
  node_role_arn   = "arn:aws:iam::111122223333:role/eks-node"
  subnet_ids      = ["subnet-0a1b2c3d", "subnet-0e5f6a7b"]

  launch_template {
    id      = aws_launch_template.system.id
    version = aws_launch_template.system.latest_version
  }

  taint {
    key    = "CriticalAddonsOnly"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  scaling_config {
    desired_size = 1
    min_size     = 1
    max_size     = 3
  }
}
