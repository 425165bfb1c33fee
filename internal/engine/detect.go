package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Detect identifies the policy engines in an inventory and what they enforce. It reads only
// the inventory: workloads (DaemonSets and Deployments) and the engine configuration objects
// (inventory.EngineConfigMaps, Tigera operator Installations, EKS Auto Mode NodeClasses).
func Detect(inv *inventory.Inventory) Detection {
	d := &detector{inv: inv}
	d.collectWorkloads()
	d.gaps()
	var found []finding
	found = append(found, d.awsVPCCNI()...)
	found = append(found, d.eksAutoMode()...)
	found = append(found, d.calico()...)
	found = append(found, d.cilium()...)
	found = append(found, d.antrea()...)
	found = append(found, d.kubeNetworkPolicies()...)
	found = append(found, d.ovnKubernetes()...)
	found = append(found, d.kubeRouter()...)
	found = append(found, d.weaveNet()...)
	found = append(found, d.azureNPM()...)

	out := Detection{Problems: d.problems, Warnings: d.warnings}
	// Report in the order of the engine table.
	for _, info := range engines {
		for _, f := range found {
			if f.name == info.name {
				out.Engines = append(out.Engines, resolve(f))
			}
		}
	}
	out.Enforcement = merge(out.Engines)
	if len(out.Engines) == 0 {
		// Nothing identifies the engine: every kind is assumed enforced, combined as the
		// objects present suggest (Calico objects are evaluated as Calico would).
		out.Enforcement.Semantics = policy.AssumedEnforcement(inv).Semantics
	}
	var enforcingNP []string
	for _, e := range out.Engines {
		if e.Kinds[policy.KindNetworkPolicy].Enforced {
			enforcingNP = append(enforcingNP, e.Label())
		}
	}
	if len(enforcingNP) > 1 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%s all enforce NetworkPolicy: a connection must pass each of them; the verdict uses %s semantics", strings.Join(enforcingNP, ", "), out.Enforcement.Semantics))
	}
	if len(out.Engines) == 0 {
		out.Warnings = append(out.Warnings, "no policy engine identified (no known engine DaemonSet, Deployment or configuration in the input): every policy kind is assumed enforced, which can overstate protection")
	}
	return out
}

// detector holds the inventory and what detection has to report about it.
type detector struct {
	inv *inventory.Inventory
	// all are the inventory's workloads, and for each DaemonSet or Deployment that only its
	// pods show (a live cluster whose DaemonSets could not be listed, "kubectl get pods -o
	// yaml"), a workload made from its first pod; fromPod names that pod.
	all      []*inventory.Workload
	fromPod  map[*inventory.Workload]string
	problems []string
	warnings []string
}

// collectWorkloads fills d.all.
func (d *detector) collectWorkloads() {
	d.all = slices.Clone(d.inv.Workloads)
	d.fromPod = map[*inventory.Workload]string{}
	seen := map[string]bool{}
	for _, w := range d.inv.Workloads {
		seen[w.Kind+"/"+w.Namespace+"/"+w.Name] = true
	}
	for _, p := range d.inv.Pods {
		owner := p.Workload
		key := owner.Kind + "/" + p.Pod.Namespace + "/" + owner.Name
		if (owner.Kind != "DaemonSet" && owner.Kind != "Deployment") || seen[key] {
			continue
		}
		seen[key] = true
		w := &inventory.Workload{Kind: owner.Kind, Namespace: p.Pod.Namespace, Name: owner.Name,
			Template: corev1.PodTemplateSpec{ObjectMeta: p.Pod.ObjectMeta, Spec: p.Pod.Spec}, Source: p.Source}
		d.fromPod[w] = p.Pod.Name
		d.all = append(d.all, w)
	}
}

func (d *detector) warn(format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf(format, args...))
}

