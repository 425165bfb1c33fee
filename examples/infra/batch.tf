# A node group for batch jobs, scaled to zero until the nightly run: no node of the example
# cluster belongs to it yet.
locals {
  batch_metadata = {
    tokens = "required"
  }
}

resource "aws_launch_template" "batch" {
  name_prefix = "${var.cluster_name}-batch-"

  metadata_options {
    http_tokens                 = local.batch_metadata.tokens
    http_put_response_hop_limit = var.batch_hop_limit
  }
}

resource "aws_eks_node_group" "batch" {
  cluster_name    = var.cluster_name
  node_group_name = "batch"
  node_role_arn   = "arn:aws:iam::111122223333:role/eks-node"
  subnet_ids      = ["subnet-0a1b2c3d", "subnet-0e5f6a7b"]

  launch_template {
    id = aws_launch_template.batch.id
  }

  scaling_config {
    desired_size = 0
    min_size     = 0
    max_size     = 20
  }
}
