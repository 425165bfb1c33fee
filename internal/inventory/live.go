package inventory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"
	anpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
)

// Gap is a resource that could not be read from a cluster. An inventory with gaps is incomplete:
// the verdicts and checks the resource feeds cannot be trusted, and callers must say so.
type Gap struct {
	// Resource is "plural" for the core group, else "plural.group", with the version when it
	// matters (e.g. "adminnetworkpolicies.policy.networking.k8s.io/v1alpha1").
	Resource string `json:"resource"`
	// Reason is why it could not be read.
	Reason string `json:"reason"`
	// Affects names the verdicts and checks left incomplete.
	Affects string `json:"affects"`
}

func (g Gap) String() string {
	return fmt.Sprintf("%s could not be read (%s): %s", g.Resource, g.Reason, g.Affects)
}

// DefaultPageSize is how many objects one List request asks for.
const DefaultPageSize = 500

// ClusterOptions tunes LoadCluster.
type ClusterOptions struct {
	// PageSize is the List limit; DefaultPageSize when zero.
	PageSize int64
	// Name names the cluster in reports (the kubeconfig context, or the server URL).
	Name string
	// Progress, when set, is told how many objects of a resource have been listed: after each
	// page, and once more with done set when the resource is read. It is called from several
	// goroutines at once.
	Progress func(resource string, listed int, done bool)
}

// The policy groups imdsguard reads besides the built-in ones.
var (
	anpGroupVersion = schema.GroupVersion{Group: "policy.networking.k8s.io", Version: "v1alpha1"}
	// calicoGroupVersions are Calico's API groups, preferred first: projectcalico.org/v3 (CRDs
	// since Calico 3.29, or the Calico API server) and the crd.projectcalico.org/v1 storage CRDs.
	// Only one is read, so an object is never counted twice.
	calicoGroupVersions = []schema.GroupVersion{{Group: "projectcalico.org", Version: "v3"}, {Group: "crd.projectcalico.org", Version: "v1"}}
	calicoResources     = []string{"tiers", "globalnetworkpolicies", "networkpolicies", "globalnetworksets", "networksets"}
	ciliumGroupVersion  = schema.GroupVersion{Group: "cilium.io", Version: "v2"}
	ciliumResources     = []string{"ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"}
	// Policy engine configuration, read where served (engineconfig.go).
	operatorGroupVersion = schema.GroupVersion{Group: "operator.tigera.io", Version: "v1"}
	eksGroupVersion      = schema.GroupVersion{Group: "eks.amazonaws.com", Version: "v1"}
	// karpenterGroupVersion is Karpenter's EC2NodeClass and karpenterCoreGroupVersion its
	// NodeClaim (the instance layer, package layer).
	karpenterGroupVersion     = schema.GroupVersion{Group: "karpenter.k8s.aws", Version: "v1"}
	karpenterCoreGroupVersion = schema.GroupVersion{Group: "karpenter.sh", Version: "v1"}
	// awsGroupVersion is the AWS VPC CNI's ClusterNetworkPolicy (networking.k8s.aws/v1alpha1).
	awsGroupVersion = schema.GroupVersion{Group: "networking.k8s.aws", Version: "v1alpha1"}
)

// What each resource feeds, for gaps.
const (
	affectsEverything = "every verdict: policies of this kind allow or deny egress"
	affectsPods       = "running pods are not audited (reachability, hostNetwork, IPv6 gaps, add-ons, identity)"
	affectsWorkloads  = "workload pod templates of this kind are not audited"
	affectsSets       = "every verdict that a Calico rule's destination selector or notSelector decides: network sets hold the addresses they select"
	affectsEngine     = "policy engine detection: which policy kinds the cluster's engine enforces"
	affectsInstance   = "the instance layer: the metadata options of the nodes Karpenter launches"
	affectsNodeClaims = "the instance layer: which EC2NodeClass a node Karpenter launched without the class label comes from"
)

// lister reads one resource page by page into objs.
type lister struct {
	resource string
	affects  string
	list     pager.ListPageFunc
	// optional lists are recorded as warnings, not gaps, when forbidden.
	optional bool
	// absentIfNotFound lists read a resource that may not exist in a served group (EKS Auto
	// Mode's nodeclasses): NotFound means none, not a gap.
	absentIfNotFound bool
	objs             []runtime.Object
	err              error
}

