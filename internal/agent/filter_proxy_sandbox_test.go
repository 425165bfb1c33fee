package agent_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/compute/metadata"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsguard/imdsguard/internal/sandbox"
)

// podHTTP is an HTTP client whose connections are opened in the pod's network namespace.
func podHTTP(ns *sandbox.Netns) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
}

// TestFilterProxyWithRealClients: in filter mode, with the real proxy behind the real redirect,
// a pod's aws-sdk-go-v2 IMDS client gets an IMDSv2 token and the region while the instance
// requires tokens with a hop limit of 1 (the pod alone could not get a token), and fails
// cleanly on the node's credentials; Google's metadata client gets the project ID and is
// refused a token; no credential request ever reaches the metadata service. Across a restart of
// the agent, a prober that asks for the credentials all along never gets them.
func TestFilterProxyWithRealClients(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	ctx := context.Background()
	s.IMDS.SetAWS(sandbox.AWSOptions{TokensRequired: true, HopLimit: 1})
	statePath := filepath.Join(t.TempDir(), "state.json")
	agentProc := launchFilterAgentWith(t, s, statePath, filterAgentEnv+"_REAL_PROXY=1")

	aws := imds.New(imds.Options{HTTPClient: podHTTP(pod.NS), ClientEnableState: imds.ClientEnabled})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	region, err := aws.GetRegion(cctx, &imds.GetRegionInput{})
	if err != nil || region.Region != "eu-west-1" {
		t.Fatalf("the pod's AWS SDK through the proxy: region %+v, %v\nagent output:\n%s", region, err, agentProc.out.String())
	}
	if out, err := aws.GetMetadata(cctx, &imds.GetMetadataInput{Path: "iam/security-credentials/" + sandbox.EmulatorRole}); err == nil {
		t.Fatalf("the pod's AWS SDK got the node's credentials: %+v", out)
	}
	gcp := metadata.NewClient(podHTTP(pod.NS))
	if p, err := gcp.ProjectIDWithContext(cctx); err != nil || p != "sandbox-project" {
		t.Fatalf("the pod's Google client through the proxy: project %q, %v", p, err)
	}
	if tok, err := gcp.GetWithContext(cctx, "instance/service-accounts/default/token"); err == nil {
		t.Fatalf("the pod's Google client got a token: %q", tok)
	}

	// A prober asks for the credentials until the test ends; the agent is killed and started
	// again meanwhile (its rules stay: connections are refused while no proxy listens).
	var leaked, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := podHTTP(pod.NS)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://169.254.169.254/latest/meta-data/iam/security-credentials/" + sandbox.EmulatorRole)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			answered.Add(1)
			var b strings.Builder
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			resp.Body.Close()
			if strings.Contains(b.String(), sandbox.EmulatorAccessKey) {
				leaked.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	_ = agentProc.stop(syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	launchFilterAgentWith(t, s, statePath, filterAgentEnv+"_REAL_PROXY=1")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if leaked.Load() != 0 || answered.Load() == 0 {
		t.Errorf("prober: %d answers, %d with the node's credentials; want answers and none with credentials", answered.Load(), leaked.Load())
	}
	for _, p := range s.IMDS.IMDSPaths() {
		if strings.Contains(p, "/iam/") || strings.Contains(p, "service-accounts") {
			t.Errorf("the metadata service saw %q", p)
		}
	}
}
