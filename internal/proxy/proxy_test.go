package proxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/compute/metadata"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/proxy"
)

// The upstream below answers in the shape of the EC2 instance metadata service and the GCE
// metadata server (the documented paths and headers); the clients are the real SDKs' metadata
// clients. The redirect is left out here: OriginalDst says which metadata address a connection
// meant, and Dial carries it to the local upstream. internal/agent's sandbox tests run the
// whole path with real nftables.

var imdsAddr = netip.MustParseAddrPort("169.254.169.254:80")

// upstream is a metadata service that records what reached it.
type upstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *upstream) paths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, r.Method+" "+r.URL.RequestURI())
	u.mu.Unlock()
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "X-Forwarded-For is refused", http.StatusForbidden) // as EC2 does
		return
	}
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		_, _ = io.WriteString(w, "token-123")
	case strings.HasPrefix(r.URL.Path, "/latest/"):
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "token-123" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/placement/region":
			_, _ = io.WriteString(w, "eu-west-1")
		case "/latest/dynamic/instance-identity/document":
			_, _ = io.WriteString(w, `{"accountId":"111122223333","region":"eu-west-1","instanceId":"i-0abc"}`)
		case "/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials/node-role":
			_, _ = io.WriteString(w, `{"AccessKeyId":"AKIASECRET"}`)
		default:
			http.NotFound(w, r)
		}
	case strings.HasPrefix(r.URL.Path, "/computeMetadata/v1/"):
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		switch r.URL.Path {
		case "/computeMetadata/v1/project/project-id":
			_, _ = io.WriteString(w, "my-project")
		case "/computeMetadata/v1/instance/zone":
			_, _ = io.WriteString(w, "projects/123/zones/europe-west1-b")
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			_, _ = io.WriteString(w, `{"access_token":"ya29.SECRET"}`)
		default:
			http.NotFound(w, r)
		}
	default:
		http.NotFound(w, r)
	}
}

