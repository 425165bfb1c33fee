package ec2api_test

// No AWS is reachable from the tests, so package ec2apitest serves the EC2 Query API's documented
// wire format for DescribeInstances from a local httptest server
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html), and the
// real aws-sdk-go-v2 client talks to it through Options.Endpoint, with static credentials.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/imdsguard/imdsguard/internal/ec2api"
	"github.com/imdsguard/imdsguard/internal/ec2api/ec2apitest"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

var static = credentials.NewStaticCredentialsProvider("AKIDTESTEXAMPLE", "secret", "")

// id returns the n-th test instance ID (17 hexadecimal digits).
func id(n int) string { return fmt.Sprintf("i-%017x", n) }

func node(name, providerID string) *inventory.Node {
	return &inventory.Node{Name: name, ProviderID: providerID}
}

func TestInstanceOf(t *testing.T) {
	cases := []struct {
		name, providerID, wantID, wantRegion, wantErr string
	}{
		{"an Availability Zone drops its letter", "aws:///eu-west-1a/i-0abc1234def567890", "i-0abc1234def567890", "eu-west-1", ""},
		{"a GovCloud zone keeps its three-word region", "aws:///us-gov-west-1b/i-0abc1234def567890", "i-0abc1234def567890", "us-gov-west-1", ""},
		{"a Local Zone's region is its parent's, not the name minus a letter", "aws:///us-west-2-lax-1a/i-0abc1234def567890", "i-0abc1234def567890", "us-west-2", ""},
		{"a Wavelength Zone ends in a digit and still names its parent region", "aws:///us-east-1-wl1-bos-wlz-1/i-0abc1234def567890", "i-0abc1234def567890", "us-east-1", ""},
		{"an 8-digit instance ID of older accounts", "aws:///ap-southeast-2c/i-1a2b3c4d", "i-1a2b3c4d", "ap-southeast-2", ""},
		{"another cloud is refused", "gce://project/zone/vm", "", "", "not aws://"},
		{"no zone says no region", "aws:////i-0abc1234def567890", "", "", "not an AWS Availability Zone"},
		{"a region is not a zone", "aws:///us-east-1/i-0abc1234def567890", "", "", "not an AWS Availability Zone"},
		{"a Fargate node names no EC2 instance", "aws:///us-east-1b/2ce5b8ef7e-1a2b3c4d5e6f/fargate-ip-10-0-1-5.ec2.internal", "", "", "want aws:///ZONE/INSTANCE-ID"},
		{"a malformed instance ID is refused", "aws:///us-east-1a/i-XYZ", "", "", "not an EC2 instance ID"},
		{"an empty provider ID is refused", "", "", "", "not aws://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ec2api.InstanceOf(c.providerID)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("InstanceOf(%q) = %v, %v; want an error containing %q", c.providerID, got, err, c.wantErr)
				}
				return
			}
			if err != nil || got.ID != c.wantID || got.Region != c.wantRegion {
				t.Fatalf("InstanceOf(%q) = %+v, %v; want %s in %s", c.providerID, got, err, c.wantID, c.wantRegion)
			}
		})
	}
}

