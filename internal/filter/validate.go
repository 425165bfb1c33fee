package filter

import (
	"net/http"
	"strings"
)

// Header fields the filter reads or forwards, by index into headers.values.
const (
	fHost = iota
	fUserAgent
	fContentLength
	fConnection
	fFlavor   // GCE: https://cloud.google.com/compute/docs/metadata/querying-metadata
	fMetadata // Azure: https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service
	fToken    // EC2: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
	fTokenTTL
	nKnown
)

// knownNames are the lower-case names of the fields the filter reads; each may appear at most
// once, as two copies would leave the metadata service to choose between them.
var knownNames = [nKnown]string{
	"host", "user-agent", "content-length", "connection",
	"metadata-flavor", "metadata", "x-aws-ec2-metadata-token", "x-aws-ec2-metadata-token-ttl-seconds",
}

// forbiddenNames are refused outright. Transfer-Encoding: a request here never has a body,
// and a chunked or conflicting framing is the classic request-smuggling vector (RFC 9112
// section 6.3). Upgrade, HTTP2-Settings: no protocol switch (h2c, WebSocket) past the filter
// (RFC 9113 section 3.1 drops h2c, RFC 9110 section 7.8). Forwarding headers (and every
// X-Forwarded-* header): a client must not speak for the proxy, and GCE and Azure refuse
// requests carrying X-Forwarded-For (GCE: https://cloud.google.com/compute/docs/metadata/querying-metadata;
// Azure IMDS docs, "Proxies"). Expect: there is no body to continue with. TE,
// Proxy-Connection: hop-by-hop fields no metadata client sends.
var forbiddenNames = []string{
	"transfer-encoding", "upgrade", "http2-settings", "x-forwarded-for", "forwarded", "x-real-ip",
	"proxy-connection", "expect", "te",
}

// classify returns the index of a known field name, compared without regard to case, or -1.
func classify(name string) int {
	for i, k := range knownNames {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return i
		}
	}
	return -1
}

