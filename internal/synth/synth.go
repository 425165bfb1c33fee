// Package synth generates synthetic Kubernetes clusters for benchmarks: namespaces, service
// accounts, Deployments and the pods they own, NetworkPolicies and AdminNetworkPolicies, written
// as one JSON List document in the shape "kubectl get -o json" prints.
//
// The output is deterministic for a Config (same seed, same bytes) and is written one item at a
// time, so memory stays low whatever the cluster size. The mix of objects is meant to look like
// a real multi-tenant cluster: namespaces labelled by team and environment, pods with app and
// tier labels, a few hostNetwork pods, and egress policies of the kinds found in practice
// (default deny, DNS allowances, "internet except metadata", allow-all, ipBlock port ranges,
// pod selector peers, policies without policyTypes, admin policies with Allow, Deny and Pass).
package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
)

// Config sizes a synthetic cluster.
type Config struct {
	// Pods is the number of pods, bare ones included.
	Pods int
	// Namespaces is the number of namespaces, kube-system included.
	Namespaces int
	// NetworkPolicies is the number of networking.k8s.io/v1 NetworkPolicies.
	NetworkPolicies int
	// AdminNetworkPolicies is the number of AdminNetworkPolicies (at most 1001: each gets a
	// distinct priority in 0-1000).
	AdminNetworkPolicies int
	// CalicoPolicies is the number of Calico NetworkPolicies and GlobalNetworkPolicies (with a
	// Calico tier when non-zero); zero by default.
	CalicoPolicies int
	// CiliumPolicies is the number of CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies;
	// zero by default.
	CiliumPolicies int
	// ClusterNetworkPolicies is the number of ClusterNetworkPolicies (v1beta1, both tiers); with
	// any, the cluster also runs Calico v3.32's calico-node DaemonSet, which enforces them.
	ClusterNetworkPolicies int
	// Nodes is the number of Nodes, with their Karpenter EC2NodeClasses (NodePools of them);
	// zero by default: no Node objects, pods still name about one node per 30 pods.
	Nodes, NodePools int
	// NodeGroupModules, when non-zero, makes the Nodes the nodes of EKS managed node groups
	// instead of Karpenter node pools: node k joins TerraformNodeGroups(NodeGroupModules)[k % n]
	// (label eks.amazonaws.com/nodegroup), the node groups of the Terraform repository
	// WriteTerraform writes with that many modules. NodePools is then not used.
	NodeGroupModules int
	// Seed selects the cluster; the same Config always yields the same bytes.
	Seed uint64
	// Indent lays the document out as "kubectl get -o json" does, four spaces per level. Items
	// are then about 2.5 times larger; by default each item is one compact line.
	Indent bool
}

// The default cluster: a large multi-tenant cluster.
const (
	DefaultPods                 = 100_000
	DefaultNamespaces           = 5_000
	DefaultNetworkPolicies      = 20_000
	DefaultAdminNetworkPolicies = 50
	DefaultSeed                 = 1
)

// maxAdminNetworkPolicies is how many distinct AdminNetworkPolicy priorities exist (0-1000).
const maxAdminNetworkPolicies = 1001

// DefaultConfig returns the default cluster: 100,000 pods in 5,000 namespaces with 20,000
// NetworkPolicies and 50 AdminNetworkPolicies.
func DefaultConfig() Config {
	return Config{
		Pods:                 DefaultPods,
		Namespaces:           DefaultNamespaces,
		NetworkPolicies:      DefaultNetworkPolicies,
		AdminNetworkPolicies: DefaultAdminNetworkPolicies,
		Seed:                 DefaultSeed,
	}
}

// Scaled returns the default cluster scaled to the given number of pods: namespaces and policies
// keep the default's ratios to pods (at least one namespace and one AdminNetworkPolicy).
func Scaled(pods int) Config {
	c := DefaultConfig()
	if pods < 0 {
		pods = 0
	}
	scale := func(n int) int { return int((int64(n)*int64(pods) + DefaultPods/2) / DefaultPods) }
	c.Pods = pods
	c.Namespaces = max(1, scale(DefaultNamespaces))
	c.NetworkPolicies = scale(DefaultNetworkPolicies)
	c.AdminNetworkPolicies = min(maxAdminNetworkPolicies, max(1, scale(DefaultAdminNetworkPolicies)))
	return c
}