func (d *detector) problem(format string, args ...any) {
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// gaps warns about unreadable resources that engine detection needs.
func (d *detector) gaps() {
	for _, g := range d.inv.Gaps {
		r := g.Resource
		if strings.HasPrefix(r, "daemonsets.apps") || strings.HasPrefix(r, "deployments.apps") || strings.HasPrefix(r, "configmaps") ||
			strings.HasPrefix(r, "installations.operator.tigera.io") || strings.HasPrefix(r, "nodeclasses.eks.amazonaws.com") {
			d.warn("policy engine detection is incomplete: %s could not be read (%s)", r, g.Reason)
		}
	}
}

// workloads returns the workloads of a kind with one of the names, in any namespace, in
// inventory order.
func (d *detector) workloads(kind string, names ...string) []*inventory.Workload {
	var out []*inventory.Workload
	for _, w := range d.all {
		if w.Kind == kind && slices.Contains(names, w.Name) {
			out = append(out, w)
		}
	}
	return out
}

// workload returns the workload kind namespace/name, or nil.
func (d *detector) workload(kind, namespace, name string) *inventory.Workload {
	for _, w := range d.all {
		if w.Kind == kind && w.Namespace == namespace && w.Name == name {
			return w
		}
	}
	return nil
}

// ref names a workload in evidence: "DaemonSet kube-system/aws-node", with the pod it was read
// from when only its pods are in the input.
func (d *detector) ref(w *inventory.Workload) string {
	r := w.Kind + " " + w.Namespace + "/" + w.Name
	if pod, ok := d.fromPod[w]; ok {
		r += " (from its Pod " + pod + ")"
	}
	return r
}

// container returns the workload's container of that name (init containers excluded), or nil.
func container(w *inventory.Workload, name string) *corev1.Container {
	for i := range w.Template.Spec.Containers {
		if w.Template.Spec.Containers[i].Name == name {
			return &w.Template.Spec.Containers[i]
		}
	}
	return nil
}

// flagValue finds a flag in a container's command and arguments, written -name or --name,
// with "=value", or for a flag that is not boolean, the value as the next word. A boolean flag
// given bare is "true".
func flagValue(c *corev1.Container, name string, boolean bool) (string, bool) {
	words := append(slices.Clone(c.Command), c.Args...)
	for i, w := range words {
		trimmed := strings.TrimPrefix(strings.TrimPrefix(w, "-"), "-")
		if trimmed == w {
			continue // not a flag
		}
		key, value, hasValue := strings.Cut(trimmed, "=")
		if key != name {
			continue
		}
		switch {
		case hasValue:
			return value, true
		case boolean:
			return "true", true
		case i+1 < len(words):
			return words[i+1], true
		}
		return "", true
	}
	return "", false
}

// envValue returns a container's literal environment variable (not one from a reference).
func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// setVersion reads the engine version from a container's image tag, warning when it cannot.
func (d *detector) setVersion(f *finding, w *inventory.Workload, c *corev1.Container) {
	if c == nil {
		f.versionUnknown = d.ref(w) + " has no container to read a version from"
		return
	}
	f.evidence = append(f.evidence, fmt.Sprintf("%s container %s image %s", d.ref(w), c.Name, c.Image))
	v, _, ok := imageVersion(c.Image)
	if !ok {
		f.versionUnknown = fmt.Sprintf("the image %s of %s container %s has no version tag", c.Image, d.ref(w), c.Name)
		d.warn("%s: version unknown: %s; only the kinds every version enforces are counted", f.name, f.versionUnknown)
		return
	}
	f.version = &v
	f.versionText = "v" + strings.TrimPrefix(imageTag(c.Image), "v")
}

// isTrue reads a boolean setting as the engines' flag parsers do.
func isTrue(s string) (bool, error) { return strconv.ParseBool(strings.TrimSpace(s)) }

// awsVPCCNI: DaemonSet kube-system/aws-node; the network policy agent is its aws-eks-nodeagent
// container, off unless --enable-network-policy=true, which the EKS add-on setting
// enableNetworkPolicy sets together with the ConfigMap key enable-network-policy-controller.
// https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html
func (d *detector) awsVPCCNI() []finding {
	ds := d.workload("DaemonSet", "kube-system", "aws-node")
	if ds == nil {
		return nil
	}
	f := finding{name: AWSVPCCNI}
	d.setVersion(&f, ds, container(ds, "aws-node"))
	agent := container(ds, "aws-eks-nodeagent")
	if agent == nil {
		f.off = d.ref(ds) + " has no aws-eks-nodeagent container (the network policy agent, from VPC CNI v1.14.0)"
		f.evidence = append(f.evidence, f.off)
		return []finding{f}
	}
	value, set := flagValue(agent, "enable-network-policy", true)
	var ev string
	on := false
	if set {
		ev = fmt.Sprintf("%s container aws-eks-nodeagent arg --enable-network-policy=%s", d.ref(ds), value)
		b, err := isTrue(value)
		if err != nil {
			d.problem("%s: --enable-network-policy=%q is not a boolean: network policy counted as off", d.ref(ds), value)
		}
		on = err == nil && b
	} else {
		ev = fmt.Sprintf("%s container aws-eks-nodeagent has no --enable-network-policy argument (off by default)", d.ref(ds))
	}
	f.evidence = append(f.evidence, ev)
	if !on {
		f.off = ev
	}
	// On EKS the controller that turns policies into the agent's PolicyEndpoints runs in the
	// control plane, switched by this key; self-managed clusters run it themselves.
	cm := d.inv.ConfigMap("kube-system", "amazon-vpc-cni")
	value, ok := "", false
	if cm != nil {
		value, ok = cm.Data["enable-network-policy-controller"]
	}
	switch {
	case ok:
		cmEv := "ConfigMap kube-system/amazon-vpc-cni key enable-network-policy-controller=" + value
		f.evidence = append(f.evidence, cmEv)
		if b, err := isTrue(value); on && (err != nil || !b) {
			on, f.off = false, cmEv+": the network policy controller is off, so the agent has no policies to enforce"
		}
	case on && cm == nil:
		d.warn("aws-vpc-cni: ConfigMap kube-system/amazon-vpc-cni is not in the input: the network policy controller is assumed on, as the node agent is")
	case on:
		d.warn("aws-vpc-cni: ConfigMap kube-system/amazon-vpc-cni has no enable-network-policy-controller key: the network policy controller is assumed on, as the node agent is")
	}
	f.enabled = on
	return []finding{f}
}

// eksAutoMode: NodeClasses mean EKS Auto Mode; its network policies are enforced only once the
// ConfigMap kube-system/amazon-vpc-cni sets enable-network-policy-controller to "true".
// https://docs.aws.amazon.com/eks/latest/userguide/auto-net-pol.html
func (d *detector) eksAutoMode() []finding {
	if len(d.inv.EKSNodeClasses) == 0 {
		return nil
	}
	f := finding{name: EKSAutoMode, versionUnknown: "EKS Auto Mode is managed by AWS and has no version in the cluster"}
	for _, nc := range d.inv.EKSNodeClasses {
		mode := nc.NodeClass.Spec.NetworkPolicy
		if mode == "" {
			mode = "(unset)"
		}
		f.evidence = append(f.evidence, fmt.Sprintf("NodeClass %s spec.networkPolicy=%s", nc.NodeClass.Name, mode))
		if mode == "DefaultDeny" {
			d.warn("eks-auto-mode: NodeClass %s has networkPolicy DefaultDeny: on its nodes, pods no policy selects are denied all traffic (https://docs.aws.amazon.com/eks/latest/userguide/create-node-class.html)", nc.NodeClass.Name)
		}
	}
	cm := d.inv.ConfigMap("kube-system", "amazon-vpc-cni")
	value, ok := "", false
	if cm != nil {
		value, ok = cm.Data["enable-network-policy-controller"]
	}
	switch {
	case !ok:
		f.off = "ConfigMap kube-system/amazon-vpc-cni with enable-network-policy-controller: \"true\" is not in the input; until it exists, EKS Auto Mode accepts network policies without enforcing them"
	default:
		ev := "ConfigMap kube-system/amazon-vpc-cni key enable-network-policy-controller=" + value
		f.evidence = append(f.evidence, ev)
		b, err := isTrue(value)
		f.enabled = err == nil && b
		if !f.enabled {
			f.off = ev
		}
	}
	return []finding{f}
}

// calico: the calico-node DaemonSet (kube-system for manifest installs, calico-system under the
// Tigera operator), Canal's canal DaemonSet, and the operator's Installation. Calico always
// enforces policy; its version is the calico-node image's.
func (d *detector) calico() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "canal") {
		f := finding{name: Canal, enabled: true}
		c := container(ds, "calico-node")
		d.setVersion(&f, ds, c)
		d.calicoNode(&f, c)
		out = append(out, f)
	}
	nodes := d.workloads("DaemonSet", "calico-node")
	for _, ds := range nodes {
		f := finding{name: Calico, enabled: true}
		c := container(ds, "calico-node")
		d.setVersion(&f, ds, c)
		d.calicoNode(&f, c)
		out = append(out, f)
	}
	operators := d.workloads("Deployment", "tigera-operator")
	if len(nodes) == 0 && (len(d.inv.CalicoInstallations) > 0 || len(operators) > 0) {
		f := finding{name: Calico, enabled: true, versionUnknown: "the calico-node DaemonSet, which the Tigera operator creates in calico-system, is not in the input"}
		for _, op := range operators {
			if c := container(op, "tigera-operator"); c != nil {
				f.evidence = append(f.evidence, fmt.Sprintf("%s container tigera-operator image %s (the operator's version, not Calico's)", d.ref(op), c.Image))
			}
		}
		// The operator reports the Calico version it runs in the Installation's status.
		for _, in := range d.inv.CalicoInstallations {
			text := in.Installation.Status.CalicoVersion
			if v, _, err := ParseVersion(text); err == nil && f.version == nil {
				f.version, f.versionText = &v, "v"+strings.TrimPrefix(text, "v")
				f.evidence = append(f.evidence, fmt.Sprintf("Installation %s status.calicoVersion=%s", in.Installation.Name, text))
			}
		}
		if f.version == nil {
			d.warn("calico: version unknown: %s, and no Installation reports status.calicoVersion; only the kinds every Calico version enforces are counted", f.versionUnknown)
		}
		out = append(out, f)
	}
	for _, in := range d.inv.CalicoInstallations {
		spec := in.Installation.Spec
		i := slices.IndexFunc(out, func(f finding) bool { return f.name == Calico })
		if i < 0 {
			break
		}
		f := &out[i]
		f.evidence = append(f.evidence, "Installation "+in.Installation.Name)
		for _, v := range []struct{ field, value string }{{"spec.variant", spec.Variant}, {"status.variant", in.Installation.Status.Variant}} {
			if v.value == "TigeraSecureEnterprise" || v.value == "CalicoEnterprise" {
				f.variant = "enterprise"
				f.evidence = append(f.evidence, fmt.Sprintf("Installation %s %s=%s", in.Installation.Name, v.field, v.value))
			}
		}
		if spec.CNI != nil && spec.CNI.Type != "" && spec.CNI.Type != "Calico" {
			f.evidence = append(f.evidence, fmt.Sprintf("Installation %s spec.cni.type=%s (Calico enforces policy; %s does the networking)", in.Installation.Name, spec.CNI.Type, spec.CNI.Type))
		}
		if spec.CalicoNetwork != nil && spec.CalicoNetwork.LinuxDataplane == "BPF" {
			d.warn("calico: Installation %s uses the eBPF dataplane (spec.calicoNetwork.linuxDataplane=BPF): pod traffic bypasses iptables and nftables rules on the node", in.Installation.Name)
		}
	}
	return out
}

