package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/filter/corpus"
)

// corpusEntry is one request variant of testdata/corpus/*.txt (package corpus reads them).
type corpusEntry struct {
	Group, Name string
	Dst         netip.AddrPort
	Cloud       Cloud  // the node's cloud; empty: from the headers
	Expect      string // "", "allow:CLASS", "deny" or "deny:STATUS"
	Raw         []byte
}

// loadCorpus reads every corpus file.
func loadCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	entries, err := corpus.Load("testdata/corpus")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]corpusEntry, len(entries))
	for i, e := range entries {
		out[i] = corpusEntry{Group: e.Group, Name: e.Name, Dst: e.Dst, Cloud: Cloud(e.Cloud), Expect: e.Expect, Raw: e.Raw}
	}
	return out
}

// TestCorpus runs every corpus variant through ReadRequest and Decide, as the proxy does (each
// request of a connection in turn), checks each decision against the resolver model and the
// entry's expectation, and counts the corpus.
func TestCorpus(t *testing.T) {
	entries := loadCorpus(t)
	groups := map[string]int{}
	for _, e := range entries {
		groups[e.Group]++
	}
	t.Logf("corpus: %d variants %v", len(entries), groups)
	if len(entries) < 300 {
		t.Errorf("corpus has %d variants, want at least 300", len(entries))
	}
	for _, g := range []string{"paths", "queries", "methods_headers", "framing", "addresses"} {
		if groups[g] == 0 {
			t.Errorf("corpus group %s is empty", g)
		}
	}
	for _, e := range entries {
		t.Run(e.Group+"/"+e.Name, func(t *testing.T) {
			p, err := DefaultPolicy().WithSettings(Settings{Cloud: e.Cloud})
			if err != nil {
				t.Fatal(err)
			}
			decisions := decideStream(p, e.Dst, e.Raw)
			for _, d := range decisions {
				if err := checkModel(e.Dst, e.Cloud, d); err != nil {
					t.Errorf("model property broken: %v", err)
				}
			}
			checkExpectation(t, e, decisions)
		})
	}
}

// streamDecision is one request read from a connection and its decision; Err is set when
// reading failed (and Decision is then the proxy's answer: a Rejection's status, or none).
type streamDecision struct {
	Req      *Request
	Decision Decision
	Err      error
}

// decideStream reads and decides requests from raw until the reader stops, as the proxy does
// on one connection: after a refusal the connection is closed.
func decideStream(p *Policy, dst netip.AddrPort, raw []byte) []streamDecision {
	r := bufio.NewReader(bytes.NewReader(raw))
	var out []streamDecision
	for range 8 {
		req, err := ReadRequest(r, DefaultLimits())
		if err != nil {
			var rej *Rejection
			if errors.As(err, &rej) {
				out = append(out, streamDecision{Err: err, Decision: deny("", ClassInvalid, rej)})
			} else if !errors.Is(err, io.EOF) || len(out) == 0 {
				out = append(out, streamDecision{Err: err})
			}
			return out
		}
		d := p.Decide(dst, Client{Namespace: "corpus", Pod: "p", ServiceAccount: "default"}, req)
		out = append(out, streamDecision{Req: req, Decision: d})
		if !d.Allow {
			return out
		}
	}
	return out
}

// checkExpectation checks the first decision of an entry against its plain expectation.
func checkExpectation(t *testing.T, e corpusEntry, ds []streamDecision) {
	t.Helper()
	if e.Expect == "" {
		return
	}
	if len(ds) == 0 {
		t.Fatalf("no decision, want %s", e.Expect)
	}
	d := ds[0].Decision
	kind, detail, _ := strings.Cut(e.Expect, ":")
	switch kind {
	case "allow":
		if !d.Allow || d.Class != detail {
			t.Errorf("decision %+v (read error %v), want allowed as %s", d, ds[0].Err, detail)
		}
	case "deny":
		if d.Allow {
			t.Errorf("allowed %+v, want denied", d)
		}
		if detail != "" && strconv.Itoa(d.Status) != detail {
			t.Errorf("status %d (%s), want %s", d.Status, d.Reason, detail)
		}
	default:
		t.Fatalf("bad expectation %q", e.Expect)
	}
}

