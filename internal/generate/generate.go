package generate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Names and labels of the generated objects.
const (
	// PolicyName names the generated NetworkPolicies, AdminNetworkPolicy and
	// CiliumClusterwideNetworkPolicy.
	PolicyName = "imdsguard-deny-metadata"
	// ManagedByLabel and ManagedBy mark every generated object as imdsguard's.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "imdsguard"
	// DescriptionAnnotation says what a generated object does.
	DescriptionAnnotation = "imdsguard.io/description"
	// DefaultExemptionLabel is the pod label whose value ExemptionValue exempts a pod from the
	// NetworkPolicy layer.
	DefaultExemptionLabel = "imdsguard.io/metadata-access"
	// ExemptionValue is the exemption label's value that exempts a pod.
	ExemptionValue = "allow"
	// DefaultAdminPriority is the AdminNetworkPolicy priority: low, so it is evaluated before
	// most others (lower numbers first), leaving 0-9 for policies that must come first.
	DefaultAdminPriority int32 = 10
)

// DefaultExemptNamespaces are left alone by the layers that select pods: kube-system runs the
// cluster's own add-ons, several of which read instance metadata (the AWS Load Balancer
// Controller, the EBS CSI driver, Cluster Autoscaler, the Node Termination Handler). Exempting
// it keeps them working; `imdsguard audit` lists which add-ons need configuring before it can be
// protected too.
var DefaultExemptNamespaces = []string{"kube-system"}

// DefaultHostNetworkNamespaces may run hostNetwork pods under the admission layer: the node
// agents of the CNI, kube-proxy and CSI drivers live in kube-system.
var DefaultHostNetworkNamespaces = []string{"kube-system"}

// Options say what to generate. They are used as given: DefaultOptions fills in the defaults.
type Options struct {
	// Endpoints are the selected endpoints. Those with Role Credentials are denied; those with
	// Role KeepReachable are never denied.
	Endpoints []endpoint.Endpoint
	// Layers to generate; empty means DefaultLayers(Endpoints).
	Layers []Layer
	// Inventory is the cluster's objects. The NetworkPolicy layer needs it to decide where a
	// NetworkPolicy is safe; every other layer is verified against it when it is given.
	Inventory *inventory.Inventory
	// Namespaces limits the NetworkPolicy layer to these namespaces; empty means every
	// namespace of the inventory.
	Namespaces []string
	// ExemptNamespaces are left alone by the NetworkPolicy, AdminNetworkPolicy, Calico and
	// Cilium layers.
	ExemptNamespaces []string
	// ExemptionLabel is the pod label key that, with the value ExemptionValue, exempts a pod
	// from the NetworkPolicy layer; empty exempts no pod. Cluster-wide layers do not honour it:
	// anyone who can create a pod could set it, and a cluster-wide deny must not be
	// overridable from inside a namespace.
	ExemptionLabel string
	// HostNetworkNamespaces are the namespaces where the admission layer lets hostNetwork pods
	// run.
	HostNetworkNamespaces []string
	// AdminPriority is the AdminNetworkPolicy's priority, 0-1000; lower numbers are evaluated
	// first.
	AdminPriority int32
	// ClusterNetworkPolicyAPIVersion is the apiVersion of the generated ClusterNetworkPolicy,
	// one of ClusterNetworkPolicyAPIVersions; empty is v1beta1.
	ClusterNetworkPolicyAPIVersion string
	// Enforcement is what enforces pod egress policy in the cluster (engine.Detect, or the
	// --policy-engine flag). A policy layer of a kind it does not enforce is refused, and
	// verification evaluates only the kinds it enforces. Nil assumes every kind is enforced.
	Enforcement *policy.Enforcement
	// InfrastructurePatch is the ec2 layer's fix of the infrastructure code given, as a unified
	// diff (internal/iac/fix), and InfrastructureNotes what it could not patch; written as
	// EC2InfrastructurePatchPath when not empty.
	InfrastructurePatch []byte
	InfrastructureNotes []string
	// InfrastructurePatchBase is the directory the patch applies in ("." for the working
	// directory).
	InfrastructurePatchBase string
}