// Validate reports whether the Config describes a cluster that can be generated.
func (c Config) Validate() error {
	var errs []error
	if c.Pods < 0 {
		errs = append(errs, fmt.Errorf("pods: %d is negative", c.Pods))
	}
	if c.Namespaces < 1 {
		errs = append(errs, fmt.Errorf("namespaces: %d, want at least 1", c.Namespaces))
	}
	if c.NetworkPolicies < 0 {
		errs = append(errs, fmt.Errorf("network policies: %d is negative", c.NetworkPolicies))
	}
	if c.CalicoPolicies < 0 {
		errs = append(errs, fmt.Errorf("calico policies: %d, want 0 or more", c.CalicoPolicies))
	}
	if c.ClusterNetworkPolicies < 0 {
		errs = append(errs, fmt.Errorf("cluster network policies: %d, want 0 or more", c.ClusterNetworkPolicies))
	}
	if c.Nodes < 0 || c.NodePools < 0 || (c.Nodes > 0 && c.NodePools > c.Nodes) {
		errs = append(errs, fmt.Errorf("nodes %d in %d pools: want 0 or more, at most one pool per node", c.Nodes, c.NodePools))
	}
	if c.NodeGroupModules < 0 {
		errs = append(errs, fmt.Errorf("node group modules: %d, want 0 or more", c.NodeGroupModules))
	}
	if c.CiliumPolicies < 0 {
		errs = append(errs, fmt.Errorf("cilium policies: %d, want 0 or more", c.CiliumPolicies))
	}
	if c.AdminNetworkPolicies < 0 || c.AdminNetworkPolicies > maxAdminNetworkPolicies {
		errs = append(errs, fmt.Errorf("admin network policies: %d, want 0-%d (one per priority)", c.AdminNetworkPolicies, maxAdminNetworkPolicies))
	}
	return errors.Join(errs...)
}

// Stats counts what Generate wrote.
type Stats struct {
	Namespaces           int `json:"namespaces"`
	ServiceAccounts      int `json:"serviceAccounts"`
	Deployments          int `json:"deployments"`
	Pods                 int `json:"pods"`
	BarePods             int `json:"barePods"`
	HostNetworkPods      int `json:"hostNetworkPods"`
	NetworkPolicies      int `json:"networkPolicies"`
	AdminNetworkPolicies int `json:"adminNetworkPolicies"`
	CalicoPolicies       int `json:"calicoPolicies"`
	CiliumPolicies       int `json:"ciliumPolicies"`
	// ClusterNetworkPolicies counts the ClusterNetworkPolicies (the engine DaemonSet is not
	// counted).
	ClusterNetworkPolicies int   `json:"clusterNetworkPolicies"`
	Nodes                  int   `json:"nodes"`
	Items                  int   `json:"items"`
	Bytes                  int64 `json:"bytes"`
}

// Generate writes the cluster described by cfg to w as one JSON List document and returns what
// it wrote.
func Generate(w io.Writer, cfg Config) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, fmt.Errorf("invalid cluster configuration: %w", err)
	}
	g := &generator{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x696d6473677561)),
		out: &countingWriter{w: bufio.NewWriterSize(w, 1<<20)},
	}
	g.plan()
	if err := g.write(); err != nil {
		return g.stats, err
	}
	g.stats.Bytes = g.out.n
	return g.stats, nil
}

// countingWriter counts bytes and remembers the first write error.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) writeString(s string) { c.write([]byte(s)) }

// Vocabularies the generator draws from.
var (
	teams = []string{"payments", "checkout", "search", "identity", "platform", "data", "ml", "growth",
		"mobile", "web", "billing", "catalog", "logistics", "support", "security", "ads",
		"analytics", "messaging", "media", "partners", "risk", "pricing", "inventory", "notifications"}
	envs = []string{"prod", "prod", "staging", "dev"} // weighted: prod is the most common
	apps = []string{"api", "web", "worker", "gateway", "frontend", "backend", "scheduler", "ingest",
		"reporting", "cache", "consumer", "publisher", "auth", "search", "indexer", "exporter",
		"cron-runner", "webhook", "admin", "graphql", "grpc-server", "stream", "sync", "uploader"}
	tiers       = []string{"frontend", "backend", "backend", "data", "worker"}
	publicImage = []string{"nginx:1.27.3", "redis:7.4.1", "postgres:16.6", "rabbitmq:3.13-management",
		"envoyproxy/envoy:v1.32.2", "grafana/agent:v0.43.3", "memcached:1.6.32"}
	replicaChoices = []int{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5, 6, 8, 10, 12}
	regions        = []string{"us-east-1", "eu-west-1", "ap-southeast-2"}
)

