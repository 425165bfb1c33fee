package ec2api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// TemplateAction is the IAM action LaunchTemplateVersions needs
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html).
const TemplateAction = "ec2:DescribeLaunchTemplateVersions"

// TemplateRef is a launch template in a region: its ID (lt-...) and the region whose EC2 API
// answers for it.
type TemplateRef struct {
	Region string
	ID     string
}

func (t TemplateRef) String() string { return t.ID + " (" + t.Region + ")" }

// TemplateOptions are the metadata options a launch template version states: the
// LaunchTemplateInstanceMetadataOptions of its ResponseLaunchTemplateData
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchTemplateInstanceMetadataOptions.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ResponseLaunchTemplateData.html).
// A field is "" or 0 when the version leaves the option out, and is otherwise the value as the
// API states it ("required", "optional"; "enabled", "disabled"; 1 to 64), unchecked: what a left
// out option comes to at launch is for the caller to say.
type TemplateOptions struct {
	HTTPTokens       string
	HTTPEndpoint     string
	HTTPProtocolIPv6 string
	HopLimit         int
}

// TemplateVersion is one version of a launch template.
type TemplateVersion struct {
	Number  int64
	Options TemplateOptions
}

// TemplateVersions are a launch template's $Latest and $Default versions, which may be the same
// version. "$Latest uses the latest version of the launch template", "$Default uses the default
// version", and a launch that names no version gets the default
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchTemplateSpecification.html);
// "Launch template versions are numbered in the order in which they are created"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/launch-template-restrictions.html), so
// the latest is the highest number.
type TemplateVersions struct {
	Template TemplateRef
	// Name is the launch template's name.
	Name            string
	Latest, Default TemplateVersion
}

// TemplateRefs returns the launch templates the nodes were launched from, each once, ordered by
// region then ID: the launch template ID of the label EKS puts on the nodes of a managed node
// group with a custom launch template (layer.EKSLaunchTemplateLabel), in the region of the
// node's spec.providerID (InstanceOf). A node without the label, or whose provider ID names no
// EC2 instance, names none.
func TemplateRefs(nodes []*inventory.Node) []TemplateRef {
	var refs []TemplateRef
	seen := map[TemplateRef]bool{}
	for _, n := range nodes {
		id := n.Labels[layer.EKSLaunchTemplateLabel]
		if id == "" {
			continue
		}
		inst, err := InstanceOf(n.ProviderID)
		if err != nil {
			continue
		}
		ref := TemplateRef{Region: inst.Region, ID: id}
		if !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	slices.SortFunc(refs, compareRefs)
	return refs
}

func compareRefs(a, b TemplateRef) int {
	return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.ID, b.ID))
}

// LaunchTemplateVersions asks the EC2 API for the $Latest and $Default versions of each launch
// template with ec2:DescribeLaunchTemplateVersions
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html):
// one client per region, one call per template (LaunchTemplateId, and LaunchTemplateVersion.1
// $Latest and LaunchTemplateVersion.2 $Default), following NextToken. The version the response
// marks DefaultVersion is the default, its highest VersionNumber the latest; a version that is
// both may be listed once or twice.
//
// The answer is ordered by region then ID, each template once. The notes say, one line each,
// which templates it knows nothing of and why: a template the API does not know
// (InvalidLaunchTemplateId.NotFound or .Malformed; the other templates are still asked), an
// answer that names no default version. Any other failure (no credentials, access denied, no
// network) fails the whole call, naming the action, the region and the fix where there is one.
func LaunchTemplateVersions(ctx context.Context, refs []TemplateRef, o Options) ([]TemplateVersions, []string, error) {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, compareRefs)
	refs = slices.Compact(refs)
	if len(refs) == 0 {
		return nil, nil, nil
	}
	cfg, err := awsConfig(ctx, o, TemplateAction)
	if err != nil {
		return nil, nil, err
	}
	var out []TemplateVersions
	var notes []string
	var client *ec2.Client
	for i, ref := range refs {
		if i == 0 || ref.Region != refs[i-1].Region {
			client = regionClient(cfg, o, ref.Region)
		}
		versions, err := describeTemplate(ctx, client, ref)
		if code, gone := templateNotFound(err); gone {
			notes = append(notes, fmt.Sprintf("launch template %s: %s (deleted, or not in this account and region)", ref, code))
			continue
		}
		if err != nil {
			return nil, nil, templateError(ref, o.Endpoint, err)
		}
		tv, note := latestAndDefault(ref, versions)
		if note != "" {
			notes = append(notes, fmt.Sprintf("launch template %s: %s", ref, note))
			continue
		}
		out = append(out, tv)
	}
	return out, notes, nil
}

