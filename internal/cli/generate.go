package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/generate"
	"github.com/imdsguard/imdsguard/internal/iac/fix"
	"github.com/imdsguard/imdsguard/internal/iac/scan"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/spf13/cobra"
)

type generateOptions struct {
	source                sourceOptions
	engine                policyEngineFlag
	clouds                []string
	cloudSet              bool
	endpoints             []string
	layers                []string
	namespaces            []string
	exemptNamespaces      []string
	exemptionLabel        string
	hostNetworkNamespaces []string
	priority              int32
	format                string
	outputDir             string
	failOnRefusal         bool
}

// generateDeprecatedFlags are generate's old flag spellings: -o, which is the output format in
// audit, named the output directory here, and --exemption-label is --exempt-pod-label as in the
// controller.
var generateDeprecatedFlags = []deprecatedFlag{
	{old: "output", replacement: "--output-dir (-d)"},
	{old: "exemption-label", replacement: "--exempt-pod-label"},
}

func newGenerateCommand(g *globalOptions, streams Streams) *cobra.Command {
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "generate [FILE|DIR|-]...",
		Short: "Generate the fixes, layer by layer, without widening anyone's egress",
		Long: `Generate what keeps pods away from the metadata endpoints of the selected clouds,
IPv4 and IPv6, for each layer:

  networkpolicy         per namespace: all egress except the metadata endpoints
                        (needs the cluster's manifests; refused where it could widen egress)
  clusternetworkpolicy  a cluster-wide Deny in the Admin tier (policy.networking.k8s.io
                        v1beta1): preferred where the cluster's engine enforces it
  adminnetworkpolicy    a cluster-wide Deny (policy.networking.k8s.io v1alpha1)
  calico                a Calico tier and GlobalNetworkPolicy: deny, then pass
  cilium                a CiliumClusterwideNetworkPolicy egressDeny (Cilium 1.16+)
  admission             ValidatingAdmissionPolicies rejecting hostNetwork pods
  node                  nftables and iptables scripts and a boot snippet (files: needs -d)
  ec2                   IMDSv2 required, hop limit 1: AWS CLI, launch template, Terraform,
                        eksctl, Karpenter (AWS only; files: needs -d)

A policy layer of a kind the cluster's policy engine does not enforce is refused, with the
reason: the engine is detected from the input (its workloads and configuration) or stated
with --policy-engine NAME[@VERSION] (docs/engines.md).

Input, as for audit: files, directories and "-" for standard input, or the live cluster
(--live, --kubeconfig, --context); without --cloud, the clouds of the nodes in the input.
A live cluster that could not be read completely (see audit's IMDS012) is refused for the
networkpolicy layer. Infrastructure code among the paths (Terraform, CloudFormation, eksctl,
as for audit) gets the ec2 layer's fix written into its own files: ec2/infrastructure-code.patch,
a unified diff for git apply or patch -p1; what cannot be patched is said on standard error.
The networkpolicy
layer refuses every namespace where a pod is, or could become, egress-isolated (a
NetworkPolicy only adds allowances) and names the deny-capable layers to use there. Generated
NetworkPolicies and AdminNetworkPolicies are checked with the evaluator before they are
written: every protected pod denied every credential endpoint, no other verdict changed.

Without --output-dir, Kubernetes objects go to standard output (a YAML stream or a JSON List,
ready for kubectl apply -f -). With --output-dir (-d) DIR, every layer is written to its own file, atomically, with
SUMMARY.txt.

Exit status: 0 when everything selected was generated, 1 when a namespace or layer was refused (the
output is complete for everything else; --fail-on-refusal=false exits 0), 2 on a usage or
input error, 3 on a runtime failure (the output could not be written).`,
		Example: `  imdsguard generate --cloud aws --layer adminnetworkpolicy,admission | kubectl apply -f -
  imdsguard generate --cloud aws -d fixes/ examples/cluster
  imdsguard generate --live --layer networkpolicy | kubectl apply --server-side -f -
  kubectl get ns,pods,deploy,sts,ds,rs,job,cronjob,netpol -A -o yaml | imdsguard generate --layer networkpolicy -
  imdsguard generate --cloud azure --layer node,cilium -d fixes/
  imdsguard generate --layer ec2 -d fixes/ infra/ && git apply fixes/ec2/infrastructure-code.patch`,
		RunE: func(cmd *cobra.Command, args []string) error {
			warnDeprecated(cmd, streams.Err, generateDeprecatedFlags)
			o.cloudSet = cmd.Flags().Changed("cloud")
			return runGenerate(cmd.Context(), g, streams, o, args)
		},
	}
	f := cmd.Flags()
	o.source.addFlags(f)
	o.engine.addFlag(f)
	addCloudFlag(cmd, &o.clouds, "deny", "the clouds named by the nodes' spec.providerID, else those the input shows (an AWS, GKE or AKS add-on, a workload identity annotation), else all")
	f.StringArrayVar(&o.endpoints, "endpoint", nil, "extra credential-bearing endpoint ADDR[:PORT][/PROTO] to deny, e.g. 10.0.0.5:8080/TCP (repeatable)")
	f.StringSliceVar(&o.layers, "layer", nil, "layers to generate: networkpolicy, clusternetworkpolicy, adminnetworkpolicy, calico, cilium, admission, node, ec2 or all (comma-separated or repeated; default: all that apply to the selected clouds)")
	f.StringSliceVar(&o.namespaces, "namespace", nil, "limit the networkpolicy layer to these namespaces (default: every namespace in the input)")
	f.StringSliceVar(&o.exemptNamespaces, "exempt-namespace", slices.Clone(generate.DefaultExemptNamespaces), "namespaces the networkpolicy, clusternetworkpolicy, adminnetworkpolicy, calico and cilium layers leave alone (--exempt-namespace= for none)")
	f.StringVar(&o.exemptionLabel, "exempt-pod-label", generate.DefaultExemptionLabel, "pod label key whose value \""+generate.ExemptionValue+"\" exempts a pod from the networkpolicy layer (empty: no exemption)")
	f.StringVar(&o.exemptionLabel, "exemption-label", generate.DefaultExemptionLabel, "deprecated spelling of --exempt-pod-label")
	f.StringSliceVar(&o.hostNetworkNamespaces, "hostnetwork-namespace", slices.Clone(generate.DefaultHostNetworkNamespaces), "namespaces the admission layer lets run hostNetwork pods (--hostnetwork-namespace= for none)")
	f.Int32Var(&o.priority, "priority", generate.DefaultAdminPriority, "ClusterNetworkPolicy (Admin tier) and AdminNetworkPolicy priority, 0-1000 (lower numbers are evaluated first)")
	f.StringVar(&o.format, "format", "yaml", "format of Kubernetes objects: yaml or json")
	f.StringVarP(&o.outputDir, "output-dir", "d", "", "write every layer to its own file in this directory (created if missing) instead of standard output")
	f.StringVarP(&o.outputDir, "output", "o", "", "deprecated spelling of --output-dir (-d)")
	hideDeprecated(cmd, generateDeprecatedFlags)
	f.BoolVar(&o.failOnRefusal, "fail-on-refusal", true, "exit 1 when a layer refused a namespace")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	layers := []string{"all"}
	for _, l := range generate.Layers {
		layers = append(layers, string(l))
	}
	_ = cmd.RegisterFlagCompletionFunc("layer", cobra.FixedCompletions(layers, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runGenerate(ctx context.Context, g *globalOptions, streams Streams, o *generateOptions, args []string) error {
	log, err := g.logger(streams.Err)
	if err != nil {
		return err
	}
	if _, err := selectEndpoints(o.clouds, o.endpoints); err != nil {
		return err // flags are checked before anything is read
	}
	layers, err := generate.ParseLayers(o.layers)
	if err != nil {
		return usageError("--layer: %v", err)
	}
	format, err := generate.ParseFormat(o.format)
	if err != nil {
		return usageError("--format: %v", err)
	}
	var inv *inventory.Inventory
	var enf policy.Enforcement
	if o.source.isLive() || len(o.source.files)+len(args) > 0 {
		if inv, err = o.source.load(ctx, log, streams, args); err != nil {
			return err
		}
		if enf, err = o.engine.enforcement(log, inv); err != nil {
			return err
		}
		log.Debug("loaded", "cluster", inv.Cluster, "files", inv.Files, "documents", inv.Documents, "pods", len(inv.Pods), "workloads", len(inv.Workloads), "networkPolicies", len(inv.NetworkPolicies))
		for _, w := range inv.Warnings {
			log.Warn(w)
		}
		if len(inv.Gaps) > 0 && (len(layers) == 0 || slices.Contains(layers, generate.NetworkPolicy)) {
			gaps := make([]string, len(inv.Gaps))
			for i, gap := range inv.Gaps {
				gaps[i] = gap.String()
			}
			return usageError("the cluster could not be read completely, so where a NetworkPolicy is safe cannot be decided: %s (grant the read, or choose deny-only layers with --layer)", strings.Join(gaps, "; "))
		}
	}
	if inv == nil {
		if enf, err = o.engine.enforcement(log, nil); err != nil {
			return err
		}
	}
	clouds := o.clouds
	if !o.cloudSet && inv != nil {
		code := ""
		if len(o.source.code) > 0 {
			code = o.source.code[0].Files[0]
		}
		clouds, _ = detectClouds(log, inv, code)
	}
	eps, err := selectEndpoints(clouds, o.endpoints)
	if err != nil {
		return err
	}

	opts := generate.DefaultOptions(eps)
	opts.Layers = layers
	opts.Namespaces = o.namespaces
	opts.ExemptNamespaces = o.exemptNamespaces
	opts.ExemptionLabel = o.exemptionLabel
	opts.HostNetworkNamespaces = o.hostNetworkNamespaces
	opts.AdminPriority = o.priority
	opts.Inventory = inv
	opts.Enforcement = &enf
	if inv != nil {
		opts.ClusterNetworkPolicyAPIVersion = inv.ClusterNetworkPolicyAPIVersion // a live cluster's own
	}

	if len(o.source.code) > 0 && (len(layers) == 0 || slices.Contains(layers, generate.EC2)) {
		if opts.InfrastructurePatch, opts.InfrastructureNotes, opts.InfrastructurePatchBase, err = infrastructurePatch(log, o.source.code); err != nil {
			return err
		}
	}

	out, err := generate.Generate(opts)
	var input *generate.InputError
	var verification *generate.VerificationError
	switch {
	case errors.As(err, &input):
		for _, p := range input.Problems {
			log.Error("input problem", "at", p.Source.String(), "field", p.Field, "error", p.Message)
		}
		return usageError("nothing generated: the input has %s, and generating from a partial picture of the cluster could widen egress it does not show (first: %s)",
			plural(len(input.Problems), "problem"), input.Problems[0].Error())
	case errors.As(err, &verification):
		for _, v := range verification.Violations {
			log.Error("verification failed", "layer", verification.What, "subject", v.Subject, "destination", v.Destination, "problem", v.Problem)
		}
		return &exitError{code: ExitUsage, err: fmt.Errorf("nothing generated: %w", err)}
	case err != nil:
		return usageError("%v", err)
	}

	if o.outputDir == "" && !slices.ContainsFunc(out.Layers, func(l generate.Layer) bool { return !l.WritesFiles() }) {
		return usageError("the %s layers write scripts and configuration files, not Kubernetes objects: give --output-dir DIR to write them", layerNames(out.Layers))
	}
	for _, r := range out.Refusals {
		if r.Namespace == "" {
			log.Warn("layer refused", "layer", r.Layer, "reason", strings.Join(r.Reasons, "; "), "instead", layerNames(r.Instead))
			continue
		}
		log.Warn("namespace refused", "layer", r.Layer, "namespace", r.Namespace, "reason", strings.Join(r.Reasons, "; "), "instead", layerNames(r.Instead))
	}
	for _, n := range out.Notes {
		log.Warn(n)
	}

	if o.outputDir != "" {
		files, err := out.OutputFiles(format)
		if err != nil {
			return err
		}
		if err := writeFiles(o.outputDir, files); err != nil {
			return runtimeError(err)
		}
		for _, f := range files {
			if _, err := fmt.Fprintf(streams.Out, "wrote %s: %s\n", filepath.Join(o.outputDir, filepath.FromSlash(f.Path)), f.Description); err != nil {
				return err
			}
		}
	} else if err := writeManifests(streams.Out, log, out, format); err != nil {
		return err
	}

	if len(out.Refusals) > 0 {
		msg := refusalSummary(out.Refusals)
		log.Warn(msg)
		if o.failOnRefusal {
			return &exitError{code: ExitFindings, err: errors.New(msg)}
		}
	}
	return nil
}

// writeManifests writes the Kubernetes objects to w. Scripts and configuration files are not
// Kubernetes objects: they are written only to an output directory.
func writeManifests(w io.Writer, log *slog.Logger, out *generate.Output, format generate.Format) error {
	if files := out.FileLayers(); len(files) > 0 {
		log.Info("not written: these layers produce scripts and configuration files; give --output-dir DIR to write them", "layers", layerNames(files))
	}
	data, err := generate.RenderManifests(out.Manifests, format, out.Summary())
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// writeFiles writes every file below dir through a temporary file in the same directory, and
// renames them into place only once all are written: a failure leaves the previous files
// untouched, never a partial one.
func writeFiles(dir string, files []generate.File) error {
	type pending struct{ tmp, final string }
	var written []pending
	cleanup := func() {
		for _, p := range written {
			_ = os.Remove(p.tmp)
		}
	}
	for _, f := range files {
		final := filepath.Join(dir, filepath.FromSlash(f.Path))
		tmp, err := writeTemp(final, f)
		if err != nil {
			cleanup()
			return err
		}
		written = append(written, pending{tmp, final})
	}
	for i, p := range written {
		if err := os.Rename(p.tmp, p.final); err != nil {
			for _, rest := range written[i:] {
				_ = os.Remove(rest.tmp)
			}
			return fmt.Errorf("write %s: %w", p.final, err)
		}
	}
	return nil
}

// writeTemp writes f's content to a new temporary file beside final and returns its name.
func writeTemp(final string, f generate.File) (string, error) {
	// Generated manifests and scripts are meant to be read and run by others: not secrets.
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil { //nolint:gosec // output directory for non-secret files
		return "", fmt.Errorf("create %s: %w", filepath.Dir(final), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	mode := os.FileMode(0o644)
	if f.Executable {
		mode = 0o755
	}
	_, err = tmp.Write(f.Content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	return tmp.Name(), nil
}

func layerNames(ls []generate.Layer) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = string(l)
	}
	return strings.Join(names, ", ")
}

// refusalSummary says what was refused: the layers the cluster's engine would not enforce, and
// the namespaces the networkpolicy layer would have widened egress in.
func refusalSummary(rs []generate.Refusal) string {
	var layers, namespaces []string
	var instead []generate.Layer
	for _, r := range rs {
		if r.Namespace == "" {
			layers = append(layers, string(r.Layer)+" (use "+layerNames(r.Instead)+")")
			continue
		}
		namespaces = append(namespaces, r.Namespace)
		instead = r.Instead
	}
	var parts []string
	if len(layers) > 0 {
		parts = append(parts, fmt.Sprintf("%s refused, the cluster's policy engine would not enforce them: %s", plural(len(layers), "layer"), strings.Join(layers, ", ")))
	}
	if len(namespaces) > 0 {
		parts = append(parts, fmt.Sprintf("%s refused: protect %s with a deny-capable layer (%s)", plural(len(namespaces), "namespace"), strings.Join(namespaces, ", "), layerNames(instead)))
	}
	return strings.Join(parts, "; ")
}

// infrastructurePatch reads the infrastructure code given and writes the ec2 layer's fix into
// it: a unified diff relative to the directory it returns (patchBase), and notes on what it
// could not patch.
// Code that cannot be read is an input error: a fix of part of it would look complete.
func infrastructurePatch(log *slog.Logger, inputs []scan.Input) ([]byte, []string, string, error) {
	code, err := scan.Read(inputs)
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	if len(code.Problems) > 0 {
		for _, p := range code.Problems {
			log.Error("input problem", "at", p.At.String(), "error", p.Message)
		}
		return nil, nil, "", usageError("nothing generated: the infrastructure code has %s (first: %s)", plural(len(code.Problems), "problem"), code.Problems[0])
	}
	base, err := patchBase(inputs)
	if err != nil {
		return nil, nil, "", err
	}
	diff, notes, err := fix.Patch(code.Groups, os.ReadFile, fix.Target{HopLimit: 1, Base: base})
	if err != nil {
		return nil, nil, "", usageError("%v", err)
	}
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = "infrastructure code: " + n.String()
	}
	log.Debug("patched infrastructure code", "files", code.Files, "groups", len(code.Groups), "notes", len(notes), "bytes", len(diff), "base", base)
	return diff, out, base, nil
}

// patchBase is the directory the patch's paths are relative to: the working directory when it
// holds every file of the code, else the deepest directory that does.
func patchBase(inputs []scan.Input) (string, error) {
	common := ""
	inside := true
	for _, in := range inputs {
		for _, f := range in.Files {
			abs, err := filepath.Abs(f)
			if err != nil {
				return "", runtimeError(err)
			}
			if rel, err := filepath.Rel(".", f); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(f) {
				inside = false
			}
			dir := filepath.Dir(abs)
			for common != "" && dir != common && !strings.HasPrefix(dir, common+string(filepath.Separator)) {
				common = filepath.Dir(common)
			}
			if common == "" {
				common = dir
			}
		}
	}
	if inside || common == "" {
		return ".", nil
	}
	return common, nil
}
