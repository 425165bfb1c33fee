package cli

import (
	"bytes"
	"encoding/json"
	"github.com/imdsguard/imdsguard/internal/audit"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// eksManifests is an obviously-EKS input without nodes: the AWS VPC CNI's DaemonSet and an
// unprotected pod.
const eksManifests = exposedPod + `---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: aws-node, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: aws-node}}
  template:
    metadata: {labels: {k8s-app: aws-node}}
    spec:
      hostNetwork: true
      containers: [{name: aws-node, image: "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.20.4"}]
`

// reportSchema compiles docs/audit-report.schema.json.
func reportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	const path = "../../docs/audit-report.schema.json"
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuditReportsTheClouds: without nodes naming a cloud, the clouds come from the rest of the
// input; the table's header and the JSON report say which and why, and the JSON report
// validates against its schema.
func TestAuditReportsTheClouds(t *testing.T) {
	schema := reportSchema(t)
	eks := writeFile(t, "eks.yaml", eksManifests)
	plain := writeFile(t, "pod.yaml", exposedPod)
	for _, tc := range []struct {
		sentence  string
		args      []string
		header    string
		endpoints []endpoint.Cloud
		clouds    string // the JSON report's clouds
	}{
		{"an EKS input without nodes is audited for AWS, and the header names the evidence",
			[]string{eks}, "clouds: aws (from DaemonSet kube-system/aws-node)\n", []endpoint.Cloud{endpoint.AWS},
			`[{"cloud":"aws","basis":"input","evidence":"DaemonSet kube-system/aws-node"}]`},
		{"an input that names no cloud is audited for every cloud",
			[]string{plain}, "clouds: all (nothing in the input names a cloud)\n", []endpoint.Cloud{endpoint.All},
			`[{"cloud":"all","basis":"none"}]`},
		{"--cloud overrides the evidence",
			[]string{"--cloud", "gcp", eks}, "clouds: gcp (--cloud)\n", []endpoint.Cloud{endpoint.GCP},
			`[{"cloud":"gcp","basis":"flag"}]`},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			_, table, stderr := run(t, "", append([]string{"audit", "--fail-on", "none"}, tc.args...)...)
			if !strings.Contains(table, "\n"+tc.header) {
				t.Errorf("the table's header lacks %q:\n%s\nstderr:\n%s", tc.header, table, stderr)
			}
			code, out, stderr := run(t, "", append([]string{"audit", "--fail-on", "none", "-o", "json"}, tc.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("the report does not validate against docs/audit-report.schema.json: %v", err)
			}
			var report struct {
				SchemaVersion string          `json:"schemaVersion"`
				Clouds        json.RawMessage `json:"clouds"`
				Endpoints     []struct {
					Name string `json:"name"`
				} `json:"endpoints"`
			}
			if err := json.Unmarshal([]byte(out), &report); err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, report.Clouds); err != nil {
				t.Fatal(err)
			}
			if report.SchemaVersion != audit.SchemaVersion || compact.String() != tc.clouds {
				t.Errorf("schemaVersion %s, clouds %s; want %s and %s", report.SchemaVersion, compact.String(), audit.SchemaVersion, tc.clouds)
			}
			var got, want []string
			for _, e := range report.Endpoints {
				got = append(got, e.Name)
			}
			for _, e := range endpoint.Select(tc.endpoints) {
				want = append(want, e.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("endpoints %v, want %v", got, want)
			}
		})
	}
}

// TestTheSchemaListsTheCatalogueClouds: the JSON schema's cloud names are the endpoint
// catalogue's.
func TestTheSchemaListsTheCatalogueClouds(t *testing.T) {
	data, err := os.ReadFile("../../docs/audit-report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Clouds struct {
				Items struct {
					Properties struct {
						Cloud struct {
							Enum []string `json:"enum"`
						} `json:"cloud"`
					} `json:"properties"`
				} `json:"items"`
			} `json:"clouds"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	if got := schema.Properties.Clouds.Items.Properties.Cloud.Enum; !slices.Equal(got, endpoint.CloudNames()) {
		t.Errorf("the schema's clouds are %v, the catalogue's %v", got, endpoint.CloudNames())
	}
}
