# imdsguard — one entry point for building, testing and measuring.
# Longer recipes live in hack/*.sh.

GO      ?= go
BIN     ?= bin/imdsguard
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/imdsguard/imdsguard/internal/cli.version=$(VERSION)

.PHONY: all build test unit bench lint fuzz demo release clean

all: build

build: ## build bin/imdsguard
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/imdsguard

demo: build ## audit the bundled example cluster joined to its infrastructure code
	./$(BIN) audit examples/cluster examples/infra --fail-on none

test: ## everything CI runs: set-up, lint, unit and integration tests, short fuzzing
	hack/test.sh

unit: ## go test only (no set-up, no lint)
	$(GO) test ./...

bench: build ## benchmarks; figures go to docs/benchmarks.md
	hack/bench.sh
	BENCH_NODES=1000 hack/bench.sh
	BENCH_IAC=1 hack/bench.sh
	hack/bench-engines.sh
	hack/bench-live.sh
	hack/bench-agent.sh
	hack/bench-filter.sh
	hack/bench-controller.sh
	hack/bench-html.sh

lint: ## gofmt, go vet, golangci-lint
	hack/lint.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	hack/fuzz.sh

release: ## archives for linux/darwin amd64/arm64, SHA256SUMS and the krew manifest in _output/release (URL_BASE=...)
	VERSION=$(VERSION) hack/release.sh

clean:
	rm -rf bin _output
