// Package layout holds no code: its test, TestImportRules, checks the
// module's import rules (docs/ARCHITECTURE.md, "Packages") with `go list`,
// so the layout of stages cannot rot. Run it with `go test ./internal/layout/`.
package layout
