package endpoint

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func names(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Name
	}
	return out
}

func TestSelect(t *testing.T) {
	cases := []struct {
		name    string
		clouds  []Cloud
		want    []string
		wantNot []string
	}{
		{"aws has IMDS on both families and keeps the Pod Identity agent reachable", []Cloud{AWS},
			[]string{"aws-imds", "aws-imds-ipv6", "aws-pod-identity", "aws-pod-identity-ipv6"}, []string{"aws-ecs-task-metadata", "imds"}},
		{"azure has IMDS, WireServer on 80 and 32526, and DNS on the WireServer address", []Cloud{Azure},
			[]string{"azure-imds", "azure-wireserver", "azure-wireserver-32526", "azure-dns", "azure-dns-tcp"}, nil},
		{"all merges the shared 169.254.169.254:80 into one endpoint named imds", []Cloud{All},
			[]string{"imds", "aws-imds-ipv6", "alibaba-metadata", "azure-wireserver"}, []string{"aws-imds", "gcp-metadata", "aws-ecs-task-metadata"}},
		{"ECS task metadata is opt-in", []Cloud{All, ECS}, []string{"aws-ecs-task-metadata"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := names(Select(c.clouds))
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing %s in %v", w, got)
				}
			}
			for _, w := range c.wantNot {
				if slices.Contains(got, w) {
					t.Errorf("unexpected %s in %v", w, got)
				}
			}
		})
	}
}

func TestSelectAllListsEveryDestinationOnceWithItsClouds(t *testing.T) {
	eps := Select([]Cloud{All})
	seen := map[string]bool{}
	for _, e := range eps {
		if seen[e.Destination()] {
			t.Errorf("destination %s listed twice", e.Destination())
		}
		seen[e.Destination()] = true
	}
	imds := eps[slices.IndexFunc(eps, func(e Endpoint) bool { return e.Name == "imds" })]
	for _, c := range []Cloud{AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, Hetzner} {
		if !imds.HasCloud(c) {
			t.Errorf("imds does not list %s", c)
		}
	}
	if !slices.Contains(imds.Hostnames, "metadata.google.internal") {
		t.Errorf("imds lost GCP's hostname: %v", imds.Hostnames)
	}
	if imds.Role != Credentials {
		t.Errorf("imds role = %s", imds.Role)
	}
}

func TestKeepReachableEndpoints(t *testing.T) {
	for _, e := range Select([]Cloud{All}) {
		keep := e.Name == "aws-pod-identity" || e.Name == "aws-pod-identity-ipv6" || strings.HasPrefix(e.Name, "azure-dns")
		if keep != (e.Role == KeepReachable) {
			t.Errorf("%s: role %s", e.Name, e.Role)
		}
	}
}

func TestParseCustom(t *testing.T) {
	cases := []struct {
		in    string
		dest  string
		proto corev1.Protocol
		err   string
	}{
		{in: "10.0.0.5", dest: "10.0.0.5:80/TCP", proto: corev1.ProtocolTCP},
		{in: "10.0.0.5:8080", dest: "10.0.0.5:8080/TCP"},
		{in: "10.0.0.5:53/udp", dest: "10.0.0.5:53/UDP"},
		{in: "10.0.0.5/SCTP", dest: "10.0.0.5:80/SCTP"},
		{in: "fd00::5", dest: "[fd00::5]:80/TCP"},
		{in: "[fd00::5]:8080/TCP", dest: "[fd00::5]:8080/TCP"},
		{in: "[fd00::5]", dest: "[fd00::5]:80/TCP"},
		{in: "::ffff:169.254.169.254", dest: "169.254.169.254:80/TCP"},
		{in: "metadata.google.internal", err: "bad address"},
		{in: "10.0.0.5:0", err: "bad port"},
		{in: "10.0.0.5:70000", err: "bad port"},
		{in: "10.0.0.5:80/ICMP", err: "unknown protocol"},
		{in: "[fd00::5]:0", err: "port 0"},
		{in: "", err: "bad address"},
	}
	for _, c := range cases {
		ep, err := ParseCustom(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseCustom(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCustom(%q): %v", c.in, err)
			continue
		}
		if ep.Destination() != c.dest || ep.Role != Credentials {
			t.Errorf("ParseCustom(%q) = %s (%s), want %s credentials", c.in, ep.Destination(), ep.Role, c.dest)
		}
	}
}

func TestParseCloud(t *testing.T) {
	if c, err := ParseCloud(" AWS "); err != nil || c != AWS {
		t.Errorf("ParseCloud(AWS) = %q, %v", c, err)
	}
	if _, err := ParseCloud("ibm"); err == nil || !strings.Contains(err.Error(), "aws, gcp, azure") {
		t.Errorf("ParseCloud(ibm) error = %v, want the list of clouds", err)
	}
}

func TestMergeSkipsDuplicateDestinations(t *testing.T) {
	custom, _ := ParseCustom("169.254.169.254:80")
	other, _ := ParseCustom("10.1.1.1")
	got := Merge(Select([]Cloud{AWS}), []Endpoint{custom, other})
	if len(got) != len(Select([]Cloud{AWS}))+1 || got[len(got)-1].Destination() != "10.1.1.1:80/TCP" {
		t.Errorf("Merge = %v", names(got))
	}
}

func TestCloudOfProviderID(t *testing.T) {
	tests := []struct {
		id   string
		want Cloud
		ok   bool
	}{
		{"aws:///eu-west-1a/i-0123456789abcdef0", AWS, true},
		{"gce://my-project/europe-west1-b/gke-pool-1-abcd", GCP, true},
		{"azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0", Azure, true},
		{"alicloud://cn-hangzhou.i-bp1abc", Alibaba, true},
		{"cn-hangzhou.i-bp1abcdef", Alibaba, true},
		{"ocid1.instance.oc1.eu-frankfurt-1.abc", Oracle, true},
		{"oci://ocid1.instance.oc1.abc", Oracle, true},
		{"digitalocean://123456", DigitalOcean, true},
		{"openstack:///5f1b6c2e-0000-4000-8000-000000000000", OpenStack, true},
		{"hcloud://1234567", Hetzner, true},
		{"AWS:///eu-west-1a/i-0abc", AWS, true},
		{"kind://docker/kind/kind-control-plane", "", false},
		{"", "", false},
		{"i-0123456789abcdef0", "", false},
	}
	for _, tt := range tests {
		got, ok := CloudOfProviderID(tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CloudOfProviderID(%q) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}
