package filter

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	dstV4 = netip.MustParseAddrPort("169.254.169.254:80")
	dstV6 = netip.MustParseAddrPort("[fd00:ec2::254]:80")
)

// request builds a Request for the tests: the header lines are "Name: value".
func request(method, target string, header ...string) *Request {
	r := &Request{Method: method, Target: target, Proto: "HTTP/1.1"}
	for _, h := range header {
		name, value, _ := strings.Cut(h, ": ")
		r.Header = append(r.Header, Field{Name: name, Value: value})
	}
	return r
}

const (
	awsHost   = "Host: 169.254.169.254"
	gcpHost   = "Host: metadata.google.internal"
	google    = "Metadata-Flavor: Google"
	azureMeta = "Metadata: true"
	azureQ    = "?api-version=2021-02-01&format=text"
)

// TestDecidePerCloud states the policy, row by row: each allowed path, each forbidden path,
// and the status of each denial.
func TestDecidePerCloud(t *testing.T) {
	cases := []struct {
		name   string
		req    *Request
		allow  bool
		class  string
		status int
	}{
		// AWS: allowed.
		{"aws token PUT", request("PUT", "/latest/api/token", awsHost, "X-aws-ec2-metadata-token-ttl-seconds: 21600"), true, "aws:token", 0},
		{"aws region", request("GET", "/latest/meta-data/placement/region", awsHost), true, "aws:region", 0},
		{"aws availability zone", request("GET", "/latest/meta-data/placement/availability-zone", awsHost), true, "aws:availability-zone", 0},
		{"aws availability zone id", request("GET", "/latest/meta-data/placement/availability-zone-id", awsHost), true, "aws:availability-zone", 0},
		{"aws instance id", request("GET", "/latest/meta-data/instance-id", awsHost), true, "aws:instance-id", 0},
		{"aws instance type", request("GET", "/latest/meta-data/instance-type", awsHost), true, "aws:instance-type", 0},
		{"aws ami id", request("GET", "/latest/meta-data/ami-id", awsHost), true, "aws:ami-id", 0},
		{"aws region with token", request("GET", "/latest/meta-data/placement/region", awsHost, "X-aws-ec2-metadata-token: abc=="), true, "aws:region", 0},
		// AWS: denied with 404, as IMDS answers for absent data.
		{"aws role list", request("GET", "/latest/meta-data/iam/security-credentials/", awsHost), false, "aws:credentials", 404},
		{"aws role list without slash (kube2iam #121)", request("GET", "/latest/meta-data/iam/security-credentials", awsHost), false, "aws:credentials", 404},
		{"aws role credentials", request("GET", "/latest/meta-data/iam/security-credentials/node", awsHost), false, "aws:credentials", 404},
		{"aws iam info", request("GET", "/latest/meta-data/iam/info", awsHost), false, "aws:credentials", 404},
		{"aws identity credentials", request("GET", "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance", awsHost), false, "aws:credentials", 404},
		{"aws user data", request("GET", "/latest/user-data", awsHost), false, "aws:user-data", 404},
		{"aws pkcs7", request("GET", "/latest/dynamic/instance-identity/pkcs7", awsHost), false, "aws:identity-signature", 404},
		{"aws signature", request("GET", "/latest/dynamic/instance-identity/signature", awsHost), false, "aws:identity-signature", 404},
		{"aws rsa2048", request("GET", "/latest/dynamic/instance-identity/rsa2048", awsHost), false, "aws:identity-signature", 404},
		{"aws public keys", request("GET", "/latest/meta-data/public-keys/0/openssh-key", awsHost), false, "aws:public-keys", 404},
		{"aws tags", request("GET", "/latest/meta-data/tags/instance", awsHost), false, "aws:tags", 404},
		{"aws identity document on by default", request("GET", "/latest/dynamic/instance-identity/document", awsHost), true, "aws:identity-document", 0},
		{"aws listing", request("GET", "/latest/meta-data/", awsHost), false, "aws:denied", 404},
		{"aws credentials in another case", request("GET", "/latest/meta-data/IAM/security-credentials/", awsHost), false, "aws:credentials", 404},
		{"aws region in another case", request("GET", "/latest/meta-data/placement/Region", awsHost), false, "aws:denied", 400},
		{"aws token GET", request("GET", "/latest/api/token", awsHost), false, "aws:denied", 405},
		{"aws token PUT without TTL", request("PUT", "/latest/api/token", awsHost), false, "aws:token", 400},
		{"aws token PUT TTL 0", request("PUT", "/latest/api/token", awsHost, "X-aws-ec2-metadata-token-ttl-seconds: 0"), false, "aws:token", 400},
		{"aws PUT elsewhere", request("PUT", "/latest/meta-data/placement/region", awsHost, "X-aws-ec2-metadata-token-ttl-seconds: 60"), false, "aws:denied", 405},
		// GCP: allowed.
		{"gcp root probe", request("GET", "/", gcpHost, google), true, "gcp:root", 0},
		{"gcp project id", request("GET", "/computeMetadata/v1/project/project-id", gcpHost, google), true, "gcp:project", 0},
		{"gcp numeric project id", request("GET", "/computeMetadata/v1/project/numeric-project-id", gcpHost, google), true, "gcp:project", 0},
		{"gcp zone", request("GET", "/computeMetadata/v1/instance/zone?alt=text", gcpHost, google), true, "gcp:zone", 0},
		{"gcp id", request("GET", "/computeMetadata/v1/instance/id?alt=json", gcpHost, google), true, "gcp:instance", 0},
		{"gcp hostname", request("GET", "/computeMetadata/v1/instance/hostname", gcpHost, google), true, "gcp:instance", 0},
		{"gcp name", request("GET", "/computeMetadata/v1/instance/name", gcpHost, google), true, "gcp:instance", 0},
		{"gcp cluster name", request("GET", "/computeMetadata/v1/instance/attributes/cluster-name", gcpHost, google), true, "gcp:cluster", 0},
		{"gcp cluster location", request("GET", "/computeMetadata/v1/instance/attributes/cluster-location", gcpHost, google), true, "gcp:cluster", 0},
		// GCP: denied with 403, as GCE answers for a disabled endpoint.
		{"gcp token", request("GET", "/computeMetadata/v1/instance/service-accounts/default/token", gcpHost, google), false, "gcp:token", 403},
		{"gcp service accounts", request("GET", "/computeMetadata/v1/instance/service-accounts/", gcpHost, google), false, "gcp:token", 403},
		{"gcp kube-env", request("GET", "/computeMetadata/v1/instance/attributes/kube-env", gcpHost, google), false, "gcp:kube-env", 403},
		{"gcp kube-env slash", request("GET", "/computeMetadata/v1/instance/attributes/kube-env/", gcpHost, google), false, "gcp:kube-env", 403},
		{"gcp KUBE-ENV", request("GET", "/computeMetadata/v1/instance/attributes/KUBE-ENV", gcpHost, google), false, "gcp:kube-env", 403},
		{"gcp other attribute", request("GET", "/computeMetadata/v1/instance/attributes/startup-script", gcpHost, google), false, "gcp:denied", 403},
		{"gcp attributes recursive", request("GET", "/computeMetadata/v1/instance/attributes/?recursive=true", gcpHost, google), false, "gcp:denied", 403},
		{"gcp zone recursive", request("GET", "/computeMetadata/v1/instance/zone?recursive=true", gcpHost, google), false, "gcp:zone", 400},
		{"gcp zone wait_for_change", request("GET", "/computeMetadata/v1/instance/zone?wait_for_change=true", gcpHost, google), false, "gcp:zone", 400},
		{"gcp v0.1", request("GET", "/computeMetadata/v0.1/meta-data/service-accounts/default/acquire", gcpHost, google), false, "gcp:denied", 403},
		{"gcp v1beta1", request("GET", "/computeMetadata/v1beta1/instance/service-accounts/default/token", gcpHost, google), false, "gcp:denied", 403},
		{"gcp without Metadata-Flavor is AWS, and not its Host", request("GET", "/computeMetadata/v1/project/project-id", gcpHost), false, ClassInvalid, 400},
		// Azure: allowed.
		{"azure location", request("GET", "/metadata/instance/compute/location"+azureQ, awsHost, azureMeta), true, "azure:location", 0},
		{"azure zone", request("GET", "/metadata/instance/compute/zone"+azureQ, awsHost, azureMeta), true, "azure:zone", 0},
		{"azure vmId", request("GET", "/metadata/instance/compute/vmId"+azureQ, awsHost, azureMeta), true, "azure:vm-id", 0},
		{"azure azEnvironment", request("GET", "/metadata/instance/compute/azEnvironment"+azureQ, awsHost, azureMeta), true, "azure:environment", 0},
		{"azure versions", request("GET", "/metadata/versions", awsHost, azureMeta), true, "azure:versions", 0},
		// Azure: denied with 400, which azidentity takes as "no identity".
		{"azure token", request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01", awsHost, azureMeta), false, "azure:token", 400},
		{"azure attested", request("GET", "/metadata/attested/document?api-version=2021-02-01", awsHost, azureMeta), false, "azure:attested", 400},
		{"azure user data", request("GET", "/metadata/instance/compute/userData"+azureQ, awsHost, azureMeta), false, "azure:user-data", 400},
		{"azure instance document", request("GET", "/metadata/instance?api-version=2021-02-01", awsHost, azureMeta), false, "azure:instance-document", 400},
		{"azure compute document", request("GET", "/metadata/instance/compute?api-version=2021-02-01", awsHost, azureMeta), false, "azure:instance-document", 400},
		{"azure network", request("GET", "/metadata/instance/network?api-version=2021-02-01", awsHost, azureMeta), false, "azure:denied", 400},
		{"azure location without api-version", request("GET", "/metadata/instance/compute/location?format=text", awsHost, azureMeta), false, "azure:location", 400},
		{"azure location json", request("GET", "/metadata/instance/compute/location?api-version=2021-02-01&format=json", awsHost, azureMeta), false, "azure:location", 400},
		{"azure location unknown version", request("GET", "/metadata/instance/compute/location?api-version=2017-04-02&format=text", awsHost, azureMeta), false, "azure:location", 400},
		// Either.
		{"both flavour headers", request("GET", "/", awsHost, google, azureMeta), false, ClassInvalid, 400},
		{"X-Forwarded-For", request("GET", "/latest/meta-data/placement/region", awsHost, "X-Forwarded-For: 1.2.3.4"), false, ClassInvalid, 400},
		{"HEAD", request("HEAD", "/latest/meta-data/placement/region", awsHost), false, ClassInvalid, 405},
	}
	p := DefaultPolicy()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(dstV4, Client{Namespace: "ns", ServiceAccount: "sa"}, tc.req)
			if d.Allow != tc.allow || d.Class != tc.class || d.Status != tc.status {
				t.Errorf("decision allow=%v class=%q status=%d (%s), want allow=%v class=%q status=%d",
					d.Allow, d.Class, d.Status, d.Reason, tc.allow, tc.class, tc.status)
			}
			if d.Allow != (d.Forward != nil) {
				t.Errorf("Forward %+v with allow=%v", d.Forward, d.Allow)
			}
		})
	}
}

