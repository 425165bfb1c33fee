package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// TestParse: --policy-engine NAME[@VERSION] gives what that engine enforces at that version,
// with its enforcement on and its gates at their defaults; version boundaries are exact.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec      string
		enforced  []policy.Kind
		semantics policy.Semantics
		engine    string
	}{
		{"calico@3.28.9", []policy.Kind{np, cal}, policy.SemanticsCalico, "Calico v3.28.9"},
		{"calico@3.29.0", []policy.Kind{np, anp, cal}, policy.SemanticsCalico, "Calico v3.29.0"},
		{"calico@3.30.0", []policy.Kind{np, anp, banp, cal}, policy.SemanticsCalico, "Calico v3.30.0"},
		{"calico@3.31.9", []policy.Kind{np, anp, banp, cal}, policy.SemanticsCalico, "Calico v3.31.9"},
		{"calico@v3.32.0", []policy.Kind{np, cnp, cal}, policy.SemanticsCalico, "Calico v3.32.0"},
		{"calico@3.32.1", []policy.Kind{np, cnp, cal}, policy.SemanticsCalico, "Calico v3.32.1"},
		{"calico", []policy.Kind{np, cal}, policy.SemanticsCalico, "Calico"},
		{"Canal@3.30.3", []policy.Kind{np, anp, banp, cal}, policy.SemanticsCalico, "Canal v3.30.3"},
		{"aws-vpc-cni", []policy.Kind{np}, policy.SemanticsKubernetes, "AWS VPC CNI"},
		{"aws-vpc-cni@1.13.4", nil, policy.SemanticsKubernetes, "AWS VPC CNI v1.13.4"},
		{"aws-vpc-cni@1.14.0", []policy.Kind{np}, policy.SemanticsKubernetes, "AWS VPC CNI v1.14.0"},
		{"aws-vpc-cni@1.21.0", []policy.Kind{np}, policy.SemanticsKubernetes, "AWS VPC CNI v1.21.0"},
		{"aws-vpc-cni@1.21.1", []policy.Kind{np, awsc}, policy.SemanticsKubernetes, "AWS VPC CNI v1.21.1"},
		{"eks-auto-mode", []policy.Kind{np, awsc}, policy.SemanticsKubernetes, "EKS Auto Mode"},
		{"cilium@1.18", []policy.Kind{np, cil}, policy.SemanticsCilium, "Cilium v1.18"},
		{"cilium@1.20.0", []policy.Kind{np, cil}, policy.SemanticsCilium, "Cilium v1.20.0"}, // KCNP is off by default
		{"gke-dataplane-v2", []policy.Kind{np}, policy.SemanticsCilium, "GKE Dataplane V2"},
		{"antrea@2.2.0", []policy.Kind{np}, policy.SemanticsKubernetes, "Antrea v2.2.0"}, // the ANP gate is off by default
		{"kube-network-policies@0.2.0", []policy.Kind{np}, policy.SemanticsKubernetes, "kube-network-policies v0.2.0"},
		{"kube-network-policies@1.0.0-npa-v1alpha1", []policy.Kind{np, anp, banp}, policy.SemanticsKubernetes, "kube-network-policies v1.0.0-npa-v1alpha1"},
		{"kube-network-policies@1.0.0-npa-v1alpha2", []policy.Kind{np, cnp}, policy.SemanticsKubernetes, "kube-network-policies v1.0.0-npa-v1alpha2"},
		{"ovn-kubernetes", []policy.Kind{np}, policy.SemanticsKubernetes, "OVN-Kubernetes"},
		{"kube-router@2.5.0", []policy.Kind{np}, policy.SemanticsKubernetes, "kube-router v2.5.0"},
		{"weave-net@2.8.1", []policy.Kind{np}, policy.SemanticsKubernetes, "Weave Net v2.8.1"},
		{"azure-npm", []policy.Kind{np}, policy.SemanticsKubernetes, "Azure NPM"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			e, err := Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if e.Assumed || e.Semantics != tc.semantics || e.Engine != tc.engine {
				t.Errorf("got %q, %s semantics, assumed %t; want %q, %s", e.Engine, e.Semantics, e.Assumed, tc.engine, tc.semantics)
			}
			if got := e.EnforcedKinds(); !slices.Equal(got, tc.enforced) {
				t.Errorf("enforced %v, want %v", got, tc.enforced)
			}
			for _, k := range policy.Kinds {
				if e.Kinds[k].Reason == "" {
					t.Errorf("%s: no reason", k)
				}
			}
		})
	}
}

