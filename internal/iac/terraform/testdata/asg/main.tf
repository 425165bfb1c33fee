data "aws_ami" "al2023" {
  most_recent = true
}

resource "aws_launch_template" "spot" {
  name = "spot"
  metadata_options {
    http_tokens                 = "optional"
    http_put_response_hop_limit = 2
  }
}

resource "aws_launch_template" "lonely" {
  name = "lonely"
}

resource "aws_launch_configuration" "legacy" {
  name = "legacy"
  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }
}

resource "aws_autoscaling_group" "mixed" {
  mixed_instances_policy {
    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.spot.id
        version            = "$Latest"
      }
    }
  }
}

resource "aws_autoscaling_group" "legacy" {
  launch_configuration = aws_launch_configuration.legacy.name
}

resource "aws_instance" "bastion" {
  ami = data.aws_ami.al2023.id
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = min(1, 2)
  }
}

resource "aws_instance" "plain" {
  ami = data.aws_ami.al2023.id
}