// forbidden reports whether a field name is refused.
func forbidden(name string) bool {
	const xf = "x-forwarded-"
	if len(name) >= len(xf) && strings.EqualFold(name[:len(xf)], xf) {
		return true
	}
	for _, f := range forbiddenNames {
		if len(f) == len(name) && strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// headers are the known fields of a valid request.
type headers struct {
	values  [nKnown]string
	present uint16
}

// get returns a known field's value and whether it was sent.
func (h *headers) get(i int) (string, bool) {
	return h.values[i], h.present&(1<<i) != 0
}

// Validate checks the canonical rules every request must meet before the policy looks at it,
// whoever built it (ReadRequest calls it; Decide calls it again). It returns nil or the
// Rejection naming the first rule broken:
//   - version HTTP/1.1 or HTTP/1.0;
//   - method GET or PUT (405 otherwise, CONNECT and HEAD included);
//   - an origin-form target of unreserved characters and "/" only, with no empty, "." or ".."
//     segment, no segment ending in ".", and a query of distinct non-empty key=value pairs;
//   - header names that are tokens, values of visible ASCII, spaces and tabs;
//   - none of the forbidden headers, no X-Forwarded-* header;
//   - Host present once; each header the filter reads or forwards at most once;
//   - Connection only "close" or "keep-alive";
//   - no Content-Length on GET; on PUT none or "0".
func (r *Request) Validate() *Rejection {
	_, rej := r.check()
	return rej
}

// check is Validate that also returns the headers the policy reads.
func (r *Request) check() (*headers, *Rejection) {
	if r.Proto != "HTTP/1.1" && r.Proto != "HTTP/1.0" {
		return nil, reject(http.StatusHTTPVersionNotSupported, "version %q (want HTTP/1.1 or HTTP/1.0)", r.Proto)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		return nil, reject(http.StatusMethodNotAllowed, "method %q (only GET, and PUT for the AWS token)", r.Method)
	}
	if _, _, rej := splitTarget(r.Target); rej != nil {
		return nil, rej
	}
	h := &headers{}
	for _, f := range r.Header {
		if rej := checkField(f); rej != nil {
			return nil, rej
		}
		i := classify(f.Name)
		if i < 0 {
			continue
		}
		if _, dup := h.get(i); dup {
			return nil, badRequest("duplicate %s header", f.Name)
		}
		h.values[i] = f.Value
		h.present |= 1 << i
	}
	if _, ok := h.get(fHost); !ok {
		return nil, badRequest("no Host header")
	}
	if rej := checkFraming(r.Method, h); rej != nil {
		return nil, rej
	}
	return h, nil
}

// checkField checks one header field's syntax and refuses the forbidden ones.
func checkField(f Field) *Rejection {
	if f.Name == "" || !isToken(f.Name) {
		return badRequest("header name %q is not a token", f.Name)
	}
	if forbidden(f.Name) {
		return badRequest("%s header refused", f.Name)
	}
	for i := 0; i < len(f.Value); i++ {
		c := f.Value[i]
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return badRequest("%s header value has byte 0x%02x", f.Name, c)
		}
	}
	if f.Value != strings.Trim(f.Value, " \t") {
		return badRequest("%s header value has surrounding whitespace", f.Name)
	}
	return nil
}

// checkFraming refuses a Connection header naming anything but close or keep-alive (which
// would make other headers hop-by-hop, or ask for an upgrade) and a Content-Length that
// announces a body.
func checkFraming(method string, h *headers) *Rejection {
	if v, ok := h.get(fConnection); ok {
		for _, opt := range strings.Split(v, ",") {
			switch strings.ToLower(strings.Trim(opt, " \t")) {
			case "close", "keep-alive":
			default:
				return badRequest("Connection option %q refused", opt)
			}
		}
	}
	if v, ok := h.get(fContentLength); ok {
		if method != http.MethodPut {
			return badRequest("Content-Length on %s", method)
		}
		if v != "0" {
			return badRequest("Content-Length %q on PUT (only 0)", v)
		}
	}
	return nil
}

// splitTarget splits an origin-form request-target into its path and raw query and checks
// both are canonical: see Validate.
func splitTarget(target string) (path, query string, rej *Rejection) {
	switch {
	case target == "*":
		return "", "", badRequest("asterisk-form request-target")
	case !strings.HasPrefix(target, "/"):
		return "", "", badRequest("request-target %q is not origin-form", target)
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if rej := checkPath(path); rej != nil {
		return "", "", rej
	}
	if hasQuery {
		if _, rej := parseQuery(query); rej != nil {
			return "", "", rej
		}
	}
	return path, query, nil
}

// checkPath checks an absolute path: unreserved characters (RFC 3986 section 2.3) and "/"
// only, so no percent-encoding, no backslash, no ";" parameters, no "#"; no "//"; no "." or
// ".." segment and no segment ending in "." (trailing dots some servers strip). An empty last
// segment (a trailing slash) is syntactically fine; the policy then matches it exactly.
func checkPath(path string) *Rejection {
	for i := 0; i < len(path); i++ {
		if c := path[i]; c != '/' && !isUnreserved(c) {
			return badRequest("character %q in path", c)
		}
	}
	segs := strings.Split(path[1:], "/")
	for i, s := range segs {
		switch {
		case s == "" && i != len(segs)-1:
			return badRequest("empty path segment (//)")
		case s == "." || s == "..":
			return badRequest("dot segment %q in path", s)
		case strings.HasSuffix(s, "."):
			return badRequest("path segment %q ends in a dot", s)
		}
	}
	return nil
}

// queryPair is one key=value of a query, in the order sent.
type queryPair struct{ Key, Value string }

// parseQuery splits a raw query into distinct key=value pairs of unreserved characters: no
// percent-encoding, no "+", no ";" separator, no empty key, value or pair ("&&"), no key twice.
func parseQuery(raw string) ([]queryPair, *Rejection) {
	if raw == "" {
		return nil, badRequest("empty query after ?")
	}
	parts := strings.Split(raw, "&")
	pairs := make([]queryPair, 0, len(parts))
	for _, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" || v == "" {
			return nil, badRequest("query part %q is not key=value", part)
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; c != '=' && !isUnreserved(c) || c == '=' && i != len(k) {
				return nil, badRequest("character %q in query", c)
			}
		}
		for _, p := range pairs {
			if p.Key == k {
				return nil, badRequest("duplicate query key %q", k)
			}
		}
		pairs = append(pairs, queryPair{k, v})
	}
	return pairs, nil
}

// isUnreserved is RFC 3986's unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
