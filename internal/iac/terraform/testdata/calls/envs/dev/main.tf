locals {
  tokens = "optional"
}

module "nodes" {
  source      = "../../modules/nodes"
  name        = "dev-workers"
  http_tokens = local.tokens
  hop_limit   = 2
}
