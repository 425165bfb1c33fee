package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/imdsguard/imdsguard/internal/agent"
	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	chartDir     = "helm/imdsguard"
	releaseName  = "imdsguard"
	releaseNS    = "imdsguard-chart" // not deploy/controller's, applied by another test
	customValues = `
image: {repository: registry.example/security/imdsguard, tag: v1.2.3, pullPolicy: Always}
imagePullSecrets: [{name: registry}]
clouds: [gcp, azure]
controller:
  mode: networkpolicy
  policyEngine: calico@3.32.1
  exemptNamespaces: [kube-system, monitoring]
  exemptLabel: team.example/metadata=allowed
  podExemptionLabel: ""
  replicas: 3
  extraArgs: [--max-concurrent-reconciles=16]
agent:
  mode: enforce
  exempt: [{namespace: monitoring, serviceAccount: node-exporter}]
  allowHostNetwork: []
  startupTaint: ""
  port: 9900
`
	controllerOnly = `agent: {enabled: false}`
	agentOnly      = `controller: {enabled: false}`

	agentWithoutNodeRestriction = `agent: {nodeRestriction: false}`
)

func readValues(t *testing.T, y string) chartutil.Values {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// render renders the chart as helm install would, and decodes every object.
func render(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, readValues(t, values),
		chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNS, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		objs, err := kubetest.Decode([]byte(files[name]))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, files[name])
		}
		out = append(out, objs...)
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

// container returns a workload's first container.
func container(t *testing.T, o *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatalf("%s %s has no containers", o.GetKind(), o.GetName())
	}
	return cs[0].(map[string]any)
}

// parseArgs parses a container's arguments with imdsguard's own command line, as the
// container would: an unknown flag or a bad value fails here rather than in a crash loop.
func parseArgs(t *testing.T, args []any) *cobra.Command {
	t.Helper()
	var strs []string
	for _, a := range args {
		strs = append(strs, a.(string))
	}
	var discard bytes.Buffer
	root := cli.NewCommand(cli.Streams{In: strings.NewReader(""), Out: &discard, Err: &discard})
	cmd, rest, err := root.Find(strs)
	if err != nil {
		t.Fatalf("args %v: %v", strs, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("args %v: %v", strs, err)
	}
	return cmd
}

func flag(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("no flag --%s", name)
	}
	return f.Value.String()
}

