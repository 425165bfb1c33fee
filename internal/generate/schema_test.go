package generate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/kubetest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/yaml"
)

// crdSchemas returns the published CRD schemas the generated custom resources must conform
// to, by kind: the same files the API server tests install (kubetest.CRDFiles: the Calico CRDs
// beside the repository, the AdminNetworkPolicy and Cilium CRDs from their Go modules).
func crdSchemas(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for kind, want := range map[string]struct {
		set  kubetest.CRDSet
		name string
	}{
		"Tier":                           {kubetest.Calico, "projectcalico.org_tiers.yaml"},
		"GlobalNetworkPolicy":            {kubetest.Calico, "projectcalico.org_globalnetworkpolicies.yaml"},
		"AdminNetworkPolicy":             {kubetest.AdminNetworkPolicy, "policy.networking.k8s.io_adminnetworkpolicies.yaml"},
		"ClusterNetworkPolicy":           {kubetest.ClusterNetworkPolicy, "policy.networking.k8s.io_clusternetworkpolicies.yaml"},
		"CiliumClusterwideNetworkPolicy": {kubetest.Cilium, "ciliumclusterwidenetworkpolicies.yaml"},
	} {
		paths, err := kubetest.CRDFiles(want.set)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if filepath.Base(p) == want.name {
				files[kind] = p
			}
		}
		if files[kind] == "" {
			t.Fatalf("no %s among the %s CRDs %v", want.name, want.set, paths)
		}
	}
	return files
}

// strictSchema turns a CRD's structural OpenAPI schema into a JSON Schema that also refuses
// fields the CRD does not declare (the API server would silently prune them: a misspelt field
// would be lost, not rejected). x-kubernetes-int-or-string becomes integer-or-string; CEL
// rules (x-kubernetes-validations) are not evaluated here: the real API server tests do that.
func strictSchema(node any) any {
	switch n := node.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, v := range n {
			out[k] = strictSchema(v)
		}
		// Only object schemas: the property lists inside anyOf/oneOf branches (no type) say
		// which fields must be present, not which may.
		if _, ok := n["properties"]; ok && n["type"] == "object" {
			if _, open := n["additionalProperties"]; !open && n["x-kubernetes-preserve-unknown-fields"] != true {
				out["additionalProperties"] = false
			}
		}
		if n["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			if _, ok := out["anyOf"]; !ok {
				out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = strictSchema(v)
		}
		return out
	}
	return node
}

