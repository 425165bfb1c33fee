// Package generate builds the fixes imdsguard proposes, one layer at a time: a per-namespace
// NetworkPolicy, a cluster-wide AdminNetworkPolicy, a Calico tier and GlobalNetworkPolicy, a
// Cilium clusterwide deny, ValidatingAdmissionPolicies against hostNetwork pods, node firewall
// scripts and EC2 instance metadata options.
//
// Every function here is pure: an inventory, endpoints and options in, Kubernetes objects and
// file contents out. Nothing talks to a cluster, reads a clock or writes a file; the command line
// does that.
//
// The rule the package is built around: a generated fix never widens anyone's egress.
// NetworkPolicies only add allowances, so the NetworkPolicy layer refuses every namespace where
// a pod is, or could become, egress-isolated, and names the deny-capable layers to use there
// instead. What the evaluator understands (NetworkPolicy, AdminNetworkPolicy) is checked with it
// before it is returned: Verify adds the generated policies to the inventory and requires every
// protected pod to be denied every credential endpoint, and no verdict for any other destination
// to change.
package generate
