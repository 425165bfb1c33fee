package ec2api_test

// The launch template tests run the real aws-sdk-go-v2 client against package ec2apitest, which
// serves DescribeLaunchTemplateVersions in its documented wire format
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html);
// no AWS is reachable from the tests.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/ec2api"
	"github.com/imdsguard/imdsguard/internal/ec2api/ec2apitest"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// lt returns the n-th test launch template ID (17 hexadecimal digits).
func lt(n int) string { return fmt.Sprintf("lt-%017x", n) }

var (
	imdsv1 = ec2apitest.TemplateOptions{HTTPTokens: "optional", HTTPPutResponseHopLimit: 2, HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled"}
	imdsv2 = ec2apitest.TemplateOptions{HTTPTokens: "required", HTTPPutResponseHopLimit: 1, HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled"}
)

func templateVersions(t *testing.T, srv *ec2apitest.Server, refs ...ec2api.TemplateRef) ([]ec2api.TemplateVersions, []string) {
	t.Helper()
	got, notes, err := ec2api.LaunchTemplateVersions(context.Background(), refs, ec2api.Options{Endpoint: srv.URL, Credentials: static})
	if err != nil {
		t.Fatal(err)
	}
	return got, notes
}

func TestLaunchTemplateVersionsLatestIsNotDefault(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	// Version 1 (the default) requires IMDSv2, version 3 (the latest) does not; version 2 states
	// no metadata options.
	srv.AddTemplate("eu-west-1", lt(1), "nodes", 1, imdsv2, ec2apitest.TemplateOptions{}, imdsv1)
	got, notes := templateVersions(t, srv, ec2api.TemplateRef{Region: "eu-west-1", ID: lt(1)})
	want := []ec2api.TemplateVersions{{
		Template: ec2api.TemplateRef{Region: "eu-west-1", ID: lt(1)},
		Name:     "nodes",
		Latest:   ec2api.TemplateVersion{Number: 3, Options: ec2api.TemplateOptions{HTTPTokens: "optional", HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled", HopLimit: 2}},
		Default:  ec2api.TemplateVersion{Number: 1, Options: ec2api.TemplateOptions{HTTPTokens: "required", HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled", HopLimit: 1}},
	}}
	if !slices.Equal(got, want) || len(notes) != 0 {
		t.Fatalf("got %+v, notes %q\nwant %+v, no notes", got, notes, want)
	}
	reqs := calls(srv)
	if len(reqs) != 1 {
		t.Fatalf("%d calls, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Action != "DescribeLaunchTemplateVersions" || r.Form["Version"][0] != "2016-11-15" || r.LaunchTemplateID != lt(1) || !slices.Equal(r.Versions, []string{"$Latest", "$Default"}) {
		t.Errorf("call %+v: want DescribeLaunchTemplateVersions of %s, LaunchTemplateVersion.1 $Latest and .2 $Default", r, lt(1))
	}
}

func TestLaunchTemplateVersionsLeftOutOptionsAndPages(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.PageSize = 1 // one version a page: the default on the second
	srv.AddTemplate("eu-west-1", lt(1), "partial", 1, ec2apitest.TemplateOptions{HTTPTokens: "required"}, ec2apitest.TemplateOptions{})
	got, notes := templateVersions(t, srv, ec2api.TemplateRef{Region: "eu-west-1", ID: lt(1)})
	if len(got) != 1 || len(notes) != 0 {
		t.Fatalf("got %+v, notes %q; want one template", got, notes)
	}
	if l := got[0].Latest; l.Number != 2 || l.Options != (ec2api.TemplateOptions{}) {
		t.Errorf("latest %+v: want version 2, stating no options", l)
	}
	if d := got[0].Default; d.Number != 1 || d.Options != (ec2api.TemplateOptions{HTTPTokens: "required"}) {
		t.Errorf("default %+v: want version 1 stating HttpTokens required and nothing else", d)
	}
	if reqs := calls(srv); len(reqs) != 2 || reqs[1].NextToken == "" {
		t.Errorf("calls %+v: want two, the second following NextToken", reqs)
	}
}

func TestLaunchTemplateVersionsLatestIsDefault(t *testing.T) {
	// The same version answers $Latest and $Default: listed once, or once for each.
	for _, repeat := range []bool{false, true} {
		t.Run(fmt.Sprint("listed twice: ", repeat), func(t *testing.T) {
			srv := ec2apitest.NewServer(t)
			srv.RepeatVersions = repeat
			srv.AddTemplate("us-east-1", lt(7), "same", 2, imdsv1, imdsv2)
			got, notes := templateVersions(t, srv, ec2api.TemplateRef{Region: "us-east-1", ID: lt(7)})
			if len(got) != 1 || len(notes) != 0 {
				t.Fatalf("got %+v, notes %q; want one template", got, notes)
			}
			want := ec2api.TemplateVersion{Number: 2, Options: ec2api.TemplateOptions{HTTPTokens: "required", HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled", HopLimit: 1}}
			if got[0].Latest != want || got[0].Default != want || got[0].Name != "same" {
				t.Errorf("got %+v; want latest and default both %+v", got[0], want)
			}
		})
	}
}

func TestLaunchTemplateVersionsUnknownTemplateIsANote(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	srv.AddTemplate("eu-west-1", lt(1), "a", 1, imdsv2)
	srv.AddTemplate("eu-west-1", lt(3), "c", 1, imdsv1, imdsv2)
	refs := []ec2api.TemplateRef{
		{Region: "eu-west-1", ID: lt(3)},
		{Region: "eu-west-1", ID: lt(2)}, // deleted
		{Region: "eu-west-1", ID: "lt-nothex"},
		{Region: "eu-west-1", ID: lt(1)},
		{Region: "eu-west-1", ID: lt(1)}, // twice: asked once
	}
	got, notes := templateVersions(t, srv, refs...)
	var ids []string
	for _, tv := range got {
		ids = append(ids, tv.Template.ID)
	}
	if !slices.Equal(ids, []string{lt(1), lt(3)}) {
		t.Errorf("templates %q: want %s and %s, in order", ids, lt(1), lt(3))
	}
	wantNotes := []string{
		"launch template " + lt(2) + " (eu-west-1): InvalidLaunchTemplateId.NotFound (deleted, or not in this account and region)",
		"launch template lt-nothex (eu-west-1): InvalidLaunchTemplateId.Malformed (deleted, or not in this account and region)",
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes:\n got %q\nwant %q", notes, wantNotes)
	}
	if n := len(calls(srv)); n != 4 {
		t.Errorf("%d calls, want 4 (one per distinct template)", n)
	}
}

func TestLaunchTemplateVersionsTwoRegionsSignedForEach(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	// The same ID in two regions is two templates; each region's API knows only its own.
	srv.AddTemplate("us-west-2", lt(1), "west", 1, imdsv1)
	srv.AddTemplate("eu-west-1", lt(1), "europe", 1, imdsv2)
	srv.AddTemplate("eu-west-1", lt(2), "europe-2", 1, imdsv2)
	refs := []ec2api.TemplateRef{{Region: "us-west-2", ID: lt(1)}, {Region: "eu-west-1", ID: lt(2)}, {Region: "eu-west-1", ID: lt(1)}}
	got, notes := templateVersions(t, srv, refs...)
	if len(notes) != 0 || len(got) != 3 {
		t.Fatalf("got %+v, notes %q; want three templates", got, notes)
	}
	var names []string
	for _, tv := range got {
		names = append(names, tv.Template.String()+"="+tv.Name)
	}
	want := []string{lt(1) + " (eu-west-1)=europe", lt(2) + " (eu-west-1)=europe-2", lt(1) + " (us-west-2)=west"}
	if !slices.Equal(names, want) {
		t.Errorf("templates %q, want %q (by region, then ID)", names, want)
	}
	var signed []string
	for _, r := range calls(srv) {
		if !strings.HasPrefix(r.Authorization, "AWS4-HMAC-SHA256 Credential=AKIDTESTEXAMPLE/") || !strings.Contains(r.Authorization, "/"+r.Region+"/ec2/aws4_request") {
			t.Errorf("Authorization %q: want a SigV4 signature scoped to %s/ec2", r.Authorization, r.Region)
		}
		signed = append(signed, r.Region+" "+r.LaunchTemplateID)
	}
	if wantSigned := []string{"eu-west-1 " + lt(1), "eu-west-1 " + lt(2), "us-west-2 " + lt(1)}; !slices.Equal(signed, wantSigned) {
		t.Errorf("calls by signing region %q, want %q", signed, wantSigned)
	}
}

func TestLaunchTemplateVersionsNoDefaultIsANote(t *testing.T) {
	srv := ec2apitest.NewServer(t)
	// A default version the template does not have: the server lists $Latest only, with no
	// version marked DefaultVersion. The default is then not known, not guessed.
	srv.AddTemplate("eu-west-1", lt(1), "odd", 0, imdsv2)
	got, notes := templateVersions(t, srv, ec2api.TemplateRef{Region: "eu-west-1", ID: lt(1)})
	if len(got) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "the default is not known") {
		t.Errorf("got %+v, notes %q; want nothing and a note that the default is not known", got, notes)
	}
}

func TestLaunchTemplateVersionsAccessDeniedNamesTheActionAndTheFix(t *testing.T) {
	for _, code := range []string{"UnauthorizedOperation", "AccessDenied"} {
		t.Run(code, func(t *testing.T) {
			srv := ec2apitest.NewServer(t)
			srv.ErrorCode = code
			srv.AddTemplate("eu-west-1", lt(1), "a", 1, imdsv2)
			got, notes, err := ec2api.LaunchTemplateVersions(context.Background(), []ec2api.TemplateRef{{Region: "eu-west-1", ID: lt(1)}},
				ec2api.Options{Endpoint: srv.URL, Credentials: static})
			if err == nil {
				t.Fatalf("succeeded (%+v, notes %q) though the API denied the call", got, notes)
			}
			for _, want := range []string{"ec2:DescribeLaunchTemplateVersions for launch template " + lt(1) + " in eu-west-1 at " + srv.URL, "access denied (" + code + ")", "grant ec2:DescribeLaunchTemplateVersions"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want %q", err, want)
				}
			}
		})
	}
}

func TestLaunchTemplateVersionsWithoutCredentialsFailsBeforeAnyCall(t *testing.T) {
	noAWSEnvironment(t)
	srv := ec2apitest.NewServer(t)
	_, _, err := ec2api.LaunchTemplateVersions(context.Background(), []ec2api.TemplateRef{{Region: "eu-west-1", ID: lt(1)}}, ec2api.Options{Endpoint: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "ec2:DescribeLaunchTemplateVersions: no usable AWS credentials") {
		t.Fatalf("error %v: want one saying there are no usable AWS credentials", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d calls without credentials, want none", n)
	}
}

func TestLaunchTemplateVersionsUnreachableEndpointNamesTheAction(t *testing.T) {
	// A closed port on loopback: the connection is refused at once. The SDK retries, then fails.
	closed := "http://127.0.0.1:1"
	_, _, err := ec2api.LaunchTemplateVersions(context.Background(), []ec2api.TemplateRef{{Region: "eu-west-1", ID: lt(1)}}, ec2api.Options{Endpoint: closed, Credentials: static})
	if err == nil || !strings.Contains(err.Error(), "ec2:DescribeLaunchTemplateVersions for launch template "+lt(1)+" in eu-west-1 at "+closed) {
		t.Fatalf("error %v: want one naming the action, the template, the region and the endpoint", err)
	}
}

func TestLaunchTemplateVersionsOfNothingCallsNothing(t *testing.T) {
	noAWSEnvironment(t) // would fail on credentials if it tried
	got, notes, err := ec2api.LaunchTemplateVersions(context.Background(), nil, ec2api.Options{})
	if err != nil || len(got) != 0 || len(notes) != 0 {
		t.Errorf("got %+v, %q, %v; want nothing", got, notes, err)
	}
}

func TestTemplateRefs(t *testing.T) {
	labelled := func(name, providerID, template string) *inventory.Node {
		n := node(name, providerID)
		n.Labels = map[string]string{layer.EKSNodeGroupLabel: "ng", layer.EKSLaunchTemplateLabel: template}
		return n
	}
	nodes := []*inventory.Node{
		labelled("a", "aws:///us-west-2a/"+id(1), lt(2)),
		labelled("b", "aws:///eu-west-1b/"+id(2), lt(9)),
		labelled("c", "aws:///eu-west-1c/"+id(3), lt(1)),
		labelled("c-again", "aws:///eu-west-1a/"+id(4), lt(1)),                                           // same template, same region: once
		labelled("d", "aws:///us-west-2-lax-1a/"+id(5), lt(1)),                                           // same ID, another region: another template
		labelled("fargate", "aws:///us-east-1b/2ce5b8ef7e-1a2b/fargate-ip-10-0-1-5.ec2.internal", lt(5)), // no EC2 instance, no region
		labelled("gke", "gce://project/europe-west1-b/vm", lt(6)),
		labelled("empty-label", "aws:///eu-west-1a/"+id(6), ""),
		node("no-labels", "aws:///eu-west-1a/"+id(7)),
	}
	got := ec2api.TemplateRefs(nodes)
	want := []ec2api.TemplateRef{
		{Region: "eu-west-1", ID: lt(1)},
		{Region: "eu-west-1", ID: lt(9)},
		{Region: "us-west-2", ID: lt(1)},
		{Region: "us-west-2", ID: lt(2)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("TemplateRefs:\n got %+v\nwant %+v", got, want)
	}
	if got := ec2api.TemplateRefs(nil); len(got) != 0 {
		t.Errorf("TemplateRefs(nil) = %+v, want none", got)
	}
}
