package generate

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// hostNetworkTarget is one group of resources whose pod spec sits at the same path: one
// ValidatingAdmissionPolicy each, so every CEL expression type-checks against every kind it
// matches.
type hostNetworkTarget struct {
	suffix string
	// podSpec is the CEL path to the pod spec.
	podSpec string
	rules   []admissionregistrationv1.NamedRuleWithOperations
}

func resourceRule(group, version string, resources ...string) admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources},
	}}
}

var hostNetworkTargets = []hostNetworkTarget{
	{suffix: "pods", podSpec: "object.spec", rules: []admissionregistrationv1.NamedRuleWithOperations{
		resourceRule("", "v1", "pods"),
	}},
	{suffix: "templates", podSpec: "object.spec.template.spec", rules: []admissionregistrationv1.NamedRuleWithOperations{
		resourceRule("apps", "v1", "deployments", "statefulsets", "daemonsets", "replicasets"),
		resourceRule("batch", "v1", "jobs"),
		resourceRule("", "v1", "replicationcontrollers"),
	}},
	{suffix: "cronjobs", podSpec: "object.spec.jobTemplate.spec.template.spec", rules: []admissionregistrationv1.NamedRuleWithOperations{
		resourceRule("batch", "v1", "cronjobs"),
	}},
}

// admissionPolicyName names the policy (and its binding) for one target.
func admissionPolicyName(t hostNetworkTarget) string {
	return "imdsguard-deny-hostnetwork-" + t.suffix
}

// buildAdmission returns, per target, a ValidatingAdmissionPolicy that rejects hostNetwork:
// true and the binding that applies it with validationActions [Deny] outside the allowed
// namespaces.
func buildAdmission(opts *Options) []any {
	allowed := "in no namespace"
	if len(opts.HostNetworkNamespaces) > 0 {
		allowed = "only in " + strings.Join(opts.HostNetworkNamespaces, ", ")
	}
	why := "a pod on the node's network bypasses every NetworkPolicy and reaches the cloud instance metadata API (169.254.169.254) and the node's credentials; hostNetwork pods may run " + allowed
	failurePolicy := admissionregistrationv1.Fail
	var out []any
	for _, t := range hostNetworkTargets {
		name := admissionPolicyName(t)
		out = append(out, &admissionregistrationv1.ValidatingAdmissionPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
			ObjectMeta: objectMeta(name, "", "Rejects hostNetwork: true ("+t.suffix+") outside the allowed namespaces"),
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy:    &failurePolicy,
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: t.rules},
				Validations: []admissionregistrationv1.Validation{{
					Expression:        fmt.Sprintf("!has(%[1]s.hostNetwork) || %[1]s.hostNetwork == false", t.podSpec),
					Message:           "hostNetwork: true is not allowed in this namespace: " + why,
					MessageExpression: fmt.Sprintf("%q + request.kind.kind + %q + request.namespace + %q", "hostNetwork: true in ", " is not allowed in namespace ", ": "+why),
					Reason:            ptr(metav1.StatusReasonForbidden),
				}},
			},
		})
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
			ObjectMeta: objectMeta(name, "", "Applies "+name+" outside the namespaces allowed to run hostNetwork pods"),
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			},
		}
		if len(opts.HostNetworkNamespaces) > 0 {
			binding.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: exceptNamespaces(opts.HostNetworkNamespaces)}
		}
		out = append(out, binding)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func (out *Output) addAdmission(opts *Options, c *cluster) {
	objects := buildAdmission(opts)
	for i, obj := range objects {
		comment := ""
		if i == 0 {
			comment = `ValidatingAdmissionPolicies (GA since Kubernetes 1.30): reject hostNetwork: true in pods and in
the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and
ReplicationControllers outside the allowed namespaces. No network policy applies to a
hostNetwork pod, and an IMDS hop limit of 1 does not stop it: only admission and the node
agent's cgroup rule do. Existing pods keep running; their next update is rejected.
To roll out softly, set validationActions to [Warn, Audit] in the bindings first.`
		}
		out.Manifests = append(out.Manifests, Manifest{Layer: Admission, Object: obj, Comment: comment})
	}
	if c == nil {
		return
	}
	var blocked []string
	for i, s := range c.policySubjects {
		if s.HostNetwork && !slices.Contains(opts.HostNetworkNamespaces, s.Namespace) &&
			c.reportable(i) {
			blocked = append(blocked, c.subjects[i].Ref().String())
		}
	}
	if len(blocked) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("admission layer: %s %s hostNetwork outside the allowed namespaces: once the policies are in place, new pods and updates are rejected; allow the namespace with --hostnetwork-namespace, or take the workload off the host network",
			listSome(blocked, 5), verb(len(blocked), "uses", "use")))
	}
}
