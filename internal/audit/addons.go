package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"
)

// addon is a well-known component that discovers its environment through the metadata API
// unless it is configured explicitly.
type addon struct {
	name string
	// image matches the container image (a substring of the repository path).
	image string
	// applies narrows the match (e.g. cluster-autoscaler only with the AWS provider).
	applies func(c *corev1.Container) bool
	// configured reports whether the container no longer needs the metadata API.
	configured func(c *corev1.Container) bool
	needs      string
	fix        string
}

var addons = []addon{
	{
		name: "AWS Load Balancer Controller", image: "aws-load-balancer-controller",
		configured: func(c *corev1.Container) bool {
			return hasFlag(c, "--aws-region") && (hasFlag(c, "--aws-vpc-id") || hasFlag(c, "--aws-vpc-tags"))
		},
		needs: "reads its region and VPC ID from IMDS",
		fix:   "Start it with --aws-region=<region> and --aws-vpc-id=<vpc-id> (Helm values region and vpcId). The imdsguard agent's filter mode keeps its region discovery working (its proxy passes the region and the instance identity, never credentials); the VPC ID, read from network/interfaces/macs/<mac>/vpc-id, still needs --aws-vpc-id.",
	},
	{
		name: "Cluster Autoscaler (AWS)", image: "cluster-autoscaler",
		applies:    func(c *corev1.Container) bool { return flagValue(c, "--cloud-provider") == "aws" },
		configured: func(c *corev1.Container) bool { return hasEnv(c, "AWS_REGION") || hasEnv(c, "AWS_DEFAULT_REGION") },
		needs:      "reads its region from IMDS",
		fix:        "Set the AWS_REGION environment variable (Helm value awsRegion).",
	},
	{
		name: "ExternalDNS (AWS)", image: "external-dns",
		applies:    func(c *corev1.Container) bool { return flagValue(c, "--provider") == "aws" },
		configured: func(c *corev1.Container) bool { return hasEnv(c, "AWS_REGION") || hasEnv(c, "AWS_DEFAULT_REGION") },
		needs:      "reads its region from IMDS through the AWS SDK",
		fix:        "Set the AWS_REGION environment variable.",
	},
	{
		name: "Amazon EBS CSI driver", image: "aws-ebs-csi-driver",
		configured: func(c *corev1.Container) bool { return hasEnv(c, "AWS_REGION") },
		needs:      "reads its region and instance details from IMDS",
		fix:        "Set AWS_REGION on the controller (Helm value controller.region); the node plugin falls back to Kubernetes node metadata.",
	},
	{
		name: "AWS for Fluent Bit", image: "aws-for-fluent-bit",
		configured: func(c *corev1.Container) bool { return hasEnv(c, "AWS_REGION") },
		needs:      "reads its region from IMDS",
		fix:        "Set AWS_REGION (or region in each output's configuration).",
	},
	{
		name: "AWS Node Termination Handler (IMDS mode)", image: "aws-node-termination-handler",
		configured: func(c *corev1.Container) bool { return envValue(c, "ENABLE_SQS_TERMINATION_DRAINING") == "true" },
		needs:      "polls IMDS for spot interruption and scheduled events by design",
		fix:        "Run it in Queue Processor mode (enableSqsTerminationDraining), or keep IMDS mode as a hostNetwork DaemonSet exempted by name on the node firewall.",
	},
}

// metadataHosts are strings in a container's command, args or environment that show it talks
// to a metadata endpoint directly.
var metadataHosts = []string{"169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "100.100.100.200", "169.254.170.2"}

func appendAddonFindings(out []Finding, r *Report, u unit) []Finding {
	type hit struct {
		what, needs, fix string
	}
	found := map[hit]unit{}
	var order []hit
	for _, i := range u {
		s := &r.Subjects[i]
		for _, c := range allContainers(s.Spec) {
			for _, a := range addons {
				if !strings.Contains(c.Image, a.image) || (a.applies != nil && !a.applies(c)) || a.configured(c) {
					continue
				}
				h := hit{a.name, a.needs, a.fix}
				if found[h] == nil {
					order = append(order, h)
				}
				if !slices.Contains(found[h], i) {
					found[h] = append(found[h], i)
				}
			}
			if host := mentionsMetadata(c); host != "" {
				h := hit{fmt.Sprintf("container %q", c.Name), "refers to the metadata endpoint " + host + " in its command, args or environment",
					"Give it the value it reads from instance metadata through configuration (environment, flags, the Downward API), or its own pod identity."}
				if found[h] == nil {
					order = append(order, h)
				}
				if !slices.Contains(found[h], i) {
					found[h] = append(found[h], i)
				}
			}
		}
	}
	for _, h := range order {
		g := found[h]
		out = append(out, Finding{Rule: RuleAddon, Severity: RuleAddon.Severity, Namespace: r.Subjects[g[0]].Namespace,
			Objects:     objects(r, g),
			Message:     fmt.Sprintf("%s runs %s, which %s: it breaks once pod access to instance metadata is blocked", describe(r, g), h.what, h.needs),
			Remediation: h.fix})
	}
	return out
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// flagValue returns the value of a flag given as "--flag=value" or "--flag value" in a
// container's command or args; "" when absent.
func flagValue(c *corev1.Container, flag string) string {
	words := append(slices.Clone(c.Command), c.Args...)
	for i, w := range words {
		if v, ok := strings.CutPrefix(w, flag+"="); ok {
			return v
		}
		if w == flag && i+1 < len(words) {
			return words[i+1]
		}
	}
	return ""
}

func hasFlag(c *corev1.Container, flag string) bool { return flagValue(c, flag) != "" }

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			if e.Value == "" && e.ValueFrom != nil {
				return "(from a reference)"
			}
			return e.Value
		}
	}
	return ""
}

func hasEnv(c *corev1.Container, name string) bool { return envValue(c, name) != "" }

func mentionsMetadata(c *corev1.Container) string {
	texts := append(slices.Clone(c.Command), c.Args...)
	for _, e := range c.Env {
		texts = append(texts, e.Value)
	}
	for _, t := range texts {
		for _, h := range metadataHosts {
			if strings.Contains(t, h) {
				return h
			}
		}
	}
	return ""
}

// usesPodIdentityAgent reports whether the pod reads credentials from the EKS Pod Identity agent
// (the agent's webhook injects AWS_CONTAINER_CREDENTIALS_FULL_URI).
func usesPodIdentityAgent(spec *corev1.PodSpec) bool {
	for _, c := range allContainers(spec) {
		if v := envValue(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI"); strings.Contains(v, "169.254.170.23") || strings.Contains(v, "fd00:ec2::23") {
			return true
		}
	}
	return false
}

// usesNodeResolver reports whether the pod resolves names through the node's resolver (which
// on Azure is 168.63.129.16): dnsPolicy Default, or CoreDNS itself.
func usesNodeResolver(spec *corev1.PodSpec) bool {
	if spec.DNSPolicy == corev1.DNSDefault {
		return true
	}
	for _, c := range allContainers(spec) {
		if strings.Contains(c.Image, "coredns") {
			return true
		}
	}
	return false
}

// dependsOn returns the subjects of a group that depend on a keep-reachable endpoint.
func dependsOn(r *Report, g unit, ep endpoint.Endpoint) unit {
	var out unit
	for _, i := range g {
		spec := r.Subjects[i].Spec
		switch {
		case ep.HasCloud(endpoint.AWS) && usesPodIdentityAgent(spec):
			out = append(out, i)
		case ep.HasCloud(endpoint.Azure) && usesNodeResolver(spec):
			out = append(out, i)
		}
	}
	return out
}
