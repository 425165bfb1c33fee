locals {
  groups = {
    general = { tokens = "required" }
    gpu     = { tokens = "optional" }
  }
}

module "nodes" {
  source   = "../../modules/nodes"
  for_each = local.groups
  name     = each.key
  tokens   = each.value.tokens
}

module "canary" {
  source = "../../modules/nodes"
  count  = 1
  name   = "canary-${count.index}"
  tokens = "required"
}