// LoadCluster reads the inventory from the API server cfg points at: namespaces, pods,
// workloads, service accounts, NetworkPolicies, AdminNetworkPolicies and ClusterNetworkPolicies
// (where served) and nodes, with paginated Lists. Built-in kinds travel as protobuf.
//
// An error means nothing usable was read: the server is unreachable, rejects the credentials or
// fails discovery. A resource the credentials may not list (Forbidden) or whose API version the
// server does not serve becomes a Gap, and the rest is loaded.
func LoadCluster(ctx context.Context, cfg *rest.Config, opts ClusterOptions) (*Inventory, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	cfg = rest.CopyConfig(cfg)
	// Deprecation and schema warnings from the server would interleave with the report.
	cfg.WarningHandler = rest.NoWarnings{}
	pb := rest.CopyConfig(cfg)
	pb.ContentType = "application/vnd.kubernetes.protobuf"
	pb.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	core, err := kubernetes.NewForConfig(pb)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	version, err := disc.ServerVersion()
	if err != nil {
		return nil, clusterError(cfg.Host, err)
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return nil, clusterError(cfg.Host, err)
	}
	served := servedVersions(groups)

	b := newBuilder()
	b.inv.Cluster = opts.Name
	if b.inv.Cluster == "" {
		b.inv.Cluster = cfg.Host
	}
	b.inv.ServerVersion = version.GitVersion

	listers := coreListers(core)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	policyGroup, err := groupResources(disc, anpGroupVersion.Group, served[anpGroupVersion.Group])
	if err != nil {
		return nil, clusterError(cfg.Host, err)
	}
	switch anpVersions := policyGroup["adminnetworkpolicies"]; {
	case len(anpVersions) == 0 && len(policyGroup["baselineadminnetworkpolicies"]) == 0:
		b.inv.Warnings = append(b.inv.Warnings, "the cluster does not serve adminnetworkpolicies.policy.networking.k8s.io (AdminNetworkPolicy CRDs not installed): no AdminNetworkPolicy can exist")
	case !anpVersions[anpGroupVersion.Version]:
		versions := sortedKeys(anpVersions)
		if len(versions) == 0 {
			versions = sortedKeys(policyGroup["baselineadminnetworkpolicies"])
		}
		for _, r := range []string{"adminnetworkpolicies", "baselineadminnetworkpolicies"} {
			b.inv.Gaps = append(b.inv.Gaps, Gap{
				Resource: r + "." + anpGroupVersion.Group + "/" + anpGroupVersion.Version,
				Reason:   fmt.Sprintf("the cluster serves %s only at %s, and imdsguard reads %s", anpGroupVersion.Group, strings.Join(versions, ", "), anpGroupVersion.Version),
				Affects:  affectsEverything,
			})
		}
	default:
		anp, err := anpclient.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		listers = append(listers,
			&lister{resource: "adminnetworkpolicies.policy.networking.k8s.io", affects: affectsEverything, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return anp.PolicyV1alpha1().AdminNetworkPolicies().List(ctx, o)
			}},
			&lister{resource: "baselineadminnetworkpolicies.policy.networking.k8s.io", affects: affectsEverything, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return anp.PolicyV1alpha1().BaselineAdminNetworkPolicies().List(ctx, o)
			}})
	}
	cnpLister, warning, gap := clusterNetworkPolicyLister(dyn, policyGroup["clusternetworkpolicies"])
	switch {
	case cnpLister != nil:
		listers = append(listers, cnpLister)
		for _, v := range clusterNetworkPolicyVersions {
			if policyGroup["clusternetworkpolicies"][v] {
				b.inv.ClusterNetworkPolicyAPIVersion = anpGroupVersion.Group + "/" + v
				break
			}
		}
	case gap != nil:
		b.inv.Gaps = append(b.inv.Gaps, *gap)
	default:
		b.inv.Warnings = append(b.inv.Warnings, warning)
	}

	awsGroup, err := groupResources(disc, awsGroupVersion.Group, served[awsGroupVersion.Group])
	if err != nil {
		return nil, clusterError(cfg.Host, err)
	}
	switch awsVersions := awsGroup["clusternetworkpolicies"]; {
	case awsVersions[awsGroupVersion.Version]:
		listers = append(listers, dynamicListers(dyn, awsGroupVersion, []string{"clusternetworkpolicies"})...)
	case len(awsVersions) > 0:
		b.inv.Gaps = append(b.inv.Gaps, Gap{
			Resource: "clusternetworkpolicies." + awsGroupVersion.Group + "/" + awsGroupVersion.Version,
			Reason:   fmt.Sprintf("the cluster serves it only at %s, and imdsguard reads %s", strings.Join(sortedKeys(awsVersions), ", "), awsGroupVersion.Version),
			Affects:  affectsEverything,
		})
	}
	for _, gv := range calicoGroupVersions {
		if served[gv.Group][gv.Version] {
			listers = append(listers, dynamicListers(dyn, gv, calicoResources)...)
			break
		}
	}
	if served[ciliumGroupVersion.Group][ciliumGroupVersion.Version] {
		listers = append(listers, dynamicListers(dyn, ciliumGroupVersion, ciliumResources)...)
	}
	listers = append(listers, engineListers(dyn, served)...)
	if served[karpenterGroupVersion.Group][karpenterGroupVersion.Version] {
		res := dyn.Resource(karpenterGroupVersion.WithResource("ec2nodeclasses"))
		listers = append(listers, &lister{resource: "ec2nodeclasses." + karpenterGroupVersion.Group, affects: affectsInstance, absentIfNotFound: true,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, o) }})
	}
	if served[karpenterCoreGroupVersion.Group][karpenterCoreGroupVersion.Version] {
		res := dyn.Resource(karpenterCoreGroupVersion.WithResource("nodeclaims"))
		listers = append(listers, &lister{resource: "nodeclaims." + karpenterCoreGroupVersion.Group, affects: affectsNodeClaims, absentIfNotFound: true,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, o) }})
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, l := range listers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p := pager.New(l.list)
			p.PageSize = opts.PageSize
			l.err = p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
				l.objs = append(l.objs, obj)
				if opts.Progress != nil && int64(len(l.objs))%opts.PageSize == 0 {
					opts.Progress(l.resource, len(l.objs), false)
				}
				return nil
			})
			if opts.Progress != nil && l.err == nil {
				opts.Progress(l.resource, len(l.objs), true)
			}
		})
	}
	wg.Wait()

	for _, l := range listers {
		if l.err != nil {
			switch {
			case apierrors.IsForbidden(l.err) && l.optional:
				b.inv.Warnings = append(b.inv.Warnings, fmt.Sprintf("%s could not be read (forbidden): %s", l.resource, l.affects))
			case apierrors.IsForbidden(l.err):
				b.inv.Gaps = append(b.inv.Gaps, Gap{Resource: l.resource, Reason: "forbidden: " + apiMessage(l.err), Affects: l.affects})
			case apierrors.IsNotFound(l.err) && l.absentIfNotFound:
			case apierrors.IsNotFound(l.err):
				b.inv.Gaps = append(b.inv.Gaps, Gap{Resource: l.resource, Reason: "not served by the cluster", Affects: l.affects})
			default:
				return nil, fmt.Errorf("list %s: %w", l.resource, clusterError(cfg.Host, l.err))
			}
			continue
		}
		for _, obj := range l.objs {
			b.inv.Documents++
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				// Custom resources go through the manifest decoder: the same types, checks and
				// field-path problems as a file.
				data, err := u.MarshalJSON()
				if err != nil {
					return nil, fmt.Errorf("list %s: %s: %w", l.resource, u.GetName(), err)
				}
				b.add(decodeDoc(rawDoc{data: data}))
				continue
			}
			b.add(decoded{obj: obj})
		}
	}
	if err := getEngineConfigMaps(ctx, core, b); err != nil {
		return nil, clusterError(cfg.Host, err)
	}
	b.finish()
	return b.inv, nil
}

