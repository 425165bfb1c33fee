// Package sandbox builds a Kubernetes node out of network namespaces, for tests that prove the
// node firewall with real packets: a "cloud" namespace with an instance metadata emulator of our
// own (AWS IMDSv1/v2, GCP, Azure, WireServer with DNS, the EKS Pod Identity agent) on the real
// metadata addresses, a "node" namespace that forwards for pods, pods wired like the AWS VPC
// CNI (eni* veths, /32 routes, proxy ARP), like its branch ENIs for pods with security groups
// (vlan* veths, traffic routed by source out of vlan.eth.N) or like a bridge CNI (cni0), and
// hostNetwork pods as processes in a kubepods cgroup v2 hierarchy.
//
// nft resolves `socket cgroupv2` paths below /sys/fs/cgroup when it loads a rule, so node
// commands run in a private mount namespace with cgroup2 mounted there (NodeCommand), entered
// with nsenter: `ip netns exec` would remount /sys.
//
// Every name carries a random sandbox ID, and t.Cleanup removes namespaces and cgroups, so tests
// run repeatedly and in parallel packages. Tests need root; they skip with a message otherwise.
package sandbox
