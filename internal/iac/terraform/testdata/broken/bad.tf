resource "aws_instance" "y" {
  metadata_options {
    http_tokens = = "optional"
  }
