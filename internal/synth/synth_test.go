package synth_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/synth"
)

func generate(t *testing.T, cfg synth.Config) ([]byte, synth.Stats) {
	t.Helper()
	var buf bytes.Buffer
	stats, err := synth.Generate(&buf, cfg)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", cfg, err)
	}
	return buf.Bytes(), stats
}

func TestGenerateCounts(t *testing.T) {
	cfg := synth.Config{Pods: 3000, Namespaces: 150, NetworkPolicies: 600, AdminNetworkPolicies: 20, Seed: 7}
	data, stats := generate(t, cfg)

	if stats.Pods != cfg.Pods || stats.Namespaces != cfg.Namespaces || stats.NetworkPolicies != cfg.NetworkPolicies || stats.AdminNetworkPolicies != cfg.AdminNetworkPolicies {
		t.Errorf("stats = %+v, want the configured %+v", stats, cfg)
	}
	if stats.Bytes != int64(len(data)) {
		t.Errorf("stats.Bytes = %d, wrote %d bytes", stats.Bytes, len(data))
	}
	if stats.HostNetworkPods < cfg.Pods/200 || stats.HostNetworkPods > cfg.Pods/50 {
		t.Errorf("%d hostNetwork pods of %d, want about 1%%", stats.HostNetworkPods, cfg.Pods)
	}

	// One List document whose items are what the stats say.
	var list struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Items      []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("output is not one JSON document: %v", err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Errorf("document is %s %s, want v1 List", list.APIVersion, list.Kind)
	}
	kinds := map[string]int{}
	for _, it := range list.Items {
		kinds[it.APIVersion+" "+it.Kind]++
	}
	want := map[string]int{
		"v1 Namespace":                       stats.Namespaces,
		"v1 ServiceAccount":                  stats.ServiceAccounts,
		"v1 Pod":                             stats.Pods,
		"apps/v1 Deployment":                 stats.Deployments,
		"networking.k8s.io/v1 NetworkPolicy": stats.NetworkPolicies,
		"policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy": stats.AdminNetworkPolicies,
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d items of %s, want %d", kinds[k], k, n)
		}
	}
	if len(list.Items) != stats.Items || len(kinds) != len(want) {
		t.Errorf("%d items of kinds %v, want %d items of kinds %v", len(list.Items), kinds, stats.Items, want)
	}

	// Pods are about the size of real ones (compact JSON).
	perPod := float64(len(data)) / float64(stats.Pods)
	if perPod < 1000 || perPod > 3000 {
		t.Errorf("%.0f bytes of output per pod, want roughly 1-2 KB", perPod)
	}

	// The loader reads everything, resolves every owned pod to its Deployment, and the policies
	// are all valid with distinct priorities.
	inv, err := inventory.Load([]string{"-"}, inventory.Options{Stdin: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(inv.Problems) > 0 || len(inv.Skipped) > 0 || len(inv.Warnings) > 0 {
		t.Errorf("load: %d problems (first %v), %d skipped, %d warnings (first %q)", len(inv.Problems), first(inv.Problems), len(inv.Skipped), len(inv.Warnings), first(inv.Warnings))
	}
	if len(inv.Pods) != stats.Pods || len(inv.Workloads) != stats.Deployments || len(inv.Namespaces) != stats.Namespaces ||
		len(inv.NetworkPolicies) != stats.NetworkPolicies || len(inv.AdminNetworkPolicies) != stats.AdminNetworkPolicies ||
		len(inv.ServiceAccounts) != stats.ServiceAccounts {
		t.Errorf("loaded %d pods, %d workloads, %d namespaces, %d netpols, %d anps, %d service accounts; generated %+v",
			len(inv.Pods), len(inv.Workloads), len(inv.Namespaces), len(inv.NetworkPolicies), len(inv.AdminNetworkPolicies), len(inv.ServiceAccounts), stats)
	}
	bare := 0
	for _, p := range inv.Pods {
		switch p.Workload.Kind {
		case "Deployment":
			if !strings.HasPrefix(p.Pod.Name, p.Workload.Name+"-") {
				t.Errorf("pod %s/%s resolved to Deployment %s", p.Pod.Namespace, p.Pod.Name, p.Workload.Name)
			}
		case "Pod":
			bare++
		default:
			t.Errorf("pod %s/%s resolved to %s %s, want a Deployment or itself", p.Pod.Namespace, p.Pod.Name, p.Workload.Kind, p.Workload.Name)
		}
	}
	if bare != stats.BarePods {
		t.Errorf("%d bare pods loaded, %d generated", bare, stats.BarePods)
	}
	model := policy.Compile(inv)
	if len(model.Rejected) > 0 || len(model.PriorityTies) > 0 {
		t.Errorf("%d policies rejected (first %v), %d priority ties", len(model.Rejected), first(model.Rejected), len(model.PriorityTies))
	}
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := synth.Scaled(1500)
	a, _ := generate(t, cfg)
	b, _ := generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs with the same configuration wrote different bytes")
	}
	cfg.Seed++
	c, _ := generate(t, cfg)
	if bytes.Equal(a, c) {
		t.Error("a different seed wrote the same bytes")
	}
}