// viaProxy is an HTTP client whose every connection goes to the proxy at addr, whatever address
// the request names: what the redirect does to a pod's connections to the metadata service. The
// clients then send the Host header they send to the real service.
func viaProxy(addr string) *http.Client {
	var d net.Dialer
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// start runs the proxy in front of a recording upstream and returns the proxy's address.
func start(t *testing.T) (string, *upstream, *proxy.Stats) {
	t.Helper()
	return startWith(t, func(*proxy.Server) {})
}

// startWith is start with the proxy adjusted by tune before it serves.
func startWith(t *testing.T, tune func(*proxy.Server)) (string, *upstream, *proxy.Stats) {
	t.Helper()
	up := &upstream{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stats := &proxy.Stats{}
	p := &proxy.Server{
		Policy:      filter.DefaultPolicy(),
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return imdsAddr, nil },
		Allowed:     func(dst netip.AddrPort) bool { return dst == imdsAddr },
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != imdsAddr.String() {
				return nil, errors.New("dial to an address that is not the metadata service: " + addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
		Stats: stats,
	}
	tune(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), up, stats
}

// TestAWSSDKThroughTheProxy: aws-sdk-go-v2's IMDS client gets a token (IMDSv2) and the region
// through the proxy, and fails cleanly on the node's credentials, which never reach the upstream.
func TestAWSSDKThroughTheProxy(t *testing.T) {
	addr, up, stats := start(t)
	client := imds.New(imds.Options{HTTPClient: viaProxy(addr), ClientEnableState: imds.ClientEnabled})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	region, err := client.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || region.Region != "eu-west-1" {
		t.Fatalf("GetRegion through the proxy: %+v, %v", region, err)
	}
	if _, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"}); err == nil {
		t.Fatal("the node's credentials came through the proxy")
	}
	for _, p := range up.paths() {
		if strings.Contains(p, "/iam/") {
			t.Errorf("the upstream saw %q", p)
		}
	}
	if stats.Requests("aws", "aws:identity-document", "allowed") == 0 || stats.Requests("aws", "aws:token", "allowed") == 0 ||
		stats.Requests("aws", "aws:credentials", "denied") == 0 {
		var b strings.Builder
		_, _ = stats.WriteTo(&b)
		t.Errorf("the token and region requests were not counted as allowed, or the credentials as denied (upstream saw %q):\n%s", up.paths(), b.String())
	}
}

// TestGoogleClientThroughTheProxy: cloud.google.com/go/compute/metadata gets the project ID and
// the zone through the proxy and is refused a token.
func TestGoogleClientThroughTheProxy(t *testing.T) {
	addr, up, _ := start(t)
	t.Setenv("GCE_METADATA_HOST", "")
	c := metadata.NewClient(viaProxy(addr))
	ctx := context.Background()
	if p, err := c.ProjectIDWithContext(ctx); err != nil || p != "my-project" {
		t.Fatalf("project ID through the proxy: %q, %v", p, err)
	}
	if z, err := c.ZoneWithContext(ctx); err != nil || z != "europe-west1-b" {
		t.Fatalf("zone through the proxy: %q, %v", z, err)
	}
	if tok, err := c.GetWithContext(ctx, "instance/service-accounts/default/token"); err == nil {
		t.Fatalf("a token came through the proxy: %q", tok)
	}
	for _, p := range up.paths() {
		if strings.Contains(p, "service-accounts") {
			t.Errorf("the upstream saw %q", p)
		}
	}
}

// TestRawBypassesNeverReachTheUpstream: requests written by hand, as an attacker would, are
// answered by the proxy and never forwarded.
func TestRawBypassesNeverReachTheUpstream(t *testing.T) {
	addr, up, _ := start(t)
	for _, raw := range []string{
		"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET /latest/meta-data/iam/security-credentials HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET /latest/meta-data/placement/../iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET /latest/meta-data/%69am/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET http://169.254.169.254/latest/meta-data/iam/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: 169.254.169.254\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /latest/meta-data/iam/ HTTP/1.1\r\n\r\n",
		"GET /computeMetadata/v1/instance/attributes/kube-env HTTP/1.1\r\nHost: metadata\r\nMetadata-Flavor: Google\r\n\r\n",
		"GET /computeMetadata/v1/instance/attributes/KUBE-ENV HTTP/1.1\r\nHost: metadata\r\nMetadata-Flavor: Google\r\n\r\n",
		"GET /computeMetadata/v1/instance/?recursive=true&alt=text HTTP/1.1\r\nHost: metadata\r\nMetadata-Flavor: Google\r\n\r\n",
		"CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, raw)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(answer), "HTTP/1.1 4") {
			t.Errorf("%q answered %q, want a 4xx", raw, answer)
		}
	}
	if seen := up.paths(); len(seen) > 0 {
		t.Errorf("the upstream saw %q", seen)
	}
}

// TestObservePassesWhatItWouldDeny: in observe mode a canonical request the policy denies is
// passed on and counted as observed, while a request that does not parse is still refused.
func TestObservePassesWhatItWouldDeny(t *testing.T) {
	addr, up, stats := startWith(t, func(p *proxy.Server) { p.Observe = true })
	client := imds.New(imds.Options{HTTPClient: viaProxy(addr), ClientEnableState: imds.ClientEnabled})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"}); err != nil {
		t.Fatalf("observe mode refused a canonical credentials request: %v", err)
	}
	if stats.Requests("aws", "aws:credentials", "observed") != 1 {
		t.Errorf("the credentials request was not counted as observed")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /latest/meta-data/%69am/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 400") {
		t.Errorf("a non-canonical request in observe mode answered %q, want 400", answer)
	}
	for _, p := range up.paths() {
		if strings.Contains(p, "%69am") {
			t.Errorf("the upstream saw %q", p)
		}
	}
}
