package audit

import (
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// objectKey names an object of the inventory: its kind as findings name it, namespace and name.
type objectKey struct {
	kind, namespace, name string
}

// locate gives every object of the findings that lacks a position the position its object was
// read at (file, document, line), when the object is in the inventory: SARIF consumers such as
// GitHub code scanning show a result only where it has a physical location. Findings name
// objects by kind, namespace and name; the inventory is scanned once, for those names only.
func locate(findings []Finding, inv *inventory.Inventory) {
	wanted := map[objectKey]inventory.Source{}
	for i := range findings {
		for _, o := range findings[i].Objects {
			if o.Source == (inventory.Source{}) {
				wanted[objectKey{o.Kind, o.Namespace, o.Name}] = inventory.Source{}
			}
		}
	}
	if len(wanted) == 0 {
		return
	}
	found := func(kind, namespace, name string, src inventory.Source) {
		k := objectKey{kind, namespace, name}
		if old, ok := wanted[k]; ok && old == (inventory.Source{}) {
			wanted[k] = src
		}
	}
	for name, ns := range inv.Namespaces {
		if !ns.Synthesized {
			found("Namespace", "", name, ns.Source)
		}
	}
	for _, w := range inv.Workloads {
		found(w.Kind, w.Namespace, w.Name, w.Source)
	}
	for _, p := range inv.Pods {
		found("Pod", p.Pod.Namespace, p.Pod.Name, p.Source)
	}
	for _, n := range inv.Nodes {
		found("Node", "", n.Name, n.Source)
	}
	for _, p := range inv.NetworkPolicies {
		found(string(policy.KindNetworkPolicy), p.Policy.Namespace, p.Policy.Name, p.Source)
	}
	for _, p := range inv.AdminNetworkPolicies {
		found(string(policy.KindAdminNetworkPolicy), "", p.Policy.Name, p.Source)
	}
	for _, p := range inv.BaselineAdminNetworkPolicies {
		found(string(policy.KindBaselineAdminNetworkPolicy), "", p.Policy.Name, p.Source)
	}
	for _, p := range inv.ClusterNetworkPolicies {
		found(string(policy.KindClusterNetworkPolicy), "", p.Policy.Name, p.Source)
	}
	for _, p := range inv.AWSClusterNetworkPolicies {
		found(string(policy.KindAWSClusterNetworkPolicy), "", p.Policy.Name, p.Source)
	}
	for _, p := range inv.CalicoGlobalNetworkPolicies {
		found("GlobalNetworkPolicy", "", p.Policy.Name, p.Source)
	}
	for _, p := range inv.CalicoNetworkPolicies {
		found(inventory.CalicoNetworkPolicyKind, p.Policy.Namespace, p.Policy.Name, p.Source)
	}
	for _, t := range inv.CalicoTiers {
		found("Tier", "", t.Tier.Name, t.Source)
	}
	for _, p := range inv.CiliumNetworkPolicies {
		found("CiliumNetworkPolicy", p.Policy.Namespace, p.Policy.Name, p.Source)
	}
	for _, p := range inv.CiliumClusterwideNetworkPolicies {
		found("CiliumClusterwideNetworkPolicy", "", p.Policy.Name, p.Source)
	}
	for i := range findings {
		for j := range findings[i].Objects {
			o := &findings[i].Objects[j]
			if o.Source == (inventory.Source{}) {
				o.Source = wanted[objectKey{o.Kind, o.Namespace, o.Name}]
			}
		}
	}
}
