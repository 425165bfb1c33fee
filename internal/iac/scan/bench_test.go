package scan

import (
	"testing"

	"github.com/imdsguard/imdsguard/internal/synth"
)

// benchModules is the size of the benchmark's Terraform repository: 200 modules of
// synth.TerraformFilesPerModule files, 2,000 files.
const benchModules = 200

// BenchmarkRead reads the synthetic Terraform repository of hack/bench.sh's BENCH_IAC variant
// (synth.WriteTerraform, 200 modules, 2,000 files) as an audit does: Split, then Read.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	stats, err := synth.WriteTerraform(dir, benchModules)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(stats.Bytes)
	b.ReportAllocs()
	for b.Loop() {
		_, inputs, err := Split([]string{dir})
		if err != nil {
			b.Fatal(err)
		}
		code, err := Read(inputs)
		if err != nil {
			b.Fatal(err)
		}
		if code.Files != stats.Files || len(code.Problems) != 0 {
			b.Fatalf("read %d files with %d problems, want %d files and none", code.Files, len(code.Problems), stats.Files)
		}
	}
	b.ReportMetric(float64(stats.Files), "files")
}