func TestLoadTwoRegionsSignedForEach(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", id(1), ec2apitest.Applied("required", 1, "enabled", "disabled"))
	srv.Add("us-west-2", id(2), ec2apitest.Applied("optional", 2, "enabled", "enabled"))
	nodes := []*inventory.Node{
		node("a", "aws:///eu-west-1a/"+id(1)),
		node("b", "aws:///us-west-2-lax-1a/"+id(2)),
		node("gke", "gce://project/europe-west1-b/gke-node"),
		node("kind", ""),
	}
	src, err := ec2api.Load(context.Background(), nodes, ec2api.Options{Endpoint: srv.URL, Credentials: static})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != "EC2 API" || src.Len() != 2 || len(src.Notes) != 0 {
		t.Fatalf("source %q knows %d instances, notes %q; want EC2 API, 2, none", src.Name(), src.Len(), src.Notes)
	}
	a, ok := src.AWSOptions(nodes[0])
	if !ok {
		t.Fatal("node a: not known")
	}
	want := layer.AWSMetadataOptions{
		Endpoint: layer.Setting[bool]{Value: true, Known: true, Source: layer.Configured, Origin: "EC2 DescribeInstances " + id(1) + " (eu-west-1) MetadataOptions.HttpEndpoint"},
		Tokens:   layer.Setting[string]{Value: "required", Known: true, Source: layer.Configured, Origin: "EC2 DescribeInstances " + id(1) + " (eu-west-1) MetadataOptions.HttpTokens"},
		HopLimit: layer.Setting[int]{Value: 1, Known: true, Source: layer.Configured, Origin: "EC2 DescribeInstances " + id(1) + " (eu-west-1) MetadataOptions.HttpPutResponseHopLimit"},
		IPv6:     layer.Setting[bool]{Value: false, Known: true, Source: layer.Configured, Origin: "EC2 DescribeInstances " + id(1) + " (eu-west-1) MetadataOptions.HttpProtocolIpv6"},
	}
	if a != want {
		t.Errorf("node a:\n got %+v\nwant %+v", a, want)
	}
	b, ok := src.AWSOptions(nodes[1])
	if !ok || b.Tokens.Value != "optional" || b.HopLimit.Value != 2 || !b.IPv6.Value || !strings.Contains(b.Tokens.Origin, "(us-west-2)") {
		t.Errorf("node b (Local Zone): got %+v, %v; want optional, hop limit 2, IPv6 enabled, from us-west-2", b, ok)
	}
	for _, n := range nodes[2:] {
		if _, ok := src.AWSOptions(n); ok {
			t.Errorf("node %s (not an EC2 instance) is known", n.Name)
		}
	}

	// The client signs with Signature Version 4 for each node's own region, one client per
	// region; the server answered each call from the region in the credential scope.
	reqs := calls(srv)
	if len(reqs) != 2 {
		t.Fatalf("%d calls, want 2 (one per region)", len(reqs))
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r.Authorization, "AWS4-HMAC-SHA256 Credential=AKIDTESTEXAMPLE/") || !strings.Contains(r.Authorization, "/"+r.Region+"/ec2/aws4_request") || !strings.Contains(r.Authorization, "Signature=") {
			t.Errorf("Authorization %q: want a SigV4 signature scoped to %s/ec2", r.Authorization, r.Region)
		}
		if got := r.Form["Action"]; !slices.Equal(got, []string{"DescribeInstances"}) || r.Form["Version"][0] != "2016-11-15" {
			t.Errorf("form %v: want Action=DescribeInstances, Version=2016-11-15", r.Form)
		}
	}
	got := map[string][]string{}
	for _, r := range reqs {
		got[r.Region] = r.InstanceIDs
	}
	if !slices.Equal(got["eu-west-1"], []string{id(1)}) || !slices.Equal(got["us-west-2"], []string{id(2)}) {
		t.Errorf("instance IDs by signing region = %v; want %s in eu-west-1, %s in us-west-2", got, id(1), id(2))
	}
}

func TestLoadBatchesAndFollowsNextToken(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.PageSize = 40
	var nodes []*inventory.Node
	const count = ec2api.MaxIDsPerCall*2 + 50
	for i := range count {
		hop := 1 + i%3
		srv.Add("eu-central-1", id(i), ec2apitest.Applied("required", hop, "enabled", "disabled"))
		nodes = append(nodes, node(fmt.Sprint("n", i), "aws:///eu-central-1b/"+id(i)))
	}
	// The same instance twice (two Node objects read from two files) is asked for once.
	nodes = append(nodes, node("dup", "aws:///eu-central-1b/"+id(0)))
	src, err := ec2api.Load(context.Background(), nodes, ec2api.Options{Endpoint: srv.URL, Credentials: static})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != count {
		t.Fatalf("knows %d instances, want %d", src.Len(), count)
	}
	for i, n := range nodes[:count] {
		o, ok := src.AWSOptions(n)
		if !ok || o.HopLimit.Value != 1+i%3 {
			t.Fatalf("node %s: %+v, %v; want hop limit %d", n.Name, o, ok, 1+i%3)
		}
	}
	var asked []string
	made, paged := 0, 0
	for _, r := range calls(srv) {
		made++
		if len(r.InstanceIDs) > ec2api.MaxIDsPerCall {
			t.Errorf("a call named %d instance IDs, more than %d", len(r.InstanceIDs), ec2api.MaxIDsPerCall)
		}
		if r.NextToken != "" {
			paged++
		} else {
			asked = append(asked, r.InstanceIDs...)
		}
	}
	// 250 IDs: batches of 100, 100, 50; pages of 40: 3+3+2 calls, 5 of them with a NextToken.
	if made != 8 || paged != 5 {
		t.Errorf("%d calls, %d of them following a NextToken; want 8 and 5", made, paged)
	}
	if len(asked) != count {
		t.Errorf("asked for %d distinct IDs in first pages, want %d", len(asked), count)
	}
}

