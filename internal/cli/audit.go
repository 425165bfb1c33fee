package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/ec2api"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/iac"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/layer"
	"github.com/spf13/cobra"
)

type auditOptions struct {
	source    sourceOptions
	scope     scopeOptions
	clouds    []string
	cloudSet  bool
	endpoints []string
	output    string
	failOn    string
	explain   string
	color     string
	summary   bool
	show      string
	engine    policyEngineFlag
	// aws and awsEndpoint: the EC2 API as an instance layer source (aws.go).
	aws         bool
	awsEndpoint string
	// exceptions and baseline: accepted findings and a previous report (audit.Exceptions,
	// audit.Baseline).
	exceptions string
	baseline   string
	// accountDefaults and amiSupport settle what infrastructure code leaves to EC2's
	// precedence (iac.Resolve).
	accountDefaults string
	amiSupport      string
}

func newAuditCommand(g *globalOptions, streams Streams) *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit [FILE|DIR|-]...",
		Short: "Report, for every pod and workload, which metadata endpoints it can reach and why",
		Long: `Audit Kubernetes manifests: for every pod and workload pod template, and every
metadata endpoint of the selected clouds, decide whether egress is allowed and
name the tier, policy and rule that decided it. Then report findings: reachable
credential endpoints, hostNetwork pods, IPv6 gaps, namespaces without egress
control, broad allow rules, add-ons that will break, workloads without a pod
identity.

Input: files, directories (searched recursively for *.yaml, *.yml, *.json,
*.tf) and "-" for standard input; multi-document YAML, JSON, and List objects as printed
by "kubectl get -o yaml|json". Or a live cluster: --live (the current
kubeconfig context, or the in-cluster service account), --kubeconfig,
--context. A live audit lists namespaces, pods, workloads, service accounts,
NetworkPolicies, AdminNetworkPolicies, ClusterNetworkPolicies, Calico and Cilium
policies and nodes page by page with read-only calls
(deploy/rbac/audit-clusterrole.yaml is the least-privilege role); a resource it
may not read is reported as an incomplete audit (IMDS012), never skipped
silently. Without --cloud, the clouds are detected from the nodes'
spec.providerID.

Infrastructure code among the paths is read too, with the file and line of
every value: Terraform modules (the *.tf files of each directory), plans
("terraform show -json"), CloudFormation templates and eksctl ClusterConfigs.
EC2's precedence resolves the metadata options of each launch template, node
group and instance (an option the code leaves out is unknown until
--aws-account-defaults settles it); node groups join the nodes by their EKS
or eksctl node group label or launch template ID, so each pod's instance layer
names the code that decides it. Findings IMDS017-IMDS020 report the code:
IMDSv1 left on, a hop limit above what the pods need, a launch template
version the code may not state, settings that cannot be known from the code.
Code that cannot be read makes the report incomplete (IMDS011).

Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 on a
usage or input error, 3 on a runtime failure (the report could not be written).`,
		Example: `  imdsguard audit examples/cluster
  kubectl get ns,pods,deploy,ds,sts,netpol,sa -A -o yaml | imdsguard audit -
  imdsguard audit --live
  imdsguard audit k8s/ infra/
  imdsguard audit --live --aws-account-defaults tokens=required,hop-limit=2 terraform/
  imdsguard audit --context prod-eks --output json > audit.json
  imdsguard audit --cloud aws --output sarif manifests/ > imdsguard.sarif
  imdsguard audit --summary examples/cluster
  imdsguard audit -o html examples/cluster > report.html
  imdsguard audit --explain shop/web examples/cluster
  imdsguard audit --exceptions imdsguard-exceptions.yaml --baseline main.json manifests/`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.cloudSet = cmd.Flags().Changed("cloud")
			return runAudit(cmd.Context(), g, streams, o, args)
		},
	}
	f := cmd.Flags()
	o.source.addFlags(f)
	o.scope.addFlags(f)
	o.engine.addFlag(f)
	addCloudFlag(cmd, &o.clouds, "audit", "the clouds named by the nodes' spec.providerID, else those the input shows (an AWS, GKE or AKS add-on, a workload identity annotation), else all")
	f.StringArrayVar(&o.endpoints, "endpoint", nil, "extra credential-bearing endpoint ADDR[:PORT][/PROTO], e.g. 10.0.0.5:8080/TCP or [fd00::5]:80 (repeatable)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json, sarif, html (one self-contained page) or junit (JUnit XML for CI test reports)")
	f.StringVar(&o.failOn, "fail-on", "high", "exit 1 when a finding is at or above this severity: info, low, medium, high, critical or none")
	f.StringVar(&o.explain, "explain", "", "print the full evaluation trace for NAMESPACE/NAME (or NAMESPACE/KIND/NAME) instead of the report")
	f.BoolVar(&o.summary, "summary", false, "table output: one line per namespace (subjects, reachable credential exposures, findings by severity), then the findings")
	f.StringVar(&o.show, "show", "", fmt.Sprintf("table rows: reachable (only the reachable exposures) or all; default: all when they fit a screen (%d rows), else reachable", audit.MaxScreenRows))
	f.StringVar(&o.color, "color", "auto", "colour in table output: auto (only on a terminal), always or never")
	f.BoolVar(&o.aws, "aws", false, "read the instance metadata options (HttpEndpoint, HttpTokens, hop limit, HttpProtocolIpv6) of the nodes' EC2 instances from the EC2 API: calls ec2:DescribeInstances in each node's region with the AWS SDK's default credential chain (environment, shared config and credentials files, web identity, container or instance role), bounded by --timeout; the EKS node role's AmazonEKSWorkerNodePolicy grants it; and the $Latest and $Default versions of the nodes' launch templates (ec2:DescribeLaunchTemplateVersions, finding IMDS021). A failure is an incomplete audit (IMDS012), never a silent pass")
	f.StringVar(&o.awsEndpoint, "aws-endpoint", "", "EC2 API endpoint URL for --aws (implies --aws), e.g. a VPC interface endpoint; default: each region's own endpoint")
	f.StringVar(&o.accountDefaults, "aws-account-defaults", "", "the EC2 account-level instance metadata defaults of the region, for options the infrastructure code leaves out: tokens=required|optional,hop-limit=N,endpoint=enabled|disabled, each key optional, any value no-preference (aws ec2 get-instance-metadata-defaults shows them); without it such options are unknown")
	f.StringVar(&o.amiSupport, "aws-ami-imds-support", "", "the imds-support of the AMIs the infrastructure code launches, for options it and the account defaults leave out: v2.0 (tokens required, hop limit 2) or none; without it they stay unknown")
	f.StringVar(&o.exceptions, "exceptions", "", "YAML file of accepted findings (apiVersion imdsguard.io/v1, kind Exceptions), each by rule ID and object, with a reason and an expiry date: accepted findings stay in the report but do not count toward --fail-on (docs/audit.md#exceptions-and-baselines)")
	f.StringVar(&o.baseline, "baseline", "", "a previous JSON report (-o json): only findings new or of higher severity than in it count toward --fail-on")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "sarif", "html", "junit"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"info", "low", "medium", "high", "critical", "none"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("show", cobra.FixedCompletions([]string{"reachable", "all"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("color", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// selectEndpoints turns --cloud and --endpoint into the endpoint list.
func selectEndpoints(clouds, custom []string) ([]endpoint.Endpoint, error) {
	var selected []endpoint.Cloud
	for _, c := range clouds {
		cloud, err := endpoint.ParseCloud(c)
		if err != nil {
			return nil, usageError("--cloud: %v", err)
		}
		selected = append(selected, cloud)
	}
	var extra []endpoint.Endpoint
	for _, e := range custom {
		ep, err := endpoint.ParseCustom(e)
		if err != nil {
			return nil, usageError("--endpoint: %v", err)
		}
		extra = append(extra, ep)
	}
	return endpoint.Merge(endpoint.Select(selected), extra), nil
}

func runAudit(ctx context.Context, g *globalOptions, streams Streams, o *auditOptions, args []string) error {
	log, err := g.logger(streams.Err)
	if err != nil {
		return err
	}
	if _, err := selectEndpoints(o.clouds, o.endpoints); err != nil {
		return err // flags are checked before anything is read
	}
	if o.awsEndpoint != "" {
		if err := ec2api.CheckEndpoint(o.awsEndpoint); err != nil {
			return usageError("--aws-endpoint: %v", err)
		}
	}
	failOn, err := audit.ParseSeverity(o.failOn)
	if err != nil {
		return usageError("--fail-on: %v", err)
	}
	switch o.output {
	case "table", "json", "sarif", "html", "junit":
	default:
		return usageError("--output %q: want table, json, sarif, html or junit", o.output)
	}
	if err := o.scope.check(); err != nil {
		return err
	}
	o.source.defaultLive = g.invocation.Plugin
	switch audit.Show(o.show) {
	case audit.ShowAuto, audit.ShowReachable, audit.ShowAll:
	default:
		return usageError("--show %q: want reachable or all", o.show)
	}
	if (o.summary || o.show != "") && o.output != "table" {
		return usageError("--summary and --show shape the table: they do not apply to --output %s", o.output)
	}
	color := false
	switch o.color {
	case "auto":
		color = streams.OutIsTerminal
	case "always":
		color = true
	case "never":
	default:
		return usageError("--color %q: want auto, always or never", o.color)
	}
	var exceptions *audit.Exceptions
	if o.exceptions != "" {
		if exceptions, err = audit.LoadExceptions(o.exceptions); err != nil {
			return usageError("--exceptions: %v", err)
		}
	}
	var baseline *audit.Baseline
	if o.baseline != "" {
		if baseline, err = audit.LoadBaseline(o.baseline); err != nil {
			return usageError("--baseline: %v", err)
		}
	}
	account, err := iac.ParseAccountDefaults(o.accountDefaults)
	if err != nil {
		return usageError("--aws-account-defaults: %v", err)
	}
	ami, err := iac.ParseAMISupport(o.amiSupport)
	if err != nil {
		return usageError("--aws-ami-imds-support: %v", err)
	}
	started := time.Now()
	if streams.ErrIsTerminal {
		o.source.progress = newProgress(streams.Err).update
	}
	inv, err := o.source.load(ctx, log, streams, args)
	if err != nil {
		return err
	}
	var infrastructure *iac.Source
	codeFiles := 0
	if len(o.source.code) > 0 {
		readStarted := time.Now()
		code, err := scan.Read(o.source.code)
		if err != nil {
			return usageError("%v", err)
		}
		for _, p := range code.Problems {
			inv.Problems = append(inv.Problems, inventory.Problem{Source: inventory.Source{File: p.At.File, Line: p.At.Line}, Message: p.Message})
		}
		infrastructure, codeFiles = &iac.Source{Groups: code.Groups, Account: account, AMI: ami}, code.Files
		log.Debug("read infrastructure code", "files", code.Files, "groups", len(code.Groups), "problems", len(code.Problems), "duration", time.Since(readStarted))
	} else if o.accountDefaults != "" || o.amiSupport != "" {
		return usageError("--aws-account-defaults and --aws-ami-imds-support settle what infrastructure code leaves out: give Terraform, CloudFormation or eksctl files or directories too")
	}
	clouds, cloudEvidence := o.clouds, statedClouds(o.clouds)
	if !o.cloudSet {
		code := ""
		if infrastructure != nil && len(infrastructure.Groups) > 0 {
			g := infrastructure.Groups[0]
			code = g.Resource + " at " + g.At.String()
		}
		clouds, cloudEvidence = detectClouds(log, inv, code)
	}
	eps, err := selectEndpoints(clouds, o.endpoints)
	if err != nil {
		return err
	}
	for _, p := range inv.Problems {
		log.Error("input problem", "at", p.Source.String(), "field", p.Field, "error", p.Message)
	}
	// Manifests without pods are a mistake; a live cluster may simply be empty, or unreadable,
	// which its gaps report.
	if inv.Cluster == "" && infrastructure == nil && len(inv.Pods)+len(inv.Workloads) == 0 {
		if len(inv.Problems) > 0 {
			return usageError("nothing could be evaluated: %s and no pod or workload was loaded (first: %s)", plural(len(inv.Problems), "input problem"), inv.Problems[0].Error())
		}
		return usageError("nothing to evaluate: the input (%d files, %d documents) holds no pods or workloads", inv.Files, inv.Documents)
	}
	enf, err := o.engine.enforcement(log, inv)
	if err != nil {
		return err
	}
	// Instance layer sources besides those the input holds; a failure is a gap of the report.
	var instanceSources []layer.InstanceSource
	var templateVersions []audit.TemplateVersions
	if o.aws || o.awsEndpoint != "" {
		awsCtx, cancel := context.WithTimeout(ctx, o.source.timeout)
		src, err := awsInstanceSource(awsCtx, log, inv.Nodes, o.awsEndpoint)
		cancel()
		if err != nil {
			inv.Gaps = append(inv.Gaps, inventory.Gap{Resource: ec2api.Action, Reason: err.Error(), Affects: "the instance layer (EC2 metadata options) of pods on AWS nodes"})
		} else {
			instanceSources = append(instanceSources, src)
		}
		awsCtx, cancel = context.WithTimeout(ctx, o.source.timeout)
		versions, err := awsTemplateVersions(awsCtx, log, inv.Nodes, o.awsEndpoint)
		cancel()
		if err != nil {
			inv.Gaps = append(inv.Gaps, inventory.Gap{Resource: ec2api.TemplateAction, Reason: err.Error(), Affects: "finding IMDS021 (launch templates whose $Latest and $Default versions differ)"})
		}
		templateVersions = versions
	}
	for _, src := range instanceSources {
		log.Debug("instance layer source", "source", src.Name())
	}
	if inv, err = o.scope.apply(inv); err != nil {
		return err
	}
	loaded := time.Now()
	report := audit.RunWith(inv, eps, audit.Options{Enforcement: enf, InstanceSources: instanceSources, Infrastructure: infrastructure, InfrastructureFiles: codeFiles, TemplateVersions: templateVersions, Clouds: cloudEvidence, Namespace: o.scope.namespace})
	report.ApplyExceptions(exceptions, time.Now())
	report.ApplyBaseline(baseline)
	evaluated := time.Now()
	log.Debug("loaded", "cluster", inv.Cluster, "files", inv.Files, "documents", inv.Documents, "pods", len(inv.Pods), "workloads", len(inv.Workloads), "duration", loaded.Sub(started))
	log.Debug("evaluated", "subjects", len(report.Subjects), "endpoints", len(eps), "findings", len(report.Findings), "duration", evaluated.Sub(loaded))
	defer func() { log.Debug("rendered", "output", o.output, "duration", time.Since(evaluated)) }()
	if o.output != "table" {
		for _, w := range report.Warnings {
			log.Warn(w)
		}
	}
	if o.explain != "" {
		found, err := report.WriteExplain(streams.Out, o.explain)
		if err != nil {
			return err
		}
		if !found {
			return usageError("--explain %q: no pod or workload by that name (want NAMESPACE/NAME or NAMESPACE/KIND/NAME)", o.explain)
		}
		return nil
	}
	switch o.output {
	case "json":
		err = report.WriteJSON(streams.Out, Version())
	case "sarif":
		err = report.WriteSARIF(streams.Out, Version())
	case "html":
		err = report.WriteHTML(streams.Out, Version())
	case "junit":
		err = report.WriteJUnit(streams.Out, failOn)
	case "table":
		if o.summary {
			err = report.WriteSummary(streams.Out, audit.TableOptions{Color: color})
		} else {
			err = report.WriteTable(streams.Out, audit.TableOptions{Color: color, Show: audit.Show(o.show)})
		}
	}
	if err != nil {
		return err
	}
	if !report.Complete() {
		log.Warn("the audit is incomplete: some documents, objects or cluster resources could not be evaluated", "problems", len(report.Problems), "gaps", len(report.Gaps))
	}
	worst := 0
	for _, f := range report.Findings {
		if f.Severity >= failOn && f.Counts() {
			worst++
		}
	}
	if worst > 0 {
		log.Debug("findings at or above --fail-on", "count", worst, "failOn", o.failOn)
		return &exitError{code: ExitFindings, err: fmt.Errorf("%d findings at or above %s", worst, strings.ToLower(o.failOn))}
	}
	return nil
}

// plural renders "1 input problem", "2 input problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
