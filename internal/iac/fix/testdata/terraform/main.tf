variable "tokens" {
  default = "optional"
}

locals {
  groups = {
    general = {
      instance_types   = ["m6i.large"]
      metadata_options = { http_tokens = "optional" }
    }
  }
}

# Two node groups share this launch template: it is patched once.
resource "aws_launch_template" "nodes" {
  name                   = "nodes"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = var.tokens # from the variable
    http_put_response_hop_limit = 2
  }
}

resource "aws_launch_template" "partial" {
  name = "partial"

  metadata_options {
    http_endpoint = "enabled"
  }
}

resource "aws_launch_template" "bare" {
  name = "bare"
}

resource "aws_launch_template" "good" {
  name = "good"

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
}

resource "aws_instance" "bastion" {
  ami           = "ami-0123456789abcdef0"
  instance_type = "t3.micro"
  metadata_options { http_tokens = "optional" }
}

resource "aws_instance" "empty" {}

resource "aws_launch_configuration" "legacy" {
	image_id = "ami-0123456789abcdef0"
}

resource "aws_eks_node_group" "a" {
  node_group_name = "a"

  launch_template {
    id      = aws_launch_template.nodes.id
    version = aws_launch_template.nodes.latest_version
  }
}

resource "aws_eks_node_group" "b" {
  node_group_name = "b"

  launch_template {
    name    = "nodes"
    version = "$Latest"
  }
}

resource "aws_eks_node_group" "external" {
  node_group_name = "external"

  launch_template {
    id      = "lt-0123456789abcdef0"
    version = "3"
  }
}
