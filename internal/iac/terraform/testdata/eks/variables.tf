variable "hop_limit" {
  type    = number
  default = 1
}

variable "tokens" {
  type = string
}
