package firewall

import (
	"fmt"
	"strings"

	"sigs.k8s.io/knftables"
)

// NFTScript renders cfg as a complete `nft -f` script that atomically replaces table inet
// imdsguard, whether or not it exists: the same text the agent applies, for loading at boot
// before kubelet starts. Its cgroup paths are resolved when nft loads it, so the pods cgroup
// must exist then (leave Config.PodsCgroup empty otherwise).
func NFTScript(cfg Config) (string, error) {
	r, err := Build(cfg)
	if err != nil {
		return "", err
	}
	return r.Script(), nil
}

// Script renders the replacement transaction as `nft -f` input.
func (r *Ruleset) Script() string {
	tx := knftables.NewFake(knftables.InetFamily, TableName).NewTransaction()
	r.Replace(tx)
	var b strings.Builder
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n# imdsguard node firewall (mode %s): replaces table inet %s in one transaction.\n", r.Mode, TableName)
	b.WriteString(tx.String())
	return b.String()
}
