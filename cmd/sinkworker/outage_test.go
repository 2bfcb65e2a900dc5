package main

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// readyz answers the worker's /readyz status code, 0 when unreachable.
func (w *worker) readyz() int {
	resp, err := http.Get("http://" + w.addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDatabaseOutageIsNotPoison (I5): PostgreSQL is stopped for 20 s while
// records flow. Nothing is dead-lettered, /readyz turns not-ready during the
// outage and ready again after, the worker counts its retries, and every
// record lands exactly once. It holds the services lock throughout.
func TestDatabaseOutageIsNotPoison(t *testing.T) {
	services := testenv.LockServices(t)
	pool := db(t)
	topic, table, group := newTopic(t, 4), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	recs := workload(60_000, 5_000, 0, 99)

	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "500",
	})
	produce(t, topic, recs[:20_000])
	waitProgress(t, pool, group, topic, 20_000)

	services.Run(t, "pg-stop")
	t.Cleanup(func() { _ = services.Command("pg-start").Run() })
	// Records keep arriving while the database is down.
	var notReady atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if w.readyz() == http.StatusServiceUnavailable {
				notReady.Store(true)
			}
		}
	}()
	produce(t, topic, recs[20_000:40_000])
	<-done
	services.Run(t, "pg-start")
	produce(t, topic, recs[40_000:])

	pool.Reset() // drop connections the restart killed
	waitApplied(t, pool, group, topic, 3*time.Minute)
	assert.True(t, notReady.Load(), "/readyz reported not-ready during the outage")
	require.Eventually(t, func() bool { return w.readyz() == http.StatusOK }, 30*time.Second, 100*time.Millisecond,
		"/readyz is ready again after the outage")
	assertWritten(t, int64(len(recs)), w)
	m := w.scrape(t)
	assert.Positive(t, sum(m, "sinkworker_retries_total", "class", "transient"), "transactions retried during the outage")
	assert.Equal(t, -1.0, sum(m, "sinkworker_dead_letters_total", "", ""), "no dead_letters_total series: nothing dead-lettered")
	w.stop()

	assertInsertTable(t, pool, table, topic, recs)
	assert.Zero(t, dlqCount(t, topic+".dlq"), "an outage sends nothing to the dead-letter topic")
}

// dlqCount is the number of records in a dead-letter topic (0 if missing).
func dlqCount(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	var n int64
	for _, ps := range ends {
		for _, o := range ps {
			if o.Err == nil {
				n += o.Offset
			}
		}
	}
	return n
}
