//go:build tools

// Package tools pins the versions of the development tools the Makefile runs.
package tools

import (
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
)
