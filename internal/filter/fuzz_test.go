package filter

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
)

// fuzzDestinations are the original destinations the fuzz target picks from.
var fuzzDestinations = []netip.AddrPort{
	netip.MustParseAddrPort("169.254.169.254:80"),
	netip.MustParseAddrPort("[fd00:ec2::254]:80"),
	netip.MustParseAddrPort("169.254.169.254:8080"),
	netip.MustParseAddrPort("[::ffff:169.254.169.254]:80"),
}

// fuzzClouds are the node clouds the fuzz target picks from.
var fuzzClouds = []Cloud{"", AWS, GCP, Azure}

// FuzzReadAndDecide reads requests from arbitrary bytes as the proxy does and checks every
// decision against the resolver model (corpus_test.go): nothing a lenient metadata server
// could resolve to anything but a harmless resource is ever allowed. The seeds are the bypass
// corpus.
func FuzzReadAndDecide(f *testing.F) {
	for _, e := range loadCorpus(f) {
		f.Add(e.Raw, uint8(0), uint8(0))
	}
	policies := make([]*Policy, len(fuzzClouds))
	for i, c := range fuzzClouds {
		p, err := DefaultPolicy().WithSettings(Settings{Cloud: c, MaxTokenTTL: 600})
		if err != nil {
			f.Fatal(err)
		}
		policies[i] = p
	}
	f.Fuzz(func(t *testing.T, raw []byte, dstSel, cloudSel uint8) {
		dst := fuzzDestinations[int(dstSel)%len(fuzzDestinations)]
		i := int(cloudSel) % len(fuzzClouds)
		for _, sd := range decideStream(policies[i], dst, raw) {
			if err := checkModel(dst, fuzzClouds[i], sd); err != nil {
				t.Fatalf("%v\nrequest: %q", err, raw)
			}
			if fwd := sd.Decision.Forward; fwd != nil {
				for _, h := range fwd.Header {
					if h.Name == "X-aws-ec2-metadata-token-ttl-seconds" && len(h.Value) > 3 {
						t.Fatalf("TTL %s above the cap of 600", h.Value)
					}
				}
			}
		}
	})
}

// BenchmarkDecide reads and decides an allowed AWS region request, as the proxy does for each
// request on a connection (its bufio.Reader reused).
func BenchmarkDecide(b *testing.B) {
	p := DefaultPolicy()
	raw := "GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go-v2/1.36.3\r\n" +
		"X-aws-ec2-metadata-token: AQAEAFbcvHDzuUDk4TOjvgpKRZpXAvQdG0F_ke1WD5kAmlmc6sq8HA==\r\nAccept-Encoding: gzip\r\n\r\n"
	dst := netip.MustParseAddrPort("169.254.169.254:80")
	client := Client{Namespace: "default", Pod: "app", ServiceAccount: "default"}
	src := strings.NewReader(raw)
	r := bufio.NewReader(src)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		r.Reset(src)
		req, err := ReadRequest(r, DefaultLimits())
		if err != nil {
			b.Fatal(err)
		}
		if d := p.Decide(dst, client, req); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecideOnly is Decide alone, on a request already read.
func BenchmarkDecideOnly(b *testing.B) {
	p := DefaultPolicy()
	req := request("GET", "/latest/meta-data/placement/region", awsHost, "User-Agent: aws-sdk-go-v2/1.36.3",
		"X-aws-ec2-metadata-token: AQAEAFbcvHDzuUDk4TOjvgpKRZpXAvQdG0F_ke1WD5kAmlmc6sq8HA==")
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(dstV4, Client{}, req); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}
