package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Metadata addresses the cloud namespace serves, as the catalogue knows them.
var (
	IMDSv4        = netip.MustParseAddr("169.254.169.254")
	IMDSv6        = netip.MustParseAddr("fd00:ec2::254")
	WireServer    = netip.MustParseAddr("168.63.129.16")
	PodIdentityV4 = netip.MustParseAddr("169.254.170.23")
	PodIdentityV6 = netip.MustParseAddr("fd00:ec2::23")
)

// Role and secret the emulator hands out, so tests can tell a real answer from anything else.
const (
	EmulatorRole      = "imdsguard-sandbox-node-role"
	EmulatorAccessKey = "ASIASANDBOXNODEROLE0"
)

// Emulator is an instance metadata service of our own: AWS IMDSv1 and v2, GCP and Azure on
// 169.254.169.254 and fd00:ec2::254, Azure WireServer on 168.63.129.16 (TCP 80, 32526) with
// DNS on port 53 (UDP and TCP), and the EKS Pod Identity agent on 169.254.170.23 and
// fd00:ec2::23. Its AWS side follows the instance's metadata options (SetAWS).
type Emulator struct {
	mu     sync.Mutex
	tokens map[string]time.Time
	aws    AWSOptions
	// requests counts the HTTP requests the instance metadata addresses received; paths are
	// their methods and targets.
	requests atomic.Int64
	paths    []string

	servers []*http.Server
	dns     []io.Closer
	wg      sync.WaitGroup
}

// startEmulator listens on every metadata address inside ns (which must hold them).
func startEmulator(ns *Netns) (*Emulator, error) {
	e := &Emulator{tokens: map[string]time.Time{}}
	serve := func(addr netip.AddrPort, h http.Handler) error {
		l, err := ns.Listen("tcp", addr.String())
		if err != nil {
			return fmt.Errorf("emulator listen %s: %w", addr, err)
		}
		if addr.Addr() == IMDSv6 {
			l = &ipv6Listener{Listener: l, e: e}
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnContext: withConn}
		e.servers = append(e.servers, srv)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_ = srv.Serve(l)
		}()
		return nil
	}
	var errs []error
	for _, a := range []netip.Addr{IMDSv4, IMDSv6} {
		errs = append(errs, serve(netip.AddrPortFrom(a, 80), http.HandlerFunc(e.serveIMDS)))
	}
	for _, p := range []uint16{80, 32526} {
		errs = append(errs, serve(netip.AddrPortFrom(WireServer, p), http.HandlerFunc(serveWireServer)))
	}
	for _, a := range []netip.Addr{PodIdentityV4, PodIdentityV6} {
		errs = append(errs, serve(netip.AddrPortFrom(a, 80), http.HandlerFunc(servePodIdentity)))
	}
	errs = append(errs, e.serveDNS(ns, netip.AddrPortFrom(WireServer, 53)))
	// The GCE metadata server is the VM's DNS resolver too, on 169.254.169.254:53
	// (https://cloud.google.com/compute/docs/internal-dns): firewalls must leave it alone.
	errs = append(errs, e.serveDNS(ns, netip.AddrPortFrom(IMDSv4, 53)))
	if err := errors.Join(errs...); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops every listener and waits for the servers to return.
func (e *Emulator) Close() {
	for _, s := range e.servers {
		_ = s.Close()
	}
	for _, c := range e.dns {
		_ = c.Close()
	}
	e.wg.Wait()
}

// IMDSRequests returns how many HTTP requests reached 169.254.169.254 and fd00:ec2::254 so far.
func (e *Emulator) IMDSRequests() int64 { return e.requests.Load() }

// IMDSPaths returns the request targets that reached the metadata addresses so far, in order.
func (e *Emulator) IMDSPaths() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.paths...)
}

func (e *Emulator) serveIMDS(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	e.mu.Lock()
	e.paths = append(e.paths, r.Method+" "+r.RequestURI)
	e.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/latest/"):
		e.serveAWS(w, r)
	case strings.HasPrefix(r.URL.Path, "/computeMetadata/v1/"):
		serveGCP(w, r)
	case strings.HasPrefix(r.URL.Path, "/metadata/"):
		serveAzure(w, r)
	default:
		http.NotFound(w, r)
	}
}

