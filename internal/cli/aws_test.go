package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/ec2api/ec2apitest"
)

// No AWS is reachable from the tests: ec2apitest serves the EC2 Query API's documented wire
// format for DescribeInstances locally
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html), and
// --aws-endpoint points the real client at it. Credentials come from the environment, through
// the SDK's default chain as on a user's machine.

const awsNodes = exposedPod + `---
apiVersion: v1
kind: Node
metadata: {name: ip-10-0-1-5.eu-west-1.compute.internal}
spec: {providerID: "aws:///eu-west-1a/i-0123456789abcdef0"}
---
apiVersion: v1
kind: Node
metadata: {name: ip-10-0-2-7.eu-west-1.compute.internal}
spec: {providerID: "aws:///eu-west-1b/i-0fedcba9876543210"}
---
apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: shop}
spec: {nodeName: ip-10-0-1-5.eu-west-1.compute.internal, containers: [{name: web, image: nginx}]}
`

// awsEnvironment gives the default credential chain static credentials from the environment
// and hides everything else it would read (shared files, the instance metadata service).
func awsEnvironment(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for _, v := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
}

func TestAuditAWSReadsTheEC2API(t *testing.T) {
	awsEnvironment(t)
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", "i-0123456789abcdef0", ec2apitest.Applied("required", 1, "enabled", "disabled"))
	// i-0fedcba9876543210 is terminated: the API does not know it.
	manifests := writeFile(t, "cluster.yaml", awsNodes)
	_, out, stderr := run(t, "", "audit", "--aws-endpoint", srv.URL, "-o", "json", manifests)
	var report struct {
		Complete      bool `json:"complete"`
		LayerVerdicts []struct {
			Layer, Decision, Source, Reason string
		} `json:"layerVerdicts"`
		Exposure []struct {
			Pod           string
			Endpoint      struct{ Name string }
			Allowed       bool
			DeniedBy      string
			LayerVerdicts struct{ Instance int }
		} `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("JSON report: %v\n%s\nstderr:\n%s", err, out, stderr)
	}
	if !report.Complete {
		t.Errorf("report incomplete though the EC2 API answered; stderr:\n%s", stderr)
	}
	// The instance's options decide the pinned pod's instance layer: tokens required, hop
	// limit 1, two hops away.
	found := false
	for _, e := range report.Exposure {
		if e.Pod != "pinned" || e.Endpoint.Name != "aws-imds" {
			continue
		}
		found = true
		v := report.LayerVerdicts[e.LayerVerdicts.Instance]
		if e.Allowed || e.DeniedBy != "instance" || v.Source != "configured" || !strings.Contains(v.Reason, "EC2 DescribeInstances i-0123456789abcdef0") {
			t.Errorf("pinned → aws-imds: allowed %t, denied by %q, instance %+v: want denied by the instance layer, configured by the EC2 API", e.Allowed, e.DeniedBy, v)
		}
	}
	if !found {
		t.Error("no exposure of the pinned pod to aws-imds")
	}
	reqs := srv.Requests()
	if len(reqs) == 0 || reqs[0].Region != "eu-west-1" || reqs[0].AccessKeyID != "AKIDCLITEST" || len(reqs[0].InstanceIDs) != 2 {
		t.Fatalf("calls %+v: want DescribeInstances for both nodes in eu-west-1, signed with the environment's key", reqs)
	}
	for _, want := range []string{"instance metadata options read", "instances=1", "i-0fedcba9876543210 (eu-west-1): InvalidInstanceID.NotFound"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr: want %q in\n%s", want, stderr)
		}
	}
}

func TestAuditAWSDeniedIsAGap(t *testing.T) {
	awsEnvironment(t)
	srv := ec2apitest.NewServer(t)
	srv.ErrorCode = "UnauthorizedOperation"
	manifests := writeFile(t, "cluster.yaml", awsNodes)
	code, out, stderr := run(t, "", "audit", "--aws", "--aws-endpoint", srv.URL, "-o", "json", manifests)
	var report struct {
		Complete bool `json:"complete"`
		Gaps     []struct {
			Resource, Reason string
		} `json:"gaps"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("JSON report: %v\n%s\nstderr:\n%s", err, out, stderr)
	}
	if code != ExitFindings || report.Complete || len(report.Gaps) != 1 || report.Gaps[0].Resource != "ec2:DescribeInstances" ||
		!strings.Contains(report.Gaps[0].Reason, "grant ec2:DescribeInstances") {
		t.Errorf("exit %d, complete %v, gaps %+v: want exit %d, an incomplete report and one gap on ec2:DescribeInstances naming the fix", code, report.Complete, report.Gaps, ExitFindings)
	}
}

