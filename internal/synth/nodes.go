package synth

import (
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The label and annotation of package layer (EC2NodeClassLabel, AgentStateAnnotation) and the
// annotation's format version 1; package layer's tests decode what this writes.
const (
	ec2NodeClassLabel    = "karpenter.k8s.aws/ec2nodeclass"
	agentStateAnnotation = "imdsguard.io/agent-state"
)

// The labels EKS puts on the nodes of a managed node group (layer.EKSNodeGroupLabel,
// layer.EKSLaunchTemplateLabel, iac.EKSLaunchTemplateVersionLabel).
const (
	eksNodeGroupLabel             = "eks.amazonaws.com/nodegroup"
	eksLaunchTemplateLabel        = "eks.amazonaws.com/sourceLaunchTemplateId"
	eksLaunchTemplateVersionLabel = "eks.amazonaws.com/sourceLaunchTemplateVersion"
)

// nodeName names node k, as the pods' spec.nodeName does.
func nodeName(k int) string { return fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", k/250, k%250+4) }

// nodeObjects returns the cluster's Nodes and, per node pool, a Karpenter EC2NodeClass: pool p
// holds the nodes k with k % NodePools == p. The pools' metadata options cycle through
// Karpenter's defaults, IMDSv1 with hop limit 2, and tokens required with hop limit 2; every
// other pool runs the imdsguard agent, which publishes its state (synced at the generator's
// fixed time) and, in every fourth pool, a measurement of the instance.
func (g *generator) nodeObjects() []any {
	if g.cfg.Nodes == 0 {
		return nil
	}
	if g.cfg.NodeGroupModules > 0 {
		return g.nodeGroupNodes()
	}
	pools := max(1, g.cfg.NodePools)
	var out []any
	for p := range pools {
		var opts map[string]any
		switch p % 3 {
		case 1:
			opts = map[string]any{"httpTokens": "optional", "httpPutResponseHopLimit": 2}
		case 2:
			opts = map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": 2}
		}
		spec := map[string]any{"role": "KarpenterNodeRole", "amiSelectorTerms": []any{map[string]any{"alias": "al2023@latest"}}}
		if opts != nil {
			spec["metadataOptions"] = opts
		}
		out = append(out, map[string]any{"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
			"metadata": map[string]any{"name": fmt.Sprintf("pool-%d", p)}, "spec": spec})
	}
	for k := range g.cfg.Nodes {
		p := k % pools
		name := nodeName(k)
		meta := metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
			ec2NodeClassLabel: fmt.Sprintf("pool-%d", p), "karpenter.sh/nodepool": fmt.Sprintf("pool-%d", p),
			"topology.kubernetes.io/zone": "us-east-1a",
		}}
		if p%2 == 1 {
			meta.Annotations = agentState(name, p%4 == 1)
		}
		out = append(out, node(k, meta))
	}
	return out
}

// nodeGroupNodes returns the cluster's Nodes as nodes of the EKS managed node groups of the
// Terraform repository of NodeGroupModules modules: node k joins group k % n of
// TerraformNodeGroups, with the labels EKS puts on the nodes of a group with a custom launch
// template (the template's ID and version are made up: the join is by the group's name). The
// nodes of every other group run the imdsguard agent, as in nodeObjects.
func (g *generator) nodeGroupNodes() []any {
	groups := TerraformNodeGroups(g.cfg.NodeGroupModules)
	out := make([]any, 0, g.cfg.Nodes)
	for k := range g.cfg.Nodes {
		p := k % len(groups)
		name := nodeName(k)
		meta := metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
			eksNodeGroupLabel: groups[p], "eks.amazonaws.com/capacityType": "ON_DEMAND",
			eksLaunchTemplateLabel: fmt.Sprintf("lt-%017x", p), eksLaunchTemplateVersionLabel: "1",
			"topology.kubernetes.io/zone": "us-east-1a",
		}}
		if p%2 == 1 {
			meta.Annotations = agentState(name, p%4 == 1)
		}
		out = append(out, node(k, meta))
	}
	return out
}

// node returns node k with the given metadata.
func node(k int, meta metav1.ObjectMeta) *corev1.Node {
	return &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: meta,
		Spec:   corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///us-east-1a/i-%017x", k)},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OSImage: "Amazon Linux 2023.6.20241010"}}}
}

// agentState returns the annotations of a node whose imdsguard agent publishes its state
// (synced at the generator's fixed time), with a measurement of the instance when measured.
func agentState(name string, measured bool) map[string]string {
	synced := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).Format(time.RFC3339)
	st := map[string]any{"version": 1, "node": name, "mode": "enforce", "dropped": []string{"169.254.169.254:80/TCP", "[fd00:ec2::254]:80/TCP"},
		"hostNetworkCovered": true, "generation": 3, "synced": synced}
	if measured {
		st["instance"] = map[string]any{"measured": synced, "v1Status": 401, "hopLimit": 1}
	}
	v, err := json.Marshal(st)
	if err != nil {
		return nil
	}
	return map[string]string{agentStateAnnotation: string(v)}
}
