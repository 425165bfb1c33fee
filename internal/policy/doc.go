// Package policy is the egress evaluator: for a pod (or a workload's pod template) and a
// destination outside the cluster, it decides whether the cluster's policies allow the traffic,
// and names the reason that decided it.
//
// Policies are compiled once into a Model (validating them as the API server would) and then
// consulted as an ordered list of tiers:
//
//	AdminNetworkPolicy  by priority, lower first; Allow and Deny are final, Pass goes on
//	ClusterNetworkPolicy tier Admin: the same, Accept for Allow (cnp.go; the AWS VPC CNI's
//	                    networking.k8s.aws kind joins the same tiers, awscnp.go)
//	NetworkPolicy       a pod selected by any egress policy is isolated; rules are a union
//	ClusterNetworkPolicy tier Baseline
//	BaselineAdminNetworkPolicy
//	default             allow
//
// Each tier binds to a subject once (which of its policies select the pod) and is then asked
// about each endpoint. A tier either decides (allow or deny, with a Reason) or passes to the
// next. Further tiers (Calico, Cilium) join the list without changing the others.
//
// Destinations are always outside the cluster, so peers that select pods, namespaces or nodes
// never match, and named ports never match: only CIDR peers (and FQDN peers, for the endpoint's
// hostnames) can. Address families are independent: 0.0.0.0/0 says nothing of IPv6.
package policy
