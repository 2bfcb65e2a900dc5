package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// What a test needs to run processes: the environment it gives the
// sinkworker binary, and the lock of scripts/services for tests that stop or
// restart the shared services.

// passThrough are the only variables of the test's own environment that a
// worker process inherits: what finding programs, a home, temporary files
// and coverage need. Everything else (an exported SINK_MODE,
// KAFKA_GROUP_PROTOCOL, GOMEMLIMIT...) would silently change what is tested.
var passThrough = []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR", "GORACE", "GOTRACEBACK", "LANG", "LC_ALL", "TZ"}

// ProcessEnv is the environment for a process a test starts: the
// passThrough variables of the test's environment, then settings in order
// (a later map wins). It never holds anything else of the test's
// environment, so a setting the process needs (KAFKA_BROKERS,
// DATABASE_URL...) must be in settings.
func ProcessEnv(settings ...map[string]string) []string {
	return processEnv(os.LookupEnv, settings...)
}

func processEnv(lookup func(string) (string, bool), settings ...map[string]string) []string {
	merged := map[string]string{}
	for _, k := range passThrough {
		if v, ok := lookup(k); ok {
			merged[k] = v
		}
	}
	for _, m := range settings {
		for k, v := range m {
			merged[k] = v
		}
	}
	env := make([]string, 0, len(merged))
	for k, v := range merged {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// lockedVar tells scripts/services that its caller holds the services lock
// (its take_lock would otherwise wait for the test that runs it).
const lockedVar = "SINKWORKER_SERVICES_LOCKED"

// repoRoot is the repository's top directory (this file is
// internal/testenv/process.go in it).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// lockPath is the file scripts/services locks (take_lock): .lock in
// SINKWORKER_STATE_DIR, else in the repository's .services.
func lockPath() string {
	dir := os.Getenv("SINKWORKER_STATE_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(), ".services")
	}
	return filepath.Join(dir, ".lock")
}

// ServicesLock is the exclusive lock of scripts/services, held by a test
// that stops or restarts the shared broker or database, so that nobody
// else's scripts/services command (up, pg-restart, another destructive
// test) runs meanwhile, and a test that must not run during an outage can
// wait for it (WaitServicesIdle).
type ServicesLock struct{ script string }

// LockServices takes the lock that scripts/services takes (flock on
// <state dir>/.lock), waiting up to 10 minutes, and holds it until the test
// ends. Run the script under it with Command.
func LockServices(tb testing.TB) *ServicesLock {
	tb.Helper()
	path := lockPath()
	require.NoError(tb, os.MkdirAll(filepath.Dir(path), 0o755), "services lock directory")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(tb, err, "open the services lock")
	if err := flock(f, syscall.LOCK_EX, 10*time.Minute); err != nil {
		f.Close()
		tb.Fatalf("take the services lock %s: %v (another scripts/services command or destructive test holds it)", path, err)
	}
	tb.Cleanup(func() { f.Close() }) // closing the descriptor releases the lock
	return &ServicesLock{script: filepath.Join(repoRoot(), "scripts", "services")}
}

// Command is scripts/services with args, run under the lock the test holds.
func (l *ServicesLock) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(l.script, args...)
	cmd.Env = append(os.Environ(), lockedVar+"=1")
	return cmd
}

// Run runs scripts/services with args under the lock and fails the test
// when it fails.
func (l *ServicesLock) Run(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := l.Command(args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("scripts/services %v: %v\n%s", args, err, out)
	}
}

// WaitServicesIdle waits (up to 10 minutes) until nothing holds the services
// lock: no destructive test and no scripts/services command is stopping or
// starting a service. It does not keep the lock.
func WaitServicesIdle(tb testing.TB) {
	tb.Helper()
	f, err := os.OpenFile(lockPath(), os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(tb, err, "open the services lock")
	defer f.Close()
	require.NoError(tb, flock(f, syscall.LOCK_SH, 10*time.Minute), "wait for the services lock")
}

// flock takes how (LOCK_EX or LOCK_SH) on f, polling until within passes.
func flock(f *os.File, how int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still held after %v", within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