// describeTemplate makes the DescribeLaunchTemplateVersions calls for one template, following
// NextToken (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination),
// and returns the versions of that template the answer lists.
func describeTemplate(ctx context.Context, client *ec2.Client, ref TemplateRef) ([]types.LaunchTemplateVersion, error) {
	var versions []types.LaunchTemplateVersion
	var token *string
	tokens := map[string]bool{}
	for {
		out, err := client.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
			LaunchTemplateId: aws.String(ref.ID),
			Versions:         []string{"$Latest", "$Default"},
			NextToken:        token,
		})
		if err != nil {
			return nil, err
		}
		for _, v := range out.LaunchTemplateVersions {
			if aws.ToString(v.LaunchTemplateId) == ref.ID && v.VersionNumber != nil {
				versions = append(versions, v)
			}
		}
		next := aws.ToString(out.NextToken)
		if next == "" {
			return versions, nil
		}
		if tokens[next] {
			return nil, fmt.Errorf("DescribeLaunchTemplateVersions returned NextToken %q twice", next)
		}
		tokens[next] = true
		token = out.NextToken
	}
}

// latestAndDefault picks the latest (highest VersionNumber) and the default (DefaultVersion
// true) of the versions listed for ref, or says why it cannot.
func latestAndDefault(ref TemplateRef, versions []types.LaunchTemplateVersion) (TemplateVersions, string) {
	if len(versions) == 0 {
		return TemplateVersions{}, "DescribeLaunchTemplateVersions listed no version of it"
	}
	tv := TemplateVersions{Template: ref}
	var latest, def *types.LaunchTemplateVersion
	for i := range versions {
		v := &versions[i]
		if tv.Name == "" {
			tv.Name = aws.ToString(v.LaunchTemplateName)
		}
		if latest == nil || *v.VersionNumber > *latest.VersionNumber {
			latest = v
		}
		if aws.ToBool(v.DefaultVersion) {
			if def != nil && *def.VersionNumber != *v.VersionNumber {
				return TemplateVersions{}, fmt.Sprintf("DescribeLaunchTemplateVersions marked versions %d and %d both DefaultVersion: the default is not known", *def.VersionNumber, *v.VersionNumber)
			}
			def = v
		}
	}
	if def == nil {
		return TemplateVersions{}, "DescribeLaunchTemplateVersions marked no listed version DefaultVersion: the default is not known"
	}
	tv.Latest = templateVersion(latest)
	tv.Default = templateVersion(def)
	return tv, ""
}

func templateVersion(v *types.LaunchTemplateVersion) TemplateVersion {
	tv := TemplateVersion{Number: aws.ToInt64(v.VersionNumber)}
	if v.LaunchTemplateData == nil || v.LaunchTemplateData.MetadataOptions == nil {
		return tv
	}
	m := v.LaunchTemplateData.MetadataOptions
	tv.Options = TemplateOptions{
		HTTPTokens:       string(m.HttpTokens),
		HTTPEndpoint:     string(m.HttpEndpoint),
		HTTPProtocolIPv6: string(m.HttpProtocolIpv6),
	}
	if m.HttpPutResponseHopLimit != nil {
		tv.Options.HopLimit = int(*m.HttpPutResponseHopLimit)
	}
	return tv
}

// templateNotFound reports whether err says the template does not exist, and its error code. The
// EC2 error codes (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html):
// InvalidLaunchTemplateId.NotFound, the launch template does not exist;
// InvalidLaunchTemplateId.Malformed, the ID is not of the form lt-xxxxxxxxxxxxxxxxx.
func templateNotFound(err error) (string, bool) {
	var apiErr smithy.APIError
	if err == nil || !errors.As(err, &apiErr) {
		return "", false
	}
	switch code := apiErr.ErrorCode(); code {
	case "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed":
		return code, true
	}
	return "", false
}

// templateError gives a DescribeLaunchTemplateVersions failure its context: the action, the
// template and its region, the endpoint when overridden, and the fix where the error code tells
// it (apiError).
func templateError(ref TemplateRef, endpoint string, err error) error {
	where := "launch template " + ref.ID + " in " + ref.Region
	if endpoint != "" {
		where += " at " + endpoint
	}
	return apiError(TemplateAction+" for "+where, TemplateAction+" to the AWS identity the audit runs as", err)
}
