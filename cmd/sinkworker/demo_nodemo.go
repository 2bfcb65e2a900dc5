//go:build nodemo

package main

import (
	"fmt"
	"io"
)

// runDemo is `sinkworker demo` in a binary built with -tags nodemo (the
// production image): the demo's embedded broker (kfake) and PostgreSQL
// (embedded-postgres, lib/pq) are not linked in. `go run ./cmd/sinkworker
// demo` builds the demo.
func runDemo(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sinkworker demo: demo not built into this binary (built with -tags nodemo); run it with: go run ./cmd/sinkworker demo")
	return 2
}
