module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.0"

  cluster_name = "prod"
  eks_managed_node_groups = {
    default = {
      instance_types = ["m6i.large"]
    }
    relaxed = {
      metadata_options = {
        http_endpoint = "enabled"
        http_tokens   = "optional"
      }
    }
    tiny = {}
    strict = { metadata_options = { http_tokens = "required", http_put_response_hop_limit = 1 } }
    own = {
      use_custom_launch_template = false
    }
  }
}

module "eks_local" {
  source  = "terraform-aws-modules/eks/aws"
  version = "21.1.0"

  name                    = "next"
  eks_managed_node_groups = local.groups
}
