package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Field is one header field as sent.
type Field struct{ Name, Value string }

// Request is one HTTP/1.x request as read, before any interpretation.
type Request struct {
	Method, Target, Proto string  // Target: the raw request-target, exactly as sent
	Header                []Field // in order, names as sent
}

// Limits bound what ReadRequest accepts.
type Limits struct {
	// MaxLineBytes bounds the request line, CRLF included.
	MaxLineBytes int
	// MaxHeaderBytes bounds all header lines together, CRLFs and the final empty line included.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header fields.
	MaxHeaders int
}

// DefaultLimits are far above what any metadata client sends (the SDKs send a request line of
// under 100 bytes and at most a handful of headers with a token of about 60 bytes) and far
// below what would let a client make the proxy hold much memory per connection.
func DefaultLimits() Limits {
	return Limits{MaxLineBytes: 1024, MaxHeaderBytes: 4096, MaxHeaders: 32}
}

// Rejection is a request refused before or during policy evaluation: the status to answer
// and a short reason for logs.
type Rejection struct {
	Status int
	Reason string
}

// Error implements error.
func (r *Rejection) Error() string {
	return fmt.Sprintf("%d %s: %s", r.Status, http.StatusText(r.Status), r.Reason)
}

// reject builds a Rejection with a formatted reason.
func reject(status int, format string, args ...any) *Rejection {
	return &Rejection{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// badRequest is a Rejection with status 400, the answer to anything malformed or
// non-canonical (see docs/agent.md, "Filter mode: what passes", for why 400).
func badRequest(format string, args ...any) *Rejection {
	return reject(http.StatusBadRequest, format, args...)
}

// ReadRequest reads one request head (request line and header fields, up to and including the
// empty line) from r and refuses, with a *Rejection, anything not plainly canonical: see
// Request.Validate for the rules. It reads no body: a request it accepts has none (no
// Transfer-Encoding, Content-Length absent or 0), so r is left at the start of the next
// request. An error that is not a *Rejection comes from r (io.EOF when r ends before the first
// byte, io.ErrUnexpectedEOF when it ends within the head).
func ReadRequest(r *bufio.Reader, l Limits) (*Request, error) {
	line, err := readLine(r, l.MaxLineBytes, http.StatusRequestURITooLong)
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			return nil, io.EOF
		}
		return nil, wrapRead("request line", err)
	}
	req, rej := parseRequestLine(line)
	if rej != nil {
		return nil, rej
	}
	budget := l.MaxHeaderBytes
	for {
		line, err := readLine(r, budget, http.StatusRequestHeaderFieldsTooLarge)
		if err != nil {
			return nil, wrapRead("header", err)
		}
		budget -= len(line) + 2
		if line == "" {
			break
		}
		if len(req.Header) == l.MaxHeaders {
			return nil, reject(http.StatusRequestHeaderFieldsTooLarge, "more than %d header fields", l.MaxHeaders)
		}
		f, rej := parseField(line)
		if rej != nil {
			return nil, rej
		}
		req.Header = append(req.Header, f)
	}
	if rej := req.Validate(); rej != nil {
		return nil, rej
	}
	return req, nil
}

// wrapRead gives a reader error its context, keeping Rejections as they are and turning an
// end of input within the head into io.ErrUnexpectedEOF.
func wrapRead(what string, err error) error {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// readLine reads one line ending in CRLF, of at most limit bytes with the CRLF, and returns it
// without the CRLF. A bare LF, a CR not followed by LF, or any other control character but
// HTAB is refused with 400 (also in a line cut short by the end of input); a line longer than
// limit, or than r's buffer, with tooLong.
func readLine(r *bufio.Reader, limit int, tooLong int) (string, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", reject(tooLong, "line longer than %d bytes", min(limit, r.Size()))
	case err != nil:
		if rej := checkLineBytes(bytes.TrimSuffix(line, []byte("\r"))); rej != nil {
			return "", rej
		}
		return string(line), err
	case len(line) > limit:
		return "", reject(tooLong, "line longer than %d bytes", limit)
	case len(line) < 2 || line[len(line)-2] != '\r':
		return "", badRequest("bare LF line ending")
	}
	line = line[:len(line)-2]
	if rej := checkLineBytes(line); rej != nil {
		return "", rej
	}
	return string(line), nil
}

// checkLineBytes refuses a CR, a control character other than HTAB, and any non-ASCII byte.
func checkLineBytes(line []byte) *Rejection {
	for _, c := range line {
		switch {
		case c == '\r':
			return badRequest("CR not followed by LF")
		case c == '\t':
		case c < 0x20 || c == 0x7f:
			return badRequest("control character 0x%02x", c)
		case c >= 0x80:
			return badRequest("non-ASCII byte 0x%02x", c)
		}
	}
	return nil
}

// parseRequestLine splits "METHOD SP TARGET SP HTTP/1.x" with single spaces and nothing else.
func parseRequestLine(line string) (*Request, *Rejection) {
	if line == "" {
		return nil, badRequest("empty line before the request line")
	}
	if line == "PRI * HTTP/2.0" {
		return nil, reject(http.StatusHTTPVersionNotSupported, "HTTP/2 connection preface")
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		return nil, badRequest("request line is not METHOD SP TARGET SP VERSION")
	}
	method, target, proto := parts[0], parts[1], parts[2]
	if method == "" || !isToken(method) {
		return nil, badRequest("method %q is not a token", method)
	}
	if target == "" {
		return nil, badRequest("empty request-target")
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return nil, reject(http.StatusHTTPVersionNotSupported, "version %q (want HTTP/1.1 or HTTP/1.0)", proto)
	}
	return &Request{Method: method, Target: target, Proto: proto}, nil
}

// parseField splits "Name: value": a token name with no whitespace before the colon, and the
// value without its surrounding spaces or tabs. A line starting with whitespace is an obsolete
// line folding and refused.
func parseField(line string) (Field, *Rejection) {
	if line[0] == ' ' || line[0] == '\t' {
		return Field{}, badRequest("obsolete line folding")
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return Field{}, badRequest("header line without a colon")
	}
	if name == "" || !isToken(name) {
		return Field{}, badRequest("header name %q is not a token", name)
	}
	return Field{Name: name, Value: strings.Trim(value, " \t")}, nil
}

// isToken reports whether s is an RFC 9110 token (section 5.6.2): tchar only.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// isTchar is RFC 9110's tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
