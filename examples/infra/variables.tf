variable "cluster_name" {
  type    = string
  default = "shop-prod"
}

variable "system_instance_type" {
  type    = string
  default = "m6i.large"
}

# Left without a default: the pipeline passes it per environment, so the code does not say.
variable "batch_hop_limit" {
  type = number
}
