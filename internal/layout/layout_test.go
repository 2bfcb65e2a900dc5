package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/sinkworker/sinkworker"

// pkg is what `go list -json` says of a package that matters here.
type pkg struct {
	ImportPath string
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test
}

// listPackages runs `go list -json ./...` at the module root.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	return pkgs
}

// ours is the module's packages among paths, relative to the module
// ("" for none: the module has no root package).
func ours(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == module || strings.HasPrefix(p, module+"/") {
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
		}
	}
	return out
}

// TestImportRules: the arrows between packages run one way, from cmd
// through sink down to the stages, so a reader can follow a record by the
// folder names (docs/ARCHITECTURE.md, "Packages"). Each rule names what a
// package may depend on, transitively, among the module's packages (and a
// few outside it); test files are not counted.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	require.Contains(t, pkgs, "sink", "go list found the module's packages")

	// Stages and leaves: exactly which of the module's packages each may
	// depend on.
	allowed := map[string][]string{
		"batch":              {},
		"pool":               {},
		"sink/decode/format": {}, // the wire formats: bytes and schema text in, JSON out
		"sink/decode":        {"sink/decode/format"},
		"sink/observe":       {},
		"sink/dlq":           {"sink/decode", "sink/decode/format"},
		"sink/postgres":      {"sink/decode", "sink/decode/format", "batch"}, // never pool, sink, dlq or observe
		// The commands: built from the stages, never from sink.
		"sink/audit":     {"sink/postgres", "sink/decode", "sink/decode/format", "batch"},
		"sink/redrive":   {"sink/postgres", "sink/decode", "sink/decode/format", "batch", "sink/dlq", "pool"},
		"sink/reconcile": {}, // compares two tables over pgx alone
	}
	for name, may := range allowed {
		p, ok := pkgs[name]
		if !assert.True(t, ok, "package %s exists", name) {
			continue
		}
		for _, dep := range ours(p.Deps) {
			assert.True(t, slices.Contains(may, dep), "%s depends on %s; it may depend only on %v of this module", name, dep, may)
		}
	}

	// postgres speaks SQL only: no Kafka client (kgo's record types are
	// allowed, its admin client and the consumer are not).
	for _, dep := range pkgs["sink/postgres"].Deps {
		assert.NotEqual(t, "github.com/twmb/franz-go/pkg/kadm", dep, "sink/postgres depends on kadm")
	}

	for name, p := range pkgs {
		deps := ours(p.Deps)
		// Nothing under sink/ depends on sink: the consumer sits on top of
		// its stages, and the commands are built from the stages.
		if strings.HasPrefix(name, "sink/") {
			assert.NotContains(t, deps, "sink", "%s depends on sink", name)
		}
		// The commands are leaves of the graph: only cmd/ uses them, and
		// sink uses audit.ResetCommand to name the command in a halt.
		for _, cmd := range []string{"sink/audit", "sink/redrive"} {
			if slices.Contains(ours(p.Imports), cmd) && !strings.HasPrefix(name, "cmd/") && !(name == "sink" && cmd == "sink/audit") {
				t.Errorf("%s imports %s: only cmd/ may (and sink, for audit.ResetCommand)", name, cmd)
			}
		}
		// No production package depends on bench, chaos, demo or
		// internal/testenv.
		if !strings.HasPrefix(name, "bench") && !strings.HasPrefix(name, "chaos") && !strings.HasPrefix(name, "internal/") {
			for _, dep := range deps {
				for _, test := range []string{"bench", "chaos", "internal/testenv"} {
					if dep == test || strings.HasPrefix(dep, test+"/") {
						t.Errorf("%s depends on %s, which is for tests and benchmarks", name, dep)
					}
				}
			}
		}
	}
}
