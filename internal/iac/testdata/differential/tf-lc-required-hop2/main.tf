resource "aws_launch_configuration" "workers" {
  name          = "workers"
  image_id      = "ami-0123456789abcdef0"
  instance_type = "m6i.large"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}

resource "aws_autoscaling_group" "workers" {
  name                 = "workers"
  min_size             = 1
  max_size             = 6
  vpc_zone_identifier  = ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]
  launch_configuration = aws_launch_configuration.workers.name
}
