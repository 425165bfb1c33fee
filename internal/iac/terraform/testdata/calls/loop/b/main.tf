module "a" {
  source = "../a"
}

resource "aws_instance" "x" {
  metadata_options {
    http_tokens = "required"
  }
}
