// Package proxy serves filter mode's metadata proxy. The agent's redirect sends pods'
// connections to the instance metadata service here; each connection carries one request, read
// strictly (filter.ReadRequest), decided by the deny-by-default policy (filter.Policy.Decide)
// and, when allowed, rebuilt from its canonical parts and sent to the metadata address the
// client meant, over a connection the redirect lets through. Anything else gets a short answer
// and the connection is closed: the proxy never forwards what it did not understand.
package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/filter"
)

// Clients resolves a connection's source address to the pod that sent it.
type Clients interface {
	Client(src netip.Addr) filter.Client
}

// Server is the proxy. Its zero value is not usable: set Policy, Dial and OriginalDst.
type Server struct {
	Policy *filter.Policy
	// Limits bound the request head (filter.DefaultLimits when zero).
	Limits filter.Limits
	// Clients names the sender for the decision and the log; nil leaves it unnamed.
	Clients Clients
	// Dial opens the upstream connection; it must be one the redirect lets through (marked).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OriginalDst returns the metadata address a redirected connection was meant for.
	OriginalDst func(c *net.TCPConn) (netip.AddrPort, error)
	// Allowed reports whether an original destination is one the proxy may forward to: the
	// redirected metadata addresses, nothing else.
	Allowed func(dst netip.AddrPort) bool
	Log     *slog.Logger
	// Observe passes on, as they came, the canonical requests the policy would deny, and logs
	// them: filter mode's roll-out. Requests that do not parse, or whose cloud is unknown, are
	// refused all the same: what a metadata service would make of them is not known.
	Observe bool
	// HeadTimeout bounds reading the request head (slow clients); UpstreamTimeout the whole
	// exchange with the metadata service.
	HeadTimeout, UpstreamTimeout time.Duration
	// Stats counts decisions; nil counts nothing.
	Stats *Stats

	logged sync.Map // denial log keys (pod and class) → time logged

	transportOnce sync.Once
	transport     *http.Transport
}

// Defaults for the timeouts and sizes.
const (
	DefaultHeadTimeout     = 2 * time.Second
	DefaultUpstreamTimeout = 5 * time.Second
	// maxResponseBody bounds an upstream answer: metadata values are small (an instance identity
	// document is about 500 bytes).
	maxResponseBody = 1 << 20
	// denialLogEvery is how often one pod's denials of one path class are logged again.
	denialLogEvery = 10 * time.Minute
)

// Serve accepts connections on the IPv4 and IPv6 listeners (either may be nil) until ctx ends,
// then closes them and waits for the connections in flight. It implements agent.Proxy.
func (s *Server) Serve(ctx context.Context, ln4, ln6 net.Listener) error {
	listeners := []net.Listener{ln4, ln6}
	var wg sync.WaitGroup
	errs := make(chan error, len(listeners))
	for _, ln := range listeners {
		if ln == nil {
			continue
		}
		wg.Go(func() { errs <- s.accept(ctx, ln, &wg) })
	}
	<-ctx.Done()
	for _, ln := range listeners {
		if ln != nil {
			_ = ln.Close()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		wg.Go(func() { s.handle(ctx, c) })
	}
}

// handle serves one connection: one request, one answer, closed.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	start := time.Now()
	headTimeout := s.HeadTimeout
	if headTimeout == 0 {
		headTimeout = DefaultHeadTimeout
	}
	_ = c.SetDeadline(start.Add(headTimeout))
	src := addrOf(c.RemoteAddr())
	var client filter.Client
	if s.Clients != nil {
		client = s.Clients.Client(src)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		s.deny(c, client, filter.Decision{Class: "invalid", Status: http.StatusBadRequest, Reason: "not a TCP connection"})
		return
	}
	dst, err := s.OriginalDst(tc)
	if err != nil || (s.Allowed != nil && !s.Allowed(dst)) {
		// Not redirected by us, or to an address we do not serve: forward nothing.
		s.deny(c, client, filter.Decision{Class: "invalid", Status: http.StatusForbidden, Reason: fmt.Sprintf("original destination %v: %v", dst, err)})
		return
	}
	limits := s.Limits
	if limits == (filter.Limits{}) {
		limits = filter.DefaultLimits()
	}
	req, err := filter.ReadRequest(bufio.NewReaderSize(c, 4096), limits)
	if err != nil {
		d := filter.Decision{Class: "invalid", Status: http.StatusBadRequest, Reason: err.Error()}
		var rej *filter.Rejection
		if errors.As(err, &rej) {
			d.Status = rej.Status
		}
		s.deny(c, client, d)
		return
	}
	d := s.Policy.Decide(dst, client, req)
	decision := "allowed"
	switch {
	case d.Allow && d.Forward != nil:
	case s.Observe && d.Class != filter.ClassInvalid:
		// Observe: the request is canonical and its cloud known; it is logged as it would be
		// denied and passed on as it came.
		s.logDenial(client, d, "metadata request would be denied (observe)")
		d.Forward, decision = asSent(req), "observed"
	default:
		s.deny(c, client, d)
		return
	}
	upstreamTimeout := s.UpstreamTimeout
	if upstreamTimeout == 0 {
		upstreamTimeout = DefaultUpstreamTimeout
	}
	_ = c.SetDeadline(time.Now().Add(upstreamTimeout))
	uctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	answer, err := s.forward(uctx, dst, d)
	if err != nil {
		s.Stats.count(d.Cloud, d.Class, "error")
		s.log().Warn("metadata request failed upstream", "namespace", client.Namespace, "pod", client.Pod, "class", d.Class, "err", err)
		writeStatus(c, http.StatusBadGateway, "metadata service did not answer")
		return
	}
	// Counted before the client sees the answer, so what it does next finds it counted.
	s.Stats.count(d.Cloud, d.Class, decision)
	s.Stats.observe(time.Since(start))
	_, _ = c.Write(answer) // a client that left needs no answer
}

