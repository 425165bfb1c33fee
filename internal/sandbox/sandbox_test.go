package sandbox

import (
	"context"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	RunHelperIfRequested()
	os.Exit(m.Run())
}

// TestSandboxWithoutFirewall is the baseline every firewall test relies on: with no rules,
// every pod, hostNetwork pod and node daemon reaches every endpoint, over IPv4 and IPv6.
func TestSandboxWithoutFirewall(t *testing.T) {
	t.Parallel()
	s := New(t)
	ctx := context.Background()
	pods := []*Pod{s.AddPod(t, VPCCNI), s.AddPod(t, Bridge), s.AddPod(t, BranchENI)}
	for _, p := range pods {
		for _, req := range []Request{AWSCredentials, AWSCredentialsIPv6, GCPToken, AzureToken, WireServerGoalState, WireServerHostPlugin, PodIdentity, PodIdentityIPv6} {
			if err := p.NS.Fetch(ctx, req); err != nil {
				t.Errorf("%s pod %s: %v", p.CNI, p.Name, err)
			}
		}
		for _, network := range []string{"udp", "tcp"} {
			if err := p.NS.DNS(ctx, network); err != nil {
				t.Errorf("%s pod %s: %v", p.CNI, p.Name, err)
			}
		}
	}
	if err := s.Node.Fetch(ctx, AWSCredentials); err != nil {
		t.Errorf("node: %v", err)
	}
	if err := s.AddHostNetworkPod(t).Fetch(ctx, AWSCredentialsIPv6); err != nil {
		t.Errorf("hostNetwork pod: %v", err)
	}
	if err := s.FetchAsNodeDaemon(ctx, AWSCredentials); err != nil {
		t.Errorf("node daemon: %v", err)
	}
}

// TestEmulatorSpeaksEachCloud checks the emulator's protocol rules: IMDSv2 tokens, GCP's and
// Azure's required headers.
func TestEmulatorSpeaksEachCloud(t *testing.T) {
	t.Parallel()
	s := New(t)
	ctx := context.Background()
	if err := s.Node.Fetch(ctx, AWSToken); err != nil {
		t.Errorf("IMDSv2 token: %v", err)
	}
	noFlavor := GCPToken
	noFlavor.Header = nil
	if err := s.Node.Fetch(ctx, noFlavor); err == nil {
		t.Error("GCP answered without Metadata-Flavor: Google")
	}
	noMetadata := AzureToken
	noMetadata.Header = nil
	if err := s.Node.Fetch(ctx, noMetadata); err == nil {
		t.Error("Azure answered without Metadata: true")
	}
	s.IMDS.SetAWS(AWSOptions{TokensRequired: true})
	if err := s.Node.Fetch(ctx, AWSCredentials); err == nil {
		t.Error("IMDSv1 request answered while IMDSv2 is required")
	}
}

// TestHopLimitOneKeepsPodsOut shows the EKS guide's other defence: with IMDSv2 responses sent
// with hop limit 1, a pod's answer dies at the node's forwarding step while the node itself is
// answered.
func TestHopLimitOneKeepsPodsOut(t *testing.T) {
	t.Parallel()
	s := New(t)
	ctx := context.Background()
	pod := s.AddPod(t, VPCCNI)
	if err := s.SetIMDSHopLimit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{AWSToken, AWSCredentials, AWSCredentialsIPv6} {
		if err := pod.NS.Fetch(ctx, req); err == nil {
			t.Errorf("pod reached %s with hop limit 1", req.URL)
		}
		if err := s.Node.Fetch(ctx, req); err != nil {
			t.Errorf("node with hop limit 1: %v", err)
		}
	}
	if err := s.SetIMDSHopLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := pod.NS.Fetch(ctx, AWSCredentials); err != nil {
		t.Errorf("pod with hop limit 2: %v", err)
	}
}
