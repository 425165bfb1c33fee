// Package kubetest runs a real Kubernetes control plane for tests: Debian's etcd and a
// kube-apiserver built from the pinned k8s.io/kubernetes module (hack/kube-apiserver.sh), both on
// loopback with free ports and a throwaway data directory. There is no kubelet, scheduler or
// controller-manager: tests create pods themselves, and the ServiceAccount admission plugin is
// off so namespaces need no default ServiceAccount.
//
// Users are static bearer tokens (see Users): "admin" is in system:masters; the others have no
// permissions until a test binds them with RBAC.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubernetesVersion is the kube-apiserver version the tests run against; it must match the
// k8s.io/kubernetes version required in hack/tools/kube-apiserver/go.mod.
const KubernetesVersion = "v1.37.2"

// Users are the static token users every control plane knows, by name. "admin" is in
// system:masters; the others start without permissions.
var Users = []string{"admin", "viewer", "auditor", "nobody"}

// Options tunes Start.
type Options struct {
	// APIServerArgs are extra kube-apiserver flags.
	APIServerArgs []string
	// Log receives both processes' output; discarded when nil (it is kept in the data directory
	// and quoted in start-up errors).
	Log *os.File
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Dir holds the data, certificates, tokens and kubeconfigs; removed by Stop.
	Dir string
	// URL is the API server's https URL.
	URL string

	tokens    map[string]string
	etcdURL   string
	apiPort   int
	opts      Options
	mu        sync.Mutex
	etcd      *process
	apiserver *process
}

// process is a started child and the channel closed when it exits.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Start starts etcd and kube-apiserver and waits until the API server is ready (at most a
// minute). The caller must call Stop.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	apiserver, etcd, err := Binaries()
	if err != nil {
		return nil, err
	}
	base := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm" // etcd fsyncs every write; memory makes that free
	}
	dir, err := os.MkdirTemp(base, "imdsguard-kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	cp := &ControlPlane{Dir: dir, opts: opts, tokens: map[string]string{}}
	if err := cp.prepare(); err != nil {
		cp.Stop()
		return nil, err
	}
	if err := cp.startEtcd(ctx, etcd); err != nil {
		cp.Stop()
		return nil, err
	}
	if err := cp.startAPIServer(ctx, apiserver); err != nil {
		cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Binaries finds kube-apiserver (KUBE_APISERVER, or _output/bin/kube-apiserver-<version> in the
// repository) and etcd (ETCD, or on PATH).
func Binaries() (apiserver, etcd string, err error) {
	apiserver = os.Getenv("KUBE_APISERVER")
	if apiserver == "" {
		root, err := repoRoot()
		if err != nil {
			return "", "", err
		}
		apiserver = filepath.Join(root, "_output", "bin", "kube-apiserver-"+KubernetesVersion)
	}
	if _, err := os.Stat(apiserver); err != nil { //nolint:gosec // the test binary path is the operator's choice
		return "", "", fmt.Errorf("kubetest: kube-apiserver not found at %s: run hack/kube-apiserver.sh (make test does) or set KUBE_APISERVER", apiserver)
	}
	etcd = os.Getenv("ETCD")
	if etcd == "" {
		if etcd, err = exec.LookPath("etcd"); err != nil {
			return "", "", errors.New("kubetest: etcd not found on PATH: run hack/kube-apiserver.sh (it installs Debian's etcd-server) or set ETCD")
		}
	}
	return apiserver, etcd, nil
}

// repoRoot is the directory holding this module's go.mod, found from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/imdsguard/imdsguard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: not inside the imdsguard repository (no go.mod found above the working directory)")
		}
		dir = parent
	}
}

// prepare writes the service account key pair and the token file.
func (cp *ControlPlane) prepare() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("kubetest: service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("kubetest: service account key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cp.Dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cp.Dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	var tokens strings.Builder
	for i, user := range Users {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("kubetest: token: %w", err)
		}
		token := hex.EncodeToString(b)
		cp.tokens[user] = token
		groups := ""
		if user == "admin" {
			groups = `,"system:masters"`
		}
		fmt.Fprintf(&tokens, "%s,%s,%d%s\n", token, user, 1000+i, groups)
	}
	return os.WriteFile(filepath.Join(cp.Dir, "tokens.csv"), []byte(tokens.String()), 0o600)
}

