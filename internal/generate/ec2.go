package generate

import (
	"strings"
)

// Paths of the ec2 layer's files.
const (
	EC2ModifyScriptPath   = "ec2/modify-instance-metadata-options.sh"
	EC2LaunchTemplatePath = "ec2/launch-template-data.json"
	EC2TerraformPath      = "ec2/metadata-options.tf"
	EC2EksctlPath         = "ec2/eksctl-nodegroup.yaml"
	EC2KarpenterPath      = "ec2/karpenter-ec2nodeclass-patch.yaml"
	// EC2InfrastructurePatchPath is the fix of the infrastructure code given, in its own
	// files: apply it from the directory generate ran in.
	EC2InfrastructurePatchPath = "ec2/infrastructure-code.patch"
)

// hopLimitNote says, as comment lines with the given prefix, what IMDSv2 with a hop limit of 1
// does and does not cover.
func hopLimitNote(prefix string) string {
	lines := []string{
		"What these settings do:",
		"- http-tokens required turns IMDSv1 off: every request needs a session token, obtained",
		"  with PUT /latest/api/token.",
		"- A PUT response hop limit of 1 sends the token response with an IP TTL of 1: it reaches",
		"  processes in the node's own network namespace, and is dropped on the extra hop into a",
		"  pod's network namespace. Pods cannot get a token, so they cannot read IMDS.",
		"What they do not cover:",
		"- hostNetwork pods: they share the node's network namespace and get tokens as the kubelet",
		"  does. Use imdsguard's admission layer (and the node agent) for them.",
		"- A token obtained on the node and handed to a pod, and non-AWS metadata services.",
		"- Add-ons that read IMDS from pods stop working (the AWS Load Balancer Controller, the EBS",
		"  CSI controller, Cluster Autoscaler): configure their region and VPC explicitly first",
		"  (imdsguard audit lists them as finding IMDS008), and give pods their own credentials",
		"  (EKS Pod Identity or IAM roles for service accounts).",
		"- The IPv6 endpoint (fd00:ec2::254) obeys the same two settings; it stays disabled here.",
		"  Enable it (http-protocol-ipv6) only on IPv6-only nodes, which need it themselves.",
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight(prefix+" "+l, " ") + "\n")
	}
	return b.String()
}

func (out *Output) addEC2(opts *Options) {
	if len(opts.InfrastructurePatch) > 0 {
		out.Files = append(out.Files, File{Layer: EC2, Path: EC2InfrastructurePatchPath,
			Description: "your infrastructure code, patched to require IMDSv2 with hop limit 1: apply it with git apply (or patch -p1 <) in " + patchDir(opts.InfrastructurePatchBase),
			Content:     opts.InfrastructurePatch})
	}
	out.Notes = append(out.Notes, opts.InfrastructureNotes...)
	out.Files = append(out.Files,
		File{Layer: EC2, Path: EC2ModifyScriptPath, Executable: true,
			Description: "AWS CLI: IMDSv2 required and hop limit 1 on running instances (by id, or every instance of a cluster)",
			Content:     []byte(ec2ModifyScript())},
		File{Layer: EC2, Path: EC2LaunchTemplatePath,
			Description: "launch template data: aws ec2 create-launch-template-version --launch-template-data file://ec2/launch-template-data.json",
			Content:     []byte(ec2LaunchTemplateData)},
		File{Layer: EC2, Path: EC2TerraformPath,
			Description: "Terraform: the metadata_options block of aws_launch_template or aws_instance",
			Content:     []byte(ec2Terraform())},
		File{Layer: EC2, Path: EC2EksctlPath,
			Description: "eksctl: disableIMDSv1 and disablePodIMDS for node groups",
			Content:     []byte(ec2Eksctl())},
		File{Layer: EC2, Path: EC2KarpenterPath,
			Description: "Karpenter: EC2NodeClass spec.metadataOptions, as a merge patch",
			Content:     []byte(ec2Karpenter())},
	)
}

func ec2ModifyScript() string {
	return `#!/bin/sh
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
` + hopLimitNote("#") + `set -eu

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
`
}

// ec2LaunchTemplateData is launch template data (JSON has no comments: see docs/generate.md
// and the script's header for what the settings do and do not cover).
const ec2LaunchTemplateData = `{
  "MetadataOptions": {
    "HttpEndpoint": "enabled",
    "HttpTokens": "required",
    "HttpPutResponseHopLimit": 1,
    "HttpProtocolIpv6": "disabled"
  }
}
`

func ec2Terraform() string {
	return `# The metadata_options block for an aws_launch_template (EKS managed or self-managed node
# groups) or an aws_instance resource.
#
` + hopLimitNote("#") + `
metadata_options {
  http_endpoint               = "enabled"
  http_tokens                 = "required"
  http_put_response_hop_limit = 1
  http_protocol_ipv6          = "disabled"
}
`
}

func ec2Eksctl() string {
	return `# eksctl ClusterConfig fields for node groups: merge them into your configuration (the name,
# region and node group names below are placeholders).
#   disableIMDSv1: true   requires IMDSv2 (http-tokens required)
#   disablePodIMDS: true  blocks IMDS for every pod not on the host network (it cannot be
#                         combined with iam.withAddonPolicies)
# eksctl does not expose the hop limit: to set it to 1, give the node group a launch template
# (launchTemplate.id) made from ec2/launch-template-data.json.
#
` + hopLimitNote("#") + `apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: my-cluster
  region: us-west-2
managedNodeGroups:
- name: managed-ng
  disableIMDSv1: true
  disablePodIMDS: true
nodeGroups:
- name: self-managed-ng
  disableIMDSv1: true
  disablePodIMDS: true
`
}

func ec2Karpenter() string {
	return `# Karpenter EC2NodeClass metadata options, as a merge patch for each EC2NodeClass:
#   kubectl patch ec2nodeclass default --type merge --patch-file ec2/karpenter-ec2nodeclass-patch.yaml
# Karpenter v1's defaults are the same; the patch makes them explicit and undoes changes.
# Nodes launched before the change keep their options: replace them (drift does it for you),
# or run ec2/modify-instance-metadata-options.sh.
#
` + hopLimitNote("#") + `spec:
  metadataOptions:
    httpEndpoint: enabled
    httpTokens: required
    httpPutResponseHopLimit: 1
    httpProtocolIPv6: disabled
`
}

// patchDir names where the infrastructure patch applies.
func patchDir(base string) string {
	if base == "" || base == "." {
		return "the directory generate ran in"
	}
	return base
}