func TestLoadDropsUnknownInstancesAndKeepsTheRest(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", id(1), ec2apitest.Applied("required", 2, "enabled", "disabled"))
	srv.Add("eu-west-1", id(3), ec2apitest.Applied("optional", 1, "disabled", "disabled"))
	nodes := []*inventory.Node{
		node("live-1", "aws:///eu-west-1a/"+id(1)),
		node("terminated-2", "aws:///eu-west-1b/"+id(2)),
		node("live-3", "aws:///eu-west-1c/"+id(3)),
		node("terminated-4", "aws:///eu-west-1c/"+id(4)),
	}
	src, err := ec2api.Load(context.Background(), nodes, ec2api.Options{Endpoint: srv.URL, Credentials: static})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		_, ok := src.AWSOptions(n)
		if want := strings.HasPrefix(n.Name, "live"); ok != want {
			t.Errorf("node %s known = %v, want %v", n.Name, ok, want)
		}
	}
	if o, _ := src.AWSOptions(nodes[2]); o.Endpoint.Value || !o.Endpoint.Known {
		t.Errorf("live-3: HttpEndpoint %+v, want known disabled", o.Endpoint)
	}
	reqs := calls(srv)
	if len(reqs) != 2 || len(reqs[0].InstanceIDs) != 4 || !slices.Equal(reqs[1].InstanceIDs, []string{id(1), id(3)}) {
		t.Errorf("calls %+v: want all four IDs, then the two that exist", reqs)
	}
	for _, missing := range []string{id(2), id(4)} {
		if !slices.ContainsFunc(src.Notes, func(n string) bool {
			return strings.HasPrefix(n, missing+" (eu-west-1): InvalidInstanceID.NotFound")
		}) {
			t.Errorf("notes %q: want one saying %s was not found", src.Notes, missing)
		}
	}
}

func TestLoadUnknownOrPendingOptionsStayUnknown(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", id(1), ec2apitest.MetadataOptions{State: "pending", HTTPTokens: "required", HTTPPutResponseHopLimit: 1, HTTPEndpoint: "enabled"})
	srv.Add("eu-west-1", id(2), ec2apitest.MetadataOptions{State: "applied", HTTPTokens: "required", HTTPEndpoint: "enabled", HTTPPutResponseHopLimit: 99})
	nodes := []*inventory.Node{node("pending", "aws:///eu-west-1a/"+id(1)), node("partial", "aws:///eu-west-1a/"+id(2))}
	src, err := ec2api.Load(context.Background(), nodes, ec2api.Options{Endpoint: srv.URL, Credentials: static})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.AWSOptions(nodes[0]); ok {
		t.Error("options still being applied (state pending) are taken as in force")
	}
	if len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "pending") {
		t.Errorf("notes %q: want one on the pending instance", src.Notes)
	}
	o, ok := src.AWSOptions(nodes[1])
	if !ok || !o.Tokens.Known || o.HopLimit.Known || o.IPv6.Known {
		t.Errorf("partial: %+v; want HttpTokens known, a hop limit outside 1..64 and a missing HttpProtocolIpv6 unknown", o)
	}
}

