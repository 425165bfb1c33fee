// Package endpoint is the catalogue of cloud instance metadata endpoints: the single source of
// truth for which addresses, protocols and ports imdsguard audits and protects.
//
// Endpoints come in two kinds. Credential-bearing endpoints (instance metadata services,
// Azure WireServer) must be unreachable from pods. Keep-reachable endpoints (the EKS Pod
// Identity agent, Azure DNS) are the fix or a dependency: blocking them breaks clusters.
package endpoint

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Cloud names a cloud provider in the catalogue.
type Cloud string

// The clouds the catalogue knows. All selects every one of them.
const (
	AWS          Cloud = "aws"
	GCP          Cloud = "gcp"
	Azure        Cloud = "azure"
	Alibaba      Cloud = "alibaba"
	Oracle       Cloud = "oracle"
	DigitalOcean Cloud = "digitalocean"
	OpenStack    Cloud = "openstack"
	Hetzner      Cloud = "hetzner"
	// ECS is Amazon ECS's task metadata endpoint. It is absent on EKS nodes, so "all" does not
	// include it; select it by name where ECS tasks and Kubernetes pods share hosts.
	ECS Cloud = "ecs"
	All Cloud = "all"
	// Custom marks endpoints given on the command line.
	Custom Cloud = "custom"
)

// Clouds lists the clouds "all" selects, in catalogue order.
var Clouds = []Cloud{AWS, GCP, Azure, Alibaba, Oracle, DigitalOcean, OpenStack, Hetzner}

// selectable lists every cloud ParseCloud accepts besides "all".
var selectable = append(slices.Clone(Clouds), ECS)

// Role says what reaching an endpoint means.
type Role string

const (
	// Credentials marks an endpoint that hands out node credentials or bootstrap data; pods must not
	// reach it.
	Credentials Role = "credentials"
	// KeepReachable marks an endpoint that must stay reachable for pods (it is a fix or a dependency).
	KeepReachable Role = "keep-reachable"
)

// Endpoint is one destination: an address, a transport protocol and a port.
type Endpoint struct {
	// Name is stable and unique within a selection, e.g. "aws-imds".
	Name string
	// Clouds that serve this destination.
	Clouds []Cloud
	// Address is the destination address, IPv4 or IPv6.
	Address netip.Addr
	// Protocol is TCP, UDP or SCTP.
	Protocol corev1.Protocol
	// Port is the destination port.
	Port int32
	// Hostnames resolve to Address inside the cloud (matched by FQDN policy peers).
	Hostnames []string
	// Role says whether pods must not, or must, reach the endpoint.
	Role Role
	// Description says what the endpoint serves, for humans.
	Description string
}