// --- The resolver model -------------------------------------------------------------------
//
// How a metadata service might interpret a request-target, taken wide on purpose: whatever a
// server, a framework or a proxy in front of it could do. EC2 documents no normalisation of
// its paths, GCE none, Azure none; the model therefore assumes any of percent-decoding (twice),
// backslash as slash, ";" parameters and NUL truncation, dot-segment removal (RFC 3986
// section 5.2.4), collapsing "//", dropping a trailing "/", "." or space, and case-insensitive
// matching. A request is harmless only when every interpretation is one of the harmless
// resources listed here, independently of the policy data.

// harmless are the resources a pod may read, per cloud, in lower case, as the issue names them.
var harmless = map[Cloud]map[string]bool{
	AWS: set("/latest/api/token", "/latest/meta-data/placement/region", "/latest/meta-data/placement/availability-zone",
		"/latest/meta-data/placement/availability-zone-id", "/latest/meta-data/instance-id",
		"/latest/meta-data/instance-type", "/latest/meta-data/ami-id",
		// Configurable, on by default: the account ID and private address, no credential.
		"/latest/dynamic/instance-identity/document"),
	GCP: set("", "/computemetadata/v1/project/project-id", "/computemetadata/v1/project/numeric-project-id",
		"/computemetadata/v1/instance/zone", "/computemetadata/v1/instance/id", "/computemetadata/v1/instance/hostname",
		"/computemetadata/v1/instance/name", "/computemetadata/v1/instance/attributes/cluster-name",
		"/computemetadata/v1/instance/attributes/cluster-location"),
	Azure: set("/metadata/instance/compute/location", "/metadata/instance/compute/zone", "/metadata/instance/compute/vmid",
		"/metadata/instance/compute/azenvironment", "/metadata/versions"),
}

// harmlessQueryKeys are the query keys that change nothing about what is returned, per cloud
// (GCE's recursive and wait_for_change are not among them).
var harmlessQueryKeys = map[Cloud]map[string]bool{
	AWS:   set(),
	GCP:   set("alt"),
	Azure: set("api-version", "format"),
}

// secretPrefixes are what a pod must never reach, on any cloud, in lower case.
var secretPrefixes = []string{
	"/latest/meta-data/iam", "/latest/meta-data/identity-credentials", "/latest/user-data",
	"/latest/dynamic/instance-identity/pkcs7", "/latest/dynamic/instance-identity/signature",
	"/latest/dynamic/instance-identity/rsa2048", "/latest/meta-data/public-keys", "/latest/meta-data/tags",
	"/computemetadata/v1/instance/service-accounts", "/computemetadata/v1/instance/attributes/kube-env",
	"/computemetadata/v0.1", "/computemetadata/v1beta1", "/0.1/meta-data",
	"/metadata/identity", "/metadata/attested", "/metadata/instance/compute/userdata", "/metadata/instance/compute/customdata",
}

// forwardable are the only header names that may reach the metadata service.
var forwardable = set("host", "user-agent", "metadata-flavor", "metadata", "x-aws-ec2-metadata-token", "x-aws-ec2-metadata-token-ttl-seconds")

// neverSent are headers whose presence in the client's request must mean a denial.
var neverSent = set("x-forwarded-for", "forwarded", "x-real-ip", "transfer-encoding", "upgrade", "http2-settings")

func set(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range items {
		m[s] = true
	}
	return m
}

// modelCloud is the cloud a request is for, by the model: the node's when known, else
// GCP with Metadata-Flavor, Azure with Metadata, AWS otherwise; fd00:ec2::254 is AWS's.
func modelCloud(dst netip.AddrPort, node Cloud, req *Request) Cloud {
	if dst.Addr().Unmap() == netip.MustParseAddr("fd00:ec2::254") {
		return AWS
	}
	if node != "" {
		return node
	}
	for _, f := range req.Header {
		switch strings.ToLower(f.Name) {
		case "metadata-flavor":
			return GCP
		case "metadata":
			return Azure
		}
	}
	return AWS
}

