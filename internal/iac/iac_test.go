package iac

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/layer"
)

// lt is a launch template stating the given options at lines 10 to 13 of lt.yaml.
func lt(tokens string, hop int) MetadataOptions {
	o := MetadataOptions{Resource: "AWS::EC2::LaunchTemplate Nodes", At: Position{File: "lt.yaml", Line: 9}}
	if tokens != "" {
		o.HTTPTokens = Value[string]{Value: tokens, Set: true, Known: true, At: Position{File: "lt.yaml", Line: 10}, Attr: "LaunchTemplateData.MetadataOptions.HttpTokens"}
	}
	if hop != 0 {
		o.HopLimit = Value[int]{Value: hop, Set: true, Known: true, At: Position{File: "lt.yaml", Line: 11}, Attr: "LaunchTemplateData.MetadataOptions.HttpPutResponseHopLimit"}
	}
	return o
}

func TestResolve(t *testing.T) {
	given := func(s string) AccountDefaults {
		d, err := ParseAccountDefaults(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	type want struct {
		tokens      string // "" for unknown
		hop         int    // 0 for unknown
		source      layer.Source
		originHas   string
		hopOriginIn string
	}
	tests := []struct {
		name string
		o    MetadataOptions
		acct AccountDefaults
		ami  AMISupport
		want want
	}{
		{
			// PrecedenceDoc: the launch template's values come first.
			name: "the launch template wins over the account default and the AMI",
			o:    lt("optional", 3), acct: given("tokens=required,hop-limit=1"), ami: AMISupportV2,
			want: want{tokens: "optional", hop: 3, source: layer.Configured, originHas: "lt.yaml:10 AWS::EC2::LaunchTemplate Nodes LaunchTemplateData.MetadataOptions.HttpTokens", hopOriginIn: "lt.yaml:11"},
		},
		{
			// PrecedenceDoc: then the account-level default.
			name: "the account default decides what the launch template leaves out",
			o:    lt("", 0), acct: given("tokens=required,hop-limit=1"), ami: AMISupportV2,
			want: want{tokens: "required", hop: 1, source: layer.Configured, originHas: "lt.yaml:9 AWS::EC2::LaunchTemplate Nodes leaves HttpTokens out: account default HttpTokens required", hopOriginIn: "account default HttpPutResponseHopLimit 1"},
		},
		{
			// AMIIMDSSupportDoc: imds-support v2.0 gives HttpTokens required and hop limit 2.
			name: "the AMI's imds-support v2.0 decides what the account leaves to it",
			o:    lt("", 0), acct: given("tokens=no-preference"), ami: AMISupportV2,
			want: want{tokens: "required", hop: 2, source: layer.Configured, originHas: "imds-support v2.0 sets HttpTokens required", hopOriginIn: "imds-support v2.0 sets HttpPutResponseHopLimit 2"},
		},
		{
			// EC2DefaultsDoc: HttpTokens optional and hop limit 1 when nothing sets them.
			name: "EC2's defaults when the account and the AMI are known to set nothing",
			o:    lt("", 0), acct: given("endpoint=enabled"), ami: AMISupportNone,
			want: want{tokens: "optional", hop: 1, source: layer.Default, originHas: "EC2's default HttpTokens optional", hopOriginIn: "EC2's default HttpPutResponseHopLimit 1"},
		},
		{
			name: "inherited and unknown when the account defaults are not given",
			o:    lt("", 0), ami: AMISupportV2,
			want: want{source: layer.Configured, originHas: "lt.yaml:9 AWS::EC2::LaunchTemplate Nodes leaves HttpTokens out: inherited from the account default or the AMI; settle with --aws-account-defaults"},
		},
		{
			name: "inherited and unknown when the AMI is not known and the account has no preference",
			o:    lt("", 0), acct: given("endpoint=enabled"),
			want: want{source: layer.Configured, originHas: "inherited from the account default or the AMI"},
		},
		{
			name: "a value the code sets but cannot be known stays unknown",
			o:    MetadataOptions{Resource: "AWS::EC2::LaunchTemplate Nodes", HTTPTokens: Value[string]{Set: true, Expr: "!Ref Mode", At: Position{File: "lt.yaml", Line: 10}, Attr: "HttpTokens"}},
			acct: given("tokens=required,hop-limit=1"),
			want: want{hop: 1, source: layer.Configured, originHas: "is !Ref Mode: HttpTokens not known statically"},
		},
		{
			name: "a tool's default is a default",
			o:    MetadataOptions{Resource: "eksctl nodeGroups[0] ng", HTTPTokens: Value[string]{Value: "required", Set: true, Known: true, Default: "eksctl's default disableIMDSv1: true"}},
			want: want{tokens: "required", source: layer.Default, originHas: "eksctl's default disableIMDSv1: true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Resolve(tt.o, tt.acct, tt.ami)
			if got.Tokens.Known != (tt.want.tokens != "") || got.Tokens.Value != tt.want.tokens {
				t.Errorf("Tokens = %+v, want %q", got.Tokens, tt.want.tokens)
			}
			if got.Tokens.Source != tt.want.source {
				t.Errorf("Tokens.Source = %s, want %s", got.Tokens.Source, tt.want.source)
			}
			if !strings.Contains(got.Tokens.Origin, tt.want.originHas) {
				t.Errorf("Tokens.Origin = %q, want it to contain %q", got.Tokens.Origin, tt.want.originHas)
			}
			if got.HopLimit.Known != (tt.want.hop != 0) || got.HopLimit.Value != tt.want.hop {
				t.Errorf("HopLimit = %+v, want %d", got.HopLimit, tt.want.hop)
			}
			if !strings.Contains(got.HopLimit.Origin, tt.want.hopOriginIn) {
				t.Errorf("HopLimit.Origin = %q, want it to contain %q", got.HopLimit.Origin, tt.want.hopOriginIn)
			}
		})
	}
}

func TestResolveEndpointAndIPv6(t *testing.T) {
	o := lt("required", 1)
	// No account defaults given: the account may disable the endpoint.
	got := Resolve(o, AccountDefaults{}, AMISupportUnknown)
	if got.Endpoint.Known || !strings.Contains(got.Endpoint.Origin, "inherited from the account default; settle with --aws-account-defaults") {
		t.Errorf("Endpoint = %+v, want unknown, inherited", got.Endpoint)
	}
	// EC2DefaultsDoc: HttpProtocolIpv6 "Default: disabled"; no account or AMI setting exists.
	if !got.IPv6.Known || got.IPv6.Value || got.IPv6.Source != layer.Default {
		t.Errorf("IPv6 = %+v, want disabled by EC2's default", got.IPv6)
	}
	acct, _ := ParseAccountDefaults("endpoint=disabled")
	if got := Resolve(o, acct, AMISupportUnknown); !got.Endpoint.Known || got.Endpoint.Value || got.Endpoint.Source != layer.Configured {
		t.Errorf("Endpoint with endpoint=disabled = %+v, want disabled, configured", got.Endpoint)
	}
	acct, _ = ParseAccountDefaults("tokens=required")
	if got := Resolve(o, acct, AMISupportUnknown); !got.Endpoint.Known || !got.Endpoint.Value || got.Endpoint.Source != layer.Default {
		t.Errorf("Endpoint with no account preference = %+v, want EC2's default enabled", got.Endpoint)
	}
}

func TestParseAccountDefaults(t *testing.T) {
	d, err := ParseAccountDefaults("tokens=required, hop-limit=1,endpoint=no-preference")
	if err != nil {
		t.Fatal(err)
	}
	if want := (AccountDefaults{Given: true, Tokens: "required", HopLimit: 1}); d != want {
		t.Errorf("got %+v, want %+v", d, want)
	}
	if d, err := ParseAccountDefaults(""); err != nil || d.Given {
		t.Errorf("empty: got %+v, %v; want nothing given", d, err)
	}
	for in, msg := range map[string]string{
		"tokens=sometimes":                "tokens=sometimes: want optional, required or no-preference",
		"hop-limit=0":                     "hop-limit=0: want 1 to 64",
		"hop-limit=65":                    "hop-limit=65: want 1 to 64",
		"endpoint=on":                     "endpoint=on: want enabled, disabled",
		"tokens":                          `"tokens" is not key=value`,
		"colour=blue":                     `unknown key "colour"`,
		"tokens=required,tokens":          `is not key=value`,
		"tokens=required,tokens=optional": "tokens given twice",
	} {
		if _, err := ParseAccountDefaults(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseAccountDefaults(%q) = %v, want an error containing %q", in, err, msg)
		}
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func byResource(groups []NodeGroup) map[string]NodeGroup {
	m := map[string]NodeGroup{}
	for _, g := range groups {
		m[g.Resource] = g
	}
	return m
}

func TestReadCloudFormationYAML(t *testing.T) {
	groups, problems, err := ReadCloudFormation("nodes.yaml", readFixture(t, "infra/nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	m := byResource(groups)
	if _, ok := m["AWS::EKS::Nodegroup System"]; ok {
		t.Error("a Nodegroup without LaunchTemplate is EKS's own template's: want it left out")
	}
	// The launch templates the node groups use are reported through them.
	if len(groups) != 4 {
		t.Errorf("got %d groups, want 4 (2 node groups, an instance, a launch configuration)", len(groups))
	}

	w := m["AWS::EKS::Nodegroup Workers"]
	if w.EKSNodeGroup != "workers" || w.LaunchTemplateVersion != "" {
		t.Errorf("Workers keys = %q/%q, want workers and no literal version", w.EKSNodeGroup, w.LaunchTemplateVersion)
	}
	o := w.Options
	if o.Resource != "AWS::EC2::LaunchTemplate NodeLaunchTemplate" {
		t.Errorf("Workers options from %q, want its launch template", o.Resource)
	}
	if v := o.HTTPTokens; !v.Known || v.Value != "required" || v.At.Line != 20 || v.Attr != "LaunchTemplateData.MetadataOptions.HttpTokens" {
		t.Errorf("HttpTokens = %+v, want required at line 20", v)
	}
	// A !Ref to a parameter with a Default takes the default.
	if v := o.HopLimit; !v.Known || v.Value != 2 || v.At.Line != 21 || v.Expr != "!Ref HopLimit (parameter default)" {
		t.Errorf("HopLimit = %+v, want 2 from the parameter default, line 21", v)
	}
	if v := o.HTTPProtocolIPv6; v.Set {
		t.Errorf("HttpProtocolIpv6 = %+v, want left out", v)
	}

	b := m["AWS::EKS::Nodegroup Batch"]
	if b.LaunchTemplateVersion != "3" {
		t.Errorf("Batch = %+v, want version 3 of BareLaunchTemplate by name", b)
	}
	// Version "3" pins a version; the template states its newest.
	if b.Options.HTTPTokens.Known || !strings.Contains(b.VersionInDoubt, "pins version 3") || b.Newest == nil {
		t.Fatalf("Batch = %+v, want unknown options, a version in doubt and the newest version's options", b)
	}
	if b.Newest.Resource != "AWS::EC2::LaunchTemplate BareLaunchTemplate" || b.Newest.HTTPTokens.Set || b.Newest.At.Line != 22 {
		t.Errorf("Batch's template leaves MetadataOptions out: got %+v", b.Newest)
	}
	got := Resolve(*b.Newest, AccountDefaults{}, AMISupportUnknown)
	if got.Tokens.Known || !strings.Contains(got.Tokens.Origin, "nodes.yaml:22:3 AWS::EC2::LaunchTemplate BareLaunchTemplate leaves HttpTokens out: inherited") {
		t.Errorf("Batch tokens = %+v, want inherited at line 22", got.Tokens)
	}

	bastion := m["AWS::EC2::Instance Bastion"].Options
	if v := bastion.HTTPTokens; !v.Set || v.Known || v.Expr != "!If" {
		t.Errorf("Bastion HttpTokens = %+v, want set, unknown, !If", v)
	}
	if v := bastion.HTTPProtocolIPv6; !v.Known || v.Value != "enabled" {
		t.Errorf("Bastion HttpProtocolIpv6 = %+v, want enabled", v)
	}
	lc := m["AWS::AutoScaling::LaunchConfiguration LegacyConfig"].Options
	if lc.HTTPTokens.Value != "optional" || lc.HopLimit.Value != 3 || lc.HTTPProtocolIPv6.Set {
		t.Errorf("LegacyConfig = %+v, want optional, 3, no IPv6", lc)
	}
}

func TestReadCloudFormationJSON(t *testing.T) {
	groups, problems, err := ReadCloudFormation("nodes.json", readFixture(t, "infra/nodes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	g := byResource(groups)["AWS::EKS::Nodegroup Gpu"]
	if g.EKSNodeGroup != "gpu" || g.LaunchTemplateVersion != "" || g.VersionInDoubt != "" {
		t.Errorf("Gpu keys = %+v", g)
	}
	if v := g.Options.HTTPTokens; !v.Set || v.Known || v.Expr != "Fn::Sub ${Mode}" || v.At.Line != 9 {
		t.Errorf("HttpTokens = %+v, want unknown Fn::Sub at line 9", v)
	}
	if v := g.Options.HopLimit; !v.Known || v.Value != 1 || v.At.Line != 10 {
		t.Errorf("HopLimit = %+v, want 1 at line 10", v)
	}
}

func TestReadCloudFormationProblems(t *testing.T) {
	_, _, err := ReadCloudFormation("unparsable.yaml", readFixture(t, "bad/unparsable.yaml"))
	if err == nil || !strings.Contains(err.Error(), "unparsable.yaml:") || !strings.Contains(err.Error(), "not YAML or JSON") {
		t.Fatalf("err = %v, want a parse error with its position", err)
	}

	groups, problems, err := ReadCloudFormation("dangling.yaml", readFixture(t, "bad/dangling.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dangling.yaml:7:13: AWS::EKS::Nodegroup Workers LaunchTemplate.Id: !Ref MissingTemplate names no resource or parameter of the template",
		`dangling.yaml:13:23: LaunchTemplateData.MetadataOptions.HttpTokens "sometimes": want optional or required`,
		`dangling.yaml:14:36: LaunchTemplateData.MetadataOptions.HttpPutResponseHopLimit "65": want an integer from 1 to 64`,
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	w := byResource(groups)["AWS::EKS::Nodegroup Workers"]
	if o := Resolve(w.Options, AccountDefaults{Given: true}, AMISupportNone); o.Tokens.Known || o.HopLimit.Known || o.Endpoint.Known {
		t.Errorf("a template reference to nothing must leave every option unknown, got %+v", o)
	}
}

func TestReadEksctl(t *testing.T) {
	groups, problems, err := ReadEksctl("cluster.yml", readFixture(t, "infra/cluster.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	// EksctlMetadataOptionsSource and EksctlIMDSv2DefaultSource.
	tests := []struct {
		resource       string
		tokens         string
		hop            int
		defaulted      bool
		eks, lt, ltVer string
	}{
		{resource: "eksctl nodeGroups[0] ng-default", tokens: "required", hop: 2, defaulted: true},
		{resource: "eksctl nodeGroups[1] ng-legacy", tokens: "optional", hop: 2, defaulted: true},
		{resource: "eksctl nodeGroups[2] ng-locked", tokens: "required", hop: 1},
		{resource: "eksctl managedNodeGroups[0] mng-1", tokens: "required", hop: 2, eks: "mng-1"},
		{resource: "eksctl managedNodeGroups[1] mng-custom", eks: "mng-custom", lt: "lt-0abc123", ltVer: "4"},
	}
	m := byResource(groups)
	if len(groups) != len(tests) {
		t.Errorf("got %d groups, want %d", len(groups), len(tests))
	}
	for _, tt := range tests {
		g, ok := m[tt.resource]
		if !ok {
			t.Errorf("%s: missing", tt.resource)
			continue
		}
		o := Resolve(g.Options, AccountDefaults{}, AMISupportUnknown)
		if o.Tokens.Known != (tt.tokens != "") || o.Tokens.Value != tt.tokens || o.HopLimit.Known != (tt.hop != 0) || o.HopLimit.Value != tt.hop {
			t.Errorf("%s: tokens %+v, hop %+v; want %q, %d", tt.resource, o.Tokens, o.HopLimit, tt.tokens, tt.hop)
		}
		if g.Defaulted != tt.defaulted || g.EKSNodeGroup != tt.eks || g.LaunchTemplateID != tt.lt || g.LaunchTemplateVersion != tt.ltVer {
			t.Errorf("%s: %+v", tt.resource, g)
		}
	}
	def := Resolve(m["eksctl nodeGroups[0] ng-default"].Options, AccountDefaults{}, AMISupportUnknown)
	if def.Tokens.Source != layer.Default || !strings.Contains(def.Tokens.Origin, "eksctl 0.143.0 and later") {
		t.Errorf("defaulted tokens = %+v, want eksctl's default", def.Tokens)
	}
	locked := Resolve(m["eksctl nodeGroups[2] ng-locked"].Options, AccountDefaults{}, AMISupportUnknown)
	if locked.Tokens.Source != layer.Configured || !strings.Contains(locked.Tokens.Origin, "cluster.yml:12:21 eksctl nodeGroups[2] ng-locked disablePodIMDS: true") {
		t.Errorf("locked tokens = %+v", locked.Tokens)
	}
	if m["eksctl nodeGroups[0] ng-default"].EksctlNodeGroup != "ng-default" {
		t.Error("eksctl node group name is the join key")
	}
}

func TestReadEksctlProblems(t *testing.T) {
	data := []byte("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nnodeGroups:\n  - name: a\n    disablePodIMDS: maybe\n  - instanceType: m5.large\n")
	groups, problems, err := ReadEksctl("c.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := "c.yaml:5:21: disablePodIMDS: want true or false\nc.yaml:6:5: nodeGroups[1]: no name"
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != want {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if len(groups) != 1 || groups[0].Options.HopLimit.Known {
		t.Errorf("groups = %+v, want one with an unknown hop limit", groups)
	}
}

func FuzzCloudFormation(f *testing.F) {
	for _, name := range []string{"infra/nodes.yaml", "infra/nodes.json", "bad/dangling.yaml", "bad/unparsable.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("Resources: {A: {Type: AWS::EKS::Nodegroup, Properties: {LaunchTemplate: {Id: !Ref A}}}}"))
	f.Add([]byte("Resources: &a {A: *a}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		groups, _, err := ReadCloudFormation("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, g := range groups {
			o := Resolve(g.Options, AccountDefaults{}, AMISupportUnknown)
			if o.Tokens.Known && o.Tokens.Value != "optional" && o.Tokens.Value != "required" {
				t.Errorf("%s: HttpTokens %q known", g.Resource, o.Tokens.Value)
			}
			if o.HopLimit.Known && (o.HopLimit.Value < 1 || o.HopLimit.Value > 64) {
				t.Errorf("%s: hop limit %d known", g.Resource, o.HopLimit.Value)
			}
		}
	})
}