// calicoNode reads what the calico-node container says: Calico Enterprise's image, the eBPF
// dataplane (FELIX_BPFENABLED).
func (d *detector) calicoNode(f *finding, c *corev1.Container) {
	if c == nil {
		return
	}
	if strings.Contains(c.Image, "/cnx-node") {
		f.variant = "enterprise"
	}
	if v, ok := envValue(c, "FELIX_BPFENABLED"); ok {
		if b, err := isTrue(v); err == nil && b {
			d.warn("%s: calico-node runs the eBPF dataplane (FELIX_BPFENABLED=true): pod traffic bypasses iptables and nftables rules on the node", f.name)
		}
	}
}

// ciliumSetting reads one Cilium agent setting the way the agent does: its flag, then its
// CILIUM_ environment variable, then the cilium-config ConfigMap, which the Helm chart mounts as
// the agent's --config-dir.
// https://github.com/cilium/cilium/blob/v1.20.2/pkg/option/config.go (ciliumEnvPrefix),
// https://github.com/cilium/cilium/blob/v1.20.2/install/kubernetes/cilium/templates/cilium-agent/daemonset.yaml
func (d *detector) ciliumSetting(ds *inventory.Workload, c *corev1.Container, key string, boolean bool) (value, evidence string, ok bool) {
	if c != nil {
		if v, set := flagValue(c, key, boolean); set {
			return v, fmt.Sprintf("%s container %s arg --%s=%s", d.ref(ds), c.Name, key, v), true
		}
		env := "CILIUM_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		if v, set := envValue(c, env); set {
			return v, fmt.Sprintf("%s container %s env %s=%s", d.ref(ds), c.Name, env, v), true
		}
	}
	if cm := d.inv.ConfigMap("kube-system", "cilium-config"); cm != nil {
		if v, set := cm.Data[key]; set {
			return v, fmt.Sprintf("ConfigMap kube-system/cilium-config key %s=%s", key, v), true
		}
	}
	return "", "", false
}

