// Command gencluster writes a synthetic Kubernetes cluster as one JSON List document, the input
// of the audit benchmark (hack/bench.sh). The same flags always produce the same bytes.
//
//	go run ./hack/gencluster -pods 100000 -o _output/bench/cluster.json
//
// With -terraform it also writes a Terraform repository of node-group code (synth.WriteTerraform)
// whose EKS managed node groups the -nodes Nodes join (-nodegroups, the number of modules):
//
//	go run ./hack/gencluster -pods 100000 -nodes 1000 -nodegroups 200 -terraform _output/bench/infra -o _output/bench/cluster.json
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/imdsguard/imdsguard/internal/synth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "gencluster: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	def := synth.DefaultConfig()
	fs := flag.NewFlagSet("gencluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pods := fs.Int("pods", def.Pods, "number of pods")
	namespaces := fs.Int("namespaces", def.Namespaces, "number of namespaces, kube-system included; scales with -pods unless given")
	netpols := fs.Int("netpols", def.NetworkPolicies, "number of NetworkPolicies; scales with -pods unless given")
	anps := fs.Int("anps", def.AdminNetworkPolicies, "number of AdminNetworkPolicies, at most 1001; scales with -pods unless given")
	calico := fs.Int("calico", 0, "number of Calico NetworkPolicies and GlobalNetworkPolicies (0: none)")
	cilium := fs.Int("cilium", 0, "number of CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies (0: none)")
	cnp := fs.Int("cnp", 0, "number of ClusterNetworkPolicies, with Calico v3.32's calico-node DaemonSet to enforce them (0: none)")
	nodes := fs.Int("nodes", 0, "number of Nodes, Karpenter-launched, pods spread over them (0: no Node objects)")
	pools := fs.Int("pools", 20, "number of node pools (EC2NodeClasses) the Nodes fall in")
	nodeGroups := fs.Int("nodegroups", 0, "make the Nodes nodes of the EKS managed node groups of a Terraform repository of this many modules instead of Karpenter node pools (0: node pools)")
	terraformDir := fs.String("terraform", "", "also write that Terraform repository (-nodegroups modules) into this directory")
	seed := fs.Uint64("seed", def.Seed, "random seed")
	indent := fs.Bool("indent", false, "indent as kubectl does instead of one compact line per item")
	output := fs.String("o", "-", "output file, or - for standard output")
	statsFile := fs.String("stats", "", "also write the counts of what was generated to this file, as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all input is given by flags)", fs.Args())
	}
	// Sizes not given keep the default cluster's ratio to pods.
	cfg := synth.Scaled(*pods)
	cfg.Seed, cfg.Indent, cfg.CalicoPolicies, cfg.CiliumPolicies, cfg.ClusterNetworkPolicies = *seed, *indent, *calico, *cilium, *cnp
	if cfg.Nodes = *nodes; cfg.Nodes > 0 {
		cfg.NodePools = min(*pools, cfg.Nodes)
	}
	cfg.NodeGroupModules = *nodeGroups
	if *terraformDir != "" {
		if *nodeGroups <= 0 {
			return errors.New("-terraform needs -nodegroups, the number of modules to write")
		}
		ts, err := synth.WriteTerraform(*terraformDir, *nodeGroups)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "gencluster: wrote %d Terraform modules (%d files, %d EKS node groups), %.1f MB, into %s\n",
			ts.Modules, ts.Files, ts.NodeGroups, float64(ts.Bytes)/1e6, *terraformDir)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "namespaces":
			cfg.Namespaces = *namespaces
		case "netpols":
			cfg.NetworkPolicies = *netpols
		case "anps":
			cfg.AdminNetworkPolicies = *anps
		}
	})

	w := stdout
	var f *os.File
	if *output != "-" {
		var err error
		f, err = os.Create(*output)
		if err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		defer f.Close()
		w = f
	}
	stats, err := synth.Generate(w, cfg)
	if err != nil {
		return fmt.Errorf("generate %s: %w", *output, err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", *output, err)
		}
	}
	fmt.Fprintf(stderr, "gencluster: wrote %d items (%d pods, %d namespaces, %d deployments, %d service accounts, %d NetworkPolicies, %d AdminNetworkPolicies), %.1f MB\n",
		stats.Items, stats.Pods, stats.Namespaces, stats.Deployments, stats.ServiceAccounts, stats.NetworkPolicies, stats.AdminNetworkPolicies, float64(stats.Bytes)/1e6)
	if *statsFile != "" {
		data, err := json.MarshalIndent(stats, "", "  ")
		if err != nil {
			return fmt.Errorf("encode stats: %w", err)
		}
		if err := os.WriteFile(*statsFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write stats: %w", err)
		}
	}
	return nil
}
