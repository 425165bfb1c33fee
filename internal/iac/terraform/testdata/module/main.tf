locals {
  node_groups = {
    default = {
      instance_types = ["m6i.large"]
    }
    relaxed = {
      name            = "relaxed"
      use_name_prefix = false
      metadata_options = {
        http_tokens = "optional"
      }
    }
  }
}

module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.0"

  cluster_name            = "prod"
  eks_managed_node_groups = local.node_groups
}

module "eks_next" {
  source  = "terraform-aws-modules/eks/aws"
  version = "21.1.0"

  name = "next"
  eks_managed_node_groups = {
    general = {
      instance_types = ["m7i.large"]
    }
    custom = {
      metadata_options = {
        http_put_response_hop_limit = 2
      }
    }
  }
}

module "eks_floating" {
  source  = "terraform-aws-modules/eks/aws"
  version = ">= 18.0"

  eks_managed_node_groups = {
    any = {}
  }
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.0.0"
}
