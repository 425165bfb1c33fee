package policy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/kubetest"
)

// TestClusterNetworkPolicyValidationAgreesWithAPIServer submits every case of
// cnpValidationCases to a real API server with network-policy-api v0.3.0's experimental
// ClusterNetworkPolicy CRD (the standard one drops nodes, domainNames and destinationNamedPort),
// as a dry run, at v1beta1 and v1alpha2: what the evaluator rejects as invalid the API server
// refuses, what it reports as undefined the API server stores, and the policies at the limits
// are accepted by both.
func TestClusterNetworkPolicyValidationAgreesWithAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	files, err := kubetest.CRDFiles(kubetest.ClusterNetworkPolicy)
	if err != nil {
		t.Fatal(err)
	}
	experimental := filepath.Join(filepath.Dir(filepath.Dir(files[0])), "experimental", filepath.Base(files[0]))
	if err := kubetest.InstallCRDFiles(ctx, cp.Config("admin"), experimental); err != nil {
		t.Fatal(err)
	}
	applier, err := kubetest.NewApplier(cp.Config("admin"))
	if err != nil {
		t.Fatal(err)
	}
	dryRun := func(manifest string) error {
		objs, err := kubetest.Decode([]byte(manifest))
		if err != nil {
			t.Fatal(err)
		}
		return applier.Apply(ctx, objs, true)
	}
	for _, apiVersion := range []string{"policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"} {
		for i, c := range cnpValidationCases() {
			err := dryRun(clusterNPAt(apiVersion, fmt.Sprintf("case-%d", i), c.spec))
			switch {
			case c.apiServerRefuses && err == nil:
				t.Errorf("%s, %s: the evaluator rejects it as invalid (%s: %s), but the API server accepts it", apiVersion, c.name, c.field, c.message)
			case !c.apiServerRefuses && err != nil:
				t.Errorf("%s, %s: the API server refuses it (%v), but the evaluator calls it valid and undefined", apiVersion, c.name, err)
			}
		}
		atLimits := strings.ReplaceAll(cnpAtTheLimits(), "policy.networking.k8s.io/v1beta1", apiVersion)
		if err := dryRun(atLimits); err != nil {
			t.Errorf("%s: the API server refuses the policies at the limits: %v", apiVersion, err)
		}
	}
}
