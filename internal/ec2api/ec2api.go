// Package ec2api is the instance-layer source that asks the EC2 API itself: it reads the
// metadata options of the nodes' EC2 instances with ec2:DescribeInstances (aws-sdk-go-v2, the
// default credential chain, one client per region) and serves them as a layer.InstanceSource,
// every option as configured.
//
// Load makes every call up front: the audit's verdicts are pure functions of what was loaded,
// and a failure (no credentials, access denied, no network) is one error for the caller to
// report, never a partial answer that looks whole.
package ec2api

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// Action is the IAM action Load needs. The AWS managed policy AmazonEKSWorkerNodePolicy, which
// EKS node roles carry, allows it ("Action": ["ec2:DescribeInstances", ...], "Resource": "*";
// https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonEKSWorkerNodePolicy.html);
// AmazonEKSWorkerNodeMinimalPolicy, the EKS Auto Mode node policy, does not
// (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonEKSWorkerNodeMinimalPolicy.html).
const Action = "ec2:DescribeInstances"

// MaxIDsPerCall is how many instance IDs one DescribeInstances call names. The DescribeInstances
// reference documents no maximum for InstanceId.N (and forbids MaxResults next to it)
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html); its
// sibling DescribeInstanceStatus documents "Maximum 100 explicitly specified instance IDs"
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceStatus.html).
// We keep to that documented bound rather than rely on an undocumented one.
const MaxIDsPerCall = 100

// Options tune Load.
type Options struct {
	// Endpoint overrides the EC2 endpoint URL for every region (the SDK's BaseEndpoint): a VPC
	// interface endpoint, a partition the SDK does not resolve, a local server in tests. Empty:
	// the SDK's endpoint for each region (ec2.REGION.amazonaws.com and its partition's
	// equivalents). Requests are still signed for the node's region.
	Endpoint string
	// Credentials replaces the SDK's default credential chain (environment, shared config and
	// credentials files, web identity, container and EC2 instance roles) when set.
	Credentials aws.CredentialsProvider
}

// CheckEndpoint reports whether s is usable as Options.Endpoint: an absolute http or https URL.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("endpoint %q: want an absolute URL such as https://ec2.eu-west-1.amazonaws.com", s)
	}
	return nil
}

// Source is the EC2 API's answer for the nodes it was loaded for: an instance layer source
// (layer.InstanceSource) whose settings are all layer.Configured, as the EC2 API states them.
type Source struct {
	options map[Instance]layer.AWSMetadataOptions
	// explained are the instances a note already accounts for.
	explained map[Instance]bool
	// Notes say, one line each, which nodes' instances the source knows nothing of and why:
	// a provider ID that names no EC2 instance, an instance the API did not return
	// (terminated, or not in the account), metadata options still being applied.
	Notes []string
}

var _ layer.InstanceSource = (*Source)(nil)

// Name implements layer.InstanceSource.
func (*Source) Name() string { return "EC2 API" }

// AWSOptions implements layer.InstanceSource: the options DescribeInstances returned for the
// instance of node n, and false when the API did not return it or n is not an EC2 instance.
func (s *Source) AWSOptions(n *inventory.Node) (layer.AWSMetadataOptions, bool) {
	inst, err := InstanceOf(n.ProviderID)
	if err != nil {
		return layer.AWSMetadataOptions{}, false
	}
	o, ok := s.options[inst]
	return o, ok
}

// Len is how many instances the source knows.
func (s *Source) Len() int { return len(s.options) }