// engineListers list the policy engine configuration custom resources the cluster serves:
// Tigera operator Installations and EKS Auto Mode NodeClasses.
func engineListers(dyn dynamic.Interface, served map[string]map[string]bool) []*lister {
	var out []*lister
	if served[operatorGroupVersion.Group][operatorGroupVersion.Version] {
		res := dyn.Resource(operatorGroupVersion.WithResource("installations"))
		out = append(out, &lister{resource: "installations." + operatorGroupVersion.Group, affects: affectsEngine, absentIfNotFound: true,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, o) }})
	}
	if served[eksGroupVersion.Group][eksGroupVersion.Version] {
		res := dyn.Resource(eksGroupVersion.WithResource("nodeclasses"))
		out = append(out, &lister{resource: "nodeclasses." + eksGroupVersion.Group, affects: affectsEngine, absentIfNotFound: true,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, o) }})
	}
	return out
}

// getEngineConfigMaps reads each of EngineConfigMaps by name: listing every ConfigMap would
// need read access to all of them. A missing ConfigMap is absent; a forbidden one is a gap.
func getEngineConfigMaps(ctx context.Context, core kubernetes.Interface, b *builder) error {
	for _, ref := range EngineConfigMaps {
		cm, err := core.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case apierrors.IsForbidden(err):
			b.inv.Gaps = append(b.inv.Gaps, Gap{Resource: "configmaps " + ref.String(), Reason: "forbidden: " + apiMessage(err), Affects: affectsEngine})
			continue
		case err != nil:
			return fmt.Errorf("get configmap %s: %w", ref, err)
		}
		b.inv.Documents++
		cm.SetManagedFields(nil)
		b.add(decoded{obj: cm})
	}
	return nil
}