// systemDeployment is a kube-system component, some of which read instance metadata.
type systemDeployment struct {
	name, image string
	args        []string
	labelKey    string
}

var systemDeployments = []systemDeployment{
	{"coredns", "registry.k8s.io/coredns/coredns:v1.11.3", []string{"-conf", "/etc/coredns/Corefile"}, "k8s-app"},
	{"aws-load-balancer-controller", "public.ecr.aws/eks/aws-load-balancer-controller:v2.10.1", []string{"--cluster-name=prod-1", "--ingress-class=alb"}, "app.kubernetes.io/name"},
	{"cluster-autoscaler", "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0", []string{"--cloud-provider=aws", "--namespace=kube-system"}, "app"},
	{"ebs-csi-controller", "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.37.0", []string{"controller", "--endpoint=unix:///var/lib/csi/sockets/pluginproxy/csi.sock"}, "app"},
	{"metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.7.2", []string{"--secure-port=10250"}, "k8s-app"},
	{"external-dns", "registry.k8s.io/external-dns/external-dns:v0.15.0", []string{"--provider=aws", "--source=ingress"}, "app.kubernetes.io/name"},
}

// namespacePlan is what one namespace holds.
type namespacePlan struct {
	name, team, env string
	workloads       []workloadPlan
	netpols         int
	uid             string
}

// workloadPlan is a Deployment with its pods, or one bare pod.
type workloadPlan struct {
	name, app, tier string
	labelKey        string // label holding the app name ("app" for most)
	hash            string // pod-template-hash; empty for a bare pod
	replicas        int
	bare            bool
	hostNetwork     bool
	serviceAccount  string // empty: the namespace's default service account
	irsa            bool
	image           string
	args            []string
	sidecar         bool
	region          string // AWS_REGION, when set
	metadataEnv     bool   // an environment variable names the metadata address
	uid             string
	created         time.Time
}

type generator struct {
	cfg   Config
	rng   *rand.Rand
	out   *countingWriter
	stats Stats
	nss   []namespacePlan
	// podSeq numbers pods, for addresses.
	podSeq int
}

// epoch is the creation time of the oldest object.
var epoch = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

// plan decides every namespace and workload up front; objects are then rendered one at a time.
func (g *generator) plan() {
	cfg := g.cfg
	g.nss = make([]namespacePlan, cfg.Namespaces)
	for i := range g.nss {
		ns := &g.nss[i]
		ns.uid = g.uid()
		if i == 0 {
			ns.name, ns.team, ns.env = "kube-system", "platform", "prod"
			continue
		}
		ns.team = pick(g.rng, teams)
		ns.env = pick(g.rng, envs)
		ns.name = fmt.Sprintf("%s-%s-%04d", ns.team, ns.env, i)
	}

	// Pods per namespace: skewed weights, rounded so the total is exact.
	quota := g.apportion(cfg.Pods, len(g.nss), func() float64 { return 0.15 + g.rng.ExpFloat64() })
	assigned, host := 0, 0
	for i := range g.nss {
		ns := &g.nss[i]
		used := map[string]bool{}
		for left := quota[i]; left > 0; {
			w := g.workload(ns, i, len(ns.workloads), used)
			w.replicas = min(w.replicas, left)
			// About 1% of pods use the node's network: keep a running quota.
			if !w.bare && host*100 < assigned && w.replicas <= 3 {
				w.hostNetwork = true
				host += w.replicas
			}
			assigned += w.replicas
			left -= w.replicas
			ns.workloads = append(ns.workloads, w)
		}
	}

	// NetworkPolicies land in random namespaces (about four per namespace by default).
	for range cfg.NetworkPolicies {
		g.nss[g.rng.IntN(len(g.nss))].netpols++
	}
}

// apportion splits total into n parts proportional to random weights, exactly.
func (g *generator) apportion(total, n int, weight func() float64) []int {
	ws := make([]float64, n)
	sum := 0.0
	for i := range ws {
		ws[i] = weight()
		sum += ws[i]
	}
	parts := make([]int, n)
	given := 0
	for i := range ws {
		parts[i] = int(float64(total) * ws[i] / sum)
		given += parts[i]
	}
	for i := 0; given < total; i = (i + 1) % n {
		parts[i]++
		given++
	}
	return parts
}

