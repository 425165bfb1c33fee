package filter

import (
	"net/http"
	"strings"
)

// Header names the filter reads, in lower case.
const (
	hHost          = "host"
	hUserAgent     = "user-agent"
	hContentLength = "content-length"
	hConnection    = "connection"
	hFlavor        = "metadata-flavor"          // GCE: https://cloud.google.com/compute/docs/metadata/querying-metadata
	hMetadata      = "metadata"                 // Azure: https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service
	hToken         = "x-aws-ec2-metadata-token" // EC2: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
	hTokenTTL      = "x-aws-ec2-metadata-token-ttl-seconds"
)

// forbiddenHeaders are refused outright. Transfer-Encoding: a request here never has a body,
// and a chunked or conflicting framing is the classic request-smuggling vector (RFC 9112
// section 6.3). Upgrade, HTTP2-Settings: no protocol switch (h2c, WebSocket) past the filter
// (RFC 9113 section 3.1 drops h2c, RFC 9110 section 7.8). Forwarding headers: a client must
// not speak for the proxy, and GCE and Azure refuse requests carrying X-Forwarded-For (GCE:
// https://cloud.google.com/compute/docs/metadata/querying-metadata, "Limitations"; Azure IMDS
// docs, "Proxies"). Expect: there is no body to continue with.
var forbiddenHeaders = map[string]bool{
	"transfer-encoding": true,
	"upgrade":           true,
	"http2-settings":    true,
	"x-forwarded-for":   true,
	"forwarded":         true,
	"x-real-ip":         true,
	"proxy-connection":  true,
	"expect":            true,
	"te":                true,
}

// uniqueHeaders may appear at most once: each is read by the filter or forwarded, and two
// copies would leave the metadata service to choose between them.
var uniqueHeaders = map[string]bool{
	hHost: true, hUserAgent: true, hContentLength: true, hConnection: true,
	hFlavor: true, hMetadata: true, hToken: true, hTokenTTL: true,
}

// headers are the fields of a valid request the filter reads, by their lower-case name; absent
// ones are missing from the map.
type headers map[string]string

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
func (r *Request) check() (headers, *Rejection) {
	if r.Proto != "HTTP/1.1" && r.Proto != "HTTP/1.0" {
		return nil, reject(http.StatusHTTPVersionNotSupported, "version %q (want HTTP/1.1 or HTTP/1.0)", r.Proto)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		return nil, reject(http.StatusMethodNotAllowed, "method %q (only GET, and PUT for the AWS token)", r.Method)
	}
	if _, _, rej := splitTarget(r.Target); rej != nil {
		return nil, rej
	}
	h := make(headers, len(r.Header))
	for _, f := range r.Header {
		name := strings.ToLower(f.Name)
		if rej := checkField(name, f); rej != nil {
			return nil, rej
		}
		if _, dup := h[name]; dup && uniqueHeaders[name] {
			return nil, badRequest("duplicate %s header", f.Name)
		}
		h[name] = f.Value
	}
	if _, ok := h[hHost]; !ok {
		return nil, badRequest("no Host header")
	}
	if rej := checkFraming(r.Method, h); rej != nil {
		return nil, rej
	}
	return h, nil
}

// checkField checks one header field's syntax and refuses the forbidden ones.
func checkField(lower string, f Field) *Rejection {
	if f.Name == "" || !isToken(f.Name) {
		return badRequest("header name %q is not a token", f.Name)
	}
	if forbiddenHeaders[lower] || strings.HasPrefix(lower, "x-forwarded-") {
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
func checkFraming(method string, h headers) *Rejection {
	if v, ok := h[hConnection]; ok {
		for _, opt := range strings.Split(v, ",") {
			switch strings.ToLower(strings.Trim(opt, " \t")) {
			case "close", "keep-alive":
			default:
				return badRequest("Connection option %q refused", opt)
			}
		}
	}
	if v, ok := h[hContentLength]; ok {
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
