package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Pinned sources of the policy CRDs the tests install.
const (
	networkPolicyAPIModule     = "sigs.k8s.io/network-policy-api@v0.1.7" // the last release with the v1alpha1 AdminNetworkPolicy CRDs
	clusterNetworkPolicyModule = "sigs.k8s.io/network-policy-api@v0.3.0"
	ciliumModule               = "github.com/cilium/cilium@v1.20.2"
)

// CRDSet names a group of CRDs a test can install.
type CRDSet string

// The CRD sets.
const (
	// AdminNetworkPolicy is policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy and
	// BaselineAdminNetworkPolicy, from the network-policy-api module's config/crd/standard.
	AdminNetworkPolicy CRDSet = "adminnetworkpolicy"
	// ClusterNetworkPolicy is policy.networking.k8s.io ClusterNetworkPolicy, served at v1alpha2
	// and v1beta1, from the network-policy-api v0.3.0 module's config/crd/standard.
	ClusterNetworkPolicy CRDSet = "clusternetworkpolicy"
	// AWSClusterNetworkPolicy is the AWS VPC CNI's networking.k8s.aws/v1alpha1
	// ClusterNetworkPolicy: a structural schema of our own in testdata/aws, written from the
	// published Go types (the CRD the VPC CNI installs is not vendored).
	AWSClusterNetworkPolicy CRDSet = "awsclusternetworkpolicy"
	// Karpenter is karpenter.k8s.aws/v1 EC2NodeClass and karpenter.sh/v1 NodeClaim: structural
	// schemas of our own in testdata/karpenter with the fields imdsguard reads (Karpenter's
	// module needs a newer Go).
	Karpenter CRDSet = "karpenter"
	// Cilium is cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, from the
	// cilium module.
	Cilium CRDSet = "cilium"
	// Calico is projectcalico.org/v3 GlobalNetworkPolicy, NetworkPolicy, Tier,
	// GlobalNetworkSet and NetworkSet: Calico's own CRDs (release v3.32.1) from
	// ../shared/crds/calico beside the repository, and a structural schema of our own in
	// testdata/calico for each one that folder does not hold (every one when it is absent).
	Calico CRDSet = "calico"
)

// CRDFiles returns the CRD manifests of a set, downloading the pinned Go module through the
// module proxy when it is not in the module cache yet.
func CRDFiles(set CRDSet) ([]string, error) {
	switch set {
	case AdminNetworkPolicy:
		dir, err := moduleDir(networkPolicyAPIModule)
		if err != nil {
			return nil, err
		}
		std := filepath.Join(dir, "config", "crd", "standard")
		return []string{
			filepath.Join(std, "policy.networking.k8s.io_adminnetworkpolicies.yaml"),
			filepath.Join(std, "policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"),
		}, nil
	case ClusterNetworkPolicy:
		dir, err := moduleDir(clusterNetworkPolicyModule)
		if err != nil {
			return nil, err
		}
		return []string{filepath.Join(dir, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml")}, nil
	case AWSClusterNetworkPolicy:
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		return []string{filepath.Join(root, "internal", "kubetest", "testdata", "aws", "networking.k8s.aws_clusternetworkpolicies.yaml")}, nil
	case Karpenter:
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(root, "internal", "kubetest", "testdata", "karpenter")
		return []string{filepath.Join(dir, "karpenter.k8s.aws_ec2nodeclasses.yaml"), filepath.Join(dir, "karpenter.sh_nodeclaims.yaml")}, nil
	case Cilium:
		dir, err := moduleDir(ciliumModule)
		if err != nil {
			return nil, err
		}
		v2 := filepath.Join(dir, "pkg", "k8s", "apis", "cilium.io", "client", "crds", "v2")
		return []string{
			filepath.Join(v2, "ciliumnetworkpolicies.yaml"),
			filepath.Join(v2, "ciliumclusterwidenetworkpolicies.yaml"),
		}, nil
	case Calico:
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		const pattern = "projectcalico.org_*.yaml"
		// A missing shared folder globs to nothing: every file then comes from testdata.
		shared, err := filepath.Glob(filepath.Join(root, "..", "shared", "crds", "calico", pattern))
		if err != nil {
			return nil, err
		}
		own, err := filepath.Glob(filepath.Join(root, "internal", "kubetest", "testdata", "calico", pattern))
		if err != nil {
			return nil, err
		}
		have := map[string]bool{}
		for _, f := range shared {
			have[filepath.Base(f)] = true
		}
		files := shared
		for _, f := range own {
			if !have[filepath.Base(f)] {
				files = append(files, f)
			}
		}
		return files, nil
	}
	return nil, fmt.Errorf("kubetest: unknown CRD set %q", set)
}

// moduleDir returns the module cache directory of module@version.
func moduleDir(modVersion string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion) //nolint:gosec // pinned module constants
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubetest: go mod download %s: %w: %s%s", modVersion, err, stderr.String(), stdout.String())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return "", fmt.Errorf("kubetest: go mod download %s: %w", modVersion, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("kubetest: go mod download %s: %s", modVersion, info.Error)
	}
	return info.Dir, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates the CRDs of the given sets and waits until they are established and
// served.
func InstallCRDs(ctx context.Context, cfg *rest.Config, sets ...CRDSet) error {
	var files []string
	for _, s := range sets {
		f, err := CRDFiles(s)
		if err != nil {
			return err
		}
		if len(f) == 0 {
			return fmt.Errorf("kubetest: no CRD files for %s", s)
		}
		files = append(files, f...)
	}
	return InstallCRDFiles(ctx, cfg, files...)
}

// InstallCRDFiles creates the CRDs in the given YAML files (several documents each allowed)
// and waits until every one is established.
func InstallCRDFiles(ctx context.Context, cfg *rest.Config, files ...string) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	crds := client.Resource(crdResource)
	var names []string
	var served []schema.GroupVersionResource
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("kubetest: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("kubetest: %s: %w", file, err)
			}
			if obj.Object == nil {
				continue
			}
			if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("kubetest: create CRD %s from %s: %w", obj.GetName(), file, err)
			}
			names = append(names, obj.GetName())
			served = append(served, servedResources(&obj)...)
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			obj, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // not visible yet: poll again
			}
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("kubetest: CRD %s not established: %w", name, err)
		}
	}
	// Established comes before the handler serves the resource: wait until a List works.
	for _, gvr := range served {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := client.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("kubetest: %s not served: %w", gvr, err)
		}
	}
	return nil
}

// servedResources lists the resources a CRD object serves, one per served version.
func servedResources(crd *unstructured.Unstructured) []schema.GroupVersionResource {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var out []schema.GroupVersionResource
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); served {
			name, _ := m["name"].(string)
			out = append(out, schema.GroupVersionResource{Group: group, Version: name, Resource: plural})
		}
	}
	return out
}