// enforcement returns the enforcement the options state, or the one the inventory implies when
// they state none.
func (o *Options) enforcement() policy.Enforcement {
	switch {
	case o.Enforcement != nil:
		return *o.Enforcement
	case o.Inventory != nil:
		return policy.AssumedEnforcement(o.Inventory)
	}
	return policy.Enforcement{Semantics: policy.SemanticsKubernetes, Assumed: true}
}

// layerKinds maps the layers that write policy objects to the kind of those objects.
var layerKinds = map[Layer]policy.Kind{
	NetworkPolicy:        policy.KindNetworkPolicy,
	ClusterNetworkPolicy: policy.KindClusterNetworkPolicy,
	AdminNetworkPolicy:   policy.KindAdminNetworkPolicy,
	Calico:               policy.KindCalico,
	Cilium:               policy.KindCilium,
}

// denyCapableFor lists the deny-capable layers the cluster's engine enforces, and the node
// layer, which needs no engine: the layers a refusal points to.
func denyCapableFor(enf *policy.Enforcement) []Layer {
	var out []Layer
	for _, d := range denyCapable {
		if k, ok := layerKinds[d]; ok {
			if e, _ := enf.Enforces(k); !e {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// unenforced returns a refusal of a policy layer whose kind the cluster's engine does not
// enforce: its objects would be stored and protect nothing. The refusal points to the
// deny-capable layers the engine does enforce, and to the node layer.
func unenforced(l Layer, enf *policy.Enforcement) (Refusal, bool) {
	k, ok := layerKinds[l]
	if !ok {
		return Refusal{}, false
	}
	enforced, why := enf.Enforces(k)
	if enforced {
		return Refusal{}, false
	}
	instead := denyCapableFor(enf)
	return Refusal{Layer: l, Reasons: []string{why + ": its objects would protect no pod"}, Instead: instead}, true
}

// DefaultOptions returns the default options for the selected endpoints.
func DefaultOptions(eps []endpoint.Endpoint) Options {
	return Options{
		Endpoints:             eps,
		ExemptNamespaces:      slices.Clone(DefaultExemptNamespaces),
		ExemptionLabel:        DefaultExemptionLabel,
		HostNetworkNamespaces: slices.Clone(DefaultHostNetworkNamespaces),
		AdminPriority:         DefaultAdminPriority,
	}
}

// Manifest is one Kubernetes object to apply, with the comment written above it in YAML
// output.
type Manifest struct {
	Layer   Layer
	Comment string
	// Object marshals to JSON with its apiVersion and kind.
	Object any
}

// File is a script or configuration file that is not a Kubernetes object.
type File struct {
	Layer Layer
	// Path is relative to the output directory and stable across runs, e.g. "node/imdsguard.nft".
	Path string
	// Executable marks scripts.
	Executable  bool
	Description string
	Content     []byte
}

// Refusal is a namespace a layer will not protect, and why.
type Refusal struct {
	Layer     Layer
	Namespace string
	Reasons   []string
	// Instead lists the layers that can protect the namespace without widening anything.
	Instead []Layer
}

func (r Refusal) String() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s layer refused: %s; use instead: %s", r.Layer, strings.Join(r.Reasons, "; "), layerList(r.Instead))
	}
	return fmt.Sprintf("%s layer refused namespace %s: %s; protect it with a deny-capable layer instead: %s",
		r.Layer, r.Namespace, strings.Join(r.Reasons, "; "), layerList(r.Instead))
}

// Output is everything Generate produced.
type Output struct {
	// Layers are the layers generated, in order.
	Layers []Layer
	// Endpoints are the endpoints the output denies (Role Credentials) and keeps reachable.
	Endpoints []endpoint.Endpoint
	// ExemptNamespaces are the namespaces the layers that select pods leave alone.
	ExemptNamespaces []string
	Manifests        []Manifest
	Files            []File
	// Refusals are namespaces the NetworkPolicy layer would have widened egress in, and
	// (Namespace empty) policy layers the cluster's engine would not enforce.
	Refusals []Refusal
	// Notes are facts the reader must know to apply the output safely.
	Notes []string
}

// InputError is an inventory Generate cannot build on: documents that could not be read, or
// NetworkPolicies and admin network policies the API server would reject. Nothing is generated
// from a partial picture of the cluster.
type InputError struct {
	Problems []inventory.Problem
}

func (e *InputError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return fmt.Sprintf("the input cannot be used (%d problems): %s", len(e.Problems), strings.Join(msgs, "; "))
}

// ErrNeedsInventory is returned when the NetworkPolicy layer is selected without an inventory.
var ErrNeedsInventory = errors.New("the networkpolicy layer needs the cluster's manifests " +
	"(pods, workloads and NetworkPolicies): a NetworkPolicy only adds allowances, so it is safe only in namespaces " +
	"where no pod is egress-isolated, and that can only be checked against the cluster's objects; " +
	"give manifest paths (or - for `kubectl get ns,pods,deploy,sts,ds,rs,job,cronjob,netpol -A -o yaml` on standard input), " +
	"or choose deny-capable layers with --layer (adminnetworkpolicy, calico, cilium, node)")

// Generate builds the selected layers. It returns an *InputError for an inventory with
// problems, a *VerificationError when a generated policy fails verification (another policy
// decided first overrides it, e.g. an AdminNetworkPolicy with a lower priority number that
// allows an endpoint; or a bug), and a plain error for options that do not fit together. It
// never returns output together with an error.
func Generate(opts Options) (*Output, error) {
	if len(opts.Layers) == 0 {
		opts.Layers = DefaultLayers(opts.Endpoints)
	}
	opts.Layers = sortLayers(opts.Layers)
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var c *cluster
	if opts.Inventory != nil {
		if err := checkInput(opts.Inventory); err != nil {
			return nil, err
		}
		c = newCluster(opts.Inventory)
	}
	out := &Output{Layers: opts.Layers, Endpoints: opts.Endpoints, ExemptNamespaces: opts.ExemptNamespaces}
	enf := opts.enforcement()
	for _, l := range opts.Layers {
		if r, refused := unenforced(l, &enf); refused {
			out.Refusals = append(out.Refusals, r)
			continue
		}
		var err error
		switch l {
		case NetworkPolicy:
			err = out.addNetworkPolicies(&opts, c)
		case ClusterNetworkPolicy:
			err = out.addClusterNetworkPolicy(&opts, c)
		case AdminNetworkPolicy:
			err = out.addAdminNetworkPolicy(&opts, c)
		case Calico:
			out.addCalico(&opts)
		case Cilium:
			out.addCilium(&opts)
		case Admission:
			out.addAdmission(&opts, c)
		case Node:
			err = out.addNode(&opts)
		case EC2:
			out.addEC2(&opts)
		}
		if err != nil {
			return nil, err
		}
	}
	if c != nil {
		out.Notes = append(out.Notes, hostNetworkNote(&opts, c)...)
		out.Notes = append(out.Notes, exemptionNote(&opts, c)...)
	}
	return out, nil
}

// validate checks that the options fit together.
func (o *Options) validate() error {
	if len(credentials(o.Endpoints)) == 0 {
		return errors.New("no credential-bearing endpoint is selected: nothing to deny")
	}
	for _, l := range o.Layers {
		if !slices.Contains(Layers, l) {
			return fmt.Errorf("unknown layer %q (want %s)", l, layerList(Layers))
		}
		if !l.applies(o.Endpoints) {
			return fmt.Errorf("the %s layer applies to AWS only: select --cloud aws", l)
		}
	}
	if slices.Contains(o.Layers, NetworkPolicy) && o.Inventory == nil {
		return ErrNeedsInventory
	}
	if len(o.Namespaces) > 0 && !slices.Contains(o.Layers, NetworkPolicy) {
		return errors.New("--namespace limits the networkpolicy layer, which is not selected")
	}
	for _, names := range []struct {
		flag  string
		names []string
	}{{"--namespace", o.Namespaces}, {"--exempt-namespace", o.ExemptNamespaces}, {"--hostnetwork-namespace", o.HostNetworkNamespaces}} {
		for _, n := range names.names {
			if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
				return fmt.Errorf("%s %q is not a namespace name: %s", names.flag, n, strings.Join(errs, "; "))
			}
		}
	}
	for _, n := range o.Namespaces {
		if slices.Contains(o.ExemptNamespaces, n) {
			return fmt.Errorf("namespace %s is both requested with --namespace and exempt with --exempt-namespace", n)
		}
		if o.Inventory != nil && o.Inventory.Namespaces[n] == nil {
			return fmt.Errorf("namespace %s is not in the input: without its pods and NetworkPolicies the networkpolicy layer cannot tell whether a policy there is safe", n)
		}
	}
	if o.ExemptionLabel != "" {
		if errs := validation.IsQualifiedName(o.ExemptionLabel); len(errs) > 0 {
			return fmt.Errorf("--exempt-pod-label %q is not a label key: %s", o.ExemptionLabel, strings.Join(errs, "; "))
		}
	}
	if o.AdminPriority < 0 || o.AdminPriority > 1000 {
		return fmt.Errorf("--priority %d is out of range 0-1000", o.AdminPriority)
	}
	return nil
}

// checkInput refuses an inventory with documents that could not be read, or with
// NetworkPolicies, AdminNetworkPolicies, BaselineAdminNetworkPolicies or ClusterNetworkPolicies
// the evaluator left out (the API server would reject them, or, beside Cilium policies, their
// combination is not modelled): the safety check and the verification rest on those, and
// generating from a partial picture could widen egress the input does not show. Calico and
// Cilium policies the evaluator leaves out are not an input error: the networkpolicy layer
// refuses the namespaces they concern (see unmodelledPolicies), and a deny cannot widen.
func checkInput(inv *inventory.Inventory) error {
	problems := slices.Clone(inv.Problems)
	for _, p := range policy.Compile(inv).Rejected {
		if p.Object == nil || slices.Contains(evaluatedKinds, p.Object.Kind) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return &InputError{Problems: problems}
	}
	return nil
}

// evaluatedKinds are the policy kinds the safety check and the verification evaluate.
var evaluatedKinds = []string{"NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy",
	"ClusterNetworkPolicy.networking.k8s.aws"}

// objectMeta is the metadata of a generated object: its name, namespace, the managed-by label
// and a description.
func objectMeta(name, namespace, description string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   namespace,
		Labels:      map[string]string{ManagedByLabel: ManagedBy},
		Annotations: map[string]string{DescriptionAnnotation: description},
	}
}