// cilium: the cilium DaemonSet (agent container cilium-agent) and GKE Dataplane V2's anetd.
// enable-policy=never turns enforcement off; the enable-*-policy settings gate kinds.
// https://docs.cilium.io/en/stable/security/policy/intro/
func (d *detector) cilium() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "cilium") {
		f := finding{name: Cilium, enabled: true, gates: map[string]gateValue{}}
		c := container(ds, "cilium-agent")
		d.setVersion(&f, ds, c)
		if ds.Namespace != "kube-system" {
			d.warn("cilium: %s is not in kube-system; only kube-system/cilium-config is read, so its settings may be missed", d.ref(ds))
		}
		if v, ev, ok := d.ciliumSetting(ds, c, "enable-policy", false); ok {
			f.evidence = append(f.evidence, ev)
			switch v {
			case "default":
			case "always":
				d.warn("cilium: enable-policy=always: every endpoint denies what no policy allows, selected or not (%s)", ev)
			case "never":
				f.enabled, f.off = false, ev+": policy enforcement is disabled on every endpoint"
			default:
				d.problem("cilium: enable-policy=%q is not default, always or never (%s): policy enforcement counted as off", v, ev)
				f.enabled, f.off = false, ev+" is not a known enforcement mode"
			}
		}
		d.ciliumHostRouting(ds, c)
		for _, g := range []Gate{gateCiliumK8sNetworkPolicy, gateCiliumNetworkPolicy, gateCiliumClusterwideNetworkPolicy, gateCiliumK8sClusterNetworkPolicy} {
			v, ev, ok := d.ciliumSetting(ds, c, g.Name, true)
			if !ok {
				continue
			}
			f.evidence = append(f.evidence, ev)
			b, err := isTrue(v)
			if err != nil {
				d.problem("cilium: %s=%q is not a boolean (%s): counted as off", g.Name, v, ev)
			}
			f.gates[g.Name] = gateValue{on: err == nil && b, evidence: ev}
		}
		out = append(out, f)
	}
	if ds := d.workload("DaemonSet", "kube-system", "anetd"); ds != nil {
		f := finding{name: GKEDataplaneV2, enabled: true}
		f.evidence = append(f.evidence, d.ref(ds)+" (GKE Dataplane V2)")
		d.setVersion(&f, ds, container(ds, "cilium-agent"))
		out = append(out, f)
	}
	return out
}