func TestAuditAWSEndpointMustBeAURL(t *testing.T) {
	manifests := writeFile(t, "cluster.yaml", awsNodes)
	code, _, stderr := run(t, "", "audit", "--aws-endpoint", "ec2.eu-west-1.amazonaws.com", manifests)
	if code != ExitUsage || !strings.Contains(errorLine(t, stderr), "--aws-endpoint: endpoint \"ec2.eu-west-1.amazonaws.com\": want an absolute URL") {
		t.Errorf("exit %d, stderr %s: want a usage error naming --aws-endpoint", code, stderr)
	}
}

// TestAuditAWSComparesLaunchTemplateVersions: with --aws, the launch templates the nodes were
// launched from are described, and one whose $Default and $Latest state different options is
// finding IMDS021, naming the nodes on each version.
func TestAuditAWSComparesLaunchTemplateVersions(t *testing.T) {
	awsEnvironment(t)
	srv := ec2apitest.NewServer(t)
	srv.Add("eu-west-1", "i-0123456789abcdef0", ec2apitest.Applied("optional", 2, "enabled", "disabled"))
	srv.Add("eu-west-1", "i-0fedcba9876543210", ec2apitest.Applied("required", 1, "enabled", "disabled"))
	srv.AddTemplate("eu-west-1", "lt-0aaa1111bbbb2222c", "workers", 1,
		ec2apitest.TemplateOptions{HTTPTokens: "optional", HTTPPutResponseHopLimit: 2},
		ec2apitest.TemplateOptions{HTTPTokens: "required", HTTPPutResponseHopLimit: 1, HTTPEndpoint: "enabled"})
	manifests := writeFile(t, "cluster.yaml", strings.NewReplacer(
		"metadata: {name: ip-10-0-1-5.eu-west-1.compute.internal}",
		"metadata: {name: ip-10-0-1-5.eu-west-1.compute.internal, labels: {eks.amazonaws.com/sourceLaunchTemplateId: lt-0aaa1111bbbb2222c, eks.amazonaws.com/sourceLaunchTemplateVersion: \"1\"}}",
		"metadata: {name: ip-10-0-2-7.eu-west-1.compute.internal}",
		"metadata: {name: ip-10-0-2-7.eu-west-1.compute.internal, labels: {eks.amazonaws.com/sourceLaunchTemplateId: lt-0aaa1111bbbb2222c, eks.amazonaws.com/sourceLaunchTemplateVersion: \"2\"}}",
	).Replace(awsNodes))
	_, out, stderr := run(t, "", "audit", "--aws-endpoint", srv.URL, "-o", "json", manifests)
	report := decodeAudit(t, out)
	if !report.Complete {
		t.Errorf("report incomplete; stderr:\n%s", stderr)
	}
	var msgs []string
	for _, f := range report.Findings {
		if f.ID == "IMDS021" {
			msgs = append(msgs, f.Message)
		}
	}
	want := "launch template lt-0aaa1111bbbb2222c (workers) in eu-west-1: $Default is version 1 (HttpTokens optional, hop limit 2, HttpEndpoint left out), $Latest is version 2 (HttpTokens required, hop limit 1, HttpEndpoint enabled); 1 node (ip-10-0-1-5.eu-west-1.compute.internal) on version 1, 1 node (ip-10-0-2-7.eu-west-1.compute.internal) on version 2"
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], want) {
		t.Errorf("IMDS021 = %q, want one starting %q\nstderr:\n%s", msgs, want, stderr)
	}
	asked := false
	for _, r := range srv.Requests() {
		asked = asked || (r.Action == "DescribeLaunchTemplateVersions" && r.LaunchTemplateID == "lt-0aaa1111bbbb2222c" && r.Region == "eu-west-1")
	}
	if !asked {
		t.Errorf("no DescribeLaunchTemplateVersions for the nodes' template: %+v", srv.Requests())
	}
}
