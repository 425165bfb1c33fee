package filter

import (
	"embed"
	"fmt"
	"net/http"
	"strings"

	"sigs.k8s.io/yaml"
)

// policyFiles are the per-cloud policies, one YAML file each, with their sources in comments.
//
//go:embed policy/*.yaml
var policyFiles embed.FS

// policyFile is one cloud's policy as written in policy/<cloud>.yaml.
type policyFile struct {
	Cloud Cloud `json:"cloud"`
	// DeniedStatus answers a well-formed request for a path the policy does not allow.
	DeniedStatus int `json:"deniedStatus"`
	// Hosts are the Host header values accepted, exactly.
	Hosts []string `json:"hosts"`
	// ForwardHeaders are the only request headers sent upstream, with these names.
	ForwardHeaders []string `json:"forwardHeaders"`
	// RequiredHeader is the header the metadata service requires, if any.
	RequiredHeader *requiredHeader `json:"requiredHeader,omitempty"`
	// Prefix is what every path of this cloud, additions included, starts with.
	Prefix string `json:"prefix"`
	// DefaultQuery is the query a route without its own accepts.
	DefaultQuery querySpec `json:"defaultQuery"`
	Routes       []route   `json:"routes"`
	Never        []never   `json:"never"`
}

// requiredHeader is a header a cloud's metadata service requires, the exact value it requires
// and the status the service answers when it is missing.
type requiredHeader struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Status int    `json:"status"`
}

// querySpec says which query keys a route takes, with their allowed values, and which it
// requires. The zero value takes no query.
type querySpec struct {
	Allowed  map[string][]string `json:"allowed,omitempty"`
	Required []string            `json:"required,omitempty"`
}

// route is one allowed method and exact path.
type route struct {
	Path   string `json:"path"`
	Method string `json:"method,omitempty"` // GET when empty
	Class  string `json:"class"`
	// Query overrides the file's DefaultQuery; an empty object takes no query.
	Query *querySpec `json:"query,omitempty"`
	// HeaderOptional lets the route pass without the cloud's required header.
	HeaderOptional bool `json:"headerOptional,omitempty"`
	// Option names the setting that turns the route on; empty when always on.
	Option string `json:"option,omitempty"`
}

// never is a path that no configuration may allow: the path itself and, unless Exact,
// everything below it.
type never struct {
	Path  string `json:"path"`
	Class string `json:"class"`
	Exact bool   `json:"exact,omitempty"`
	lower string // Path in lower case
}

// options a route may name.
const optionIdentityDocument = "identityDocument"

// loadPolicyFiles reads and checks every embedded policy file.
func loadPolicyFiles() (map[Cloud]*policyFile, error) {
	entries, err := policyFiles.ReadDir("policy")
	if err != nil {
		return nil, fmt.Errorf("read embedded policies: %w", err)
	}
	files := map[Cloud]*policyFile{}
	for _, e := range entries {
		name := "policy/" + e.Name()
		data, err := policyFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		f := &policyFile{}
		if err := yaml.UnmarshalStrict(data, f); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		if err := f.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if _, dup := files[f.Cloud]; dup {
			return nil, fmt.Errorf("%s: cloud %q defined twice", name, f.Cloud)
		}
		files[f.Cloud] = f
	}
	for _, c := range []Cloud{AWS, GCP, Azure} {
		if files[c] == nil {
			return nil, fmt.Errorf("no embedded policy for cloud %q", c)
		}
	}
	return files, nil
}

// check verifies a policy file is complete and that every path in it is canonical.
func (f *policyFile) check() error {
	switch f.Cloud {
	case AWS, GCP, Azure:
	default:
		return fmt.Errorf("unknown cloud %q", f.Cloud)
	}
	if http.StatusText(f.DeniedStatus) == "" || f.DeniedStatus < 400 {
		return fmt.Errorf("deniedStatus %d is not an HTTP error status", f.DeniedStatus)
	}
	if len(f.Hosts) == 0 || len(f.ForwardHeaders) == 0 || !strings.HasPrefix(f.Prefix, "/") {
		return fmt.Errorf("hosts, forwardHeaders and prefix are required")
	}
	for _, h := range f.ForwardHeaders {
		if classify(h) < 0 {
			return fmt.Errorf("forwardHeaders: %s is not a header the filter knows", h)
		}
	}
	if f.RequiredHeader != nil && classify(f.RequiredHeader.Name) < 0 {
		return fmt.Errorf("requiredHeader: %s is not a header the filter knows", f.RequiredHeader.Name)
	}
	for i, n := range f.Never {
		if rej := checkPath(n.Path); rej != nil || n.Class == "" {
			return fmt.Errorf("never %s: canonical path and class required", n.Path)
		}
		f.Never[i].lower = strings.ToLower(n.Path)
	}
	for _, r := range f.Routes {
		if rej := checkPath(r.Path); rej != nil {
			return fmt.Errorf("route %s: %s", r.Path, rej.Reason)
		}
		if r.Class == "" || (r.Method != "" && r.Method != http.MethodGet && r.Method != http.MethodPut) {
			return fmt.Errorf("route %s: class required, method GET or PUT", r.Path)
		}
		if r.Option != "" && r.Option != optionIdentityDocument {
			return fmt.Errorf("route %s: unknown option %q", r.Path, r.Option)
		}
		if _, class, denied := f.neverMatch(r.Path); denied {
			return fmt.Errorf("route %s is also a never path (%s)", r.Path, class)
		}
	}
	return nil
}

// neverMatch returns the never entry a path falls under, comparing without regard to case so
// that a case variant of a credential path is classed as what it would reach.
func (f *policyFile) neverMatch(path string) (never, string, bool) {
	lower := strings.ToLower(strings.TrimSuffix(path, "/"))
	for _, n := range f.Never {
		if lower == n.lower || (!n.Exact && len(lower) > len(n.lower) && lower[len(n.lower)] == '/' && strings.HasPrefix(lower, n.lower)) {
			return n, n.Class, true
		}
	}
	return never{}, "", false
}
