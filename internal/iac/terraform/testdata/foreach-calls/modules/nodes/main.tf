variable "name" {
  type = string
}

variable "tokens" {
  type    = string
  default = "required"
}

resource "aws_launch_template" "this" {
  name = var.name
  metadata_options {
    http_tokens                 = var.tokens
    http_put_response_hop_limit = 1
  }
}

resource "aws_eks_node_group" "this" {
  node_group_name = var.name
  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }
}
