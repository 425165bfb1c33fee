package inventory

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// daemonSet is a DaemonSet named namespace/name running image.
func daemonSet(namespace, name, image string) string {
	return "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: " + name + ", namespace: " + namespace + "}\n" +
		"spec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n" +
		"    spec: {containers: [{name: c, image: \"" + image + "\"}]}\n---\n"
}

func TestInferClouds(t *testing.T) {
	const web = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: [{name: c, image: nginx}]}\n---\n"
	for _, tc := range []struct {
		sentence  string
		manifests string
		want      []CloudEvidence
	}{
		{"nothing names a cloud: no evidence, so every cloud is audited", web, nil},
		{"the AWS VPC CNI's DaemonSet aws-node names AWS",
			web + daemonSet("kube-system", "aws-node", "amazon-k8s-cni:v1.20.4"),
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "DaemonSet kube-system/aws-node"}}},
		{"the EKS Pod Identity agent's DaemonSet names AWS",
			web + daemonSet("kube-system", "eks-pod-identity-agent", "eks-pod-identity-agent:0.1.6"),
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "DaemonSet kube-system/eks-pod-identity-agent"}}},
		{"an image from an EKS add-on registry names AWS",
			daemonSet("monitoring", "agent", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.31.0"),
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "image 602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.31.0 of DaemonSet monitoring/agent (an EKS add-on registry)"}}},
		{"an image from an EKS add-on registry of an opt-in region names AWS",
			daemonSet("monitoring", "agent", "800184023465.dkr.ecr.ap-east-1.amazonaws.com/eks/coredns:v1.11.3"),
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "image 800184023465.dkr.ecr.ap-east-1.amazonaws.com/eks/coredns:v1.11.3 of DaemonSet monitoring/agent (an EKS add-on registry)"}}},
		{"an image from anyone else's ECR registry names nothing: ECR is reachable from every cloud",
			daemonSet("monitoring", "agent", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1"), nil},
		{"an IRSA annotation names AWS",
			web + "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop, annotations: {eks.amazonaws.com/role-arn: \"arn:aws:iam::111122223333:role/web\"}}\n",
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "ServiceAccount shop/web annotation eks.amazonaws.com/role-arn"}}},
		{"the EKS Pod Identity agent's address in a pod's environment names AWS",
			"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: [{name: c, image: nginx, env: [{name: AWS_CONTAINER_CREDENTIALS_FULL_URI, value: \"http://169.254.170.23/v1/credentials\"}]}]}\n",
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "Pod shop/web environment AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity)"}}},
		{"a Karpenter EC2NodeClass names AWS",
			web + "apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: general}\nspec: {role: KarpenterNodeRole, amiSelectorTerms: [{alias: al2023@latest}]}\n",
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "EC2NodeClass general (Karpenter on AWS)"}}},
		{"the GKE metadata server's DaemonSet names GCP",
			web + daemonSet("kube-system", "gke-metadata-server", "gke-metadata-server:1"),
			[]CloudEvidence{{endpoint.GCP, CloudsFromInput, "DaemonSet kube-system/gke-metadata-server"}}},
		{"a GKE workload identity annotation names GCP",
			web + "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop, annotations: {iam.gke.io/gcp-service-account: \"web@project.iam.gserviceaccount.com\"}}\n",
			[]CloudEvidence{{endpoint.GCP, CloudsFromInput, "ServiceAccount shop/web annotation iam.gke.io/gcp-service-account"}}},
		{"a GKE node label on a node without a provider ID names GCP",
			web + "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {cloud.google.com/gke-nodepool: pool-1}}\n",
			[]CloudEvidence{{endpoint.GCP, CloudsFromInput, "Node n1 label cloud.google.com/gke-nodepool"}}},
		{"an Azure workload identity annotation names Azure",
			web + "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop, annotations: {azure.workload.identity/client-id: \"00000000-0000-0000-0000-000000000000\"}}\n",
			[]CloudEvidence{{endpoint.Azure, CloudsFromInput, "ServiceAccount shop/web annotation azure.workload.identity/client-id"}}},
		{"AKS's azure-cns DaemonSet names Azure",
			web + daemonSet("kube-system", "azure-cns", "azure-cns:v1.6"),
			[]CloudEvidence{{endpoint.Azure, CloudsFromInput, "DaemonSet kube-system/azure-cns"}}},
		{"AKS's azure-ip-masq-agent DaemonSet names Azure",
			web + daemonSet("kube-system", "azure-ip-masq-agent", "ip-masq-agent:v2"),
			[]CloudEvidence{{endpoint.Azure, CloudsFromInput, "DaemonSet kube-system/azure-ip-masq-agent"}}},
		{"an AKS node label names Azure",
			web + "apiVersion: v1\nkind: Node\nmetadata: {name: aks-1, labels: {kubernetes.azure.com/agentpool: system}}\n",
			[]CloudEvidence{{endpoint.Azure, CloudsFromInput, "Node aks-1 label kubernetes.azure.com/agentpool"}}},
		{"a DaemonSet of the same name in another namespace names nothing",
			web + daemonSet("shop", "aws-node", "nginx"), nil},
		{"several clouds come in catalogue order, each with its first evidence",
			web + daemonSet("kube-system", "azure-cns", "azure-cns:v1.6") + daemonSet("kube-system", "aws-node", "cni:1") + daemonSet("kube-system", "eks-pod-identity-agent", "agent:1"),
			[]CloudEvidence{{endpoint.AWS, CloudsFromInput, "DaemonSet kube-system/aws-node"}, {endpoint.Azure, CloudsFromInput, "DaemonSet kube-system/azure-cns"}}},
		{"a node's provider ID decides before any other evidence",
			web + daemonSet("kube-system", "gke-metadata-server", "gke-metadata-server:1") +
				"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {providerID: \"aws:///eu-west-1a/i-0abc\"}\n",
			[]CloudEvidence{{endpoint.AWS, CloudsFromNodes, "Node n1 spec.providerID aws:///eu-west-1a/i-0abc"}}},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, []byte(tc.manifests), 0o600); err != nil {
				t.Fatal(err)
			}
			inv, err := Load([]string{path}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Problems) > 0 {
				t.Fatalf("input problems: %v", inv.Problems)
			}
			if got := InferClouds(inv); !slices.Equal(got, tc.want) {
				t.Errorf("InferClouds = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCloudEvidenceString(t *testing.T) {
	for _, tc := range []struct {
		e    CloudEvidence
		want string
	}{
		{CloudEvidence{endpoint.AWS, CloudsFromInput, "DaemonSet kube-system/aws-node"}, "aws (from DaemonSet kube-system/aws-node)"},
		{CloudEvidence{endpoint.GCP, CloudsFromFlag, ""}, "gcp (--cloud)"},
		{CloudEvidence{endpoint.All, CloudsFromNothing, ""}, "all (nothing in the input names a cloud)"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%+v renders %q, want %q", tc.e, got, tc.want)
		}
	}
}
