package proc

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkerEnv(t *testing.T) {
	base := []string{"HOME=/h", "KAFKA_BROKERS=elsewhere:9092", "POOL_MAX_CONNS=3", "DATABASE_URL=x", "SCHEMA_REGISTRY_URL=http://r", "PATH=/bin"}
	env := WorkerEnv(base, []string{"a:1", "b:2"}, "postgres://db", "t", "g", "tbl", "LOG_LEVEL=debug")
	assert.Equal(t, []string{"HOME=/h", "PATH=/bin",
		"KAFKA_BROKERS=a:1,b:2", "DATABASE_URL=postgres://db", "KAFKA_TOPICS=t", "KAFKA_GROUP=g",
		"SINK_TABLE_MAP=t=tbl", "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn", "LOG_LEVEL=debug"}, env)
}

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     string
		wantCode   int
		wantKilled bool
	}{
		{"exits on SIGTERM", `trap 'echo bye; exit 3' TERM; echo up; while :; do sleep 0.05; done`, 3, false},
		{"ignores SIGTERM", `trap '' TERM; echo up; while :; do sleep 0.05; done`, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start("/bin/sh", []string{"-c", tc.script}, nil, filepath.Join(t.TempDir(), "log"))
			require.NoError(t, err)
			t.Cleanup(p.Kill)
			require.Eventually(t, func() bool { return len(p.Lines()) > 0 }, 5*time.Second, 10*time.Millisecond)
			exit := p.Stop(300 * time.Millisecond)
			assert.Equal(t, tc.wantCode, exit.Code)
			assert.Equal(t, tc.wantKilled, exit.Killed)
			assert.Positive(t, exit.PeakRSS)
			assert.True(t, p.Done())
			assert.Contains(t, p.Tail(1), "(last lines):\n  ")
		})
	}
}
