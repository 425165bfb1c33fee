variable "cluster_name" {
  type    = string
  default = "prod"
}

variable "node_groups" {
  description = "Managed node groups, keyed by node group name."
  type = map(object({
    tokens = string
    hop    = number
  }))
  default = {
    workers = { tokens = "required", hop = 1 }
    legacy  = { tokens = "optional", hop = 2 }
  }
}

variable "extra_node_groups" {
  description = "Given at plan time: no default."
  type        = map(any)
}

variable "bastion_count" {
  type    = number
  default = 2
}
