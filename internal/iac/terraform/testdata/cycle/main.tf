locals {
  a = local.b
  b = local.a
  ok = "required"
}

resource "aws_instance" "x" {
  metadata_options {
    http_tokens                 = local.ok
    http_put_response_hop_limit = local.a
  }
}
