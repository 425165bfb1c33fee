// Package engine identifies a cluster's network policy engines and says which policy kinds they
// enforce. It is pure: an inventory in, a Detection out.
//
// Detect reads what the inventory already holds: the engines' DaemonSets and Deployments (name,
// namespace, containers, image tag as the version, arguments and environment) and their
// configuration objects (the ConfigMaps kube-system/amazon-vpc-cni, kube-system/cilium-config
// and kube-system/antrea-config, the Tigera operator's Installation, EKS Auto Mode NodeClasses).
// Parse builds the same answer from a name and version given by the user
// (--policy-engine calico@3.32.1).
//
// Which engine enforces which kind, from which version and behind which switch is one table
// (table.go), each row with its source; docs/engines.md shows it and a test keeps the two equal.
// A kind the table does not confirm for an engine counts as not enforced: unknown is not safe.
//
// Several engines can run side by side (the AWS VPC CNI for networking and Calico for policy).
// They are merged into one policy.Enforcement by these rules:
//
//   - A kind is enforced when any engine whose policy enforcement is on enforces it; the reason
//     names every engine that does. Otherwise the reason names why each detected engine does not.
//   - Each engine has its semantics: calico for Calico and Canal, cilium for Cilium and GKE
//     Dataplane V2, kubernetes for the rest. The merged semantics are those of the enabled engine
//     with the most specific ones: calico (whose tiers hold every other kind), else cilium, else
//     kubernetes.
//   - Engine names every enabled engine ("AWS VPC CNI v1.19.0 + Calico v3.31.2"); when engines
//     are present but none has enforcement on, it names them with "(policy enforcement off)" and
//     no kind is enforced.
//   - Only when nothing in the input identifies any engine is the enforcement Assumed.
package engine