// clusterNetworkPolicyVersions are the versions ClusterNetworkPolicy is read at, preferred first:
// network-policy-api v0.3.0 serves v1beta1 (storage) and v1alpha2 with identical schemas, v0.2.x
// only v1alpha2 (CHANGELOG.md). One is read, so an object is never counted twice.
var clusterNetworkPolicyVersions = []string{"v1beta1", "v1alpha2"}

// groupResources maps each resource of an API group to the versions the server serves it at.
// policy.networking.k8s.io holds AdminNetworkPolicy (v1alpha1) and ClusterNetworkPolicy
// (v1alpha2, v1beta1), networking.k8s.aws holds the AWS ClusterNetworkPolicy beside the VPC CNI's
// PolicyEndpoints: their CRDs are installed independently, so a group's versions alone do not
// say which kinds exist.
func groupResources(disc discovery.DiscoveryInterface, group string, versions map[string]bool) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, v := range sortedKeys(versions) {
		gv := group + "/" + v
		list, err := disc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			return nil, fmt.Errorf("discover %s: %w", gv, err)
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // a subresource (status)
			}
			if out[r.Name] == nil {
				out[r.Name] = map[string]bool{}
			}
			out[r.Name][v] = true
		}
	}
	return out, nil
}

// clusterNetworkPolicyLister lists ClusterNetworkPolicies at the preferred version the server
// serves. Without one it returns a warning (the CRD is not installed: none can exist) or, when the
// resource is served only at versions imdsguard does not read, a gap.
func clusterNetworkPolicyLister(dyn dynamic.Interface, versions map[string]bool) (l *lister, warning string, gap *Gap) {
	const resource = "clusternetworkpolicies"
	for _, v := range clusterNetworkPolicyVersions {
		if versions[v] {
			return dynamicListers(dyn, schema.GroupVersion{Group: anpGroupVersion.Group, Version: v}, []string{resource})[0], "", nil
		}
	}
	if len(versions) == 0 {
		return nil, "the cluster does not serve clusternetworkpolicies.policy.networking.k8s.io (ClusterNetworkPolicy CRD not installed): no ClusterNetworkPolicy can exist", nil
	}
	return nil, "", &Gap{
		Resource: resource + "." + anpGroupVersion.Group,
		Reason: fmt.Sprintf("the cluster serves %s only at %s, and imdsguard reads %s", resource+"."+anpGroupVersion.Group,
			strings.Join(sortedKeys(versions), ", "), strings.Join(clusterNetworkPolicyVersions, " or ")),
		Affects: affectsEverything,
	}
}