// Family returns "IPv4" or "IPv6".
func (e Endpoint) Family() string {
	if e.Address.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// Prefix returns the host prefix (/32 or /128) for the address.
func (e Endpoint) Prefix() netip.Prefix {
	return netip.PrefixFrom(e.Address, e.Address.BitLen())
}

// String renders the endpoint as "name (address:port/proto)".
func (e Endpoint) String() string {
	return fmt.Sprintf("%s (%s)", e.Name, e.Destination())
}

// Destination renders "address:port/PROTO", bracketing IPv6 addresses.
func (e Endpoint) Destination() string {
	return netip.AddrPortFrom(e.Address, uint16(e.Port)).String() + "/" + string(e.Protocol)
}

// HasCloud reports whether the endpoint is served by cloud c.
func (e Endpoint) HasCloud(c Cloud) bool { return slices.Contains(e.Clouds, c) }

// entry is one catalogue row: one cloud's name for one destination.
type entry struct {
	cloud       Cloud
	name        string
	addr        string
	proto       corev1.Protocol
	port        int32
	hostnames   []string
	role        Role
	description string
}

// sharedName names a destination served by more than one selected cloud.
var sharedName = map[string]string{
	"169.254.169.254:80/TCP": "imds",
}

var catalogue = []entry{
	{AWS, "aws-imds", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "EC2 instance metadata service (IMDSv1/v2): node IAM role credentials, user data"},
	{AWS, "aws-imds-ipv6", "fd00:ec2::254", corev1.ProtocolTCP, 80, nil, Credentials, "EC2 instance metadata service over IPv6 (Nitro instances)"},
	{ECS, "aws-ecs-task-metadata", "169.254.170.2", corev1.ProtocolTCP, 80, nil, Credentials, "ECS task metadata and credentials endpoint (not on EKS nodes, but credential-bearing where present)"},
	{AWS, "aws-pod-identity", "169.254.170.23", corev1.ProtocolTCP, 80, nil, KeepReachable, "EKS Pod Identity agent: per-pod credentials, the fix for node-role sharing"},
	{AWS, "aws-pod-identity-ipv6", "fd00:ec2::23", corev1.ProtocolTCP, 80, nil, KeepReachable, "EKS Pod Identity agent over IPv6"},
	{GCP, "gcp-metadata", "169.254.169.254", corev1.ProtocolTCP, 80, []string{"metadata.google.internal", "metadata"}, Credentials, "GCE metadata server: service account tokens, kube-env with kubelet credentials"},
	{Azure, "azure-imds", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "Azure instance metadata service: managed identity tokens"},
	{Azure, "azure-wireserver", "168.63.129.16", corev1.ProtocolTCP, 80, nil, Credentials, "Azure WireServer: VM extension settings and goal state"},
	{Azure, "azure-wireserver-32526", "168.63.129.16", corev1.ProtocolTCP, 32526, nil, Credentials, "Azure WireServer host plugin port"},
	{Azure, "azure-dns", "168.63.129.16", corev1.ProtocolUDP, 53, nil, KeepReachable, "Azure-provided DNS on the WireServer address: never block it"},
	{Azure, "azure-dns-tcp", "168.63.129.16", corev1.ProtocolTCP, 53, nil, KeepReachable, "Azure-provided DNS over TCP"},
	{Alibaba, "alibaba-metadata", "100.100.100.200", corev1.ProtocolTCP, 80, nil, Credentials, "Alibaba Cloud ECS metadata service: RAM role credentials"},
	{Oracle, "oracle-imds", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "OCI instance metadata service: instance principal certificates"},
	{DigitalOcean, "digitalocean-metadata", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "DigitalOcean droplet metadata: user data"},
	{OpenStack, "openstack-metadata", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "OpenStack metadata service: user data, vendor data"},
	{Hetzner, "hetzner-metadata", "169.254.169.254", corev1.ProtocolTCP, 80, nil, Credentials, "Hetzner Cloud metadata service: user data"},
}

// CloudNames lists every name ParseCloud accepts, in catalogue order, "all" last: the one list
// of clouds for flags, their help and their completions.
func CloudNames() []string {
	names := make([]string, 0, len(selectable)+1)
	for _, c := range selectable {
		names = append(names, string(c))
	}
	return append(names, string(All))
}

// ParseCloud parses a cloud name, accepting "all".
func ParseCloud(s string) (Cloud, error) {
	c := Cloud(strings.ToLower(strings.TrimSpace(s)))
	if c == All || slices.Contains(selectable, c) {
		return c, nil
	}
	return "", fmt.Errorf("unknown cloud %q (want one of %s)", s, strings.Join(CloudNames(), ", "))
}

// Select returns the endpoints of the given clouds, one per destination (address, protocol,
// port), in catalogue order. A destination served by several selected clouds is returned
// once, with all of them in Clouds; its name is the cloud-neutral shared name when one exists.
func Select(clouds []Cloud) []Endpoint {
	all := slices.Contains(clouds, All)
	var out []Endpoint
	index := map[string]int{}
	for _, row := range catalogue {
		wanted := slices.Contains(clouds, row.cloud) || (all && slices.Contains(Clouds, row.cloud))
		if !wanted {
			continue
		}
		ep := Endpoint{
			Name:        row.name,
			Clouds:      []Cloud{row.cloud},
			Address:     netip.MustParseAddr(row.addr),
			Protocol:    row.proto,
			Port:        row.port,
			Hostnames:   row.hostnames,
			Role:        row.role,
			Description: row.description,
		}
		key := ep.Destination()
		if i, ok := index[key]; ok {
			merged := &out[i]
			merged.Clouds = append(merged.Clouds, row.cloud)
			merged.Hostnames = append(slices.Clone(merged.Hostnames), row.hostnames...)
			if name, ok := sharedName[key]; ok {
				merged.Name = name
				merged.Description = "Link-local instance metadata service (" + cloudList(merged.Clouds) + ")"
			}
			continue
		}
		index[key] = len(out)
		out = append(out, ep)
	}
	return out
}

func cloudList(cs []Cloud) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// ParseCustom parses a user-supplied endpoint "ADDR[:PORT][/PROTO]". IPv6 addresses with a port
// are bracketed ("[fd00::1]:8080/TCP"). The port defaults to 80 and the protocol to TCP.
// Custom endpoints are credential-bearing.
func ParseCustom(s string) (Endpoint, error) {
	fail := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("endpoint %q: %s (want ADDR[:PORT][/PROTO], e.g. 10.0.0.1:8080/TCP or [fd00::1]:80)", s, fmt.Sprintf(format, args...))
	}
	rest := strings.TrimSpace(s)
	proto := corev1.ProtocolTCP
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		p, err := ParseProtocol(rest[i+1:])
		if err != nil {
			return fail("%v", err)
		}
		proto, rest = p, rest[:i]
	}
	port := int32(80)
	var addr netip.Addr
	switch {
	case strings.HasPrefix(rest, "["):
		ap, err := netip.ParseAddrPort(rest)
		if err != nil {
			a, err2 := netip.ParseAddr(strings.Trim(rest, "[]"))
			if err2 != nil || !strings.HasSuffix(rest, "]") {
				return fail("bad address: %v", err)
			}
			addr = a
			break
		}
		if ap.Port() == 0 {
			return fail("port 0 is not a destination port")
		}
		addr, port = ap.Addr(), int32(ap.Port())
	case strings.Count(rest, ":") == 1:
		host, p, _ := strings.Cut(rest, ":")
		a, err := netip.ParseAddr(host)
		if err != nil {
			return fail("bad address %q", host)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fail("bad port %q (want 1-65535)", p)
		}
		addr, port = a, int32(n)
	default:
		a, err := netip.ParseAddr(rest)
		if err != nil {
			return fail("bad address %q", rest)
		}
		addr = a
	}
	if addr.Zone() != "" {
		return fail("zoned addresses are not supported")
	}
	addr = addr.Unmap()
	return Endpoint{
		Name:        fmt.Sprintf("custom-%s-%d-%s", strings.ReplaceAll(addr.String(), ":", "."), port, strings.ToLower(string(proto))),
		Clouds:      []Cloud{Custom},
		Address:     addr,
		Protocol:    proto,
		Port:        port,
		Role:        Credentials,
		Description: "custom endpoint given with --endpoint",
	}, nil
}

