package filter

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Cloud is a cloud whose metadata service the filter knows: "aws", "gcp" or "azure".
type Cloud string

// The clouds with a policy.
const (
	AWS   Cloud = "aws"
	GCP   Cloud = "gcp"
	Azure Cloud = "azure"
)

// Metadata service addresses the filter serves (the endpoint catalogue, docs/endpoints.md):
// AWS, GCP and Azure share 169.254.169.254 on TCP 80; fd00:ec2::254 is AWS only.
var (
	linkLocalIMDS = netip.MustParseAddr("169.254.169.254")
	awsIMDSv6     = netip.MustParseAddr("fd00:ec2::254")
)

// ClassInvalid is the path class of a request refused before its cloud or path is known.
const ClassInvalid = "invalid"

// DefaultMaxTokenTTL is the most an IMDSv2 token may live, and the default cap: EC2 accepts 1
// to 21600 seconds (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html).
const DefaultMaxTokenTTL = 21600

// Client is who sent the request (the proxy resolves it from the source address).
type Client struct {
	Namespace, Pod, ServiceAccount string
	HostNetwork                    bool
}

// Decision says whether to forward, what exactly, and how to account for it.
type Decision struct {
	Allow bool
	Cloud Cloud // empty when the request was refused before its cloud was known
	// Class is a path class for logs and metrics, low cardinality: "aws:region",
	// "aws:credentials", "gcp:token", "invalid", ...
	Class  string
	Reason string
	// Status is, for a denial, the status to answer.
	Status int
	// Forward is, for an allowance, what to send upstream, rebuilt from canonical parts.
	Forward *Forward
}

// Forward is the request to send to the metadata service: the method, the exact path and
// query, and only the headers the cloud needs, with their canonical names. Nothing else of the
// client's request is sent; in particular no X-Forwarded-For, which IMDS refuses.
type Forward struct {
	Method, Path, RawQuery string
	Header                 []Field
}

// Settings are the agent's choices the policy data leaves open.
type Settings struct {
	// Cloud is the node's cloud. Empty: the request's headers decide (see Policy.Decide).
	Cloud Cloud
	// MaxTokenTTL caps the IMDSv2 token lifetime a client asks for, 1 to 21600 seconds.
	MaxTokenTTL int
	// DenyIdentityDocument refuses AWS /latest/dynamic/instance-identity/document, which holds
	// the account ID and the private address. It passes by default: aws-sdk-go-v2's IMDS client
	// reads the region from it (feature/ec2/imds GetRegion, the path of config's EC2 IMDS region
	// resolution), as do aws-sdk-go v1's ec2metadata.Region and the Java SDK v1.
	DenyIdentityDocument bool
}

// Addition allows more paths of one cloud to the pods of a namespace (all its service
// accounts when ServiceAccount is empty). It comes from the agent's configuration, never from
// pod annotations.
type Addition struct {
	Namespace, ServiceAccount string
	Cloud                     Cloud
	Paths                     []string
}

// Policy decides requests. It is immutable: With and WithSettings return new policies.
type Policy struct {
	settings  Settings
	clouds    map[Cloud]*cloudPolicy
	additions map[string][]Addition // by cloud and path: cloud + " " + path
}

// cloudPolicy is one cloud's policy file, indexed for lookups.
type cloudPolicy struct {
	file     *policyFile
	routes   map[string]route // by method + " " + path
	byPath   map[string]bool  // every route path
	lower    map[string]bool  // every route path in lower case
	hosts    map[string]bool
	forward  [nKnown]string // canonical name of each forwarded field; empty: not forwarded
	required int            // index of the required header, when the cloud has one
}

// DefaultPolicy is the policy of the embedded data files (policy/*.yaml), with default
// settings: the cloud from the headers, tokens capped at 21600 s, the AWS identity document
// off, no additions. It panics if the embedded data is invalid, which the package's tests
// rule out.
func DefaultPolicy() *Policy {
	files, err := loadPolicyFiles()
	if err != nil {
		panic(fmt.Sprintf("filter: embedded policy: %v", err))
	}
	p := &Policy{settings: Settings{MaxTokenTTL: DefaultMaxTokenTTL}, clouds: map[Cloud]*cloudPolicy{}}
	for c, f := range files {
		p.clouds[c] = indexPolicy(f)
	}
	return p
}

