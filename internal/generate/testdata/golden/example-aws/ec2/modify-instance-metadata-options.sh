#!/bin/sh
# Require IMDSv2 with a PUT response hop limit of 1 on running EC2 instances.
#
#   ec2/modify-instance-metadata-options.sh i-0123456789abcdef0 [i-...]   the instances named
#   CLUSTER_NAME=my-cluster ec2/modify-instance-metadata-options.sh       every instance tagged
#                                                 kubernetes.io/cluster/<name> (EKS, eksctl, Karpenter)
#
# Uses the AWS CLI's default region and credentials (AWS_REGION, AWS_PROFILE). Instances
# launched later take their options from the launch template, the node group or the
# EC2NodeClass: change those too (the other files in ec2/).
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
set -eu

if [ "$#" -gt 0 ]; then
  ids="$*"
else
  : "${CLUSTER_NAME:?give instance ids, or set CLUSTER_NAME to the cluster's name}"
  ids=$(aws ec2 describe-instances \
    --filters "Name=tag-key,Values=kubernetes.io/cluster/${CLUSTER_NAME}" \
              "Name=instance-state-name,Values=pending,running,stopping,stopped" \
    --query 'Reservations[].Instances[].InstanceId' --output text)
fi

for id in $ids; do
  aws ec2 modify-instance-metadata-options --instance-id "$id" \
    --http-endpoint enabled --http-tokens required --http-put-response-hop-limit 1 >/dev/null
  echo "$id: IMDSv2 required, PUT response hop limit 1"
done