// workload plans the k-th workload of namespace ns (index i).
func (g *generator) workload(ns *namespacePlan, i, k int, used map[string]bool) workloadPlan {
	r := g.rng
	w := workloadPlan{
		tier:     pick(r, tiers),
		labelKey: "app",
		replicas: pick(r, replicaChoices),
		uid:      g.uid(),
		created:  epoch.Add(time.Duration(r.IntN(300*24*3600)) * time.Second),
	}
	switch {
	case i == 0 && k < len(systemDeployments):
		s := systemDeployments[k]
		w.app, w.image, w.args, w.labelKey = s.name, s.image, s.args, s.labelKey
		w.replicas = 2
		w.serviceAccount = s.name
		w.irsa = s.name != "coredns" && s.name != "metrics-server"
		w.tier = "system"
	case r.IntN(100) < 2:
		// A bare pod: a debug or one-off pod nobody cleaned up.
		w.bare = true
		w.replicas = 1
		w.app = pick(r, []string{"debug", "netshoot", "migrate", "psql-client"})
		w.image = pick(r, []string{"nicolaka/netshoot:v0.13", "busybox:1.37", "postgres:16.6", "alpine:3.21"})
	default:
		w.app = pick(r, apps)
		if r.IntN(100) < 15 {
			w.image = pick(r, publicImage)
		} else {
			w.image = fmt.Sprintf("registry.example.com/%s/%s:v1.%d.%d", ns.team, w.app, r.IntN(40), r.IntN(10))
		}
		if r.IntN(100) < 70 {
			w.serviceAccount = w.app
			w.irsa = r.IntN(100) < 25
		}
		w.sidecar = r.IntN(100) < 20
		if r.IntN(100) < 30 {
			w.region = pick(r, regions)
		}
		w.metadataEnv = r.IntN(1000) < 5
	}
	name := w.app
	for n := 2; used[name]; n++ {
		name = fmt.Sprintf("%s-%d", w.app, n)
	}
	used[name] = true
	w.name = name
	if w.bare {
		w.name = name + "-" + g.suffix(5)
	} else {
		w.hash = g.suffix(10)
	}
	if w.serviceAccount != "" {
		w.serviceAccount = name
	}
	return w
}

// write renders the List: namespaces, service accounts, Deployments, pods, NetworkPolicies,
// AdminNetworkPolicies, as "kubectl get ns,sa,deploy,pods,netpol,anp -A -o json" orders them.
func (g *generator) write() error {
	head, sep, tail := `{"apiVersion":"v1","items":[`+"\n", ",\n", "\n"+`],"kind":"List","metadata":{"resourceVersion":""}}`+"\n"
	marshal := json.Marshal
	if g.cfg.Indent {
		head, sep = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        ", ",\n        "
		tail = "\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
		marshal = func(v any) ([]byte, error) { return json.MarshalIndent(v, "        ", "    ") }
	}
	g.out.writeString(head)
	first := true
	emit := func(obj any) error {
		data, err := marshal(obj)
		if err != nil {
			return fmt.Errorf("encode %T: %w", obj, err)
		}
		if !first {
			g.out.writeString(sep)
		}
		first = false
		g.out.write(data)
		g.stats.Items++
		return g.out.err
	}
	for i := range g.nss {
		if err := emit(g.namespace(&g.nss[i])); err != nil {
			return err
		}
		g.stats.Namespaces++
	}
	for i := range g.nss {
		ns := &g.nss[i]
		if err := emit(g.serviceAccount(ns, "default", false)); err != nil {
			return err
		}
		g.stats.ServiceAccounts++
		for _, w := range ns.workloads {
			if w.bare || w.serviceAccount == "" {
				continue
			}
			if err := emit(g.serviceAccount(ns, w.serviceAccount, w.irsa)); err != nil {
				return err
			}
			g.stats.ServiceAccounts++
		}
	}
	for i := range g.nss {
		ns := &g.nss[i]
		for j := range ns.workloads {
			if w := &ns.workloads[j]; !w.bare {
				if err := emit(g.deployment(ns, w)); err != nil {
					return err
				}
				g.stats.Deployments++
			}
		}
	}
	for i := range g.nss {
		ns := &g.nss[i]
		for j := range ns.workloads {
			w := &ns.workloads[j]
			seen := map[string]bool{}
			for range w.replicas {
				if err := emit(g.pod(ns, w, seen)); err != nil {
					return err
				}
				g.stats.Pods++
				if w.bare {
					g.stats.BarePods++
				}
				if w.hostNetwork {
					g.stats.HostNetworkPods++
				}
			}
		}
	}
	for i := range g.nss {
		ns := &g.nss[i]
		names := map[string]bool{}
		for range ns.netpols {
			if err := emit(g.networkPolicy(ns, names)); err != nil {
				return err
			}
			g.stats.NetworkPolicies++
		}
	}
	for _, p := range g.adminPolicies() {
		if err := emit(p); err != nil {
			return err
		}
		g.stats.AdminNetworkPolicies++
	}
	for _, p := range g.calicoPolicies() {
		if err := emit(p); err != nil {
			return err
		}
		if _, tier := p.(*calicov3.Tier); !tier {
			g.stats.CalicoPolicies++
		}
	}
	for _, p := range g.ciliumPolicies() {
		if err := emit(p); err != nil {
			return err
		}
		g.stats.CiliumPolicies++
	}
	for _, n := range g.nodeObjects() {
		if err := emit(n); err != nil {
			return err
		}
		if _, ok := n.(*corev1.Node); ok {
			g.stats.Nodes++
		}
	}
	for _, p := range g.clusterNetworkPolicies() {
		if err := emit(p); err != nil {
			return err
		}
		if _, ok := p.(*cnpv1beta1.ClusterNetworkPolicy); ok {
			g.stats.ClusterNetworkPolicies++
		}
	}
	g.out.writeString(tail)
	if g.out.err == nil {
		g.out.err = g.out.w.Flush()
	}
	if g.out.err != nil {
		return fmt.Errorf("write cluster: %w", g.out.err)
	}
	return nil
}

