# A self-managed node group on a launch configuration without metadata_options.
resource "aws_launch_configuration" "workers" {
  name          = "workers"
  image_id      = "ami-0123456789abcdef0"
  instance_type = "m6i.large"
}

resource "aws_autoscaling_group" "workers" {
  name                 = "workers"
  min_size             = 1
  max_size             = 6
  vpc_zone_identifier  = ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]
  launch_configuration = aws_launch_configuration.workers.name
}