// interpretations returns every path and query a lenient server could make of a target.
func interpretations(target string) (paths []string, queryKeys []string) {
	t := target
	if i := strings.Index(t, "://"); i >= 0 {
		t = t[i+3:]
		if j := strings.IndexByte(t, '/'); j >= 0 {
			t = t[j:]
		} else {
			t = "/"
		}
	}
	if i := strings.IndexByte(t, '#'); i >= 0 {
		t = t[:i]
	}
	path, query, _ := strings.Cut(t, "?")
	seen := map[string]bool{}
	for _, decoded := range decodings(path) {
		for _, p := range []string{decoded, lenientPath(decoded)} {
			p = strings.ToLower(p)
			p = strings.TrimRight(p, "/. \x00")
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	for _, q := range decodings(query) {
		for _, part := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(part, "=")
			queryKeys = append(queryKeys, strings.ToLower(k))
		}
	}
	return paths, queryKeys
}

// decodings returns s, s percent-decoded once, and twice.
func decodings(s string) []string {
	out := []string{s}
	for range 2 {
		s = percentDecode(s)
		out = append(out, s)
	}
	return out
}

// percentDecode decodes every valid %HH, leaving anything else as it is.
func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lenientPath applies every lenient rewriting at once: backslashes as slashes, truncation at
// ";" or NUL, dot-segment removal with "//" collapsed.
func lenientPath(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	if i := strings.IndexAny(p, ";\x00"); i >= 0 {
		p = p[:i]
	}
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/")
}

// checkModel is the property: an allowed request is for the cloud the model says, every
// interpretation of its target (and of what is forwarded) is a harmless resource of that
// cloud and none is secret, its query keys are harmless, the token PUT is the only PUT, it
// carried none of the never-sent headers, and only forwardable headers go upstream.
func checkModel(dst netip.AddrPort, node Cloud, sd streamDecision) error {
	d := sd.Decision
	if sd.Req == nil && d.Status == 0 {
		return nil // the stream ended within a request: nothing to decide, nothing forwarded
	}
	if !d.Allow {
		if d.Forward != nil {
			return fmt.Errorf("denial with a Forward: %+v", d)
		}
		if d.Status < 400 || d.Status > 599 {
			return fmt.Errorf("denial with status %d: %+v", d.Status, d)
		}
		return nil
	}
	req, fwd := sd.Req, d.Forward
	if fwd == nil {
		return fmt.Errorf("allowance without a Forward: %+v", d)
	}
	cloud := modelCloud(dst, node, req)
	if d.Cloud != cloud {
		return fmt.Errorf("allowed as %s, the model says %s: %q", d.Cloud, cloud, req.Target)
	}
	targets := []string{req.Target, fwd.Path, fwd.Path + "?" + fwd.RawQuery}
	for _, target := range targets {
		paths, keys := interpretations(target)
		for _, p := range paths {
			if !harmless[cloud][p] {
				return fmt.Errorf("allowed %q, which a server may read as %q, not a harmless %s resource", target, p, cloud)
			}
			for _, s := range secretPrefixes {
				if p == s || strings.HasPrefix(p, s+"/") {
					return fmt.Errorf("allowed %q, which a server may read as secret %q", target, p)
				}
			}
		}
		for _, k := range keys {
			if !harmlessQueryKeys[cloud][k] {
				return fmt.Errorf("allowed %q with query key %q", target, k)
			}
		}
	}
	if fwd.RawQuery != "" && req.Target != fwd.Path+"?"+fwd.RawQuery || fwd.RawQuery == "" && req.Target != fwd.Path {
		return fmt.Errorf("forwarded %s?%s for target %q: not exactly what was checked", fwd.Path, fwd.RawQuery, req.Target)
	}
	if fwd.Method == "PUT" && (cloud != AWS || fwd.Path != "/latest/api/token") {
		return fmt.Errorf("PUT forwarded to %s %s", cloud, fwd.Path)
	}
	if fwd.Method != "GET" && fwd.Method != "PUT" {
		return fmt.Errorf("method %s forwarded", fwd.Method)
	}
	for _, f := range req.Header {
		if n := strings.ToLower(f.Name); neverSent[n] || strings.HasPrefix(n, "x-forwarded-") {
			return fmt.Errorf("allowed a request carrying %s", f.Name)
		}
	}
	for _, f := range fwd.Header {
		if !forwardable[strings.ToLower(f.Name)] {
			return fmt.Errorf("forwards header %s", f.Name)
		}
		if strings.ContainsAny(f.Value, "\r\n\x00") {
			return fmt.Errorf("forwards header %s with a control character", f.Name)
		}
	}
	return nil
}
