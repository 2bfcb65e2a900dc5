// Package testenv is what the integration and end-to-end tests of several
// packages share: the real broker and database that `scripts/services up`
// starts (KAFKA_BROKERS, DATABASE_URL), the sinkworker binary built once per
// test run, and readers of a worker's JSON log and /metrics.
//
// It is for tests only, by convention: only _test.go files import it. Tests
// that need the services fail without them, never skip. A package that runs
// the binary calls Main from its TestMain; a test that needs only the
// database calls DatabaseURL.
package testenv

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Hint says how to start the services and export their settings; failure
// messages about a missing setting end with it.
const Hint = "run `scripts/services up && eval \"$(scripts/services env)\"`"

// binaryPackage is the package Main builds.
const binaryPackage = "github.com/sinkworker/sinkworker/cmd/sinkworker"

// Env is what Main hands to a package's tests.
type Env struct {
	Brokers     []string // KAFKA_BROKERS, split at commas
	DatabaseURL string   // DATABASE_URL
	Binary      string   // the sinkworker binary, removed when Main returns
}

// Main is the body of TestMain for a package that runs the sinkworker binary
// against the real services. It requires KAFKA_BROKERS and DATABASE_URL
// (without either it fails, never skips), builds the binary into a temporary
// directory, passes both to setup, runs the tests and removes the directory.
// It returns the exit code for os.Exit. Its messages on stderr start with
// "name: "; the one about missing settings also points at docs.
func Main(m *testing.M, name, docs string, setup func(Env)) int {
	brokers, dbURL, ok := services(os.Getenv)
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: KAFKA_BROKERS and DATABASE_URL must be set: %s (see %s)\n", name, Hint, docs)
		return 1
	}
	dir, err := os.MkdirTemp("", "sinkworker-"+name+"-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary := filepath.Join(dir, "sinkworker")
	if out, err := exec.Command("go", "build", "-o", binary, binaryPackage).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: build: %v\n%s", name, err, out)
		return 1
	}
	setup(Env{Brokers: brokers, DatabaseURL: dbURL, Binary: binary})
	return m.Run()
}

// services reads KAFKA_BROKERS and DATABASE_URL through getenv; ok is false
// when either is empty.
func services(getenv func(string) string) (brokers []string, dbURL string, ok bool) {
	b, d := getenv("KAFKA_BROKERS"), getenv("DATABASE_URL")
	if b == "" || d == "" {
		return nil, "", false
	}
	return strings.Split(b, ","), d, true
}

// DatabaseURL is DATABASE_URL, the real PostgreSQL's connection string.
// Without it tb fails (it never skips) with a message naming the test and
// giving Hint.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		tb.Fatalf("DATABASE_URL is not set: %s needs a real PostgreSQL; %s first", tb.Name(), Hint)
	}
	return u
}

// Admin is an admin client for brokers, closed when the test ends.
func Admin(tb testing.TB, brokers []string) *kadm.Client {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(tb, err)
	tb.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// Suffix is 8 random lower-case letters and digits, for the names of a
// test's own topics, tables, groups and roles, so that tests and test runs
// never share them. It is safe for concurrent use.
func Suffix() string {
	return strings.ToLower(rand.Text()[:8])
}