func (g *generator) meta(namespace, name, uid string, created time.Time, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              name,
		Namespace:         namespace,
		UID:               types.UID(uid),
		ResourceVersion:   fmt.Sprint(1000 + g.rng.IntN(90_000_000)),
		CreationTimestamp: metav1.NewTime(created),
		Labels:            labels,
	}
}

func (g *generator) namespace(ns *namespacePlan) *corev1.Namespace {
	labels := map[string]string{corev1.LabelMetadataName: ns.name}
	if ns.name != "kube-system" {
		labels["team"] = ns.team
		labels["env"] = ns.env
	}
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: g.meta("", ns.name, ns.uid, epoch, labels),
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
}

func (g *generator) serviceAccount(ns *namespacePlan, name string, irsa bool) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: g.meta(ns.name, name, g.uid(), epoch, nil),
	}
	if irsa {
		sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": fmt.Sprintf("arn:aws:iam::123456789012:role/%s-%s", ns.name, name)}
	}
	return sa
}

// templateLabels are the labels of a workload's pod template (pods add pod-template-hash).
func templateLabels(w *workloadPlan) map[string]string {
	return map[string]string{w.labelKey: w.app, "tier": w.tier}
}

// podSpec is the pod spec of a workload; nodeName is empty in a template.
func (g *generator) podSpec(ns *namespacePlan, w *workloadPlan) corev1.PodSpec {
	containers := []corev1.Container{g.container(ns, w)}
	if w.sidecar {
		containers = append(containers, corev1.Container{
			Name:  "envoy",
			Image: "envoyproxy/envoy:v1.32.2",
			Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			},
			TerminationMessagePath:   corev1.TerminationMessagePathDefault,
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy:          corev1.PullIfNotPresent,
		})
	}
	dns := corev1.DNSClusterFirst
	if w.hostNetwork {
		dns = corev1.DNSClusterFirstWithHostNet
	}
	return corev1.PodSpec{
		Containers:                    containers,
		RestartPolicy:                 corev1.RestartPolicyAlways,
		TerminationGracePeriodSeconds: ptr(int64(30)),
		DNSPolicy:                     dns,
		ServiceAccountName:            w.serviceAccount,
		HostNetwork:                   w.hostNetwork,
		SecurityContext:               &corev1.PodSecurityContext{},
		SchedulerName:                 corev1.DefaultSchedulerName,
	}
}