// coreListers are the built-in resources, in the order their objects are added.
func coreListers(c kubernetes.Interface) []*lister {
	ns := ""
	return []*lister{
		{resource: "namespaces", affects: "namespace labels: verdicts of policies that select namespaces by label", list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Namespaces().List(ctx, o)
		}},
		{resource: "serviceaccounts", affects: "pod identity (IMDS008): IRSA and workload identity annotations", list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().ServiceAccounts(ns).List(ctx, o)
		}},
		{resource: "pods", affects: affectsPods, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Pods(ns).List(ctx, o)
		}},
		{resource: "deployments.apps", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.AppsV1().Deployments(ns).List(ctx, o)
		}},
		{resource: "replicasets.apps", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.AppsV1().ReplicaSets(ns).List(ctx, o)
		}},
		{resource: "statefulsets.apps", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.AppsV1().StatefulSets(ns).List(ctx, o)
		}},
		{resource: "daemonsets.apps", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.AppsV1().DaemonSets(ns).List(ctx, o)
		}},
		{resource: "jobs.batch", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.BatchV1().Jobs(ns).List(ctx, o)
		}},
		{resource: "cronjobs.batch", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.BatchV1().CronJobs(ns).List(ctx, o)
		}},
		{resource: "replicationcontrollers", affects: affectsWorkloads, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().ReplicationControllers(ns).List(ctx, o)
		}},
		{resource: "networkpolicies.networking.k8s.io", affects: affectsEverything, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.NetworkingV1().NetworkPolicies(ns).List(ctx, o)
		}},
		{resource: "nodes", affects: "cloud detection from spec.providerID: every cloud's endpoints are audited unless --cloud is given", optional: true, list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Nodes().List(ctx, o)
		}},
	}
}

// servedVersions maps each API group to the versions the server serves.
func servedVersions(groups *metav1.APIGroupList) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, g := range groups.Groups {
		out[g.Name] = map[string]bool{}
		for _, v := range g.Versions {
			out[g.Name][v.Version] = true
		}
	}
	return out
}

// dynamicListers lists custom resources of one group version.
func dynamicListers(dyn dynamic.Interface, gv schema.GroupVersion, resources []string) []*lister {
	out := make([]*lister, 0, len(resources))
	for _, r := range resources {
		res := dyn.Resource(gv.WithResource(r))
		affects := affectsEverything
		if strings.HasSuffix(r, "networksets") {
			affects = affectsSets
		}
		out = append(out, &lister{resource: r + "." + gv.Group + "/" + gv.Version, affects: affects,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, o) }})
	}
	return out
}

// apiMessage is the API server's own message of a status error.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// clusterError explains the errors that mean the API server cannot be used at all.
func clusterError(host string, err error) error {
	var urlErr *url.Error
	var netErr net.Error
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server at %s rejected the credentials (401 Unauthorized): the token or certificate is invalid or expired; check the kubeconfig user: %w", host, err)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return fmt.Errorf("the API server at %s did not answer in time: %w", host, err)
	case errors.As(err, &urlErr):
		return fmt.Errorf("cannot reach the API server at %s: %w", host, urlErr.Err)
	}
	return fmt.Errorf("API server %s: %w", host, err)
}

// DefaultRequestTimeout bounds each request to the API server.
const DefaultRequestTimeout = 30 * time.Second

// Node is a cluster node, read for its cloud provider.
type Node struct {
	Name string
	// ProviderID is spec.providerID, e.g. "aws:///eu-west-1a/i-0abc".
	ProviderID string
	Labels     map[string]string
	// Taints are spec.taints: which pod templates may be scheduled on the node.
	Taints []corev1.Taint
	// OSImage is status.nodeInfo.osImage ("Amazon Linux 2023.6.20241010").
	OSImage string
	// AgentState is the imdsguard agent's published state, the value of the annotation
	// imdsguard.io/agent-state (package layer decodes it); empty when absent.
	AgentState string
	Source     Source
}

// agentStateAnnotation is layer.AgentStateAnnotation (package layer imports this one).
const agentStateAnnotation = "imdsguard.io/agent-state"

// nodeOf keeps what imdsguard reads of a node.
func nodeOf(n *corev1.Node, src Source) *Node {
	return &Node{Name: n.Name, ProviderID: n.Spec.ProviderID, Labels: n.Labels, Taints: n.Spec.Taints,
		OSImage: n.Status.NodeInfo.OSImage, AgentState: n.Annotations[agentStateAnnotation], Source: src}
}
