package generate

import (
	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cluster is the inventory Generate works from, compiled once.
type cluster struct {
	inv *inventory.Inventory
	// own is inv without the policies an earlier run of generate wrote.
	own      *inventory.Inventory
	subjects []audit.Subject
	// policySubjects[i] is subjects[i] as the evaluator sees it.
	policySubjects []policy.Subject
	// subjectsIn and networkPoliciesIn index subjects and NetworkPolicies by namespace.
	subjectsIn        map[string][]int
	networkPoliciesIn map[string][]*inventory.NetworkPolicy
}

func newCluster(inv *inventory.Inventory) *cluster {
	c := &cluster{inv: inv, own: withoutGenerated(inv), subjects: audit.Subjects(inv),
		subjectsIn: map[string][]int{}, networkPoliciesIn: map[string][]*inventory.NetworkPolicy{}}
	c.policySubjects = make([]policy.Subject, len(c.subjects))
	for i := range c.subjects {
		c.policySubjects[i] = c.subjects[i].PolicySubject()
		c.subjectsIn[c.subjects[i].Namespace] = append(c.subjectsIn[c.subjects[i].Namespace], i)
	}
	for _, np := range inv.NetworkPolicies {
		c.networkPoliciesIn[np.Policy.Namespace] = append(c.networkPoliciesIn[np.Policy.Namespace], np)
	}
	return c
}

// reportable reports whether subject i is named in notes: templates and bare pods, not the
// pods of a workload whose template is already named.
func (c *cluster) reportable(i int) bool {
	return c.subjects[i].IsTemplate() || c.subjects[i].Workload.Kind == "Pod"
}

// isGenerated reports whether a policy's metadata is that of one generate wrote before:
// applying the new one replaces it.
func isGenerated(meta *metav1.ObjectMeta) bool {
	return meta.Name == PolicyName && meta.Labels[ManagedByLabel] == ManagedBy
}

// withoutGenerated returns the inventory without the NetworkPolicies and AdminNetworkPolicy an
// earlier run of generate wrote: the cluster's own policies, which the generated ones are
// checked against. An earlier imdsguard policy is replaced, so it is neither a reason to refuse
// nor a baseline to compare with.
func withoutGenerated(inv *inventory.Inventory) *inventory.Inventory {
	out := *inv
	out.NetworkPolicies = nil
	for _, np := range inv.NetworkPolicies {
		if !isGenerated(&np.Policy.ObjectMeta) {
			out.NetworkPolicies = append(out.NetworkPolicies, np)
		}
	}
	out.AdminNetworkPolicies = nil
	for _, anp := range inv.AdminNetworkPolicies {
		if !isGenerated(&anp.Policy.ObjectMeta) {
			out.AdminNetworkPolicies = append(out.AdminNetworkPolicies, anp)
		}
	}
	out.ClusterNetworkPolicies = nil
	for _, cnp := range inv.ClusterNetworkPolicies {
		if !isGenerated(&cnp.Policy.ObjectMeta) {
			out.ClusterNetworkPolicies = append(out.ClusterNetworkPolicies, cnp)
		}
	}
	return &out
}
