variable "name" {
  type = string
}

variable "http_tokens" {
  type = string
}

variable "hop_limit" {
  type    = number
  default = 1
}
