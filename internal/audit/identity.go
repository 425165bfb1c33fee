package audit

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
)

// Annotations and labels that give a pod an identity of its own.
const (
	annotationIRSA          = "eks.amazonaws.com/role-arn"
	annotationGKE           = "iam.gke.io/gcp-service-account"
	annotationAzureClientID = "azure.workload.identity/client-id"
	labelAzureUse           = "azure.workload.identity/use"
)

// identityOf names the pod identity a subject has, or "" when it has none.
func identityOf(s *Subject, inv *inventory.Inventory) string {
	if sa := inv.ServiceAccount(s.Namespace, serviceAccountName(s)); sa != nil {
		a := sa.ServiceAccount.Annotations
		switch {
		case a[annotationIRSA] != "":
			return "IRSA role " + a[annotationIRSA]
		case a[annotationGKE] != "":
			return "GKE workload identity " + a[annotationGKE]
		case a[annotationAzureClientID] != "" && s.Meta.Labels[labelAzureUse] == "true":
			return "Azure workload identity " + a[annotationAzureClientID]
		}
	}
	if usesPodIdentityAgent(s.Spec) {
		return "EKS Pod Identity"
	}
	for _, c := range allContainers(s.Spec) {
		if hasEnv(c, "AWS_ROLE_ARN") && hasEnv(c, "AWS_WEB_IDENTITY_TOKEN_FILE") {
			return "IRSA (injected environment)"
		}
	}
	return ""
}

// appendIdentityFindings appends subjects that can reach an instance metadata service of a cloud with
// pod identities and have no identity of their own: blocking metadata takes their cloud access.
func appendIdentityFindings(out []Finding, r *Report, inv *inventory.Inventory, u unit) []Finding {
	var reachable []string
	var without unit
	for _, i := range u {
		s := &r.Subjects[i]
		reaches := ""
		for j, ep := range r.Endpoints {
			if ep.Role == endpoint.Credentials && ep.Address != wireServer && identityCloud(ep) && r.Reachable(i, j) {
				reaches = ep.Name
				break
			}
		}
		if reaches == "" || identityOf(s, inv) != "" {
			continue
		}
		without = append(without, i)
		if len(reachable) == 0 || reachable[len(reachable)-1] != reaches {
			reachable = append(reachable, reaches)
		}
	}
	if len(without) == 0 {
		return out
	}
	s := &r.Subjects[without[0]]
	sa := serviceAccountName(s)
	note := ""
	if inv.ServiceAccount(s.Namespace, sa) == nil {
		note = fmt.Sprintf(" (service account %s/%s is not in the input, so its annotations are unknown)", s.Namespace, sa)
	}
	return append(out, Finding{Rule: RuleNoIdentity, Severity: RuleNoIdentity.Severity, Namespace: s.Namespace,
		Objects: objects(r, without), Endpoints: reachable,
		Message:     fmt.Sprintf("%s runs as service account %s with no pod identity%s and can reach %s today: if it calls cloud APIs it uses the node's credentials", describe(r, without), sa, note, strings.Join(reachable, ", ")),
		Remediation: fmt.Sprintf("Before blocking metadata access, give service account %s/%s its own identity if the workload calls cloud APIs: on EKS an IRSA role (annotation %s) or an EKS Pod Identity association; on GKE workload identity (annotation %s); on AKS Azure workload identity (annotation %s and pod label %s: \"true\").", s.Namespace, sa, annotationIRSA, annotationGKE, annotationAzureClientID, labelAzureUse),
	})
}

// identityCloud reports whether the endpoint belongs to a cloud with Kubernetes pod identities.
func identityCloud(ep endpoint.Endpoint) bool {
	return ep.HasCloud(endpoint.AWS) || ep.HasCloud(endpoint.GCP) || ep.HasCloud(endpoint.Azure)
}

// serviceAccountName returns the subject's service account, honouring the deprecated
// spec.serviceAccount field and the "default" the API server fills in.
func serviceAccountName(s *Subject) string {
	switch {
	case s.Spec.ServiceAccountName != "":
		return s.Spec.ServiceAccountName
	case s.Spec.DeprecatedServiceAccount != "":
		return s.Spec.DeprecatedServiceAccount
	}
	return "default"
}