// forward sends the rebuilt request to dst over a connection the redirect lets through and
// returns the answer for the client: status, the headers clients need, the body. Redirects are
// not followed, and no header names the proxy. Connections to the metadata service are kept
// open between requests (its HTTP/1.1 keep-alive), which saves a handshake per request.
func (s *Server) forward(ctx context.Context, dst netip.AddrPort, d filter.Decision) ([]byte, error) {
	f := d.Forward
	u := &url.URL{Scheme: "http", Host: dst.String(), Path: f.Path, RawQuery: f.RawQuery}
	req, err := http.NewRequestWithContext(ctx, f.Method, u.String(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("request for %s: %w", dst, err)
	}
	req.Host = hostOf(dst)
	req.Header = http.Header{"User-Agent": {""}} // none unless the client sent one
	for _, h := range f.Header {
		switch strings.ToLower(h.Name) {
		case "host", "connection", "content-length", "transfer-encoding":
			continue
		}
		req.Header[h.Name] = append(req.Header[h.Name][:0:0], h.Value)
	}
	resp, err := s.upstream().RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", f.Method, dst, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body from %s: %w", dst, err)
	}
	if len(body) > maxResponseBody {
		return nil, fmt.Errorf("answer from %s larger than %d bytes", dst, maxResponseBody)
	}
	var w strings.Builder
	fmt.Fprintf(&w, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	for _, name := range passedResponseHeaders {
		for _, v := range resp.Header.Values(name) {
			fmt.Fprintf(&w, "%s: %s\r\n", name, v)
		}
	}
	fmt.Fprintf(&w, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	return append([]byte(w.String()), body...), nil
}

// upstream is the transport to the metadata service: Dial's connections, kept open between
// requests, no compression asked for, no proxy from the environment, redirects never followed
// (a Transport does not follow them).
func (s *Server) upstream() http.RoundTripper {
	s.transportOnce.Do(func() {
		s.transport = &http.Transport{
			DialContext:            s.Dial,
			Proxy:                  nil,
			DisableCompression:     true,
			MaxIdleConnsPerHost:    32,
			IdleConnTimeout:        30 * time.Second,
			ResponseHeaderTimeout:  DefaultUpstreamTimeout,
			MaxResponseHeaderBytes: 16 << 10,
		}
	})
	return s.transport
}

// passedResponseHeaders are the upstream headers clients rely on: the content type, the token
// TTL the AWS SDKs read (aws-sdk-go-v2 feature/ec2/imds api_op_GetToken.go), the flavour header
// Google's client checks to detect GCE (cloud.google.com/go/compute/metadata metadata.go:
// res.Header.Get("Metadata-Flavor") == "Google"), and the server name; never Location
// (redirects are not the client's business here) nor cookies.
var passedResponseHeaders = []string{"Content-Type", "X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "Metadata-Flavor", "Server", "Etag", "Last-Modified"}

// deny answers a denial and logs it once per pod and path class in denialLogEvery.
func (s *Server) deny(c net.Conn, client filter.Client, d filter.Decision) {
	status := d.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	s.Stats.count(d.Cloud, d.Class, "denied") // before the client sees the answer
	writeStatus(c, status, "denied by the imdsguard metadata filter")
	d.Status = status
	s.logDenial(client, d, "metadata request denied")
}

// logDenial logs a denial once per pod and path class in denialLogEvery.
func (s *Server) logDenial(client filter.Client, d filter.Decision, msg string) {
	key := client.Namespace + "/" + client.Pod + "/" + d.Class
	now := time.Now()
	if last, ok := s.logged.Load(key); ok && now.Sub(last.(time.Time)) < denialLogEvery {
		return
	}
	s.logged.Store(key, now)
	s.log().Info(msg, "namespace", client.Namespace, "pod", client.Pod, "serviceAccount", client.ServiceAccount,
		"hostNetwork", client.HostNetwork, "cloud", d.Cloud, "class", d.Class, "status", d.Status, "reason", d.Reason)
}

// asSent is the request as the client sent it, for observe mode: its method, target and
// headers (ReadRequest has already refused anything not canonical and any forwarding header).
func asSent(req *filter.Request) *filter.Forward {
	path, query, _ := strings.Cut(req.Target, "?")
	return &filter.Forward{Method: req.Method, Path: path, RawQuery: query, Header: req.Header}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// writeStatus answers a short plain-text response and nothing else.
func writeStatus(c net.Conn, status int, msg string) {
	body := msg + "\n"
	_, _ = io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\nContent-Type: text/plain\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\nConnection: close\r\n\r\n"+body)
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// hostOf renders the Host header for a metadata address: the address as clients send it.
func hostOf(dst netip.AddrPort) string {
	if dst.Port() == 80 {
		if dst.Addr().Is6() {
			return "[" + dst.Addr().String() + "]"
		}
		return dst.Addr().String()
	}
	return dst.String()
}