func (cp *ControlPlane) startEtcd(ctx context.Context, bin string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	cp.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	p, err := cp.spawn(bin, "etcd",
		"--name", "kubetest",
		"--data-dir", filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls", cp.etcdURL,
		"--advertise-client-urls", cp.etcdURL,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "kubetest="+peer,
		"--quota-backend-bytes", strconv.Itoa(4<<30),
		"--log-level", "warn",
	)
	if err != nil {
		return err
	}
	cp.etcd = p
	return waitFor(ctx, 30*time.Second, p, func() bool {
		resp, err := http.Get(cp.etcdURL + "/health")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, bin string) error {
	if cp.apiPort == 0 {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		cp.apiPort = ports[0]
		cp.URL = fmt.Sprintf("https://127.0.0.1:%d", cp.apiPort)
	}
	args := []string{
		"--etcd-servers", cp.etcdURL,
		"--cert-dir", filepath.Join(cp.Dir, "certs"),
		"--secure-port", strconv.Itoa(cp.apiPort),
		"--bind-address", "127.0.0.1",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(cp.Dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(cp.Dir, "sa.key"),
		"--token-auth-file", filepath.Join(cp.Dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--disable-admission-plugins", "ServiceAccount",
		"--allow-privileged",
		"--v", "0",
	}
	p, err := cp.spawn(bin, "kube-apiserver", append(args, cp.opts.APIServerArgs...)...)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.apiserver = p
	cp.mu.Unlock()
	client := cp.httpClient()
	return waitFor(ctx, time.Minute, p, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.tokens["admin"])
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// httpClient talks to the API server's self-signed endpoint.
func (cp *ControlPlane) httpClient() *http.Client {
	tr, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		panic(err) // only fails on invalid TLS material, and there is none
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// spawn starts a child in its own process group, its output in the data directory.
func (cp *ControlPlane) spawn(bin, name string, args ...string) (*process, error) {
	logPath := filepath.Join(cp.Dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // etcd and kube-apiserver found by Binaries
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cp.opts.Log != nil {
		cmd.Stdout, cmd.Stderr = cp.opts.Log, cp.opts.Log
	}
	// The children die with the test binary even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// waitFor polls ready until it holds, the process exits, or the time is up.
func waitFor(ctx context.Context, limit time.Duration, p *process, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("kubetest: %s exited during start-up: %s", filepath.Base(p.cmd.Path), p.tail())
		case <-ctx.Done():
			return fmt.Errorf("kubetest: %s not ready after %s: %s", filepath.Base(p.cmd.Path), limit, p.tail())
		case <-tick.C:
		}
	}
}

// tail returns the end of the process's log, for errors.
func (p *process) tail() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log)"
	}
	const keep = 2000
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return strings.TrimSpace(string(data))
}

// stop kills a process group and waits for it.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// StopAPIServer stops kube-apiserver (etcd keeps running); StartAPIServer brings it back on the
// same address. Together they simulate an API server restart.
func (cp *ControlPlane) StopAPIServer() {
	cp.mu.Lock()
	p := cp.apiserver
	cp.apiserver = nil
	cp.mu.Unlock()
	p.stop()
}

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits until it is ready.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	bin, _, err := Binaries()
	if err != nil {
		return err
	}
	return cp.startAPIServer(ctx, bin)
}

// Stop stops both processes and removes the data directory.
func (cp *ControlPlane) Stop() {
	cp.StopAPIServer()
	cp.etcd.stop()
	_ = os.RemoveAll(cp.Dir)
}

// Config returns a client configuration for a user from Users.
func (cp *ControlPlane) Config(user string) *rest.Config {
	token, ok := cp.tokens[user]
	if !ok {
		panic("kubetest: unknown user " + user)
	}
	return &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             -1, // no client-side throttling: tests measure the server
		Timeout:         time.Minute,
		WarningHandler:  rest.NoWarnings{},
	}
}

// Client returns a typed client for a user from Users.
func (cp *ControlPlane) Client(user string) *kubernetes.Clientset {
	c, err := kubernetes.NewForConfig(cp.Config(user))
	if err != nil {
		panic(err) // the configuration is built above and always valid
	}
	return c
}

// Kubeconfig writes a kubeconfig file with one context per user (named after the user,
// current: admin) and returns its path.
func (cp *ControlPlane) Kubeconfig() (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cp.URL, InsecureSkipTLSVerify: true}
	for _, user := range Users {
		cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cp.tokens[user]}
		cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: user}
	}
	cfg.CurrentContext = "admin"
	path := filepath.Join(cp.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("kubetest: write kubeconfig: %w", err)
	}
	return path, nil
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubetest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
