package observe

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHealth: not ready before the first assignment and while a partition
// is halted, backing off or start offsets are failing; ready otherwise, and
// a forgotten partition no longer counts.
func TestHealth(t *testing.T) {
	h := NewHealth()
	require.ErrorContains(t, h.Ready(), "not yet in the consumer group")
	h.SetJoined()
	require.NoError(t, h.Ready())

	h.SetStarting(true)
	assert.ErrorContains(t, h.Ready(), "start offsets")
	h.SetStarting(false)

	h.SetBackoff("orders/1", true)
	assert.True(t, h.IsBackingOff("orders/1"))
	assert.ErrorContains(t, h.Ready(), "partition orders/1 backing off")
	h.SetBackoff("orders/1", false)
	assert.NoError(t, h.Ready())

	h.SetHalted("orders/2", true)
	assert.True(t, h.IsHalted("orders/2"))
	assert.ErrorContains(t, h.Ready(), "partition orders/2 halted")
	h.Forget("orders/2")
	assert.False(t, h.IsHalted("orders/2"))
	assert.NoError(t, h.Ready())
}

// TestServer: /healthz is always ok, /readyz answers 503 with the reasons
// until ready, /metrics serves the sinkworker_* series with sinkworker_ready
// following Health, and pprof is served only when asked for.
func TestServer(t *testing.T) {
	m, h := NewMetrics(), NewHealth()
	m.WatchHealth(h)
	m.CountRecords("orders", Outcomes{Written: 3, DeadLettered: 1})
	srv, err := Serve("127.0.0.1:0", m, h, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr().String() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	code, body := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "not yet in the consumer group")
	_, body = get("/metrics")
	assert.Contains(t, body, "sinkworker_ready 0")
	assert.Contains(t, body, `sinkworker_records_total{outcome="written",topic="orders"} 3`)

	h.SetJoined()
	code, body = get("/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)
	_, body = get("/metrics")
	assert.Contains(t, body, "sinkworker_ready 1", "sinkworker_ready follows /readyz")
	assert.Contains(t, body, `sinkworker_records_total{outcome="dead_lettered",topic="orders"} 1`)
	assert.NotContains(t, body, `outcome="deleted"`, "no series for a zero count")

	code, _ = get("/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code, "pprof only with HTTP_PPROF")
	srv.Close()
	srv.Close() // idempotent
}
