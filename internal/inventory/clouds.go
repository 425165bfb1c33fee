package inventory

import (
	"regexp"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"
)

// CloudBasis says how the clouds of an audit were chosen.
type CloudBasis string

// The bases, strongest first.
const (
	// CloudsFromFlag: named on the command line (--cloud).
	CloudsFromFlag CloudBasis = "flag"
	// CloudsFromNodes: the nodes' spec.providerID.
	CloudsFromNodes CloudBasis = "nodes"
	// CloudsFromInput: another object of the input, for want of nodes that name a cloud.
	CloudsFromInput CloudBasis = "input"
	// CloudsFromNothing: nothing names a cloud, so every cloud is audited.
	CloudsFromNothing CloudBasis = "none"
)

// CloudEvidence is a cloud selected for an audit and why: the first object that shows it.
type CloudEvidence struct {
	Cloud endpoint.Cloud `json:"cloud"`
	Basis CloudBasis     `json:"basis"`
	// Evidence names the object and what in it shows the cloud, e.g. "DaemonSet
	// kube-system/aws-node"; empty for the flag and for nothing.
	Evidence string `json:"evidence,omitempty"`
}

// String renders the evidence for a report header: "aws (from DaemonSet kube-system/aws-node)".
func (e CloudEvidence) String() string {
	switch e.Basis {
	case CloudsFromFlag:
		return string(e.Cloud) + " (--cloud)"
	case CloudsFromNothing:
		return string(e.Cloud) + " (nothing in the input names a cloud)"
	}
	return string(e.Cloud) + " (from " + e.Evidence + ")"
}

// Marker DaemonSets: the add-ons each managed Kubernetes service runs on every node, by
// namespace/name.
var cloudDaemonSets = map[string]endpoint.Cloud{
	// The Amazon VPC CNI (https://github.com/aws/amazon-vpc-cni-k8s/blob/master/config/master/aws-k8s-cni.yaml).
	"kube-system/aws-node": endpoint.AWS,
	// The EKS Pod Identity Agent add-on
	// (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html).
	"kube-system/eks-pod-identity-agent": endpoint.AWS,
	// The GKE metadata server of Workload Identity Federation for GKE
	// (https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity#metadata_server).
	"kube-system/gke-metadata-server": endpoint.GCP,
	// Azure CNI's container networking service and AKS's IP masquerade agent
	// (https://learn.microsoft.com/en-us/azure/aks/azure-cni-overlay,
	// https://learn.microsoft.com/en-us/azure/aks/concepts-network-ip-address-planning).
	"kube-system/azure-cns":           endpoint.Azure,
	"kube-system/azure-ip-masq-agent": endpoint.Azure,
}

// eksRegistryAccounts are the AWS accounts whose ECR registries serve the images of the EKS
// add-ons, in every region: the table of
// https://docs.aws.amazon.com/eks/latest/userguide/add-ons-images.html.
var eksRegistryAccounts = []string{
	"602401143452", // every commercial region not listed below
	"877085696533", // af-south-1
	"800184023465", // ap-east-1
	"900889452093", // ap-south-2
	"296578399912", // ap-southeast-3
	"491585149902", // ap-southeast-4
	"761377655185", // ca-west-1
	"918309763551", // cn-north-1
	"961992271922", // cn-northwest-1
	"900612956339", // eu-central-2
	"590381155156", // eu-south-1
	"455263428931", // eu-south-2
	"066635153087", // il-central-1
	"558608220178", // me-south-1
	"759879836304", // me-central-1
	"151742754352", // us-gov-east-1
	"013241004608", // us-gov-west-1
}

