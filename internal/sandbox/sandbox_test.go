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

// TestEmulatorFollowsAWSOptions: the emulator answers as EC2 does under each metadata option:
// tokens required refuses IMDSv1 but issues tokens; a disabled endpoint refuses everything; a
// hop limit of 1 on the token response keeps a pod (one forwarding step further) from getting a
// token while the node gets one, and 2 lets the pod have it; the IPv6 endpoint can be off.
func TestEmulatorFollowsAWSOptions(t *testing.T) {
	t.Parallel()
	s := New(t)
	ctx := context.Background()
	pod := s.AddPod(t, VPCCNI)

	s.IMDS.SetAWS(AWSOptions{TokensRequired: true})
	Verify(t,
		FetchCheck("node, tokens required", s.Node.Fetch, AWSCredentials, false),
		FetchCheck("node, tokens required", s.Node.Fetch, AWSToken, true),
	)
	s.IMDS.SetAWS(AWSOptions{EndpointDisabled: true})
	Verify(t,
		FetchCheck("node, endpoint disabled", s.Node.Fetch, AWSCredentials, false),
		FetchCheck("node, endpoint disabled", s.Node.Fetch, AWSToken, false),
		FetchCheck("node, endpoint disabled", s.Node.Fetch, GCPToken, true),
	)
	s.IMDS.SetAWS(AWSOptions{HopLimit: 1})
	Verify(t,
		FetchCheck("node, hop limit 1", s.Node.Fetch, AWSToken, true),
		FetchCheck("pod, hop limit 1", pod.NS.Fetch, AWSToken, false),
		// The limit is on the token response only: IMDSv1 still answers the pod.
		FetchCheck("pod, hop limit 1", pod.NS.Fetch, AWSCredentials, true),
	)
	s.IMDS.SetAWS(AWSOptions{HopLimit: 2})
	Verify(t, FetchCheck("pod, hop limit 2", pod.NS.Fetch, AWSToken, true))
	s.IMDS.SetAWS(AWSOptions{IPv6Disabled: true})
	Verify(t,
		FetchCheck("node, IPv6 endpoint off", s.Node.Fetch, AWSCredentialsIPv6, false),
		FetchCheck("node, IPv6 endpoint off", s.Node.Fetch, AWSCredentials, true),
	)
	if err := s.Node.Fetch(ctx, AWSCredentialsIPv6); err == nil {
		t.Error("fd00:ec2::254 answered with the IPv6 endpoint off")
	}
}
