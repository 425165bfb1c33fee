package cli

import (
	"context"
	"log/slog"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/ec2api"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
)

// awsInstanceSource reads the metadata options of the nodes' EC2 instances from the EC2 API
// (audit --aws). What it cannot know of a node (not an EC2 instance, terminated, options being
// changed) is logged; a failure of the API is returned, for the audit to report as a gap.
func awsInstanceSource(ctx context.Context, log *slog.Logger, nodes []*inventory.Node, endpoint string) (layer.InstanceSource, error) {
	src, err := ec2api.Load(ctx, nodes, ec2api.Options{Endpoint: endpoint})
	if err != nil {
		return nil, err
	}
	for _, note := range src.Notes {
		log.Info("EC2 API: instance metadata options not known", "detail", note)
	}
	if src.Len() == 0 {
		log.Warn("EC2 API: no node's instance metadata options are known (no node has an aws:///ZONE/i-... spec.providerID, or the API returned none of them)", "nodes", len(nodes))
	} else {
		log.Info("EC2 API: instance metadata options read", "instances", src.Len())
	}
	return src, nil
}

// awsTemplateVersions reads, from the EC2 API, the $Latest and $Default versions of the launch
// templates the nodes were launched from (node label eks.amazonaws.com/sourceLaunchTemplateId),
// for finding IMDS021. Templates the API does not know are logged; a failure of the API is
// returned, for the audit to report as a gap.
func awsTemplateVersions(ctx context.Context, log *slog.Logger, nodes []*inventory.Node, endpoint string) ([]audit.TemplateVersions, error) {
	refs := ec2api.TemplateRefs(nodes)
	if len(refs) == 0 {
		return nil, nil
	}
	found, notes, err := ec2api.LaunchTemplateVersions(ctx, refs, ec2api.Options{Endpoint: endpoint})
	if err != nil {
		return nil, err
	}
	for _, note := range notes {
		log.Info("EC2 API: launch template versions not known", "detail", note)
	}
	out := make([]audit.TemplateVersions, len(found))
	for i, t := range found {
		out[i] = audit.TemplateVersions{Region: t.Template.Region, ID: t.Template.ID, Name: t.Name,
			Latest: templateVersion(t.Latest), Default: templateVersion(t.Default)}
	}
	log.Info("EC2 API: launch template versions read", "templates", len(out))
	return out, nil
}

func templateVersion(v ec2api.TemplateVersion) audit.TemplateVersion {
	o := v.Options
	return audit.TemplateVersion{Number: v.Number, Tokens: o.HTTPTokens, Endpoint: o.HTTPEndpoint, IPv6: o.HTTPProtocolIPv6, HopLimit: o.HopLimit}
}