// ecrImage matches an image in a private ECR registry: ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/...
var ecrImage = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/`)

// Service account annotations of each cloud's workload identity.
var cloudAnnotations = []struct {
	key   string
	cloud endpoint.Cloud
}{
	// IRSA (https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html).
	{"eks.amazonaws.com/role-arn", endpoint.AWS},
	// Workload Identity Federation for GKE
	// (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
	{"iam.gke.io/gcp-service-account", endpoint.GCP},
	// Microsoft Entra Workload ID on AKS
	// (https://azure.github.io/azure-workload-identity/docs/topics/service-account-labels-and-annotations.html).
	{"azure.workload.identity/client-id", endpoint.Azure},
}

// labelPrefix is a label key prefix only one cloud's managed Kubernetes service sets.
type labelPrefix struct {
	prefix string
	cloud  endpoint.Cloud
}

// Node and pod label prefixes each managed service sets: GKE's node labels
// (https://cloud.google.com/kubernetes-engine/docs/concepts/node-pools, cloud.google.com/gke-nodepool
// and the others of cloud.google.com/gke-*), AKS's kubernetes.azure.com/* labels
// (https://learn.microsoft.com/en-us/azure/aks/use-labels#reserved-system-labels), and EKS's
// eks.amazonaws.com/* node labels (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html).
var cloudLabelPrefixes = []labelPrefix{
	{"eks.amazonaws.com/", endpoint.AWS},
	{"cloud.google.com/gke-", endpoint.GCP},
	{"iam.gke.io/", endpoint.GCP},
	{"kubernetes.azure.com/", endpoint.Azure},
}

// podIdentityAgentHosts are the EKS Pod Identity agent's addresses, which the EKS Pod Identity
// webhook puts in AWS_CONTAINER_CREDENTIALS_FULL_URI
// (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html).
var podIdentityAgentHosts = []string{"169.254.170.23", "[fd00:ec2::23]"}

// InferClouds returns the clouds the inventory shows, each with the first evidence of it, in
// the catalogue's order. The nodes' spec.providerID decide when any names a cloud. Otherwise
// the evidence is what each managed service puts into a cluster: the AWS VPC CNI's and EKS
// add-ons' DaemonSets and ECR images, IRSA and EKS Pod Identity, Karpenter EC2NodeClasses and
// EKS Auto Mode NodeClasses; the GKE metadata server, GKE workload identity and GKE node
// labels; AKS's DaemonSets, Azure workload identity and AKS labels. Nil when nothing names a
// cloud.
func InferClouds(inv *Inventory) []CloudEvidence {
	found := map[endpoint.Cloud]CloudEvidence{}
	note := func(c endpoint.Cloud, basis CloudBasis, evidence string) {
		if _, ok := found[c]; !ok {
			found[c] = CloudEvidence{Cloud: c, Basis: basis, Evidence: evidence}
		}
	}
	for _, n := range inv.Nodes {
		if c, ok := endpoint.CloudOfProviderID(n.ProviderID); ok {
			note(c, CloudsFromNodes, "Node "+n.Name+" spec.providerID "+n.ProviderID)
		}
	}
	if len(found) == 0 {
		inferFromObjects(inv, func(c endpoint.Cloud, evidence string) { note(c, CloudsFromInput, evidence) })
	}
	var out []CloudEvidence
	for _, c := range endpoint.Clouds {
		if e, ok := found[c]; ok {
			out = append(out, e)
		}
	}
	return out
}

// inferFromObjects calls note for every marker of a cloud in the inventory's objects other
// than the nodes' provider IDs, in a fixed order.
func inferFromObjects(inv *Inventory, note func(endpoint.Cloud, string)) {
	for _, w := range inv.Workloads {
		ref := w.Kind + " " + w.Namespace + "/" + w.Name
		if c, ok := cloudDaemonSets[w.Namespace+"/"+w.Name]; ok && w.Kind == "DaemonSet" {
			note(c, ref)
		}
		podMarkers(&w.Template.Spec, w.Template.Labels, ref, note)
	}
	for _, p := range inv.Pods {
		podMarkers(&p.Pod.Spec, p.Pod.Labels, "Pod "+p.Pod.Namespace+"/"+p.Pod.Name, note)
	}
	keys := make([]string, 0, len(inv.ServiceAccounts))
	for k := range inv.ServiceAccounts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		annotations := inv.ServiceAccounts[k].ServiceAccount.Annotations
		for _, a := range cloudAnnotations {
			if annotations[a.key] != "" {
				note(a.cloud, "ServiceAccount "+k+" annotation "+a.key)
			}
		}
	}
	for _, n := range inv.Nodes {
		labelMarkers(n.Labels, "Node "+n.Name, note)
	}
	for _, c := range inv.EC2NodeClasses {
		note(endpoint.AWS, "EC2NodeClass "+c.NodeClass.Name+" (Karpenter on AWS)")
	}
	for _, c := range inv.EKSNodeClasses {
		note(endpoint.AWS, "NodeClass "+c.NodeClass.Name+" (EKS Auto Mode)")
	}
}

// podMarkers notes the clouds a pod or pod template shows: an image from EKS's registries, the
// EKS Pod Identity agent's address in its environment, a cloud's labels.
func podMarkers(spec *corev1.PodSpec, labels map[string]string, ref string, note func(endpoint.Cloud, string)) {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if m := ecrImage.FindStringSubmatch(c.Image); m != nil && slices.Contains(eksRegistryAccounts, m[1]) {
				note(endpoint.AWS, "image "+c.Image+" of "+ref+" (an EKS add-on registry)")
			}
			for _, e := range c.Env {
				if e.Name == "AWS_CONTAINER_CREDENTIALS_FULL_URI" && slices.ContainsFunc(podIdentityAgentHosts, func(h string) bool { return strings.Contains(e.Value, "//"+h+"/") }) {
					note(endpoint.AWS, ref+" environment AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity)")
				}
			}
		}
	}
	labelMarkers(labels, ref, note)
}

// labelMarkers notes the clouds whose reserved label prefixes a label set uses, in the order of
// the label keys.
func labelMarkers(labels map[string]string, ref string, note func(endpoint.Cloud, string)) {
	var keys []string
	for k := range labels {
		if slices.ContainsFunc(cloudLabelPrefixes, func(p labelPrefix) bool { return strings.HasPrefix(k, p.prefix) }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, p := range cloudLabelPrefixes {
			if strings.HasPrefix(k, p.prefix) {
				note(p.cloud, ref+" label "+k)
			}
		}
	}
}
