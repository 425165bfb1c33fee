module "nodes" {
  source      = "../../modules/nodes"
  name        = "prod-workers"
  http_tokens = "required"
}

module "missing" {
  source = "./not-there"
}