// ParseProtocol parses TCP, UDP or SCTP, case-insensitively.
func ParseProtocol(s string) (corev1.Protocol, error) {
	switch p := corev1.Protocol(strings.ToUpper(strings.TrimSpace(s))); p {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return p, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", s)
}

// Merge appends custom endpoints to a selection, dropping those whose destination is already
// present, so every destination is evaluated once.
func Merge(selected, custom []Endpoint) []Endpoint {
	out := slices.Clone(selected)
	for _, c := range custom {
		if !slices.ContainsFunc(out, func(e Endpoint) bool { return e.Destination() == c.Destination() }) {
			out = append(out, c)
		}
	}
	return out
}

// providerSchemes maps the scheme of a node's spec.providerID to its cloud, as each cloud's
// cloud-controller-manager writes it.
var providerSchemes = map[string]Cloud{
	"aws":          AWS,
	"gce":          GCP,
	"azure":        Azure,
	"alicloud":     Alibaba,
	"oci":          Oracle,
	"digitalocean": DigitalOcean,
	"openstack":    OpenStack,
	"hcloud":       Hetzner,
}

// alibabaProviderID matches Alibaba ACK's scheme-less provider IDs ("cn-hangzhou.i-bp1abc").
var alibabaProviderID = regexp.MustCompile(`^[a-z]{2}-[a-z0-9-]+\.i-[a-z0-9]+$`)

// CloudOfProviderID returns the cloud a node runs on from its spec.providerID, and false when
// the ID names no cloud in the catalogue (kind, bare metal, an unknown provider).
func CloudOfProviderID(id string) (Cloud, bool) {
	if scheme, _, ok := strings.Cut(id, "://"); ok {
		c, known := providerSchemes[strings.ToLower(scheme)]
		return c, known
	}
	switch {
	case strings.HasPrefix(id, "ocid1.instance."): // OKE writes the instance OCID
		return Oracle, true
	case alibabaProviderID.MatchString(id):
		return Alibaba, true
	}
	return "", false
}