func (g *generator) container(ns *namespacePlan, w *workloadPlan) corev1.Container {
	env := []corev1.EnvVar{
		{Name: "APP_ENV", Value: ns.env},
		{Name: "LOG_LEVEL", Value: pick(g.rng, []string{"info", "info", "warn", "debug"})},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
	}
	if w.region != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_REGION", Value: w.region})
	}
	if w.metadataEnv {
		env = append(env, corev1.EnvVar{Name: "METADATA_URL", Value: "http://169.254.169.254/latest/meta-data/"})
	}
	port := int32(8080)
	if w.tier == "system" {
		port = 9443
	}
	cpu := pick(g.rng, []string{"50m", "100m", "250m", "500m"})
	mem := pick(g.rng, []string{"64Mi", "128Mi", "256Mi", "512Mi"})
	return corev1.Container{
		Name:  w.app,
		Image: w.image,
		Args:  w.args,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
		Env:   env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)},
		},
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          corev1.PullIfNotPresent,
	}
}

func (g *generator) deployment(ns *namespacePlan, w *workloadPlan) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: g.meta(ns.name, w.name, w.uid, w.created, map[string]string{w.labelKey: w.app}),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(w.replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{w.labelKey: w.app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: templateLabels(w)},
				Spec:       g.podSpec(ns, w),
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
		},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 1,
			Replicas:           int32(w.replicas),
			ReadyReplicas:      int32(w.replicas),
			AvailableReplicas:  int32(w.replicas),
		},
	}
}

func (g *generator) pod(ns *namespacePlan, w *workloadPlan, seen map[string]bool) *corev1.Pod {
	seq := g.podSeq
	g.podSeq++
	node := seq / 30 // about 30 pods per node
	if g.cfg.Nodes > 0 {
		node = seq % g.cfg.Nodes
	}
	hostIP := fmt.Sprintf("10.0.%d.%d", node/250, node%250+4)
	podIP := fmt.Sprintf("10.%d.%d.%d", 16+seq>>16, seq>>8&255, seq&255)
	if w.hostNetwork {
		podIP = hostIP
	}

	var name string
	var labels map[string]string
	var owners []metav1.OwnerReference
	if w.bare {
		name = w.name
		labels = map[string]string{w.labelKey: w.app, "tier": w.tier}
	} else {
		for name == "" || seen[name] {
			name = w.name + "-" + w.hash + "-" + g.suffix(5)
		}
		seen[name] = true
		labels = templateLabels(w)
		labels[appsv1.DefaultDeploymentUniqueLabelKey] = w.hash
		owners = []metav1.OwnerReference{{
			APIVersion:         "apps/v1",
			Kind:               "ReplicaSet",
			Name:               w.name + "-" + w.hash,
			UID:                types.UID(g.uid()),
			Controller:         ptr(true),
			BlockOwnerDeletion: ptr(true),
		}}
	}
	created := w.created.Add(time.Duration(g.rng.IntN(30*24*3600)) * time.Second)
	meta := g.meta(ns.name, name, g.uid(), created, labels)
	meta.OwnerReferences = owners
	spec := g.podSpec(ns, w)
	spec.NodeName = nodeName(node)
	start := metav1.NewTime(created.Add(2 * time.Second))
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: meta,
		Spec:       spec,
		Status: corev1.PodStatus{
			Phase:     corev1.PodRunning,
			HostIP:    hostIP,
			PodIP:     podIP,
			PodIPs:    []corev1.PodIP{{IP: podIP}},
			StartTime: &start,
			QOSClass:  corev1.PodQOSBurstable,
		},
	}
}

// Well-known addresses the policies refer to.
const (
	metadataV4    = "169.254.169.254/32"
	metadataV6    = "fd00:ec2::254/128"
	podIdentityV4 = "169.254.170.23/32"
	podIdentityV6 = "fd00:ec2::23/128"
	wireServer    = "168.63.129.16/32"
)

// netpolKinds are the NetworkPolicy shapes, with their relative frequency.
var netpolKinds = []struct {
	name   string
	weight int
}{
	{"default-deny-egress", 14},
	{"allow-dns", 14},
	{"allow-internet-except-metadata", 12},
	{"allow-internet-dual-stack", 4},
	{"allow-all-egress", 8},
	{"allow-private-ports", 12},
	{"allow-to-app", 14},
	{"egress-implicit-type", 8},
	{"ingress-only", 14},
}