func TestLoadAccessDeniedNamesTheActionAndTheFix(t *testing.T) {
	for _, code := range []string{"UnauthorizedOperation", "AccessDenied"} {
		t.Run(code, func(t *testing.T) {
			srv := ec2apitest.NewServer(t)
			srv.ErrorCode = code
			srv.Add("eu-west-1", id(1), ec2apitest.Applied("required", 1, "enabled", "disabled"))
			src, err := ec2api.Load(context.Background(), []*inventory.Node{node("a", "aws:///eu-west-1a/"+id(1))},
				ec2api.Options{Endpoint: srv.URL, Credentials: static})
			if err == nil {
				t.Fatalf("Load succeeded (%d instances) though the API denied the call", src.Len())
			}
			for _, want := range []string{"ec2:DescribeInstances in eu-west-1 at " + srv.URL, "access denied (" + code + ")", "grant ec2:DescribeInstances", "AmazonEKSWorkerNodePolicy"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want %q", err, want)
				}
			}
		})
	}
}

func TestLoadWithoutCredentialsFailsBeforeAnyCall(t *testing.T) {
	noAWSEnvironment(t)
	srv := ec2apitest.NewServer(t)
	_, err := ec2api.Load(context.Background(), []*inventory.Node{node("a", "aws:///eu-west-1a/"+id(1))}, ec2api.Options{Endpoint: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "ec2:DescribeInstances: no usable AWS credentials") {
		t.Fatalf("error %v: want one saying there are no usable AWS credentials", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d calls without credentials, want none", n)
	}
}

func TestLoadUsesTheDefaultCredentialChain(t *testing.T) {
	noAWSEnvironment(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", id(1), ec2apitest.Applied("required", 1, "enabled", "disabled"))
	src, err := ec2api.Load(context.Background(), []*inventory.Node{node("a", "aws:///eu-west-1a/"+id(1))}, ec2api.Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 1 {
		t.Errorf("knows %d instances, want 1", src.Len())
	}
	if reqs := calls(srv); len(reqs) != 1 || reqs[0].AccessKeyID != "AKIDFROMENVIRONMENT" {
		t.Errorf("calls %+v: want one signed with the environment's access key", reqs)
	}
}

func TestLoadWithoutAWSNodesCallsNothing(t *testing.T) {
	noAWSEnvironment(t) // would fail on credentials if it tried
	nodes := []*inventory.Node{node("gke", "gce://p/z/vm"), node("fargate", "aws:///us-east-1b/2ce5b8ef7e-1a2b/fargate-ip-10-0-1-5.ec2.internal")}
	src, err := ec2api.Load(context.Background(), nodes, ec2api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 0 || len(src.Notes) != 1 || !strings.HasPrefix(src.Notes[0], "node fargate: ") {
		t.Errorf("knows %d, notes %q; want nothing, and a note on the aws:// node that names no instance", src.Len(), src.Notes)
	}
}

func TestCheckEndpoint(t *testing.T) {
	for s, ok := range map[string]bool{
		"https://ec2.us-gov-west-1.amazonaws.com":                 true,
		"https://vpce-0abc-1234.ec2.eu-west-1.vpce.amazonaws.com": true,
		"http://127.0.0.1:8080":                                   true,
		"ec2.eu-west-1.amazonaws.com":                             false,
		"ftp://example.com":                                       false,
		"https://":                                                false,
		"https://ec2.eu-west-1.amazonaws.com/%zz":                 false,
	} {
		if err := ec2api.CheckEndpoint(s); (err == nil) != ok {
			t.Errorf("CheckEndpoint(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

// noAWSEnvironment hides the machine's AWS configuration from the default credential chain:
// no environment credentials, no shared files, no web identity or container credentials, and no
// instance metadata service (which the chain would otherwise ask, off this machine).
func noAWSEnvironment(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// calls returns the distinct calls the server received, in order. The SDK retries a call whose
// connection broke (its standard retryer); on loopback that happens now and then, and a retried
// call is the same call.
func calls(srv *ec2apitest.Server) []ec2apitest.Request {
	var out []ec2apitest.Request
	seen := map[string]bool{}
	for _, r := range srv.Requests() {
		key := r.Action + "|" + r.Region + "|" + r.NextToken + "|" + strings.Join(r.InstanceIDs, ",") + "|" + r.LaunchTemplateID + "|" + strings.Join(r.Versions, ",")
		if !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}
