package firewall

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// dedent strips the common leading tabs of a raw string literal and its first newline.
func dedent(s string) string {
	s = strings.TrimPrefix(s, "\n")
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

func aws() []endpoint.Endpoint { return endpoint.Select([]endpoint.Cloud{endpoint.AWS}) }

func TestNFTScriptAWSEnforce(t *testing.T) {
	cfg := Config{
		Endpoints:  aws(),
		PodsCgroup: "kubepods.slice",
		AllowedHostNetworkPods: []PodCgroup{{
			UID:  "0a1b2c3d-0000-4000-8000-000000000001",
			Path: "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_0000_4000_8000_000000000001.slice",
		}},
		ExemptPodIPs: []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.5")},
	}
	got, err := NFTScript(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := dedent(`
		#!/usr/sbin/nft -f
		# imdsguard node firewall (mode enforce): replaces table inet imdsguard in one transaction.
		add table inet imdsguard
		delete table inet imdsguard
		add table inet imdsguard { comment "imdsguard: keeps pods away from cloud metadata endpoints; managed by imdsguard agent, do not edit" ; }
		add counter inet imdsguard forward.aws-imds { comment "169.254.169.254:80/TCP on forward" ; }
		add counter inet imdsguard forward.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on forward" ; }
		add counter inet imdsguard output.aws-imds { comment "169.254.169.254:80/TCP on output" ; }
		add counter inet imdsguard output.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on output" ; }
		add counter inet imdsguard postrouting.aws-imds { comment "169.254.169.254:80/TCP on postrouting" ; }
		add counter inet imdsguard postrouting.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on postrouting" ; }
		add set inet imdsguard exempt_v4 { type ipv4_addr ; comment "exempt pod addresses (agent configuration)" ; }
		add set inet imdsguard exempt_v6 { type ipv6_addr ; comment "exempt pod addresses (agent configuration)" ; }
		add set inet imdsguard seen_v4 { type ipv4_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
		add set inet imdsguard seen_v6 { type ipv6_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
		add chain inet imdsguard forward { type filter hook forward priority -10 ; policy accept ; comment "pod traffic, any CNI" ; }
		add chain inet imdsguard output { type filter hook output priority -10 ; policy accept ; comment "hostNetwork pods, by cgroup" ; }
		add chain inet imdsguard postrouting { type filter hook postrouting priority -10 ; policy accept ; comment "branch-ENI pods (vlan*)" ; }
		add rule inet imdsguard forward ip saddr @exempt_v4 accept comment "exempt pods"
		add rule inet imdsguard forward ip6 saddr @exempt_v6 accept comment "exempt pods"
		add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 update @seen_v4 { ip saddr counter } comment "aws-imds: remember the source"
		add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 counter name "forward.aws-imds" drop comment "aws-imds: deny pods"
		add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 update @seen_v6 { ip6 saddr counter } comment "aws-imds-ipv6: remember the source"
		add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 counter name "forward.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny pods"
		add rule inet imdsguard output socket cgroupv2 level 3 "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_0000_4000_8000_000000000001.slice" accept comment "allowed hostNetwork pod 0a1b2c3d-0000-4000-8000-000000000001"
		add rule inet imdsguard output ip daddr 169.254.169.254 tcp dport 80 socket cgroupv2 level 1 "kubepods.slice" counter name "output.aws-imds" drop comment "aws-imds: deny hostNetwork pods"
		add rule inet imdsguard output ip6 daddr fd00:ec2::254 tcp dport 80 socket cgroupv2 level 1 "kubepods.slice" counter name "output.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny hostNetwork pods"
		add rule inet imdsguard postrouting ip saddr @exempt_v4 accept comment "exempt pods"
		add rule inet imdsguard postrouting ip6 saddr @exempt_v6 accept comment "exempt pods"
		add rule inet imdsguard postrouting oifname "vlan*" ip daddr 169.254.169.254 tcp dport 80 counter name "postrouting.aws-imds" drop comment "aws-imds: deny branch-ENI pods"
		add rule inet imdsguard postrouting oifname "vlan*" ip6 daddr fd00:ec2::254 tcp dport 80 counter name "postrouting.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny branch-ENI pods"
		add element inet imdsguard exempt_v4 { 10.0.0.5 }
		add element inet imdsguard exempt_v4 { 10.0.0.9 }
		add element inet imdsguard exempt_v6 { 2001:db8::7 }
		`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NFTScript mismatch (-want +got):\n%s", diff)
	}
}

func TestRulesetBehaviour(t *testing.T) {
	all := endpoint.Select([]endpoint.Cloud{endpoint.All, endpoint.ECS})
	tests := []struct {
		name string
		cfg  Config
		// every line must appear (as a substring of the script)
		present []string
		// no line may contain any of these
		absent []string
	}{{
		name:    "observe mode counts and remembers sources but never drops",
		cfg:     Config{Endpoints: all, Mode: Observe, PodsCgroup: "kubepods"},
		present: []string{`counter name "forward.imds" comment "imds: observe pods (no drop)"`, `update @seen_v4 { ip saddr counter }`, `socket cgroupv2 level 1 "kubepods" counter name "output.imds" comment`},
		absent:  []string{"drop comment", " drop "},
	}, {
		name:    "keep-reachable endpoints are never matched: EKS Pod Identity agent and Azure DNS",
		cfg:     Config{Endpoints: all},
		present: []string{"ip daddr 168.63.129.16 tcp dport 80 ", "ip daddr 168.63.129.16 tcp dport 32526 "},
		absent:  []string{"169.254.170.23", "fd00:ec2::23", "dport 53", "udp"},
	}, {
		name:    "the forward chain does not depend on interface names",
		cfg:     Config{Endpoints: all},
		present: []string{"add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 counter"},
		absent:  []string{"iifname", "forward oifname", "forward iif", "eni", "cali", "cni0"},
	}, {
		name:    "without a pods cgroup the output chain exists but holds no rules",
		cfg:     Config{Endpoints: aws()},
		present: []string{"add chain inet imdsguard output {"},
		absent:  []string{"socket cgroupv2", "add rule inet imdsguard output"},
	}, {
		name:    "a cgroupfs pods cgroup below a kubelet cgroup-root is matched at its depth",
		cfg:     Config{Endpoints: aws(), PodsCgroup: "/custom/kubepods/"},
		present: []string{`socket cgroupv2 level 2 "custom/kubepods"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NFTScript(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.present {
				if !strings.Contains(got, p) {
					t.Errorf("script lacks %q:\n%s", p, got)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("script contains %q:\n%s", a, got)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	podIdentity, err := endpoint.ParseCustom("169.254.170.23:80")
	if err != nil {
		t.Fatal(err)
	}
	azureDNS, err := endpoint.ParseCustom("168.63.129.16:53/UDP")
	if err != nil {
		t.Fatal(err)
	}
	custom, err := endpoint.ParseCustom("[fd00::5]:8080/TCP")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"a custom endpoint is fine", Config{Endpoints: append(aws(), custom)}, ""},
		{"blocking the EKS Pod Identity agent is refused", Config{Endpoints: append(aws(), podIdentity)}, "must stay reachable"},
		{"blocking Azure DNS is refused", Config{Endpoints: []endpoint.Endpoint{azureDNS}}, "must stay reachable"},
		{"an unknown mode is refused", Config{Endpoints: aws(), Mode: "audit"}, `mode "audit"`},
		{"a cgroup path with quotes is refused", Config{Endpoints: aws(), PodsCgroup: `kube"pods`}, "bad component"},
		{"a cgroup path climbing up is refused", Config{Endpoints: aws(), PodsCgroup: "kubepods/../x"}, "bad component"},
		{"an allowed pod outside the pods cgroup is refused", Config{Endpoints: aws(), PodsCgroup: "kubepods.slice", AllowedHostNetworkPods: []PodCgroup{{UID: "u", Path: "system.slice/kubelet.service"}}}, "not below"},
		{"allowed pods without a pods cgroup are refused", Config{Endpoints: aws(), AllowedHostNetworkPods: []PodCgroup{{UID: "u", Path: "kubepods/podu"}}}, "need a pods cgroup"},
		{"an endpoint with a bad protocol is refused", Config{Endpoints: []endpoint.Endpoint{{Name: "x", Address: netip.MustParseAddr("10.1.1.1"), Protocol: corev1.Protocol("ICMP"), Port: 1, Role: endpoint.Credentials}}}, "unknown protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if _, err := NFTScript(tt.cfg); err == nil {
				t.Fatal("NFTScript accepted an invalid config")
			}
		})
	}
}

// TestReplaceIsValidForKnftables runs the transaction through knftables' fake, which validates
// every object and reference, twice: replacing an existing table must work as well as creating
// it.
func TestReplaceIsValidForKnftables(t *testing.T) {
	r, err := Build(Config{Endpoints: endpoint.Select([]endpoint.Cloud{endpoint.All}), PodsCgroup: "kubepods.slice", ExemptPodIPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}})
	if err != nil {
		t.Fatal(err)
	}
	fake := knftables.NewFake(knftables.InetFamily, TableName)
	for i := range 2 {
		tx := fake.NewTransaction()
		r.Replace(tx)
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	for chain, want := range r.RuleCounts() {
		rules, err := fake.ListRules(context.Background(), chain)
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != want {
			t.Errorf("chain %s: %d rules, want %d", chain, len(rules), want)
		}
	}
	if got := fake.Table.Sets[SetExemptIPv4].Elements; len(got) != 1 {
		t.Errorf("exempt_v4 has %d elements, want 1", len(got))
	}
}

func TestIPTablesRestore(t *testing.T) {
	cfg := Config{
		Endpoints:              endpoint.Select([]endpoint.Cloud{endpoint.AWS, endpoint.Azure}),
		PodsCgroup:             "kubepods",
		AllowedHostNetworkPods: []PodCgroup{{UID: "u1", Path: "kubepods/besteffort/podu1"}},
		ExemptPodIPs:           []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5")},
	}
	got4, err := IPTablesRestore(cfg, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	want4 := dedent(`
		# imdsguard node firewall, iptables fallback (ipv4, mode enforce)
		*filter
		:IMDSGUARD-FORWARD - [0:0]
		:IMDSGUARD-OUTPUT - [0:0]
		-A IMDSGUARD-FORWARD -s 10.0.0.5/32 -m comment --comment "exempt pod" -j RETURN
		-A IMDSGUARD-FORWARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "imds: deny pods" -j DROP
		-A IMDSGUARD-FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m comment --comment "azure-wireserver: deny pods" -j DROP
		-A IMDSGUARD-FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m comment --comment "azure-wireserver-32526: deny pods" -j DROP
		-A IMDSGUARD-OUTPUT -m cgroup --path kubepods/besteffort/podu1 -m comment --comment "allowed hostNetwork pod u1" -j RETURN
		-A IMDSGUARD-OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m cgroup --path kubepods -m comment --comment "imds: deny hostNetwork pods" -j DROP
		-A IMDSGUARD-OUTPUT -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m cgroup --path kubepods -m comment --comment "azure-wireserver: deny hostNetwork pods" -j DROP
		-A IMDSGUARD-OUTPUT -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m cgroup --path kubepods -m comment --comment "azure-wireserver-32526: deny hostNetwork pods" -j DROP
		-I FORWARD 1 -j IMDSGUARD-FORWARD
		-I OUTPUT 1 -j IMDSGUARD-OUTPUT
		COMMIT
		*mangle
		:IMDSGUARD-POSTROUTING - [0:0]
		-A IMDSGUARD-POSTROUTING -s 10.0.0.5/32 -m comment --comment "exempt pod" -j RETURN
		-A IMDSGUARD-POSTROUTING -o vlan+ -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "imds: deny branch-ENI pods" -j DROP
		-A IMDSGUARD-POSTROUTING -o vlan+ -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m comment --comment "azure-wireserver: deny branch-ENI pods" -j DROP
		-A IMDSGUARD-POSTROUTING -o vlan+ -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m comment --comment "azure-wireserver-32526: deny branch-ENI pods" -j DROP
		-I POSTROUTING 1 -j IMDSGUARD-POSTROUTING
		COMMIT
		`)
	if diff := cmp.Diff(want4, got4); diff != "" {
		t.Errorf("IPv4 restore mismatch (-want +got):\n%s", diff)
	}

	got6, err := IPTablesRestore(Config{Endpoints: aws(), Mode: Observe, ExemptPodIPs: cfg.ExemptPodIPs}, IPv6)
	if err != nil {
		t.Fatal(err)
	}
	want6 := dedent(`
		# imdsguard node firewall, iptables fallback (ipv6, mode observe)
		*filter
		:IMDSGUARD-FORWARD - [0:0]
		:IMDSGUARD-OUTPUT - [0:0]
		-A IMDSGUARD-FORWARD -s 2001:db8::5/128 -m comment --comment "exempt pod" -j RETURN
		-A IMDSGUARD-FORWARD -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -m comment --comment "aws-imds-ipv6: observe pods (no drop)"
		-I FORWARD 1 -j IMDSGUARD-FORWARD
		-I OUTPUT 1 -j IMDSGUARD-OUTPUT
		COMMIT
		*mangle
		:IMDSGUARD-POSTROUTING - [0:0]
		-A IMDSGUARD-POSTROUTING -s 2001:db8::5/128 -m comment --comment "exempt pod" -j RETURN
		-A IMDSGUARD-POSTROUTING -o vlan+ -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -m comment --comment "aws-imds-ipv6: observe branch-ENI pods (no drop)"
		-I POSTROUTING 1 -j IMDSGUARD-POSTROUTING
		COMMIT
		`)
	if diff := cmp.Diff(want6, got6); diff != "" {
		t.Errorf("IPv6 restore mismatch (-want +got):\n%s", diff)
	}

	if _, err := IPTablesRestore(cfg, "ipx"); err == nil {
		t.Error("unknown family accepted")
	}
}

func TestIPTablesRestoreRemovesStaleJumps(t *testing.T) {
	got, err := iptablesRestore(Config{Endpoints: aws()}, IPv4, map[Jump]int{Jumps[0]: 2, Jumps[2]: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-D FORWARD -j IMDSGUARD-FORWARD\n-D FORWARD -j IMDSGUARD-FORWARD\n-I FORWARD 1 -j IMDSGUARD-FORWARD\n",
		"-I OUTPUT 1 -j IMDSGUARD-OUTPUT\n",
		"-D POSTROUTING -j IMDSGUARD-POSTROUTING\n-I POSTROUTING 1 -j IMDSGUARD-POSTROUTING\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("restore text lacks %q:\n%s", want, got)
		}
	}
}