// Load asks the EC2 API for the metadata options of the instances behind nodes, one client per
// region and MaxIDsPerCall instance IDs per call, following NextToken. Nodes whose
// spec.providerID is not "aws:///ZONE/i-..." are left out (with a note when it is aws://
// nonetheless). An instance the API does not know (InvalidInstanceID.NotFound) is left out and
// the rest of its call asked again; any other failure fails Load, naming the region and the fix
// where there is one.
func Load(ctx context.Context, nodes []*inventory.Node, o Options) (*Source, error) {
	s := &Source{options: map[Instance]layer.AWSMetadataOptions{}, explained: map[Instance]bool{}}
	byRegion := map[string][]string{}
	seen := map[Instance]bool{}
	for _, n := range nodes {
		if !strings.HasPrefix(n.ProviderID, "aws://") {
			continue
		}
		inst, err := InstanceOf(n.ProviderID)
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("node %s: %v", n.Name, err))
			continue
		}
		if !seen[inst] {
			seen[inst] = true
			byRegion[inst.Region] = append(byRegion[inst.Region], inst.ID)
		}
	}
	if len(byRegion) == 0 {
		return s, nil
	}
	cfg, err := awsConfig(ctx, o, Action)
	if err != nil {
		return nil, err
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	for _, region := range regions {
		client := regionClient(cfg, o, region)
		ids := byRegion[region]
		slices.Sort(ids)
		for start := 0; start < len(ids); start += MaxIDsPerCall {
			batch := ids[start:min(start+MaxIDsPerCall, len(ids))]
			if err := s.describe(ctx, client, region, batch); err != nil {
				return nil, describeError(region, o.Endpoint, err)
			}
		}
		for _, id := range ids {
			inst := Instance{ID: id, Region: region}
			if _, ok := s.options[inst]; !ok && !s.explained[inst] {
				s.note(inst, "not returned by DescribeInstances (terminated, or not in this account)")
			}
		}
	}
	return s, nil
}

// awsConfig checks o.Endpoint, loads the SDK's configuration and resolves the credentials once,
// before any call: "no credentials" is then one error that names action and says so, not one
// buried in each region's request.
func awsConfig(ctx context.Context, o Options, action string) (aws.Config, error) {
	if o.Endpoint != "" {
		if err := CheckEndpoint(o.Endpoint); err != nil {
			return aws.Config{}, err
		}
	}
	// The SDK would otherwise log to standard error on its own; errors reach the caller instead.
	loadOpts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("%s: load AWS configuration: %w", action, err)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, fmt.Errorf("%s: no usable AWS credentials (the default chain reads the environment, shared config and credentials files, web identity, and container and EC2 instance roles): %w", action, err)
	}
	return cfg, nil
}

// regionClient is the EC2 client for one region: requests signed for that region, sent to
// o.Endpoint when set.
func regionClient(cfg aws.Config, o Options, region string) *ec2.Client {
	return ec2.NewFromConfig(cfg, func(c *ec2.Options) {
		c.Region = region
		if o.Endpoint != "" {
			c.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
}

// note says why the source knows nothing of inst.
func (s *Source) note(inst Instance, why string) {
	s.explained[inst] = true
	s.Notes = append(s.Notes, inst.String()+": "+why)
}

// describe asks for one batch of instance IDs, page by page. When the API refuses the call
// because some IDs do not exist, it drops them and asks again for the others.
func (s *Source) describe(ctx context.Context, client *ec2.Client, region string, batch []string) error {
	batch = slices.Clone(batch)
	for len(batch) > 0 {
		err := s.describePages(ctx, client, region, batch)
		gone := notFound(err, batch)
		if len(gone) == 0 {
			return err
		}
		for _, id := range gone {
			s.note(Instance{ID: id, Region: region}, "InvalidInstanceID.NotFound (terminated, or not in this account)")
		}
		// Each round removes at least one ID, so this ends.
		batch = slices.DeleteFunc(batch, func(id string) bool { return slices.Contains(gone, id) })
	}
	return nil
}

// describePages makes the DescribeInstances calls for batch, following NextToken
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination).
func (s *Source) describePages(ctx context.Context, client *ec2.Client, region string, batch []string) error {
	var token *string
	tokens := map[string]bool{}
	for {
		out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: batch, NextToken: token})
		if err != nil {
			return err
		}
		for _, r := range out.Reservations {
			for _, inst := range r.Instances {
				id := aws.ToString(inst.InstanceId)
				if !slices.Contains(batch, id) {
					continue // not asked for: not ours to report
				}
				s.add(Instance{ID: id, Region: region}, inst.MetadataOptions)
			}
		}
		next := aws.ToString(out.NextToken)
		if next == "" {
			return nil
		}
		if tokens[next] {
			return fmt.Errorf("DescribeInstances returned NextToken %q twice", next)
		}
		tokens[next] = true
		token = out.NextToken
	}
}

