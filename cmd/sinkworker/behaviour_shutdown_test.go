package main

import (
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestShutdownTimeoutExpires: SIGTERM while the database is unreachable
// (its connections cut through a proxy, PostgreSQL itself keeps running).
// The batch cannot be written, so the worker abandons it when
// SHUTDOWN_TIMEOUT expires and exits, instead of hanging; the database
// kept the offset, so a worker started later applies the abandoned
// records, each once.
func TestShutdownTimeoutExpires(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 2), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := newCutProxy(t, "127.0.0.1:0", u.Host)
	const budget = 3 * time.Second
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table, "SHUTDOWN_TIMEOUT": budget.String(),
		"DATABASE_URL": dbURLVia(t, proxy.addr()),
	}
	w := startWorker(t, "w1", env)
	require.Eventually(t, func() bool { a, err := w.assigned(); return err == nil && a == 2 },
		30*time.Second, 20*time.Millisecond)
	recs := workload(200, 1000, 0, 8)
	produce(t, topic, recs[:100])
	waitApplied(t, pool, group, topic, 30*time.Second)

	proxy.cutOff()
	produce(t, topic, recs[100:])
	require.Eventually(t, func() bool { return proxy.stalled.Load() > 0 }, 30*time.Second, 20*time.Millisecond,
		"the worker tries to write the new records")
	start := time.Now()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	code := w.waitExit(t, budget+30*time.Second)
	took := time.Since(start)
	t.Logf("exited %d after %s (SHUTDOWN_TIMEOUT=%s)", code, took.Round(time.Millisecond), budget)
	assert.Equal(t, 0, code)
	assert.GreaterOrEqual(t, took, budget, "the worker tried to write within its budget")
	// k8s/README.md: terminationGracePeriodSeconds (45 s) covers SHUTDOWN_TIMEOUT
	// (30 s) plus the final Kafka commit (up to 5 s) and leaving the group.
	assert.Less(t, took, budget+10*time.Second, "the worker exits soon after SHUTDOWN_TIMEOUT, within the pod's grace period")
	assert.Contains(t, testenv.Tail(w.logs, 50), "abandoning the batch")

	env["DATABASE_URL"] = dbURL
	w2 := startWorker(t, "w2", env)
	waitApplied(t, pool, group, topic, time.Minute)
	w2.stop()
	assertInsertTable(t, pool, table, topic, recs)
	assert.Zero(t, dlqCount(t, topic+".dlq"))
}

// TestShutdownLeavesGroup: a worker stopped by SIGTERM leaves the consumer
// group, so the others get its partitions at once, not after its session
// timeout (60 s here).
func TestShutdownLeavesGroup(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 2), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"KAFKA_SESSION_TIMEOUT": "60s",
	}
	w1 := startWorker(t, "w1", env)
	w2 := startWorker(t, "w2", env)
	require.Eventually(t, func() bool {
		a1, err1 := w1.assigned()
		a2, err2 := w2.assigned()
		return err1 == nil && err2 == nil && a1 == 1 && a2 == 1
	}, 60*time.Second, 50*time.Millisecond, "one partition each")
	w1.stop()
	left := time.Now()
	require.Eventually(t, func() bool { a, err := w2.assigned(); return err == nil && a == 2 },
		20*time.Second, 50*time.Millisecond, "w2 takes both partitions long before w1's 60 s session timeout")
	t.Logf("w2 had both partitions %s after w1 exited", time.Since(left).Round(time.Millisecond))
	w2.stop()
}
