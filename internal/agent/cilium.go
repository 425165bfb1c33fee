package agent

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
)

// CiliumRouting says how Cilium, when it runs on the node, forwards pod traffic, which decides
// whether the forward rules see it.
type CiliumRouting string

// The Cilium host routing modes the agent tells apart.
const (
	// NoCilium: no Cilium datapath on this node (no cilium_host interface).
	NoCilium CiliumRouting = ""
	// CiliumBPFHostRouting: eBPF host routing hands pod packets from the pod's interface
	// straight to the egress device; netfilter's forward hook never sees them.
	CiliumBPFHostRouting CiliumRouting = "bpf"
	// CiliumLegacyRouting: pod packets go through the host's stack, forward hook included.
	CiliumLegacyRouting CiliumRouting = "legacy"
	// CiliumUnknownRouting: Cilium is there, but its datapath configuration is not readable
	// here; it must be assumed to bypass the forward rules.
	CiliumUnknownRouting CiliumRouting = "unknown"
)

// DefaultCiliumStateDir is where the Cilium agent keeps its datapath state on the host.
const DefaultCiliumStateDir = "/var/run/cilium/state"

// DetectCilium looks for Cilium's datapath in this network namespace (the cilium_host
// interface) and reads how it routes pod traffic from the node configuration header Cilium
// renders for its BPF programs (<stateDir>/globals/node_config.h): ENABLE_HOST_ROUTING is
// defined exactly when eBPF host routing is on (it is off with bpf.hostLegacyRouting=true, and
// Cilium falls back to legacy routing by itself where the kernel or the configuration does not
// allow it).
func DetectCilium(stateDir string) CiliumRouting {
	if _, err := net.InterfaceByName("cilium_host"); err != nil {
		return NoCilium
	}
	data, err := os.ReadFile(filepath.Join(stateDir, "globals", "node_config.h"))
	if err != nil {
		return CiliumUnknownRouting
	}
	return ciliumRouting(data)
}

var hostRoutingDefine = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*define[ \t]+ENABLE_HOST_ROUTING([ \t]|$)`)

// ciliumRouting reads the host routing mode from a node_config.h.
func ciliumRouting(nodeConfig []byte) CiliumRouting {
	if hostRoutingDefine.Match(nodeConfig) {
		return CiliumBPFHostRouting
	}
	return CiliumLegacyRouting
}