// ciliumHostRouting warns when Cilium turns on eBPF host routing, which it does by itself
// (kernel permitting) with kube-proxy replacement and eBPF masquerading unless legacy host
// routing is set: pod traffic then bypasses the node's iptables and nftables hooks.
// https://github.com/cilium/cilium/blob/v1.20.2/Documentation/operations/performance/tuning.rst
func (d *detector) ciliumHostRouting(ds *inventory.Workload, c *corev1.Container) {
	on := func(key string) (bool, string) {
		v, ev, ok := d.ciliumSetting(ds, c, key, true)
		b, err := isTrue(v)
		return ok && err == nil && b, ev
	}
	kpr, kprEv := on("kube-proxy-replacement")
	masq, masqEv := on("enable-bpf-masquerade")
	legacy, _ := on("enable-host-legacy-routing")
	if kpr && masq && !legacy {
		d.warn("cilium: eBPF host routing is on where the kernel supports it (%s; %s; enable-host-legacy-routing not set): pod traffic bypasses the node's iptables and nftables hooks, so a node firewall there does not see it", kprEv, masqEv)
	}
}

// antrea: the antrea-agent DaemonSet; AdminNetworkPolicy support is the antrea-controller's
// AdminNetworkPolicy feature gate in ConfigMap kube-system/antrea-config.
// https://github.com/antrea-io/antrea/blob/main/docs/admin-network-policy.md
func (d *detector) antrea() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "antrea-agent") {
		f := finding{name: Antrea, enabled: true, gates: map[string]gateValue{}}
		d.setVersion(&f, ds, container(ds, "antrea-agent"))
		if cm := d.inv.ConfigMap("kube-system", "antrea-config"); cm != nil {
			if conf, ok := cm.Data["antrea-controller.conf"]; ok {
				var parsed struct {
					FeatureGates map[string]bool `json:"featureGates"`
				}
				if err := yaml.Unmarshal([]byte(conf), &parsed); err != nil {
					d.problem("antrea: ConfigMap kube-system/antrea-config key antrea-controller.conf is not valid YAML (%v): its feature gates are taken at their defaults", err)
				}
				for gate, name := range map[string]string{"AdminNetworkPolicy": gateAntreaANP.Name, "AntreaPolicy": gateAntreaPolicy.Name} {
					if v, ok := parsed.FeatureGates[gate]; ok {
						ev := fmt.Sprintf("ConfigMap kube-system/antrea-config antrea-controller.conf featureGates.%s=%t", gate, v)
						f.gates[name] = gateValue{on: v, evidence: ev}
					}
				}
				for _, name := range []string{gateAntreaANP.Name, gateAntreaPolicy.Name} {
					if g, ok := f.gates[name]; ok {
						f.evidence = append(f.evidence, g.evidence)
					}
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// kubeNetworkPolicies: the kube-network-policies DaemonSet. Before v1.0.0 flags enable ANP and
// BANP; from v1.0.0 the image variant (tag suffix -npa-v1alpha1, -npa-v1alpha2) decides.
// https://github.com/kubernetes-sigs/kube-network-policies
func (d *detector) kubeNetworkPolicies() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "kube-network-policies") {
		f := finding{name: KubeNetworkPolicies, enabled: true, gates: map[string]gateValue{}}
		c := container(ds, "kube-network-policies")
		if c == nil && len(ds.Template.Spec.Containers) > 0 {
			c = &ds.Template.Spec.Containers[0]
		}
		d.setVersion(&f, ds, c)
		if c != nil {
			if _, suffix, ok := imageVersion(c.Image); ok && strings.HasPrefix(suffix, "npa-") {
				f.variant = suffix
			}
			for _, g := range []Gate{gateKNPAdmin, gateKNPBaseline} {
				name := strings.TrimPrefix(g.Name, "--")
				if v, set := flagValue(c, name, true); set {
					ev := fmt.Sprintf("%s container %s arg --%s=%s", d.ref(ds), c.Name, name, v)
					b, err := isTrue(v)
					f.gates[g.Name] = gateValue{on: err == nil && b, evidence: ev}
					f.evidence = append(f.evidence, ev)
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// ovnKubernetes: ovnkube-node, ovnkube-control-plane or ovnkube-master; ANP and BANP need
// --enable-admin-network-policy (set by ovnkube.sh from OVN_ADMIN_NETWORK_POLICY_ENABLE).
// https://github.com/ovn-org/ovn-kubernetes/blob/master/dist/images/ovnkube.sh
func (d *detector) ovnKubernetes() []finding {
	var ws []*inventory.Workload
	ws = append(ws, d.workloads("DaemonSet", "ovnkube-node", "ovnkube-master")...)
	ws = append(ws, d.workloads("Deployment", "ovnkube-control-plane", "ovnkube-master")...)
	if len(ws) == 0 {
		return nil
	}
	f := finding{name: OVNKubernetes, enabled: true, gates: map[string]gateValue{},
		versionUnknown: "OVN-Kubernetes images are not tagged with a release version"}
	for _, w := range ws {
		f.evidence = append(f.evidence, d.ref(w))
		for i := range w.Template.Spec.Containers {
			c := &w.Template.Spec.Containers[i]
			if v, set := flagValue(c, "enable-admin-network-policy", true); set {
				b, err := isTrue(v)
				ev := fmt.Sprintf("%s container %s arg --enable-admin-network-policy=%s", d.ref(w), c.Name, v)
				f.gates[gateOVNKAdmin.Name] = gateValue{on: err == nil && b, evidence: ev}
				f.evidence = append(f.evidence, ev)
			} else if v, set := envValue(c, "OVN_ADMIN_NETWORK_POLICY_ENABLE"); set {
				ev := fmt.Sprintf("%s container %s env OVN_ADMIN_NETWORK_POLICY_ENABLE=%s", d.ref(w), c.Name, v)
				f.gates[gateOVNKAdmin.Name] = gateValue{on: v == "true", evidence: ev}
				f.evidence = append(f.evidence, ev)
			}
		}
	}
	return []finding{f}
}

// kubeRouter: the kube-router DaemonSet; --run-firewall (default true) is its NetworkPolicy
// enforcement. https://github.com/cloudnativelabs/kube-router/blob/master/docs/user-guide.md
func (d *detector) kubeRouter() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "kube-router") {
		f := finding{name: KubeRouter, enabled: true}
		c := container(ds, "kube-router")
		d.setVersion(&f, ds, c)
		if c != nil {
			if v, set := flagValue(c, "run-firewall", true); set {
				ev := fmt.Sprintf("%s container kube-router arg --run-firewall=%s", d.ref(ds), v)
				f.evidence = append(f.evidence, ev)
				if b, err := isTrue(v); err != nil || !b {
					f.enabled, f.off = false, ev
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// weaveNet: the weave-net DaemonSet; its weave-npc container enforces NetworkPolicy.
// https://github.com/weaveworks/weave/blob/master/site/kubernetes/kube-addon.md
func (d *detector) weaveNet() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "weave-net") {
		f := finding{name: WeaveNet, enabled: true}
		npc := container(ds, "weave-npc")
		if npc == nil {
			f.enabled = false
			f.off = d.ref(ds) + " has no weave-npc container (Weave's network policy controller)"
			f.evidence = append(f.evidence, f.off)
			d.setVersion(&f, ds, container(ds, "weave"))
		} else {
			d.setVersion(&f, ds, npc)
		}
		out = append(out, f)
	}
	return out
}

// azureNPM: the azure-npm DaemonSet (Azure Network Policy Manager).
// https://learn.microsoft.com/en-us/azure/aks/use-network-policies
func (d *detector) azureNPM() []finding {
	var out []finding
	for _, ds := range d.workloads("DaemonSet", "azure-npm", "azure-npm-win") {
		f := finding{name: AzureNPM, enabled: true}
		c := container(ds, "azure-npm")
		if c == nil && len(ds.Template.Spec.Containers) > 0 {
			c = &ds.Template.Spec.Containers[0]
		}
		d.setVersion(&f, ds, c)
		out = append(out, f)
	}
	return out
}