// networkPolicy renders one NetworkPolicy of a randomly chosen kind.
func (g *generator) networkPolicy(ns *namespacePlan, names map[string]bool) *networkingv1.NetworkPolicy {
	r := g.rng
	total := 0
	for _, k := range netpolKinds {
		total += k.weight
	}
	n := r.IntN(total)
	kind := netpolKinds[0].name
	for _, k := range netpolKinds {
		if n < k.weight {
			kind = k.name
			break
		}
		n -= k.weight
	}
	name := kind
	for i := 2; names[name]; i++ {
		name = fmt.Sprintf("%s-%d", kind, i)
	}
	names[name] = true

	// appSelector selects one of the namespace's apps, or every pod when it has none.
	appSelector := func() metav1.LabelSelector {
		var ws []*workloadPlan
		for i := range ns.workloads {
			if !ns.workloads[i].bare {
				ws = append(ws, &ns.workloads[i])
			}
		}
		if len(ws) == 0 {
			return metav1.LabelSelector{}
		}
		w := ws[r.IntN(len(ws))]
		return metav1.LabelSelector{MatchLabels: map[string]string{w.labelKey: w.app}}
	}
	egress := []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	tcp, udp := ptr(corev1.ProtocolTCP), ptr(corev1.ProtocolUDP)
	port := func(p int) *intstr.IntOrString { v := intstr.FromInt32(int32(p)); return &v }

	var spec networkingv1.NetworkPolicySpec
	switch kind {
	case "default-deny-egress":
		spec = networkingv1.NetworkPolicySpec{PolicyTypes: egress}
	case "allow-dns":
		spec = networkingv1.NetworkPolicySpec{
			PolicyTypes: egress,
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "kube-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: udp, Port: port(53)}, {Protocol: tcp, Port: port(53)}},
			}},
		}
	case "allow-internet-except-metadata":
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: appSelector(),
			PolicyTypes: egress,
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{metadataV4}}}},
			}},
		}
	case "allow-internet-dual-stack":
		// The IPv6 block forgets the metadata address: an IPv6 gap.
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: appSelector(),
			PolicyTypes: egress,
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{metadataV4, "10.0.0.0/8"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: port(443)}, {Protocol: tcp, Port: port(80)}},
			}},
		}
	case "allow-all-egress":
		spec = networkingv1.NetworkPolicySpec{
			PolicyTypes: egress,
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
		}
	case "allow-private-ports":
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": pick(r, tiers)}},
			PolicyTypes: egress,
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "172.16.0.0/12", Except: []string{"172.17.0.0/16"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: tcp, Port: port(5432)},
					{Protocol: tcp, Port: port(8000), EndPort: ptr(int32(8999))},
					{Protocol: udp, Port: port(30000), EndPort: ptr(int32(32767))},
				},
			}},
		}
	case "allow-to-app":
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: appSelector(),
			PolicyTypes: egress,
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{
					To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(r, apps)}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: port(8080)}},
				},
				{
					To: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": ns.team}},
						PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"backend", "data"}}}},
					}},
				},
			},
		}
	case "egress-implicit-type":
		// No policyTypes: egress applies because the policy has egress rules.
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: appSelector(),
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: port(443)}},
			}},
		}
	default: // ingress-only: no policyTypes and no egress rules, so egress is not governed
		spec = networkingv1.NetworkPolicySpec{
			PodSelector: appSelector(),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": ns.team}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: port(8080)}},
			}},
		}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: g.meta(ns.name, name, g.uid(), epoch.Add(time.Duration(r.IntN(200*24))*time.Hour), nil),
		Spec:       spec,
	}
}

