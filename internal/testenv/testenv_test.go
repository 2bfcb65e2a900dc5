package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests need no services.

func TestServices(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://u@h/db"
	tests := []struct {
		name        string
		env         map[string]string
		wantBrokers []string
		wantOK      bool
	}{
		{name: "both set", env: map[string]string{"KAFKA_BROKERS": "a:1,b:2", "DATABASE_URL": dsn},
			wantBrokers: []string{"a:1", "b:2"}, wantOK: true},
		{name: "no brokers", env: map[string]string{"DATABASE_URL": dsn}},
		{name: "no database", env: map[string]string{"KAFKA_BROKERS": "a:1"}},
		{name: "nothing set", env: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			brokers, dbURL, ok := services(func(k string) string { return tt.env[k] })
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantBrokers, brokers)
			if tt.wantOK {
				assert.Equal(t, dsn, dbURL)
			} else {
				assert.Empty(t, dbURL)
			}
		})
	}
}

func TestLogField(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.log")
	require.NoError(t, os.WriteFile(path, []byte(`not json
{"level":"INFO","msg":"starting"}
{"level":"INFO","msg":"http listening","addr":"127.0.0.1:4242","port":4242}
{"level":"INFO","msg":"http listening","addr":"127.0.0.1:9999"}
`), 0o600))
	tests := []struct {
		name, path, msg, field, want string
	}{
		{name: "first matching line", path: path, msg: "http listening", field: "addr", want: "127.0.0.1:4242"},
		{name: "other field", path: path, msg: "starting", field: "level", want: "INFO"},
		{name: "not a string", path: path, msg: "http listening", field: "port", want: ""},
		{name: "no such field", path: path, msg: "starting", field: "addr", want: ""},
		{name: "no such msg", path: path, msg: "consuming", field: "level", want: ""},
		{name: "no such file", path: path + ".missing", msg: "starting", field: "level", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, LogField(tt.path, tt.msg, tt.field))
		})
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.log")
	require.NoError(t, os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o600))
	tests := []struct {
		name string
		n    int
		want string
	}{
		{name: "last two", n: 2, want: "two\nthree"},
		{name: "more than there are", n: 10, want: "one\ntwo\nthree"},
		{name: "none", n: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, Tail(path, tt.n))
		})
	}
	assert.Contains(t, Tail(path+".missing", 3), "no such file", "an unreadable file reads as its error")
}

func TestAssignedPartitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr string
	}{
		{name: "gauge present", body: "# TYPE sinkworker_assigned_partitions gauge\nsinkworker_assigned_partitions_total 9\nsinkworker_assigned_partitions 3\n", want: 3},
		{name: "gauge missing", body: "go_goroutines 12\n", wantErr: "no sinkworker_assigned_partitions in /metrics of "},
		{name: "gauge not a number", body: "sinkworker_assigned_partitions x\n", wantErr: "invalid syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				fmt.Fprint(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			n, err := AssignedPartitions(t.Context(), strings.TrimPrefix(srv.URL, "http://"))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n)
		})
	}
}

func TestSuffix(t *testing.T) {
	t.Parallel()
	a, b := Suffix(), Suffix()
	assert.Regexp(t, regexp.MustCompile(`^[a-z2-7]{8}$`), a, "lower-case base32: valid in topic, table and role names")
	assert.NotEqual(t, a, b)
}

func TestProcessEnv(t *testing.T) {
	t.Parallel()
	parent := map[string]string{"PATH": "/bin", "HOME": "/root", "SINK_MODE": "insert",
		"KAFKA_GROUP_PROTOCOL": "consumer", "DATABASE_URL": "postgres://parent"}
	lookup := func(k string) (string, bool) { v, ok := parent[k]; return v, ok }
	got := processEnv(lookup, map[string]string{"KAFKA_TOPICS": "a", "HOME": "/tmp/h"}, map[string]string{"KAFKA_TOPICS": "b"})
	assert.Equal(t, []string{"HOME=/tmp/h", "KAFKA_TOPICS=b", "PATH=/bin"}, got,
		"only the allow-list of the test's environment, then the settings, later ones winning")
}

// TestLockServicesExcludesTheScript: while a test holds the services lock,
// scripts/services waits for it, unless run through the lock's Command.
func TestLockServicesExcludesTheScript(t *testing.T) {
	t.Setenv("SINKWORKER_STATE_DIR", t.TempDir())
	l := LockServices(t)
	script := filepath.Join(repoRoot(), "scripts", "services")
	// kafka-kill takes the lock first; on an empty state dir it then finds no broker.
	out, err := l.Command("kafka-kill").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "kafka already stopped")

	held := exec.Command("timeout", "3", script, "kafka-kill")
	out, err = held.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "scripts/services must wait for the lock the test holds; output:\n%s", out)
	assert.Equal(t, 124, exit.ExitCode(), "killed by timeout while waiting; output:\n%s", out)
	assert.Contains(t, string(out), "waiting for another scripts/services command")
}