func TestGenerateIndent(t *testing.T) {
	cfg := synth.Scaled(200)
	compact, _ := generate(t, cfg)
	cfg.Indent = true
	indented, stats := generate(t, cfg)
	if !strings.HasPrefix(string(indented), "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n") {
		t.Errorf("indented output starts %q, want kubectl's layout", indented[:min(60, len(indented))])
	}
	var a, b any
	if err := json.Unmarshal(compact, &a); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := json.Unmarshal(indented, &b); err != nil {
		t.Fatalf("indented: %v", err)
	}
	ca, _ := json.Marshal(a)
	cb, _ := json.Marshal(b)
	if !bytes.Equal(ca, cb) {
		t.Error("indented and compact output hold different objects")
	}
	if stats.Bytes != int64(len(indented)) {
		t.Errorf("stats.Bytes = %d, wrote %d", stats.Bytes, len(indented))
	}
}

func TestScaled(t *testing.T) {
	if got, want := synth.Scaled(synth.DefaultPods), synth.DefaultConfig(); got != want {
		t.Errorf("Scaled(%d) = %+v, want the default %+v", synth.DefaultPods, got, want)
	}
	got := synth.Scaled(1000)
	want := synth.Config{Pods: 1000, Namespaces: 50, NetworkPolicies: 200, AdminNetworkPolicies: 1, Seed: synth.DefaultSeed}
	if got != want {
		t.Errorf("Scaled(1000) = %+v, want %+v", got, want)
	}
	if got := synth.Scaled(0); got.Validate() != nil {
		t.Errorf("Scaled(0) = %+v is invalid: %v", got, got.Validate())
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []synth.Config{
		{Pods: -1, Namespaces: 1},
		{Pods: 10, Namespaces: 0},
		{Pods: 10, Namespaces: 1, NetworkPolicies: -1},
		{Pods: 10, Namespaces: 1, AdminNetworkPolicies: 1002},
	} {
		if _, err := synth.Generate(&bytes.Buffer{}, cfg); err == nil {
			t.Errorf("Generate(%+v) succeeded, want an error", cfg)
		}
	}
}

func first[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}

// TestGenerateCalicoAndCilium: the Calico and Cilium policies load without a problem, compile
// without a rejection, are as many as asked, and leave the rest of the cluster as it is without
// them (they draw from their own random source).
func TestGenerateCalicoAndCilium(t *testing.T) {
	base := synth.Config{Pods: 2000, Namespaces: 100, NetworkPolicies: 400, AdminNetworkPolicies: 10, Seed: 3}
	plain, _ := generate(t, base)
	for _, engine := range []string{"calico", "cilium"} {
		t.Run(engine, func(t *testing.T) {
			cfg := base
			if engine == "calico" {
				cfg.CalicoPolicies = 300
			} else {
				cfg.CiliumPolicies = 300
			}
			data, stats := generate(t, cfg)
			inv, err := inventory.Load([]string{"-"}, inventory.Options{Stdin: bytes.NewReader(data)})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(inv.Problems) > 0 || len(inv.Skipped) > 0 || len(inv.Warnings) > 0 {
				t.Fatalf("load: %d problems (first %v), %d skipped, %d warnings (first %q)", len(inv.Problems), first(inv.Problems), len(inv.Skipped), len(inv.Warnings), first(inv.Warnings))
			}
			got, want := len(inv.CiliumNetworkPolicies)+len(inv.CiliumClusterwideNetworkPolicies), stats.CiliumPolicies
			if engine == "calico" {
				got, want = len(inv.CalicoGlobalNetworkPolicies)+len(inv.CalicoNetworkPolicies), stats.CalicoPolicies
				if len(inv.CalicoTiers) != 1 || len(inv.CalicoGlobalNetworkPolicies) == 0 {
					t.Errorf("%d tiers and %d GlobalNetworkPolicies, want one tier and some", len(inv.CalicoTiers), len(inv.CalicoGlobalNetworkPolicies))
				}
			} else if len(inv.CiliumClusterwideNetworkPolicies) == 0 {
				t.Error("no CiliumClusterwideNetworkPolicy")
			}
			if got != 300 || want != 300 {
				t.Errorf("loaded %d %s policies, stats say %d, want 300", got, engine, want)
			}
			if m := policy.Compile(inv); len(m.Rejected) > 0 {
				t.Errorf("%d policies rejected, first: %v", len(m.Rejected), first(m.Rejected))
			}
			plainInv, err := inventory.Load([]string{"-"}, inventory.Options{Stdin: bytes.NewReader(plain)})
			if err != nil {
				t.Fatal(err)
			}
			if len(plainInv.Pods) != len(inv.Pods) {
				t.Fatalf("%d pods with %s policies, %d without", len(inv.Pods), engine, len(plainInv.Pods))
			}
			for i, p := range inv.Pods {
				q := plainInv.Pods[i].Pod
				if p.Pod.Namespace != q.Namespace || p.Pod.Name != q.Name || !maps.Equal(p.Pod.Labels, q.Labels) {
					t.Fatalf("pod %d is %s/%s %v with %s policies, %s/%s %v without", i, p.Pod.Namespace, p.Pod.Name, p.Pod.Labels, engine, q.Namespace, q.Name, q.Labels)
				}
			}
		})
	}
}