// TestForwardIsRebuilt: only the cloud's headers go upstream, with their canonical names; the
// token TTL is capped; the token goes only with GETs.
func TestForwardIsRebuilt(t *testing.T) {
	p, err := DefaultPolicy().WithSettings(Settings{MaxTokenTTL: 300})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		dst  netip.AddrPort
		req  *Request
		want Forward
	}{
		{"token TTL capped", dstV4,
			request("PUT", "/latest/api/token", awsHost, "x-aws-ec2-metadata-token-ttl-seconds: 21600", "User-Agent: botocore/1.35", "Accept: */*", "Content-Length: 0"),
			Forward{Method: "PUT", Path: "/latest/api/token", Header: []Field{{"Host", "169.254.169.254"}, {"X-aws-ec2-metadata-token-ttl-seconds", "300"}, {"User-Agent", "botocore/1.35"}}}},
		{"token TTL under the cap kept", dstV4,
			request("PUT", "/latest/api/token", awsHost, "X-aws-ec2-metadata-token-ttl-seconds: 60"),
			Forward{Method: "PUT", Path: "/latest/api/token", Header: []Field{{"Host", "169.254.169.254"}, {"X-aws-ec2-metadata-token-ttl-seconds", "60"}}}},
		{"GET keeps the token, drops the TTL and the rest", dstV6,
			request("GET", "/latest/meta-data/instance-id", "Host: [fd00:ec2::254]", "X-Aws-Ec2-Metadata-Token: tok==", "X-aws-ec2-metadata-token-ttl-seconds: 60", "Cookie: x", "X_Forwarded_For: 1.1.1.1"),
			Forward{Method: "GET", Path: "/latest/meta-data/instance-id", Header: []Field{{"Host", "[fd00:ec2::254]"}, {"X-aws-ec2-metadata-token", "tok=="}}}},
		{"GCP keeps Metadata-Flavor and the query", dstV4,
			request("GET", "/computeMetadata/v1/instance/zone?alt=text", "metadata-flavor: Google", gcpHost, "X-aws-ec2-metadata-token: x"),
			Forward{Method: "GET", Path: "/computeMetadata/v1/instance/zone", RawQuery: "alt=text", Header: []Field{{"Metadata-Flavor", "Google"}, {"Host", "metadata.google.internal"}}}},
		{"Azure keeps Metadata", dstV4,
			request("GET", "/metadata/instance/compute/vmId"+azureQ, awsHost, azureMeta, "Metadata-Flavour: x"),
			Forward{Method: "GET", Path: "/metadata/instance/compute/vmId", RawQuery: azureQ[1:], Header: []Field{{"Host", "169.254.169.254"}, {"Metadata", "true"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.dst, Client{}, tc.req)
			if !d.Allow {
				t.Fatalf("denied: %+v", d)
			}
			if diff := cmp.Diff(tc.want, *d.Forward); diff != "" {
				t.Errorf("Forward (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeCloud: with the node's cloud known, a request without a flavour header is that
// cloud's, and a request for another cloud is refused.
func TestNodeCloud(t *testing.T) {
	cases := []struct {
		node   Cloud
		dst    netip.AddrPort
		req    *Request
		allow  bool
		cloud  Cloud
		status int
	}{
		{"", dstV4, request("GET", "/", awsHost), false, AWS, 404},
		{GCP, dstV4, request("GET", "/", awsHost), true, GCP, 0},
		{GCP, dstV4, request("GET", "/computeMetadata/v1/instance/zone", awsHost), false, GCP, 403},
		{GCP, dstV4, request("GET", "/latest/meta-data/placement/region", awsHost), false, GCP, 403},
		{AWS, dstV4, request("GET", "/computeMetadata/v1/instance/zone", gcpHost, google), false, "", 400},
		{Azure, dstV4, request("GET", "/metadata/instance/compute/location"+azureQ, awsHost), false, Azure, 400},
		{Azure, dstV4, request("GET", "/metadata/instance/compute/location"+azureQ, awsHost, azureMeta), true, Azure, 0},
		{Azure, dstV6, request("GET", "/latest/meta-data/placement/region", "Host: [fd00:ec2::254]"), false, "", 400},
		{"", dstV6, request("GET", "/latest/meta-data/placement/region", "Host: [fd00:ec2::254]"), true, AWS, 0},
		{"", netip.MustParseAddrPort("169.254.169.254:8080"), request("GET", "/latest/meta-data/placement/region", awsHost), false, "", 403},
	}
	for _, tc := range cases {
		p, err := DefaultPolicy().WithSettings(Settings{Cloud: tc.node})
		if err != nil {
			t.Fatal(err)
		}
		d := p.Decide(tc.dst, Client{}, tc.req)
		if d.Allow != tc.allow || d.Cloud != tc.cloud || d.Status != tc.status {
			t.Errorf("node %q, %s %s to %s: allow=%v cloud=%q status=%d (%s), want allow=%v cloud=%q status=%d",
				tc.node, tc.req.Method, tc.req.Target, tc.dst, d.Allow, d.Cloud, d.Status, d.Reason, tc.allow, tc.cloud, tc.status)
		}
	}
}

// TestIdentityDocumentSetting: the AWS identity document passes unless the configuration
// refuses it; its signatures never pass.
func TestIdentityDocumentSetting(t *testing.T) {
	req := request("GET", "/latest/dynamic/instance-identity/document", awsHost)
	if d := DefaultPolicy().Decide(dstV4, Client{}, req); !d.Allow || d.Class != "aws:identity-document" {
		t.Errorf("identity document by default: %+v, want allowed (aws-sdk-go-v2 reads the region from it)", d)
	}
	p, err := DefaultPolicy().WithSettings(Settings{DenyIdentityDocument: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(dstV4, Client{}, req); d.Allow || d.Status != 404 {
		t.Errorf("identity document refused by the setting: %+v", d)
	}
	if d := DefaultPolicy().Decide(dstV4, Client{}, request("GET", "/latest/dynamic/instance-identity/pkcs7", awsHost)); d.Allow {
		t.Errorf("pkcs7 allowed")
	}
}

// TestSettingsValidation: settings out of range are refused with a clear error.
func TestSettingsValidation(t *testing.T) {
	for _, s := range []Settings{{Cloud: "alibaba"}, {MaxTokenTTL: -1}, {MaxTokenTTL: 21601}} {
		if _, err := DefaultPolicy().WithSettings(s); err == nil {
			t.Errorf("settings %+v accepted", s)
		}
	}
}

// TestAdditions: an addition allows its paths to its namespace (and service account) only,
// and additions that are not canonical or name a never path are refused, all errors at once.
func TestAdditions(t *testing.T) {
	p, err := DefaultPolicy().With([]Addition{
		{Namespace: "monitoring", Cloud: AWS, Paths: []string{"/latest/meta-data/mac", "/latest/meta-data/local-ipv4"}},
		{Namespace: "ops", ServiceAccount: "probe", Cloud: GCP, Paths: []string{"/computeMetadata/v1/instance/attributes/team"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		client Client
		req    *Request
		allow  bool
	}{
		{Client{Namespace: "monitoring", ServiceAccount: "any"}, request("GET", "/latest/meta-data/mac", awsHost), true},
		{Client{Namespace: "other"}, request("GET", "/latest/meta-data/mac", awsHost), false},
		{Client{}, request("GET", "/latest/meta-data/mac", awsHost), false},
		{Client{Namespace: "monitoring"}, request("PUT", "/latest/meta-data/mac", awsHost, "X-aws-ec2-metadata-token-ttl-seconds: 60"), false},
		{Client{Namespace: "monitoring"}, request("GET", "/latest/meta-data/mac/", awsHost), false},
		{Client{Namespace: "ops", ServiceAccount: "probe"}, request("GET", "/computeMetadata/v1/instance/attributes/team?alt=text", gcpHost, google), true},
		{Client{Namespace: "ops", ServiceAccount: "probe"}, request("GET", "/computeMetadata/v1/instance/attributes/team", gcpHost), false},
		{Client{Namespace: "ops", ServiceAccount: "other"}, request("GET", "/computeMetadata/v1/instance/attributes/team", gcpHost, google), false},
	}
	for _, tc := range cases {
		d := p.Decide(dstV4, tc.client, tc.req)
		if d.Allow != tc.allow {
			t.Errorf("%+v %s %s: allow=%v (%s), want %v", tc.client, tc.req.Method, tc.req.Target, d.Allow, d.Reason, tc.allow)
		}
		if d.Allow && !strings.HasSuffix(d.Class, ":addition") {
			t.Errorf("class %q for an addition", d.Class)
		}
	}
	if d := DefaultPolicy().Decide(dstV4, Client{Namespace: "monitoring"}, request("GET", "/latest/meta-data/mac", awsHost)); d.Allow {
		t.Errorf("the default policy was changed by With")
	}

	_, err = DefaultPolicy().With([]Addition{
		{Namespace: "a", Cloud: AWS, Paths: []string{
			"/latest/meta-data/iam/security-credentials/role",
			"/latest/meta-data/IAM/info",
			"/latest/meta-data/%69am/info",
			"/latest/meta-data/placement/../iam",
			"/latest/meta-data//mac",
			"/latest/meta-data/mac/",
			"/latest/meta-data/mac?x=1",
			"/computeMetadata/v1/instance/id",
			"latest/meta-data/mac",
		}},
		{Namespace: "", Cloud: AWS, Paths: []string{"/latest/meta-data/mac"}},
		{Namespace: "b", Cloud: "oracle", Paths: []string{"/opc/v2/instance/"}},
		{Namespace: "c", Cloud: GCP, Paths: []string{"/computeMetadata/v1/instance/attributes/kube-env"}},
		{Namespace: "d", Cloud: Azure, Paths: []string{"/metadata/instance"}},
		{Namespace: "e", Cloud: Azure},
	})
	if err == nil {
		t.Fatal("invalid additions accepted")
	}
	for _, want := range []string{
		"security-credentials/role\" is never allowed (aws:credentials)",
		"IAM/info\" is never allowed",
		"%69am/info\" is not canonical",
		"placement/../iam\" is not canonical",
		"//mac\" is not canonical",
		"mac/\": must start with /latest/ and not end in /",
		"mac?x=1\": no query",
		"/computeMetadata/v1/instance/id\": must start with /latest/",
		"\"latest/meta-data/mac\": must start with /latest/",
		"namespace required",
		"unknown cloud \"oracle\"",
		"kube-env\" is never allowed (gcp:kube-env)",
		"\"/metadata/instance\" is never allowed (azure:instance-document)",
		"(namespace \"e\", service account \"\"): no paths",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestEmbeddedPolicyFiles: every cloud's file loads, and each never path is denied with its
// class (the data agrees with itself).
func TestEmbeddedPolicyFiles(t *testing.T) {
	files, err := loadPolicyFiles()
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	headers := map[Cloud][]string{AWS: {awsHost}, GCP: {gcpHost, google}, Azure: {awsHost, azureMeta}}
	for c, f := range files {
		for _, n := range f.Never {
			d := p.Decide(dstV4, Client{}, request("GET", n.Path, headers[c]...))
			if d.Allow || d.Class != n.Class || d.Status != f.DeniedStatus {
				t.Errorf("%s never %s: %+v", c, n.Path, d)
			}
		}
	}
}

// TestReadRequest: what the reader accepts, and the status of each refusal.
func TestReadRequest(t *testing.T) {
	cases := []struct {
		name, raw string
		status    int // 0: accepted
	}{
		{"plain", "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 0},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n", 0},
		{"bare LF", "GET / HTTP/1.1\nHost: 169.254.169.254\n\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: 169.254.169.254\r\nA: b\r\n c\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : 169.254.169.254\r\n\r\n", 400},
		{"control character", "GET / HTTP/1.1\r\nHost: 169.254.169.254\x01\r\n\r\n", 400},
		{"non-ASCII", "GET /\xc3\xa9 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 400},
		{"HTTP/0.9", "GET /\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: 169.254.169.254\r\n\r\n", 505},
		{"absolute-form", "GET http://169.254.169.254/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 400},
		{"authority-form", "CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 405},
		{"percent-encoding", "GET /latest/meta-data/%69am HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 400},
		{"dot segment", "GET /latest/./meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 400},
		{"Transfer-Encoding", "GET / HTTP/1.1\r\nHost: 169.254.169.254\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"duplicate Content-Length", "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400},
		{"long line", "GET /" + strings.Repeat("a", 1100) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"long headers", "GET / HTTP/1.1\r\nHost: 169.254.169.254\r\nA: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431},
		{"many headers", "GET / HTTP/1.1\r\nHost: 169.254.169.254\r\n" + strings.Repeat("A: b\r\n", 40) + "\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRequest(bufio.NewReader(strings.NewReader(tc.raw)), DefaultLimits())
			status := 0
			if err != nil {
				var rej *Rejection
				if !errors.As(err, &rej) {
					t.Fatalf("error %v is not a Rejection", err)
				}
				status = rej.Status
			}
			if status != tc.status {
				t.Errorf("status %d (%v), want %d", status, err, tc.status)
			}
		})
	}
}

// TestReadRequestLeavesNextRequest: the reader stops at the end of the head, so a pipelined
// request is read (and decided) on its own.
func TestReadRequestLeavesNextRequest(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
	for _, want := range []string{"/a", "/b"} {
		req, err := ReadRequest(r, DefaultLimits())
		if err != nil || req.Target != want {
			t.Fatalf("got %+v, %v; want target %s", req, err, want)
		}
	}
	if _, err := ReadRequest(r, DefaultLimits()); !errors.Is(err, io.EOF) {
		t.Errorf("after the last request: %v, want EOF", err)
	}
	_, err := ReadRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\n")), DefaultLimits())
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated head: %v, want unexpected EOF", err)
	}
}

// TestDecideValidatesBuiltRequests: Decide applies the canonical rules to a Request built by
// hand, not only to what ReadRequest returns.
func TestDecideValidatesBuiltRequests(t *testing.T) {
	p := DefaultPolicy()
	for _, req := range []*Request{
		nil,
		request("GET", "/latest/meta-data/placement/../iam/info", awsHost),
		request("GET", "/latest/meta-data/placement/region", awsHost, "User-Agent: a\r\nX-Forwarded-For: 1"),
		{Method: "GET", Target: "/latest/meta-data/placement/region", Proto: "HTTP/2.0", Header: []Field{{"Host", "169.254.169.254"}}},
		request("GET", "/latest/meta-data/placement/region", awsHost, "Bad Name: x"),
	} {
		if d := p.Decide(dstV4, Client{}, req); d.Allow || d.Status == 0 || d.Class != ClassInvalid {
			t.Errorf("%+v: %+v", req, d)
		}
	}
	if d := p.Decide(dstV4, Client{}, request("GET", "/latest/meta-data/placement/region", awsHost)); d.Status != 0 || !d.Allow {
		t.Errorf("plain region: %+v", d)
	}
	if http.StatusText(DefaultPolicy().clouds[AWS].file.DeniedStatus) == "" {
		t.Error("AWS denied status is not HTTP")
	}
}
