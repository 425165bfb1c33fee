# The metadata_options block for an aws_launch_template (EKS managed or self-managed node
# groups) or an aws_instance resource.
#
# What these settings do:
# - http-tokens required turns IMDSv1 off: every request needs a session token, obtained
#   with PUT /latest/api/token.
# - A PUT response hop limit of 1 sends the token response with an IP TTL of 1: it reaches
#   processes in the node's own network namespace, and is dropped on the extra hop into a
#   pod's network namespace. Pods cannot get a token, so they cannot read IMDS.
# What they do not cover:
# - hostNetwork pods: they share the node's network namespace and get tokens as the kubelet
#   does. Use imdsguard's admission layer (and the node agent) for them.
# - A token obtained on the node and handed to a pod, and non-AWS metadata services.
# - Add-ons that read IMDS from pods stop working (the AWS Load Balancer Controller, the EBS
#   CSI controller, Cluster Autoscaler): configure their region and VPC explicitly first
#   (imdsguard audit lists them as finding IMDS008), and give pods their own credentials
#   (EKS Pod Identity or IAM roles for service accounts).
# - The IPv6 endpoint (fd00:ec2::254) obeys the same two settings; it stays disabled here.
#   Enable it (http-protocol-ipv6) only on IPv6-only nodes, which need it themselves.

metadata_options {
  http_endpoint               = "enabled"
  http_tokens                 = "required"
  http_put_response_hop_limit = 1
  http_protocol_ipv6          = "disabled"
}
