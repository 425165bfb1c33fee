variable "tokens" {}

resource "aws_instance" "this" {
  ami = "ami-0123456789abcdef0"
  metadata_options {
    http_tokens                 = var.tokens
    http_put_response_hop_limit = 1
  }
}
