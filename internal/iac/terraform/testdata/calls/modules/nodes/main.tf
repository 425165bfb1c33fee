resource "aws_launch_template" "this" {
  name = var.name
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = var.http_tokens
    http_put_response_hop_limit = var.hop_limit
  }
}

resource "aws_eks_node_group" "this" {
  node_group_name = var.name
  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }
}

module "bastion" {
  source = "./bastion"
  tokens = var.http_tokens
}
