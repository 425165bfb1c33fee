package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one metadata request a probe makes: what an attacker in a pod would ask for.
type Request struct {
	Method string
	URL    string
	Header map[string]string
	// Want is a substring of the body that proves the answer came from the emulator.
	Want string
	// Mark, when not zero, is the packet mark (SO_MARK) of the probe's connection. Only
	// HostNetworkPod.Fetch and Sandbox.FetchAsNodeDaemon honour it.
	Mark uint32
}

// Requests for each metadata API the emulator serves.
var (
	// AWSCredentials asks IMDSv1 for the node role's credentials.
	AWSCredentials = Request{Method: http.MethodGet, URL: "http://169.254.169.254/latest/meta-data/iam/security-credentials/" + EmulatorRole, Want: EmulatorAccessKey}
	// AWSCredentialsIPv6 asks the same over IPv6.
	AWSCredentialsIPv6 = Request{Method: http.MethodGet, URL: "http://[fd00:ec2::254]/latest/meta-data/iam/security-credentials/" + EmulatorRole, Want: EmulatorAccessKey}
	// AWSToken asks for an IMDSv2 session token.
	AWSToken = Request{Method: http.MethodPut, URL: "http://169.254.169.254/latest/api/token", Header: map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}}
	// GCPToken asks the GCE metadata server for the default service account's token.
	GCPToken = Request{ // #nosec G101 -- the emulator's fake token
		Method: http.MethodGet, URL: "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token", Header: map[string]string{"Metadata-Flavor": "Google"}, Want: "ya29.sandbox"}
	// AzureToken asks Azure IMDS for a managed identity token.
	AzureToken = Request{Method: http.MethodGet, URL: "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/", Header: map[string]string{"Metadata": "true"}, Want: "eyJsandbox"}
	// WireServerGoalState asks Azure WireServer for the goal state on port 80.
	WireServerGoalState = Request{Method: http.MethodGet, URL: "http://168.63.129.16/machine/?comp=goalstate", Want: "GoalState"}
	// WireServerHostPlugin asks the WireServer host plugin port.
	WireServerHostPlugin = Request{Method: http.MethodGet, URL: "http://168.63.129.16:32526/vmSettings", Want: "GoalState"}
	// PodIdentity asks the EKS Pod Identity agent, which must stay reachable.
	PodIdentity = Request{Method: http.MethodGet, URL: "http://169.254.170.23/v1/credentials", Want: "ASIASANDBOXPODIDENT0"}
	// PodIdentityIPv6 asks the same over IPv6.
	PodIdentityIPv6 = Request{Method: http.MethodGet, URL: "http://[fd00:ec2::23]/v1/credentials", Want: "ASIASANDBOXPODIDENT0"}
)

// ProbeTimeout bounds one probe. Dropped packets are silent, so a blocked probe costs this long;
// an allowed one answers within milliseconds.
const ProbeTimeout = 1500 * time.Millisecond

// Fetch makes the request from inside the namespace and returns nil only when the emulator
// answered with 200 and the expected body: the endpoint is reachable.
func (n *Netns) Fetch(ctx context.Context, req Request) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	return fetch(ctx, n.DialContext, req)
}

func fetch(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), req Request) error {
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	r, err := http.NewRequestWithContext(ctx, req.Method, req.URL, nil)
	if err != nil {
		return err
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	resp, err := client.Do(r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), req.Want) {
		return fmt.Errorf("%s %s: status %d, body %q", req.Method, req.URL, resp.StatusCode, body)
	}
	return nil
}

// Connect opens a TCP connection from inside the namespace: the smallest proof of reach, used
// by the continuous prober.
func (n *Netns) Connect(ctx context.Context, addr netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := n.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	return conn.Close()
}

// DNS asks the emulator's DNS server on 168.63.129.16:53 for an A record over network ("udp"
// or "tcp") and checks the answer.
func (n *Netns) DNS(ctx context.Context, network string) error {
	return n.DNSAt(ctx, network, netip.AddrPortFrom(WireServer, 53))
}