func (out *Output) addNetworkPolicies(opts *Options, c *cluster) error {
	policies, refusals := networkPolicyLayer(opts, c)
	out.Refusals = append(out.Refusals, refusals...)
	if len(policies) == 0 {
		return nil
	}
	namespaces := make([]string, len(policies))
	for i, np := range policies {
		namespaces[i] = np.Namespace
	}
	scope := Scope{Namespaces: namespaces, ExemptionLabel: opts.ExemptionLabel}
	if err := verify(withSamples(c.inv, namespaces), opts.Endpoints, Policies{NetworkPolicies: policies}, scope, opts.Enforcement, "networkpolicy layer"); err != nil {
		return err
	}
	for _, np := range policies {
		out.Manifests = append(out.Manifests, Manifest{Layer: NetworkPolicy, Comment: networkPolicyComment(np, opts.ExemptionLabel), Object: np})
	}
	return nil
}

func (out *Output) addClusterNetworkPolicy(opts *Options, c *cluster) error {
	cnp := buildClusterNetworkPolicy(opts, opts.ClusterNetworkPolicyAPIVersion)
	inv := &inventory.Inventory{}
	if c != nil {
		inv = c.inv
	}
	inv = withSamples(inv, append([]string{SampleWorkload}, opts.ExemptNamespaces...))
	scope := Scope{ExemptNamespaces: opts.ExemptNamespaces}
	if err := verify(inv, opts.Endpoints, Policies{ClusterNetworkPolicies: []*cnpv1beta1.ClusterNetworkPolicy{cnp}}, scope, opts.Enforcement, "clusternetworkpolicy layer"); err != nil {
		return err
	}
	out.Manifests = append(out.Manifests, Manifest{Layer: ClusterNetworkPolicy, Comment: clusterNetworkPolicyComment(opts), Object: cnp})
	return nil
}