// indexPolicy builds the lookup tables of a policy file.
func indexPolicy(f *policyFile) *cloudPolicy {
	cp := &cloudPolicy{file: f, routes: map[string]route{}, byPath: map[string]bool{},
		lower: map[string]bool{}, hosts: map[string]bool{}}
	for _, r := range f.Routes {
		if r.Method == "" {
			r.Method = http.MethodGet
		}
		cp.routes[r.Method+" "+r.Path] = r
		cp.byPath[r.Path] = true
		cp.lower[strings.ToLower(r.Path)] = true
	}
	for _, h := range f.Hosts {
		cp.hosts[h] = true
	}
	for _, h := range f.ForwardHeaders {
		cp.forward[classify(h)] = h
	}
	if f.RequiredHeader != nil {
		cp.required = classify(f.RequiredHeader.Name)
	}
	return cp
}

// Settings returns the policy's settings.
func (p *Policy) Settings() Settings { return p.settings }

// WithSettings returns a copy of the policy with the given settings; a zero MaxTokenTTL means
// the default.
func (p *Policy) WithSettings(s Settings) (*Policy, error) {
	switch s.Cloud {
	case "", AWS, GCP, Azure:
	default:
		return nil, fmt.Errorf("filter settings: unknown cloud %q (want aws, gcp, azure or empty)", s.Cloud)
	}
	if s.MaxTokenTTL == 0 {
		s.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if s.MaxTokenTTL < 1 || s.MaxTokenTTL > DefaultMaxTokenTTL {
		return nil, fmt.Errorf("filter settings: maxTokenTTL %d out of range 1-%d", s.MaxTokenTTL, DefaultMaxTokenTTL)
	}
	q := *p
	q.settings = s
	return &q, nil
}

// With returns a copy of the policy that also allows the additions. Each path must be
// canonical (the rules of Request.Validate), without a query or trailing slash, start with the
// cloud's prefix (/latest/, /computeMetadata/v1/, /metadata/) and not fall under the cloud's
// never list (credentials, tokens, user data, identity signatures). Added paths take GET only,
// the cloud's required header and its default query. All errors are returned together.
func (p *Policy) With(adds []Addition) (*Policy, error) {
	merged := map[string][]Addition{}
	for k, v := range p.additions {
		merged[k] = slices.Clone(v)
	}
	var errs []error
	for i, a := range adds {
		who := fmt.Sprintf("addition %d (namespace %q, service account %q)", i, a.Namespace, a.ServiceAccount)
		cp, ok := p.clouds[a.Cloud]
		switch {
		case a.Namespace == "":
			errs = append(errs, fmt.Errorf("%s: namespace required", who))
			continue
		case !ok:
			errs = append(errs, fmt.Errorf("%s: unknown cloud %q (want aws, gcp or azure)", who, a.Cloud))
			continue
		case len(a.Paths) == 0:
			errs = append(errs, fmt.Errorf("%s: no paths", who))
			continue
		}
		for _, path := range a.Paths {
			if err := cp.checkAddition(path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", who, err))
				continue
			}
			key := string(a.Cloud) + " " + path
			merged[key] = append(merged[key], Addition{Namespace: a.Namespace, ServiceAccount: a.ServiceAccount, Cloud: a.Cloud})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	q := *p
	q.additions = merged
	return &q, nil
}

// checkAddition checks one added path against the canonical rules and the never list.
func (cp *cloudPolicy) checkAddition(path string) error {
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("path %q: no query or fragment (the cloud's default query applies)", path)
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q: must start with %s", path, cp.file.Prefix)
	}
	if rej := checkPath(path); rej != nil {
		return fmt.Errorf("path %q is not canonical: %s", path, rej.Reason)
	}
	if !strings.HasPrefix(path, cp.file.Prefix) || strings.HasSuffix(path, "/") {
		return fmt.Errorf("path %q: must start with %s and not end in /", path, cp.file.Prefix)
	}
	if _, class, denied := cp.file.neverMatch(path); denied {
		return fmt.Errorf("path %q is never allowed (%s): give the workload its own identity instead", path, class)
	}
	return nil
}

// Decide decides one request sent by c to dst, the original destination the redirect
// recorded.
//
// The cloud: dst must be 169.254.169.254:80 or [fd00:ec2::254]:80. A Metadata-Flavor header
// (exactly "Google") makes the request GCP's, a Metadata header (exactly "true") Azure's, and
// neither AWS's; both, another value, or either on fd00:ec2::254 (AWS only) is refused. When
// Settings.Cloud names the node's cloud, a request for another cloud is refused and one
// without either header is the node's cloud's (so GCE's root probe, sent without
// Metadata-Flavor, is GCP's). Whatever is unsure is denied.
//
// Then: the Host must be one of the cloud's; a path under the cloud's never list is denied
// with its class; otherwise the method and exact path must be a route of the cloud (or an
// addition for c's namespace and service account), the query must be what the route takes,
// the cloud's required header present, and for AWS the token headers well formed. Anything
// else is denied.
func (p *Policy) Decide(dst netip.AddrPort, c Client, req *Request) Decision {
	if req == nil {
		return deny("", ClassInvalid, badRequest("no request"))
	}
	h, rej := req.check()
	if rej != nil {
		return deny("", ClassInvalid, rej)
	}
	cloud, rej := p.cloudOf(dst, h)
	if rej != nil {
		return deny("", ClassInvalid, rej)
	}
	cp := p.clouds[cloud]
	if rej := cp.checkHost(dst, h.values[fHost]); rej != nil {
		return deny(cloud, ClassInvalid, rej)
	}
	path, rawQuery, _ := strings.Cut(req.Target, "?")
	if _, class, denied := cp.file.neverMatch(path); denied {
		return deny(cloud, class, reject(cp.file.DeniedStatus, "%s is never allowed", path))
	}
	rt, rej := p.match(cloud, c, req.Method, path)
	if rej != nil {
		return deny(cloud, string(cloud)+":denied", rej)
	}
	if rej := cp.checkRoute(rt, p.settings, rawQuery, h); rej != nil {
		return deny(cloud, rt.Class, rej)
	}
	fwd, rej := p.forward(cp, rt, req, path, rawQuery, h)
	if rej != nil {
		return deny(cloud, rt.Class, rej)
	}
	return Decision{Allow: true, Cloud: cloud, Class: rt.Class, Reason: "allowed: " + rt.Path, Forward: fwd}
}

// deny builds a denial from a Rejection.
func deny(cloud Cloud, class string, rej *Rejection) Decision {
	return Decision{Cloud: cloud, Class: class, Reason: rej.Reason, Status: rej.Status}
}

// cloudOf resolves the request's cloud from its destination, its headers and the node's
// cloud: see Decide.
func (p *Policy) cloudOf(dst netip.AddrPort, h *headers) (Cloud, *Rejection) {
	addr := dst.Addr().Unmap()
	if dst.Port() != 80 || (addr != linkLocalIMDS && addr != awsIMDSv6) {
		return "", reject(http.StatusForbidden, "destination %s is not a metadata endpoint", dst)
	}
	flavor, hasFlavor := h.get(fFlavor)
	metadata, hasMetadata := h.get(fMetadata)
	var fromHeader Cloud
	switch {
	case hasFlavor && hasMetadata:
		return "", badRequest("both Metadata-Flavor and Metadata headers: GCP or Azure?")
	case hasFlavor && flavor != "Google":
		return "", badRequest("Metadata-Flavor %q (want Google)", flavor)
	case hasMetadata && metadata != "true":
		return "", badRequest("Metadata %q (want true)", metadata)
	case hasFlavor:
		fromHeader = GCP
	case hasMetadata:
		fromHeader = Azure
	}
	node := p.settings.Cloud
	if addr == awsIMDSv6 {
		if (fromHeader != "" && fromHeader != AWS) || (node != "" && node != AWS) {
			return "", badRequest("only AWS serves %s", awsIMDSv6)
		}
		return AWS, nil
	}
	if node != "" {
		if fromHeader != "" && fromHeader != node {
			return "", badRequest("a %s request on a %s node", fromHeader, node)
		}
		return node, nil
	}
	if fromHeader == "" {
		return AWS, nil
	}
	return fromHeader, nil
}

// checkHost accepts only the cloud's Host values, and an address literal only when it is the
// destination's.
func (cp *cloudPolicy) checkHost(dst netip.AddrPort, host string) *Rejection {
	if !cp.hosts[host] {
		return badRequest("Host %q is not a %s metadata host", host, cp.file.Cloud)
	}
	name := host
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.HasSuffix(name, "]") {
		name = name[:i]
	}
	if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && a != dst.Addr().Unmap() {
		return badRequest("Host %q is not the destination %s", host, dst.Addr())
	}
	return nil
}

// match finds the route for a method and path: the cloud's own, or an addition for the
// client. A path the cloud routes with another method is a 405; a path that differs from a
// route only in case is a 400 (never cleaned); anything else is the cloud's denied status.
func (p *Policy) match(cloud Cloud, c Client, method, path string) (route, *Rejection) {
	cp := p.clouds[cloud]
	if rt, ok := cp.routes[method+" "+path]; ok {
		return rt, nil
	}
	if method == http.MethodGet && p.added(cloud, c, path) {
		return route{Path: path, Method: http.MethodGet, Class: string(cloud) + ":addition"}, nil
	}
	switch {
	case cp.byPath[path]:
		return route{}, reject(http.StatusMethodNotAllowed, "%s not allowed on %s", method, path)
	case cp.lower[strings.ToLower(path)]:
		return route{}, badRequest("path %s differs from an allowed path only in case", path)
	}
	return route{}, reject(cp.file.DeniedStatus, "%s %s is not allowed", method, path)
}

// added reports whether an addition allows the path of the cloud to the client.
func (p *Policy) added(cloud Cloud, c Client, path string) bool {
	if c.Namespace == "" {
		return false
	}
	for _, a := range p.additions[string(cloud)+" "+path] {
		if a.Namespace == c.Namespace && (a.ServiceAccount == "" || a.ServiceAccount == c.ServiceAccount) {
			return true
		}
	}
	return false
}

// checkRoute checks what the route itself requires: its option turned on, the cloud's
// required header, and the query.
func (cp *cloudPolicy) checkRoute(rt route, s Settings, rawQuery string, h *headers) *Rejection {
	if rt.Option == optionIdentityDocument && s.DenyIdentityDocument {
		return reject(cp.file.DeniedStatus, "%s is off (denyIdentityDocument)", rt.Path)
	}
	if req := cp.file.RequiredHeader; req != nil && !rt.HeaderOptional {
		if v, ok := h.get(cp.required); !ok || v != req.Value {
			return reject(req.Status, "missing %s: %s header", req.Name, req.Value)
		}
	}
	spec := cp.file.DefaultQuery
	if rt.Query != nil {
		spec = *rt.Query
	}
	return checkQuery(spec, rawQuery)
}

// checkQuery checks a raw query against a route's spec: known keys and values only, and
// every required key present.
func checkQuery(spec querySpec, rawQuery string) *Rejection {
	var pairs []queryPair
	if rawQuery != "" {
		var rej *Rejection
		if pairs, rej = parseQuery(rawQuery); rej != nil {
			return rej
		}
	}
	for _, q := range pairs {
		values, known := spec.Allowed[q.Key]
		if !known {
			return badRequest("query key %q not allowed here", q.Key)
		}
		if !slices.Contains(values, q.Value) {
			return badRequest("query %s=%s not allowed (want one of %s)", q.Key, q.Value, strings.Join(values, ", "))
		}
	}
	for _, k := range spec.Required {
		if !slices.ContainsFunc(pairs, func(q queryPair) bool { return q.Key == k }) {
			return badRequest("query key %q required", k)
		}
	}
	return nil
}

// forward builds the upstream request: the route's method and the exact path and query, with
// only the cloud's forwarded headers. For AWS the token PUT carries the TTL, capped, and
// GETs carry the token; each is checked first.
func (p *Policy) forward(cp *cloudPolicy, rt route, req *Request, path, rawQuery string, h *headers) (*Forward, *Rejection) {
	fwd := &Forward{Method: rt.Method, Path: path, RawQuery: rawQuery}
	if cp.file.Cloud == AWS {
		if rej := checkAWSTokens(rt, h); rej != nil {
			return nil, rej
		}
	}
	for _, f := range req.Header {
		i := classify(f.Name)
		if i < 0 || cp.forward[i] == "" {
			continue
		}
		name, value := cp.forward[i], f.Value
		switch i {
		case fTokenTTL:
			if rt.Method != http.MethodPut {
				continue
			}
			ttl, _ := strconv.Atoi(value)
			value = strconv.Itoa(min(ttl, p.settings.MaxTokenTTL))
		case fToken:
			if rt.Method != http.MethodGet {
				continue
			}
		}
		fwd.Header = append(fwd.Header, Field{Name: name, Value: value})
	}
	return fwd, nil
}

// checkAWSTokens checks the IMDSv2 headers: the token PUT needs a TTL of 1 to 21600 seconds
// in plain digits (IMDS answers 400 otherwise); a token, when sent, is base64 or base64url
// text. The TTL above the cap is lowered, not refused: the client gets a shorter token and
// refreshes it earlier.
func checkAWSTokens(rt route, h *headers) *Rejection {
	if rt.Method == http.MethodPut {
		v, ok := h.get(fTokenTTL)
		if !ok {
			return badRequest("token PUT without X-aws-ec2-metadata-token-ttl-seconds")
		}
		ttl, err := strconv.Atoi(v)
		if err != nil || ttl < 1 || ttl > DefaultMaxTokenTTL || v != strconv.Itoa(ttl) {
			return badRequest("token TTL %q (want 1 to %d seconds)", v, DefaultMaxTokenTTL)
		}
		if _, ok := h.get(fToken); ok {
			return badRequest("token PUT carrying a token")
		}
		return nil
	}
	if v, ok := h.get(fToken); ok {
		if v == "" || strings.IndexFunc(v, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return badRequest("X-aws-ec2-metadata-token is not base64 text")
		}
	}
	return nil
}

// isTokenChar is a base64 or base64url character (EC2 tokens are base64 text).
func isTokenChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		r == '+' || r == '/' || r == '=' || r == '-' || r == '_'
}