// adminRuleKinds are the AdminNetworkPolicy egress rules an admin policy is assembled from.
var adminRuleKinds = []struct {
	name     string
	action   anpv1alpha1.AdminNetworkPolicyRuleAction
	networks []anpv1alpha1.CIDR
	ports    []anpv1alpha1.AdminNetworkPolicyPort
}{
	{"deny-metadata", anpv1alpha1.AdminNetworkPolicyRuleActionDeny, []anpv1alpha1.CIDR{metadataV4, metadataV6}, nil},
	{"deny-metadata-ipv4", anpv1alpha1.AdminNetworkPolicyRuleActionDeny, []anpv1alpha1.CIDR{metadataV4}, []anpv1alpha1.AdminNetworkPolicyPort{
		{PortNumber: &anpv1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 80}}}},
	{"deny-link-local", anpv1alpha1.AdminNetworkPolicyRuleActionDeny, []anpv1alpha1.CIDR{"169.254.0.0/16"}, nil},
	{"allow-pod-identity", anpv1alpha1.AdminNetworkPolicyRuleActionAllow, []anpv1alpha1.CIDR{podIdentityV4, podIdentityV6}, []anpv1alpha1.AdminNetworkPolicyPort{
		{PortNumber: &anpv1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 80}}}},
	{"allow-azure-dns", anpv1alpha1.AdminNetworkPolicyRuleActionAllow, []anpv1alpha1.CIDR{wireServer}, []anpv1alpha1.AdminNetworkPolicyPort{
		{PortNumber: &anpv1alpha1.Port{Protocol: corev1.ProtocolUDP, Port: 53}}, {PortNumber: &anpv1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 53}}}},
	{"deny-wireserver", anpv1alpha1.AdminNetworkPolicyRuleActionDeny, []anpv1alpha1.CIDR{wireServer}, []anpv1alpha1.AdminNetworkPolicyPort{
		{PortRange: &anpv1alpha1.PortRange{Protocol: corev1.ProtocolTCP, Start: 80, End: 32526}}}},
	{"pass-private", anpv1alpha1.AdminNetworkPolicyRuleActionPass, []anpv1alpha1.CIDR{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}, nil},
	{"pass-internet", anpv1alpha1.AdminNetworkPolicyRuleActionPass, []anpv1alpha1.CIDR{"0.0.0.0/0", "::/0"}, nil},
	{"allow-monitoring", anpv1alpha1.AdminNetworkPolicyRuleActionAllow, []anpv1alpha1.CIDR{"10.96.0.0/12"}, []anpv1alpha1.AdminNetworkPolicyPort{
		{PortNumber: &anpv1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 9090}}, {PortRange: &anpv1alpha1.PortRange{Protocol: corev1.ProtocolTCP, Start: 4317, End: 4318}}}},
}

// adminPolicies renders the AdminNetworkPolicies, each with a distinct priority.
func (g *generator) adminPolicies() []*anpv1alpha1.AdminNetworkPolicy {
	r := g.rng
	n := g.cfg.AdminNetworkPolicies
	priorities := make([]int32, n)
	for i := range priorities {
		priorities[i] = int32(i * (maxAdminNetworkPolicies - 1) / max(1, n))
	}
	r.Shuffle(n, func(i, j int) { priorities[i], priorities[j] = priorities[j], priorities[i] })
	out := make([]*anpv1alpha1.AdminNetworkPolicy, n)
	for i := range out {
		var subject anpv1alpha1.AdminNetworkPolicySubject
		var about string
		switch x := r.IntN(100); {
		case x < 55:
			env := pick(r, envs)
			subject.Namespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"env": env}}
			about = env
		case x < 85:
			ts := []string{pick(r, teams), pick(r, teams), pick(r, teams)}
			subject.Namespaces = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: ts}}}
			about = ts[0]
		default:
			team := pick(r, teams)
			subject.Pods = &anpv1alpha1.NamespacedPod{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": team}},
				PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"tier": "frontend"}},
			}
			about = team + "-frontend"
		}
		perm := r.Perm(len(adminRuleKinds))[:1+r.IntN(4)]
		var rules []anpv1alpha1.AdminNetworkPolicyEgressRule
		for _, k := range perm {
			rk := adminRuleKinds[k]
			rule := anpv1alpha1.AdminNetworkPolicyEgressRule{
				Name:   rk.name,
				Action: rk.action,
				To:     []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Networks: rk.networks}},
			}
			if rk.ports != nil {
				rule.Ports = ptr(rk.ports)
			}
			rules = append(rules, rule)
		}
		name := fmt.Sprintf("%s-%s-%02d", adminRuleKinds[perm[0]].name, about, i)
		out[i] = &anpv1alpha1.AdminNetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1alpha1", Kind: "AdminNetworkPolicy"},
			ObjectMeta: g.meta("", name, g.uid(), epoch, nil),
			Spec: anpv1alpha1.AdminNetworkPolicySpec{
				Priority: priorities[i],
				Subject:  subject,
				Egress:   rules,
			},
			Status: anpv1alpha1.AdminNetworkPolicyStatus{Conditions: []metav1.Condition{}},
		}
	}
	return out
}

// uid returns a random version-4 UUID.
func (g *generator) uid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0x3fff|0x8000, b&0xffffffffffff)
}

// suffixAlphabet is the alphabet Kubernetes uses for generated name suffixes.
const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func (g *generator) suffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = suffixAlphabet[g.rng.IntN(len(suffixAlphabet))]
	}
	return string(b)
}

func pick[T any](r *rand.Rand, from []T) T { return from[r.IntN(len(from))] }

func ptr[T any](v T) *T { return &v }