// DNSAt asks the emulator's DNS server at server (168.63.129.16:53 or 169.254.169.254:53) for
// an A record over network ("udp" or "tcp") and checks the answer.
func (n *Netns) DNSAt(ctx context.Context, network string, server netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	conn, err := n.DialContext(ctx, network, server.String())
	if err != nil {
		return fmt.Errorf("dns %s: %w", network, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	const id = 0x1d5
	q := dnsQuery(id, "imds.sandbox.internal")
	buf := make([]byte, 1500)
	var resp []byte
	if network == "tcp" {
		msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
		if _, err := conn.Write(append(msg, q...)); err != nil {
			return fmt.Errorf("dns tcp: %w", err)
		}
		var size uint16
		if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
			return fmt.Errorf("dns tcp: %w", err)
		}
		resp = make([]byte, size)
		if _, err := io.ReadFull(conn, resp); err != nil {
			return fmt.Errorf("dns tcp: %w", err)
		}
	} else {
		if _, err := conn.Write(q); err != nil {
			return fmt.Errorf("dns udp: %w", err)
		}
		m, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("dns udp: %w", err)
		}
		resp = buf[:m]
	}
	return checkDNSAnswer(resp, id)
}

// helperEnv names the environment variable that turns a re-executed test binary into a probe
// running inside a hostNetwork pod's cgroup.
const helperEnv = "IMDSGUARD_SANDBOX_HELPER"

// RunHelperIfRequested must be the first call of TestMain in every package that uses
// HostNetworkPod.Fetch: the probe runs as a child process (a socket's cgroup is its creator's,
// and a cgroup v2 holds whole processes), which is the test binary itself, re-executed.
func RunHelperIfRequested() {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var req Request
	method, rest, _ := strings.Cut(spec, " ")
	url, headers, _ := strings.Cut(rest, " ")
	req.Method, req.URL, req.Header = method, url, map[string]string{}
	req.Want = os.Getenv(helperEnv + "_WANT")
	for _, h := range strings.Split(headers, "\x1f") {
		if k, v, ok := strings.Cut(h, ":"); ok {
			req.Header[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	var d net.Dialer
	if mark, err := strconv.ParseUint(os.Getenv(helperEnv+"_MARK"), 0, 32); err == nil && mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) }); err != nil {
				return err
			}
			return serr
		}
	}
	err := fetch(ctx, d.DialContext, req)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("reached")
	os.Exit(0)
}

// Fetch makes the request from a process inside the pod's cgroup, in the node's network
// namespace, and returns nil only when the endpoint answered.
func (p *HostNetworkPod) Fetch(ctx context.Context, req Request) error {
	return p.s.fetchInCgroup(ctx, filepath.Join(p.s.cgroupRoot, p.Cgroup), req)
}

// FetchAsNodeDaemon makes the request from a process in a node daemon's cgroup (outside the
// pods cgroup), in the node's network namespace: kubelet, the CNI, a node agent.
func (s *Sandbox) FetchAsNodeDaemon(ctx context.Context, req Request) error {
	dir := filepath.Join(s.cgroupRoot, s.cgroupBase, "system.slice")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return s.fetchInCgroup(ctx, dir, req)
}

func (s *Sandbox) fetchInCgroup(ctx context.Context, cgroupDir string, req Request) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.Open(cgroupDir)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	defer dir.Close()
	var headers []string
	for k, v := range req.Header {
		headers = append(headers, k+":"+v)
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout+5*time.Second)
	defer cancel()
	cmd := s.Node.Command(ctx, exe)
	cmd.Env = append(os.Environ(),
		helperEnv+"="+req.Method+" "+req.URL+" "+strings.Join(headers, "\x1f"),
		helperEnv+"_WANT="+req.Want,
		helperEnv+"_MARK="+strconv.FormatUint(uint64(req.Mark), 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err == nil && strings.TrimSpace(stdout.String()) == "reached" {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return fmt.Errorf("from cgroup %s: %s", cgroupDir, strings.TrimSpace(stderr.String()))
	}
	return fmt.Errorf("probe helper in cgroup %s: %w: %s%s (does TestMain call sandbox.RunHelperIfRequested?)", cgroupDir, err, stdout.String(), stderr.String())
}