func compileCRD(t *testing.T, path string) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	js, err := json.Marshal(strictSchema(crd.Spec.Versions[0].Schema.OpenAPIV3Schema))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("crd.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("crd.json")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// TestCustomResourcesMatchTheirCRDs validates the Calico, Cilium, ClusterNetworkPolicy and AdminNetworkPolicy
// objects against the published CRD schemas, for every cloud and with and without exempt
// namespaces.
func TestCustomResourcesMatchTheirCRDs(t *testing.T) {
	schemas := crdSchemas(t)
	compiled := map[string]*jsonschema.Schema{}
	for _, exempt := range [][]string{DefaultExemptNamespaces, nil, {"kube-system", "monitoring"}} {
		o := DefaultOptions(eps(endpoint.All, endpoint.ECS))
		o.ExemptNamespaces = exempt
		o.Layers = []Layer{ClusterNetworkPolicy, AdminNetworkPolicy, Calico, Cilium}
		out := mustGenerate(t, o)
		for _, m := range out.Manifests {
			obj, err := normalize(m.Object)
			if err != nil {
				t.Fatal(err)
			}
			kind := obj["kind"].(string)
			path, ok := schemas[kind]
			if !ok {
				t.Fatalf("no CRD for kind %s", kind)
			}
			t.Run(kind, func(t *testing.T) {
				if compiled[kind] == nil {
					compiled[kind] = compileCRD(t, path)
				}
				js, _ := json.Marshal(obj)
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
				if err != nil {
					t.Fatal(err)
				}
				if err := compiled[kind].Validate(inst); err != nil {
					t.Errorf("%s does not match its CRD %s:\n%v\n%s", kind, path, err, js)
				}
			})
		}
	}
}

// TestBuiltinObjectsDecodeStrictly reads the YAML stream back into the API types, refusing
// unknown fields, and requires what was written to be what was built. The stream also loads
// through imdsguard's own loader without a problem.
func TestBuiltinObjectsDecodeStrictly(t *testing.T) {
	o := options(load(t, mixedDir), []Layer{NetworkPolicy, AdminNetworkPolicy, Admission}, endpoint.All)
	out := mustGenerate(t, o)
	stream, err := RenderManifests(out.Manifests, YAML, out.Summary())
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(stream), "\n---\n")[1:]
	if len(docs) != len(out.Manifests) {
		t.Fatalf("%d documents for %d objects", len(docs), len(out.Manifests))
	}
	var policies, bindings []string
	for i, doc := range docs {
		var got any
		switch want := out.Manifests[i].Object.(type) {
		case *networkingv1.NetworkPolicy:
			got = &networkingv1.NetworkPolicy{}
		case *anpv1alpha1.AdminNetworkPolicy:
			got = &anpv1alpha1.AdminNetworkPolicy{}
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			got = &admissionregistrationv1.ValidatingAdmissionPolicy{}
			policies = append(policies, want.Name)
			if want.Spec.FailurePolicy == nil || *want.Spec.FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("%s: failurePolicy must be Fail", want.Name)
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			got = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			bindings = append(bindings, want.Spec.PolicyName)
			if len(want.Spec.ValidationActions) != 1 || want.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
				t.Errorf("%s: validationActions must be [Deny]", want.Name)
			}
		default:
			t.Fatalf("unexpected %T", want)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), got); err != nil {
			t.Fatalf("document %d does not decode strictly: %v\n%s", i+1, err, doc)
		}
		if !reflect.DeepEqual(got, out.Manifests[i].Object) {
			t.Errorf("document %d decodes to something else than was built:\n%s", i+1, doc)
		}
	}
	if strings.Join(policies, ",") != strings.Join(bindings, ",") || len(policies) != 3 {
		t.Errorf("policies %v and bindings %v must pair up, one each for pods, templates and cronjobs", policies, bindings)
	}

	path := filepath.Join(t.TempDir(), "generated.yaml")
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 || len(inv.NetworkPolicies) != 2 || len(inv.AdminNetworkPolicies) != 1 {
		t.Errorf("the stream loads with problems %v, %d NetworkPolicies, %d AdminNetworkPolicies", inv.Problems, len(inv.NetworkPolicies), len(inv.AdminNetworkPolicies))
	}
}

func TestAdmissionExpressions(t *testing.T) {
	o := DefaultOptions(eps(endpoint.AWS))
	o.HostNetworkNamespaces = []string{"kube-system", "monitoring"}
	objs := buildAdmission(&o)
	want := map[string]string{
		"imdsguard-deny-hostnetwork-pods":      "!has(object.spec.hostNetwork) || object.spec.hostNetwork == false",
		"imdsguard-deny-hostnetwork-templates": "!has(object.spec.template.spec.hostNetwork) || object.spec.template.spec.hostNetwork == false",
		"imdsguard-deny-hostnetwork-cronjobs":  "!has(object.spec.jobTemplate.spec.template.spec.hostNetwork) || object.spec.jobTemplate.spec.template.spec.hostNetwork == false",
	}
	for _, obj := range objs {
		switch p := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			if got := p.Spec.Validations[0].Expression; got != want[p.Name] {
				t.Errorf("%s: expression %q, want %q", p.Name, got, want[p.Name])
			}
			if msg := p.Spec.Validations[0].MessageExpression; !strings.HasPrefix(msg, `"hostNetwork: true in " + request.kind.kind + " is not allowed in namespace " + request.namespace + ": `) ||
				!strings.HasSuffix(msg, `only in kube-system, monitoring"`) || strings.Contains(msg, "\n") {
				t.Errorf("%s: messageExpression %q", p.Name, msg)
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			sel := p.Spec.MatchResources.NamespaceSelector.MatchExpressions[0]
			if sel.Key != "kubernetes.io/metadata.name" || sel.Operator != "NotIn" || strings.Join(sel.Values, ",") != "kube-system,monitoring" {
				t.Errorf("%s: namespaceSelector %+v", p.Name, sel)
			}
		}
	}
	o.HostNetworkNamespaces = nil
	for _, obj := range buildAdmission(&o) {
		if b, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding); ok && b.Spec.MatchResources != nil {
			t.Errorf("%s: with no allowed namespace the binding must match every namespace, got %+v", b.Name, b.Spec.MatchResources)
		}
	}
}