func (out *Output) addAdminNetworkPolicy(opts *Options, c *cluster) error {
	anp := buildAdminNetworkPolicy(opts)
	inv := &inventory.Inventory{}
	if c != nil {
		inv = c.inv
	}
	// A pod in a namespace the policy must cover and one in each exempt namespace: checked
	// even when the input has no pod there, or no input is given.
	inv = withSamples(inv, append([]string{SampleWorkload}, opts.ExemptNamespaces...))
	scope := Scope{ExemptNamespaces: opts.ExemptNamespaces}
	if err := verify(inv, opts.Endpoints, Policies{AdminNetworkPolicies: []*anpv1alpha1.AdminNetworkPolicy{anp}}, scope, opts.Enforcement, "adminnetworkpolicy layer"); err != nil {
		return err
	}
	out.Manifests = append(out.Manifests, Manifest{Layer: AdminNetworkPolicy, Comment: adminNetworkPolicyComment(opts), Object: anp})
	return nil
}

// hostNetworkNote names the hostNetwork pods and templates the selected network policy layers
// target but cannot cover: no network policy applies to a pod on the node's network.
func hostNetworkNote(opts *Options, c *cluster) []string {
	if !slices.ContainsFunc(opts.Layers, selectsPods) {
		return nil
	}
	var uncovered []string
	for i, s := range c.policySubjects {
		if s.HostNetwork && !slices.Contains(opts.ExemptNamespaces, s.Namespace) &&
			c.reportable(i) {
			uncovered = append(uncovered, c.subjects[i].Ref().String())
		}
	}
	if len(uncovered) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s %s hostNetwork: no NetworkPolicy, AdminNetworkPolicy, Calico or Cilium policy applies to a pod on the node's network; keep such pods off it with the admission layer, or cover them with the node agent",
		listSome(uncovered, 5), verb(len(uncovered), "uses", "use"))}
}

