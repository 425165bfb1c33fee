package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is a krew plugin manifest with exactly the fields krew's Plugin type has
// (kubernetes-sigs/krew pkg/index/types.go; documented at
// https://krew.sigs.k8s.io/docs/developer-guide/plugin-manifest/). Parsed strictly: a field
// krew does not know fails the test.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats,omitempty"`
		Homepage         string `json:"homepage"`
		Platforms        []struct {
			URI      string `json:"uri"`
			Sha256   string `json:"sha256"`
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Files []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
			License string `json:"license,omitempty"`
			Bin     string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// TestReleaseKrewManifest: the release script builds the archive, and the krew manifest it
// writes is well formed (krew's required fields, a semantic version with its v, a platform
// with os and arch labels) and names the archive by its URL and its real sha256.
func TestReleaseKrewManifest(t *testing.T) {
	out := t.TempDir()
	script := filepath.Join("..", "..", "hack", "release.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "OUT="+out, "PLATFORMS=linux/amd64", "VERSION=v1.2.3", "URL_BASE=https://example.com/dl/v1.2.3")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/release.sh: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "imdsguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m krewPlugin
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatalf("krew manifest does not match krew's Plugin type: %v\n%s", err, raw)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "imdsguard" {
		t.Errorf("manifest head: %s %s %s; want krew.googlecontainertools.github.com/v1alpha2 Plugin imdsguard", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+`).MatchString(m.Spec.Version) || m.Spec.Version != "v1.2.3" {
		t.Errorf("spec.version %q: want v1.2.3 (krew requires a semantic version with its v)", m.Spec.Version)
	}
	if m.Spec.ShortDescription == "" || m.Spec.Description == "" || m.Spec.Homepage == "" {
		t.Errorf("shortDescription, description and homepage must be set: %+v", m.Spec)
	}
	if len(m.Spec.Platforms) != 1 {
		t.Fatalf("%d platforms, want 1 (PLATFORMS=linux/amd64)", len(m.Spec.Platforms))
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Spec.Platforms {
		goos, goarch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		archive := "kubectl-imdsguard_" + goos + "_" + goarch + ".tar.gz"
		if goos != "linux" || goarch != "amd64" || len(p.Selector.MatchLabels) != 2 {
			t.Errorf("selector %v: want os linux, arch amd64", p.Selector.MatchLabels)
		}
		if p.URI != "https://example.com/dl/v1.2.3/"+archive {
			t.Errorf("uri %q: want the archive under URL_BASE", p.URI)
		}
		if p.Bin != PluginBinary || len(p.Files) == 0 || p.Files[0].From != PluginBinary || p.Files[0].To != "." {
			t.Errorf("bin %q, files %+v: want %s copied to . and run", p.Bin, p.Files, PluginBinary)
		}
		data, err := os.ReadFile(filepath.Join(out, archive))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(data)
		if p.Sha256 != hex.EncodeToString(got[:]) {
			t.Errorf("%s: manifest sha256 %s, archive's %x", archive, p.Sha256, got)
		}
		if !strings.Contains(string(sums), p.Sha256+"  "+archive) {
			t.Errorf("SHA256SUMS lacks %s %s:\n%s", p.Sha256, archive, sums)
		}
	}
}