// AWSOptions are the EC2 instance metadata options the emulator applies, as EC2 does. The zero
// value is the emulator's default: IMDSv1 and v2 answered, the IPv6 endpoint on, and responses
// with the kernel's default TTL. EC2's own defaults differ (IPv6 off, hop limit 1 or 2); see
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsRequest.html.
type AWSOptions struct {
	// TokensRequired is HttpTokens=required: a request without a session token is answered
	// 401 Unauthorized
	// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html,
	// https://repost.aws/knowledge-center/ec2-linux-metadata-retrieval).
	TokensRequired bool
	// EndpointDisabled is HttpEndpoint=disabled: every request to the AWS paths, the token PUT
	// included, is answered 403 Forbidden
	// (https://repost.aws/knowledge-center/ec2-linux-metadata-retrieval: "403 - Forbidden ... if
	// the request isn't allowed or IMDS is turned off").
	EndpointDisabled bool
	// HopLimit is HttpPutResponseHopLimit: the IP TTL (IPv6 hop limit) of the token response,
	// set on the connection with IP_TTL (IPV6_UNICAST_HOPS) just before the response is
	// written, so the handshake and answers to other requests keep the kernel's default, as
	// on EC2, where the limit applies to the PUT response
	// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html, "How Instance Metadata Service Version 2 works").
	// 0 leaves the kernel's default TTL (64).
	HopLimit int
	// IPv6Disabled is HttpProtocolIpv6=disabled: fd00:ec2::254 answers no HTTP; the emulator
	// resets every connection to it.
	IPv6Disabled bool
}

// SetAWS applies the instance metadata options to the AWS endpoints from the next request on.
func (e *Emulator) SetAWS(o AWSOptions) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.aws = o
}

func (e *Emulator) awsOptions() AWSOptions {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.aws
}

// connKey is the request context key under which withConn keeps the request's connection.
type connKey struct{}

// withConn keeps the connection in the request context, so a handler can set its socket
// options (the token response's TTL).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// setTTL sets the IP TTL (IPv4) or unicast hop limit (IPv6) of what the connection sends from
// now on.
func setTTL(c net.Conn, ttl int) error {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("set TTL: %T is not a TCP connection", c)
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return fmt.Errorf("set TTL: %w", err)
	}
	level, opt := unix.IPPROTO_IP, unix.IP_TTL
	if a, ok := tcp.LocalAddr().(*net.TCPAddr); ok && a.IP.To4() == nil {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, ttl) }); err != nil {
		return fmt.Errorf("set TTL: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set TTL %d: %w", ttl, serr)
	}
	return nil
}

// ipv6Listener is the listener on fd00:ec2::254: with HttpProtocolIpv6 disabled it resets
// every connection, so nothing HTTP answers there.
type ipv6Listener struct {
	net.Listener
	e *Emulator
}

// Accept returns the next connection while the IPv6 endpoint is on.
func (l *ipv6Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.e.awsOptions().IPv6Disabled {
			return c, err
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // close with a reset, as a refused connection
		}
		_ = c.Close()
	}
}