// exemptionNote names the pods and templates carrying the exemption label that a selected
// cluster-wide layer denies all the same.
func exemptionNote(opts *Options, c *cluster) []string {
	var clusterWide []string
	for _, l := range []Layer{AdminNetworkPolicy, Calico, Cilium} {
		if slices.Contains(opts.Layers, l) {
			clusterWide = append(clusterWide, string(l))
		}
	}
	if opts.ExemptionLabel == "" || len(clusterWide) == 0 {
		return nil
	}
	var labelled []string
	for i, s := range c.policySubjects {
		if !s.HostNetwork && s.Labels[opts.ExemptionLabel] == ExemptionValue && !slices.Contains(opts.ExemptNamespaces, s.Namespace) &&
			c.reportable(i) {
			labelled = append(labelled, c.subjects[i].Ref().String())
		}
	}
	if len(labelled) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s %s %s=%s: the networkpolicy layer leaves such pods alone, the cluster-wide %s layers deny them all the same (a label any pod author can set must not undo a cluster-wide deny); exempt their namespace with --exempt-namespace if they must keep access",
		listSome(labelled, 5), verb(len(labelled), "carries", "carry"), opts.ExemptionLabel, ExemptionValue, strings.Join(clusterWide, ", "))}
}

// verb picks the singular or plural form for a count.
func verb(n int, singular, plural string) string {
	if n == 1 {
		return singular
	}
	return plural
}