// TestParseErrors: bad values name what is wrong and list the engines Parse knows.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "want NAME[@VERSION], NAME one of aws-vpc-cni, eks-auto-mode, calico"},
		{"flannel", `unknown engine "flannel": known engines are aws-vpc-cni, eks-auto-mode, calico, canal, cilium, gke-dataplane-v2, antrea, kube-network-policies, ovn-kubernetes, kube-router, weave-net, azure-npm`},
		{"calico@latest", `policy engine "calico@latest": version "latest" is not a version such as 3.32.1`},
		{"calico@3.32.1.4", `is not a version`},
		{"calico@", `version "" is not a version`},
	} {
		_, err := Parse(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error holding %q", tc.spec, err, tc.want)
		}
	}
}

// TestParseVersion: versions as image tags and flags write them.
func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   Version
		suffix string
		ok     bool
	}{
		{"v3.31.2", Version{3, 31, 2}, "", true},
		{"3.32", Version{3, 32, 0}, "", true},
		{"v1.19.0-eksbuild.1", Version{1, 19, 0}, "eksbuild.1", true},
		{"v1.0.0-npa-v1alpha2", Version{1, 0, 0}, "npa-v1alpha2", true},
		{"2.8.1", Version{2, 8, 1}, "", true},
		{"latest", Version{}, "", false},
		{"master", Version{}, "", false},
		{"", Version{}, "", false},
		{"1..2", Version{}, "", false},
	} {
		got, suffix, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || got != tc.want || suffix != tc.suffix {
			t.Errorf("ParseVersion(%q) = %v, %q, %v; want %v, %q, ok %t", tc.in, got, suffix, err, tc.want, tc.suffix, tc.ok)
		}
	}
	for _, tc := range []struct{ image, tag string }{
		{"quay.io/calico/node:v3.31.2", "v3.31.2"},
		{"quay.io/cilium/cilium:v1.18.2@sha256:abc", "v1.18.2"},
		{"registry.local:5000/calico/node", ""},
		{"registry.local:5000/calico/node:v3.30.0", "v3.30.0"},
		{"calico/node@sha256:abc", ""},
	} {
		if got := imageTag(tc.image); got != tc.tag {
			t.Errorf("imageTag(%q) = %q, want %q", tc.image, got, tc.tag)
		}
	}
}

// TestTableIsWellFormed: every row names a known engine, its versions parse and do not
// overlap another row of the same engine variant, every kind rule has a source.
func TestTableIsWellFormed(t *testing.T) {
	for i, r := range parsedTable {
		if _, ok := infoOf(r.Engine); !ok {
			t.Errorf("row %d: unknown engine %q", i, r.Engine)
		}
		if len(r.Sources) == 0 {
			t.Errorf("row %d (%s): no source", i, r.Engine)
		}
		for k := range r.Kinds {
			if !slices.Contains(policy.Kinds, k) {
				t.Errorf("row %d (%s): unknown kind %q", i, r.Engine, k)
			}
		}
		if r.since != nil && r.before != nil && !r.since.Less(*r.before) {
			t.Errorf("row %d (%s): empty range %s", i, r.Engine, r.rangeText())
		}
		for j, o := range parsedTable[:i] {
			if o.Engine != r.Engine || o.Variant != r.Variant {
				continue
			}
			// Two ranges overlap unless one ends where (or before) the other starts.
			apart := (o.before != nil && r.since != nil && !r.since.Less(*o.before)) ||
				(r.before != nil && o.since != nil && !o.since.Less(*r.before))
			if !apart {
				t.Errorf("rows %d and %d (%s %s) overlap: %s and %s", j, i, r.Engine, r.Variant, o.rangeText(), r.rangeText())
			}
		}
	}
	for _, e := range engines {
		if len(rowsFor(e.name, "")) == 0 {
			t.Errorf("engine %s has no row", e.name)
		}
	}
}