func (e *Emulator) serveAWS(w http.ResponseWriter, r *http.Request) {
	opts := e.awsOptions()
	if opts.EndpointDisabled {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var ttl int
		if _, err := fmt.Sscan(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"), &ttl); err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		token := randomHex(16)
		e.mu.Lock()
		e.tokens[token] = time.Now().Add(time.Duration(ttl) * time.Second)
		e.mu.Unlock()
		if opts.HopLimit > 0 {
			c, _ := r.Context().Value(connKey{}).(net.Conn)
			if err := setTTL(c, opts.HopLimit); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		// EC2 answers with the token's TTL in this header, and aws-sdk-go-v2 needs it
		// (feature/ec2/imds api_op_GetToken.go reads X-Aws-Ec2-Metadata-Token-Ttl-Seconds and
		// fails the token without it).
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
		_, _ = io.WriteString(w, token)
		return
	}
	if token := r.Header.Get("X-aws-ec2-metadata-token"); token != "" || opts.TokensRequired {
		e.mu.Lock()
		expiry, ok := e.tokens[token]
		e.mu.Unlock()
		if !ok || time.Now().After(expiry) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/latest/meta-data":
		_, _ = io.WriteString(w, "ami-id\niam/\ninstance-id\nplacement/\n")
	case "/latest/meta-data/instance-id":
		_, _ = io.WriteString(w, "i-0sandbox0000000001")
	case "/latest/meta-data/placement/region":
		_, _ = io.WriteString(w, "eu-west-1")
	case "/latest/dynamic/instance-identity/document":
		writeJSON(w, map[string]string{"accountId": "111122223333", "region": "eu-west-1", "instanceId": "i-0sandbox0000000001",
			"availabilityZone": "eu-west-1a", "instanceType": "m7i.large", "architecture": "x86_64"})
	case "/latest/meta-data/iam/security-credentials":
		_, _ = io.WriteString(w, EmulatorRole)
	case "/latest/meta-data/iam/security-credentials/" + EmulatorRole:
		writeJSON(w, map[string]string{
			"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": EmulatorAccessKey,
			"SecretAccessKey": "sandbox-secret", "Token": "sandbox-session-token",
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	case "/latest/user-data":
		_, _ = io.WriteString(w, "#!/bin/bash\n/etc/eks/bootstrap.sh sandbox\n")
	default:
		http.NotFound(w, r)
	}
}

func serveGCP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata-Flavor") != "Google" || r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/service-accounts/default/token":
		writeJSON(w, map[string]any{"access_token": "ya29.sandbox" /* #nosec G101 -- the emulator's fake token */, "expires_in": 3599, "token_type": "Bearer"})
	case "/computeMetadata/v1/instance/attributes/kube-env":
		_, _ = io.WriteString(w, "KUBELET_CERT: sandbox\nKUBELET_KEY: sandbox\n")
	case "/computeMetadata/v1/project/project-id":
		_, _ = io.WriteString(w, "sandbox-project")
	default:
		http.NotFound(w, r)
	}
}

func serveAzure(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, `{"error":"Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/metadata/instance":
		writeJSON(w, map[string]any{"compute": map[string]string{"location": "westeurope", "vmId": "sandbox"}})
	case "/metadata/identity/oauth2/token":
		writeJSON(w, map[string]string{"access_token": "eyJsandbox", "token_type": "Bearer"})
	default:
		http.NotFound(w, r)
	}
}

func serveWireServer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0"?><GoalState><Incarnation>1</Incarnation></GoalState>`)
}

func servePodIdentity(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/credentials" {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, map[string]string{"AccessKeyId": "ASIASANDBOXPODIDENT0", "SecretAccessKey": "pod-secret", "Token": "pod-token"})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// DNSAnswer is the address the emulator's DNS server gives for every A question.
var DNSAnswer = netip.MustParseAddr("192.0.2.53")

// serveDNS answers every A query with DNSAnswer, over UDP and TCP: just enough DNS to show that
// Azure's resolver on 168.63.129.16:53 and GCE's on 169.254.169.254:53 keep working.
func (e *Emulator) serveDNS(ns *Netns, addr netip.AddrPort) error {
	pc, err := ns.ListenPacket("udp", addr.String())
	if err != nil {
		return fmt.Errorf("emulator dns udp: %w", err)
	}
	e.dns = append(e.dns, pc)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, ok := dnsAnswer(buf[:n]); ok {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	l, err := ns.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("emulator dns tcp: %w", err)
	}
	e.dns = append(e.dns, l)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				var size uint16
				if binary.Read(conn, binary.BigEndian, &size) != nil {
					return
				}
				msg := make([]byte, size)
				if _, err := io.ReadFull(conn, msg); err != nil {
					return
				}
				if resp, ok := dnsAnswer(msg); ok {
					_ = binary.Write(conn, binary.BigEndian, uint16(len(resp)))
					_, _ = conn.Write(resp)
				}
			}()
		}
	}()
	return nil
}

// dnsAnswer builds the response to a single-question query.
func dnsAnswer(q []byte) ([]byte, bool) {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil, false
	}
	// Skip the question name.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil, false
	}
	question := q[12 : i+5]
	resp := make([]byte, 12, 12+len(question)+16)
	copy(resp, q[:2])                                  // ID
	binary.BigEndian.PutUint16(resp[2:4], 0x8180)      // response, recursion desired and available
	binary.BigEndian.PutUint16(resp[4:6], 1)           // one question
	binary.BigEndian.PutUint16(resp[6:8], 1)           // one answer
	resp = append(resp, question...)                   //
	resp = append(resp, 0xc0, 12)                      // name: pointer to the question
	resp = append(resp, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4) // A, IN, TTL 60, 4 bytes
	a := DNSAnswer.As4()
	return append(resp, a[:]...), true
}

// dnsQuery builds a query for name with the given ID.
func dnsQuery(id uint16, name string) []byte {
	q := make([]byte, 12)
	binary.BigEndian.PutUint16(q[0:2], id)
	binary.BigEndian.PutUint16(q[2:4], 0x0100) // recursion desired
	binary.BigEndian.PutUint16(q[4:6], 1)
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// checkDNSAnswer verifies a response to dnsQuery(id, ...) carries DNSAnswer.
func checkDNSAnswer(resp []byte, id uint16) error {
	if len(resp) < 16 || binary.BigEndian.Uint16(resp[0:2]) != id || resp[2]&0x80 == 0 {
		return errors.New("dns: not a response to our query")
	}
	a := DNSAnswer.As4()
	if !strings.HasSuffix(string(resp), string(a[:])) {
		return errors.New("dns: answer lacks the expected address")
	}
	return nil
}