// add records the metadata options of one instance.
func (s *Source) add(inst Instance, m *types.InstanceMetadataOptionsResponse) {
	if m == nil {
		s.note(inst, "DescribeInstances returned no MetadataOptions")
		return
	}
	// "pending - The metadata options are being updated and the instance is not ready to
	// process metadata traffic with the new selection"
	// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsResponse.html):
	// the values returned are not yet the ones in force, and the ones in force are not returned.
	if m.State == types.InstanceMetadataOptionsStatePending {
		s.note(inst, "metadata options are being changed (MetadataOptions.State pending): what is in force is not known")
		return
	}
	origin := func(field string) string {
		return fmt.Sprintf("EC2 DescribeInstances %s MetadataOptions.%s", inst, field)
	}
	var o layer.AWSMetadataOptions
	switch m.HttpEndpoint {
	case types.InstanceMetadataEndpointStateEnabled, types.InstanceMetadataEndpointStateDisabled:
		o.Endpoint = layer.Setting[bool]{Value: m.HttpEndpoint == types.InstanceMetadataEndpointStateEnabled, Known: true, Source: layer.Configured, Origin: origin("HttpEndpoint")}
	}
	switch m.HttpTokens {
	case types.HttpTokensStateOptional, types.HttpTokensStateRequired:
		o.Tokens = layer.Setting[string]{Value: string(m.HttpTokens), Known: true, Source: layer.Configured, Origin: origin("HttpTokens")}
	}
	// "Possible values: Integers from 1 to 64"
	// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsResponse.html).
	if h := m.HttpPutResponseHopLimit; h != nil && *h >= 1 && *h <= 64 {
		o.HopLimit = layer.Setting[int]{Value: int(*h), Known: true, Source: layer.Configured, Origin: origin("HttpPutResponseHopLimit")}
	}
	switch m.HttpProtocolIpv6 {
	case types.InstanceMetadataProtocolStateEnabled, types.InstanceMetadataProtocolStateDisabled:
		o.IPv6 = layer.Setting[bool]{Value: m.HttpProtocolIpv6 == types.InstanceMetadataProtocolStateEnabled, Known: true, Source: layer.Configured, Origin: origin("HttpProtocolIpv6")}
	}
	// A value outside the documented ones leaves that option unknown, never guessed.
	s.options[inst] = o
}

// missingIDs finds the instance IDs in an InvalidInstanceID.NotFound message: "The instance ID
// 'i-x' does not exist", "The instance IDs 'i-x, i-y' do not exist".
var missingIDs = regexp.MustCompile(`i-[0-9a-f]+`)

// notFound returns the IDs of batch that err says do not exist, or nil when err is not
// InvalidInstanceID.NotFound or names none of them. The EC2 error codes
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html):
// InvalidInstanceID.NotFound, "The specified instance does not exist"; DescribeInstances fails
// the whole call on it: "If you specify an instance ID that is not valid, an error is returned"
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html).
func notFound(err error, batch []string) []string {
	var apiErr smithy.APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidInstanceID.NotFound" {
		return nil
	}
	var gone []string
	for _, id := range missingIDs.FindAllString(apiErr.ErrorMessage(), -1) {
		if slices.Contains(batch, id) && !slices.Contains(gone, id) {
			gone = append(gone, id)
		}
	}
	return gone
}

// describeError gives a DescribeInstances failure its context: the action, the region, the
// endpoint when overridden, and the fix where the error code tells it.
func describeError(region, endpoint string, err error) error {
	where := region
	if endpoint != "" {
		where += " at " + endpoint
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidInstanceID.NotFound" {
		return fmt.Errorf("%s in %s: InvalidInstanceID.NotFound names no instance that was asked for: %w", Action, where, err)
	}
	return apiError(Action+" in "+where, Action+" to the AWS identity the audit runs as (the EKS node role's AmazonEKSWorkerNodePolicy includes it)", err)
}

// apiError gives a failed call its context (what: the action and where it was called), and
// the fix where the error code tells it: grant (the permission to grant) for an access denial,
// a look at the credentials for a rejection of them.
func apiError(what, grant string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		// UnauthorizedOperation is EC2's code for an IAM denial; AccessDenied that of most other
		// services and of some proxies (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
		case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
			return fmt.Errorf("%s: access denied (%s): grant %s: %w", what, apiErr.ErrorCode(), grant, err)
		case "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "RequestExpired":
			return fmt.Errorf("%s: AWS rejected the credentials (%s): check the credentials in use and that they are valid in this region's partition: %w", what, apiErr.ErrorCode(), err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