// agentConfig loads the rendered agent.yaml with the agent's own strict loader.
func agentConfig(t *testing.T, cm *unstructured.Unstructured) *agent.FileConfig {
	t.Helper()
	data, _, _ := unstructured.NestedString(cm.Object, "data", "agent.yaml")
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := agent.LoadFileConfig(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return c
}

func rulesOf(t *testing.T, o *unstructured.Unstructured) []any {
	t.Helper()
	if o == nil {
		t.Fatal("missing")
	}
	r, _, _ := unstructured.NestedSlice(o.Object, "rules")
	return r
}

func TestChartLintsClean(t *testing.T) {
	for _, values := range []string{"", customValues, controllerOnly, agentOnly} {
		result := lint.All(chartDir, readValues(t, values), releaseNS, false)
		for _, m := range result.Messages {
			// Info is advice too (icon, ...): the chart takes it.
			if m.Severity >= support.InfoSev {
				t.Errorf("values %q: %s", strings.TrimSpace(values), m)
			}
		}
	}
}

func TestChartRendersAndTheAPIServerAdmitsIt(t *testing.T) {
	cp := controlPlane.Get(t)
	a, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kubetest.Decode([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: " + releaseNS + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(testContext(t), ns, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		values string
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"the defaults install the controller in auto mode and the agent in observe mode, with the RBAC of deploy/", "", func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "imdsguard-controller")
			c := container(t, d)
			if c["image"] != "imdsguard:latest" {
				t.Errorf("image %v", c["image"])
			}
			cmd := parseArgs(t, c["args"].([]any))
			for name, want := range map[string]string{
				"mode": "auto", "cloud": "[aws]", "exempt-namespace": "[kube-system]",
				"exempt-namespace-label": "imdsguard.io/metadata-access=allow", "exempt-pod-label": "imdsguard.io/metadata-access", "log-format": "json",
			} {
				if got := flag(t, cmd, name); got != want {
					t.Errorf("--%s=%s, want %s", name, got, want)
				}
			}
			sc := c["securityContext"].(map[string]any)
			pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec", "securityContext")
			if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || pod["runAsNonRoot"] != true {
				t.Errorf("controller security context %v, pod %v", sc, pod)
			}
			if c["readinessProbe"] == nil || c["livenessProbe"] == nil || c["resources"] == nil {
				t.Errorf("controller container lacks probes or resources: %v", c)
			}

			shipped, err := kubetest.DecodeFiles("controller/rbac.yaml", "agent/rbac.yaml", "agent/configmap.yaml")
			if err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{"ClusterRole", "Role"} {
				if diff := cmp.Diff(rulesOf(t, find(shipped, kind, "imdsguard-controller")), rulesOf(t, find(objs, kind, "imdsguard-controller"))); diff != "" {
					t.Errorf("controller %s differs from deploy/controller/rbac.yaml (-deploy +chart):\n%s", kind, diff)
				}
			}
			if diff := cmp.Diff(rulesOf(t, find(shipped, "ClusterRole", "imdsguard-agent")), rulesOf(t, find(objs, "ClusterRole", "imdsguard-agent"))); diff != "" {
				t.Errorf("agent ClusterRole differs from deploy/agent/rbac.yaml (-deploy +chart):\n%s", diff)
			}
			want := agentConfig(t, find(shipped, "ConfigMap", "imdsguard-agent"))
			if diff := cmp.Diff(want, agentConfig(t, find(objs, "ConfigMap", "imdsguard-agent"))); diff != "" {
				t.Errorf("agent configuration differs from deploy/agent/configmap.yaml (-deploy +chart):\n%s", diff)
			}
			ds := find(objs, "DaemonSet", "imdsguard-agent")
			ac := container(t, ds)
			parseArgs(t, ac["args"].([]any))

			// The node restriction policy, on by default, is deploy/agent's with the release's
			// service account.
			policies, err := kubetest.DecodeFiles("agent/node-restriction.yaml")
			if err != nil {
				t.Fatal(err)
			}
			shippedPolicy, chartPolicy := find(policies, "ValidatingAdmissionPolicy", "imdsguard-agent-own-node"), find(objs, "ValidatingAdmissionPolicy", "imdsguard-agent-own-node")
			if chartPolicy == nil || find(objs, "ValidatingAdmissionPolicyBinding", "imdsguard-agent-own-node") == nil {
				t.Fatalf("no node restriction policy and binding by default: %v", kinds(objs))
			}
			for _, field := range [][]string{{"spec", "variables"}, {"spec", "matchConstraints"}} {
				want, _, _ := unstructured.NestedFieldNoCopy(shippedPolicy.Object, field...)
				got, _, _ := unstructured.NestedFieldNoCopy(chartPolicy.Object, field...)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("node restriction policy %v differs from deploy/agent/node-restriction.yaml (-deploy +chart):\n%s", field, diff)
				}
			}
			// The state-owner policy: deploy/agent's, with the release's service account.
			shippedOwner, chartOwner := find(policies, "ValidatingAdmissionPolicy", "imdsguard-agent-state-owner"), find(objs, "ValidatingAdmissionPolicy", "imdsguard-agent-state-owner")
			if chartOwner == nil || find(objs, "ValidatingAdmissionPolicyBinding", "imdsguard-agent-state-owner") == nil {
				t.Fatalf("no state-owner policy and binding by default: %v", kinds(objs))
			}
			for _, field := range [][]string{{"spec", "validations"}, {"spec", "matchConstraints"}} {
				want, _, _ := unstructured.NestedFieldNoCopy(shippedOwner.Object, field...)
				got, _, _ := unstructured.NestedFieldNoCopy(chartOwner.Object, field...)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("state-owner policy %v differs from deploy/agent/node-restriction.yaml (-deploy +chart):\n%s", field, diff)
				}
			}
			ownerConditions, _, _ := unstructured.NestedSlice(chartOwner.Object, "spec", "matchConditions")
			shippedConditions, _, _ := unstructured.NestedSlice(shippedOwner.Object, "spec", "matchConditions")
			if len(ownerConditions) != 2 || !strings.Contains(fmt.Sprint(ownerConditions[0]), "system:serviceaccount:"+releaseNS+":imdsguard-agent'") ||
				fmt.Sprint(ownerConditions[1]) != fmt.Sprint(shippedConditions[1]) {
				t.Errorf("state-owner match conditions %v: want the release's service account and deploy/agent's state condition", ownerConditions)
			}
			conditions, _, _ := unstructured.NestedSlice(chartPolicy.Object, "spec", "matchConditions")
			if want := "system:serviceaccount:" + releaseNS + ":imdsguard-agent'"; len(conditions) != 1 || !strings.Contains(fmt.Sprint(conditions[0]), want) {
				t.Errorf("match conditions %v do not name the release's service account %s", conditions, want)
			}
			if env := fmt.Sprint(ac["env"]); !strings.Contains(env, "metadata.uid") {
				t.Errorf("the agent is not told its pod UID (POD_UID from metadata.uid): %s", env)
			}
			if hostNet, _, _ := unstructured.NestedBool(ds.Object, "spec", "template", "spec", "hostNetwork"); !hostNet {
				t.Error("the agent is not on the host network")
			}
		}},
		{"values set the mode, clouds, exemptions, agent mode and images", customValues, func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "imdsguard-controller")
			c := container(t, d)
			if c["image"] != "registry.example/security/imdsguard:v1.2.3" || c["imagePullPolicy"] != "Always" {
				t.Errorf("image %v %v", c["image"], c["imagePullPolicy"])
			}
			if n, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); fmt.Sprint(n) != "3" {
				t.Errorf("replicas %v", n)
			}
			cmd := parseArgs(t, c["args"].([]any))
			for name, want := range map[string]string{
				"mode": "networkpolicy", "policy-engine": "calico@3.32.1", "cloud": "[gcp,azure]", "exempt-namespace": "[kube-system,monitoring]",
				"exempt-namespace-label": "team.example/metadata=allowed", "exempt-pod-label": "", "max-concurrent-reconciles": "16",
			} {
				if got := flag(t, cmd, name); got != want {
					t.Errorf("--%s=%s, want %s", name, got, want)
				}
			}
			cfg := agentConfig(t, find(objs, "ConfigMap", "imdsguard-agent"))
			want := &agent.FileConfig{
				Mode: "enforce", Clouds: []string{"gcp", "azure"},
				Exempt:         []agent.PodSelector{{Namespace: "monitoring", ServiceAccount: "node-exporter"}},
				ResyncInterval: "30s", Listen: ":9900",
			}
			if diff := cmp.Diff(want, cfg, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("agent configuration (-want +got):\n%s", diff)
			}
			ac := container(t, find(objs, "DaemonSet", "imdsguard-agent"))
			if ac["image"] != "registry.example/security/imdsguard:v1.2.3" {
				t.Errorf("agent image %v", ac["image"])
			}
		}},
		{"the node restriction policy can be left out", agentWithoutNodeRestriction, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, o := range objs {
				if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
					t.Errorf("rendered %s %s with agent.nodeRestriction=false", o.GetKind(), o.GetName())
				}
			}
		}},
		{"the controller alone", controllerOnly, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, o := range objs {
				if strings.Contains(o.GetName(), "agent") {
					t.Errorf("agent object rendered: %s %s", o.GetKind(), o.GetName())
				}
			}
		}},
		{"the agent alone", agentOnly, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, o := range objs {
				if strings.Contains(o.GetName(), "controller") {
					t.Errorf("controller object rendered: %s %s", o.GetKind(), o.GetName())
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.values)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for _, o := range objs {
				if o.GetNamespace() != "" && o.GetNamespace() != releaseNS {
					t.Errorf("%s %s in namespace %s, not the release's", o.GetKind(), o.GetName(), o.GetNamespace())
				}
			}
			tc.check(t, objs)
			if err := a.Apply(testContext(t), objs, true); err != nil {
				t.Errorf("server-side dry run of %v: %v", kinds(objs), err)
			}
		})
	}
}
