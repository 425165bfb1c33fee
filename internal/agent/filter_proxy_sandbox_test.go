package agent_test

import (
	"context"
	"io"
	"net"
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

	"github.com/imdsguard/imdsguard/internal/filter/corpus"
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

// harmlessTargets are what the metadata service may ever receive through the filter: the
// resources the filter mode's design allows, per cloud (docs/agent.md), written out here
// independently of the policy data.
var harmlessTargets = map[string]bool{
	"PUT /latest/api/token": true, "GET /latest/meta-data/placement/region": true,
	"GET /latest/meta-data/placement/availability-zone": true, "GET /latest/meta-data/placement/availability-zone-id": true,
	"GET /latest/meta-data/instance-id": true, "GET /latest/meta-data/instance-type": true, "GET /latest/meta-data/ami-id": true,
	"GET /latest/dynamic/instance-identity/document": true,
	"GET /": true, "GET /computeMetadata/v1/project/project-id": true, "GET /computeMetadata/v1/project/numeric-project-id": true,
	"GET /computeMetadata/v1/instance/zone": true, "GET /computeMetadata/v1/instance/id": true,
	"GET /computeMetadata/v1/instance/hostname": true, "GET /computeMetadata/v1/instance/name": true,
	"GET /computeMetadata/v1/instance/attributes/cluster-name": true, "GET /computeMetadata/v1/instance/attributes/cluster-location": true,
	"GET /metadata/instance/compute/location": true, "GET /metadata/instance/compute/zone": true,
	"GET /metadata/instance/compute/vmId": true, "GET /metadata/instance/compute/azEnvironment": true, "GET /metadata/versions": true,
}

// TestBypassCorpusThroughTheRedirect sends every variant of the filter's bypass corpus from a
// pod, through the real redirect and the real proxy, to the address it names, and checks what
// reached the metadata service: only harmless resources, each in its canonical form, with a
// query only where the cloud needs one.
func TestBypassCorpusThroughTheRedirect(t *testing.T) {
	t.Parallel()
	s := sandbox.New(t)
	pod := s.AddPod(t, sandbox.VPCCNI)
	launchFilterAgentWith(t, s, filepath.Join(t.TempDir(), "state.json"), filterAgentEnv+"_REAL_PROXY=1")
	entries, err := corpus.Load(filepath.Join("..", "filter", "testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Sixteen at a time; each connection's write side is closed after the variant, so a proxy
	// waiting for the rest of a head sees the end at once.
	var sent atomic.Int64
	work := make(chan corpus.Entry)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for e := range work {
				dctx, cancel := context.WithTimeout(ctx, time.Second)
				c, err := pod.NS.DialContext(dctx, "tcp", e.Dst.String())
				cancel()
				if err != nil {
					continue // a destination the redirect does not serve is refused or dropped: nothing reaches the service
				}
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				_, _ = c.Write(e.Raw)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				sent.Add(1)
			}
		})
	}
	for _, e := range entries {
		work <- e
	}
	close(work)
	wg.Wait()
	if len(entries) < 300 || sent.Load() < 300 {
		t.Fatalf("%d corpus entries, %d sent: want at least 300 of each", len(entries), sent.Load())
	}
	reached := s.IMDS.IMDSPaths()
	if len(reached) == 0 {
		t.Fatal("nothing reached the metadata service: the allowed variants did not pass")
	}
	for _, p := range reached {
		target, query, _ := strings.Cut(p, "?")
		if !harmlessTargets[target] {
			t.Errorf("the metadata service received %q", p)
		}
		if query != "" && !strings.HasPrefix(target, "GET /computeMetadata/") && !strings.HasPrefix(target, "GET /metadata/instance/compute/") {
			t.Errorf("a query reached the metadata service where none is needed: %q", p)
		}
	}
	t.Logf("%d corpus variants sent from a pod, %d requests reached the metadata service, all harmless", sent.Load(), len(reached))
}
