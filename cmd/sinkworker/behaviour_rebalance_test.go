package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink"
)

// TestRevokeCommitsBeforeRebalance: a revoked partition's batch is written
// and committed before the rebalance proceeds. The first worker holds every
// record of a two-partition topic in batches that would linger for ten
// minutes; a second worker joins. When the second worker gets its
// partition, that partition's records are already committed (by the first
// worker's revocation), the other partition's are not, and the second
// worker writes nothing: each record is applied once.
func TestRevokeCommitsBeforeRebalance(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 2), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	const n = 200
	recs := workload(n, n, 0, 5)
	produce(t, topic, recs)
	payload := 0.0 // a lower bound of the bytes a fetch of every record returns
	for _, r := range recs {
		payload += float64(len(r.key) + len(r.value))
	}
	ends := partitionEnds(t, topic)
	require.Len(t, ends, 2)
	for p, end := range ends {
		require.Positive(t, end, "partition %d has records", p)
	}
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table, "BATCH_LINGER": "10m",
	}
	w1 := startWorker(t, "w1", env)
	// w1 has fetched every record (all in the log before it started) and
	// handed them to its partitions.
	require.Eventually(t, func() bool {
		f := w1.scrape(t)
		return sum(f, "sinkworker_kafka_fetch_bytes_total", "topic", topic) >= payload &&
			sum(f, "sinkworker_kafka_buffered_fetch_records_total", "", "") == 0
	}, 30*time.Second, 50*time.Millisecond, "w1 fetched the records")
	require.Empty(t, storedOffsets(t, pool, group, topic), "nothing written while the batches linger")

	w2 := startWorker(t, "w2", env)
	require.Eventually(t, func() bool { a, err := w2.assigned(); return err == nil && a == 1 },
		60*time.Second, 20*time.Millisecond, "w2 gets a partition")
	stored := storedOffsets(t, pool, group, topic)
	assert.Len(t, stored, 1, "exactly the moved partition was committed when w2 got it: %v", stored)
	for p, next := range stored {
		assert.Equal(t, ends[p], next, "partition %d: its whole batch was committed on revocation", p)
	}
	a1, err := w1.assigned()
	require.NoError(t, err)
	assert.Equal(t, 1, a1, "w1 keeps the other partition")
	assert.Contains(t, testenv.Tail(w1.logs, 50), "partitions revoked")

	assert.LessOrEqual(t, w2.series(t, "sinkworker_records_total", "outcome", "written"), 0.0,
		"w2 writes nothing: its partition was committed before it started")
	assert.LessOrEqual(t, w2.series(t, "sinkworker_records_total", "outcome", "already_applied"), 0.0)
	w2.stop()
	w1.stop() // writes the other partition's batch, still lingering
	assert.Equal(t, ends, storedOffsets(t, pool, group, topic))
	assertInsertTable(t, pool, table, topic, recs)
	assert.Zero(t, dlqCount(t, topic+".dlq"), "no record was refused as a duplicate")
}

// TestLostPartitionIsFenced: a worker frozen (SIGSTOP) past its session
// timeout loses its partition and the group gives it to another worker;
// when it resumes (SIGCONT) it writes nothing twice. The frozen worker is
// stopped while its batch transaction holds the partition's offsets row
// lock, so the new owner's first batch must wait for that lock (the fence),
// then sees whatever the zombie committed and applies only the rest.
func TestLostPartitionIsFenced(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table,
	}
	w1 := startWorker(t, "w1", env)
	require.Eventually(t, func() bool { a, err := w1.assigned(); return err == nil && a == 1 },
		30*time.Second, 20*time.Millisecond)
	const n = 20
	produce(t, topic, workload(n, 1000, 0, 1))
	waitApplied(t, pool, group, topic, 30*time.Second)

	// The test takes the offsets row lock, so w1's next batch waits for it
	// inside its transaction; w1 is frozen there and the test lets go: w1's
	// backend now holds the lock in an open transaction no one drives.
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `SELECT 1 FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 FOR UPDATE`, group, topic)
	require.NoError(t, err)
	produce(t, topic, workload(n, 1000, 0, 2))
	waitLockWait(t, pool, group, "w1")
	require.NoError(t, syscall.Kill(w1.cmd.Process.Pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(w1.cmd.Process.Pid, syscall.SIGCONT) })
	require.NoError(t, tx.Commit(t.Context()))
	produce(t, topic, workload(n, 1000, 0, 3))

	w2 := startWorker(t, "w2", env)
	require.Eventually(t, func() bool { a, err := w2.assigned(); return err == nil && a == 1 },
		60*time.Second, 50*time.Millisecond, "w2 takes the partition once w1's session times out")
	waitLockWait(t, pool, group, "w2") // the fence: the new owner's offsets row lock waits for the zombie's transaction
	require.NoError(t, syscall.Kill(w1.cmd.Process.Pid, syscall.SIGCONT))

	waitApplied(t, pool, group, topic, time.Minute)
	require.Eventually(t, func() bool { return testenv.LogField(w1.logs, "partitions lost", "level") != "" },
		30*time.Second, 50*time.Millisecond, "w1 finds its partition lost and abandons it")
	// w2 started at offset n (w1's batch was not committed then): it either
	// dropped that batch, committed by the zombie meanwhile, or wrote it;
	// the zombie may also have taken the lock for the next batch before it
	// learnt of the loss (w2's drop of the first batch ends w2's transaction
	// at once), which w2 then drops too. The table is all that counts: each
	// offset once (below). Every record reaches w2 either way.
	var written2, skipped2 float64
	assert.Eventually(t, func() bool {
		written2 = max(0, w2.series(t, "sinkworker_records_total", "outcome", "written"))
		skipped2 = max(0, w2.series(t, "sinkworker_records_total", "outcome", "already_applied"))
		return written2+skipped2 >= 2*n
	}, 30*time.Second, 50*time.Millisecond, "w2 handles every record from offset %d", n)
	t.Logf("w2 wrote %v and dropped %v as already applied by the zombie", written2, skipped2)
	assert.Equal(t, float64(2*n), written2+skipped2, "w2 handled every record from offset %d once", n)
	assert.Contains(t, []float64{0, n, 2 * n}, skipped2, "w2 dropped nothing, the zombie's batch, or its two")
	w2.stop()
	w1.stop()
	first, rows, last := offsetSpan(t, pool, table)
	assert.Equal(t, [3]int64{0, 3 * n, 3*n - 1}, [3]int64{first, rows, last}, "offsets 0..59, once each")
	assert.Zero(t, dlqCount(t, topic+".dlq"), "no record was refused as a duplicate")
}

// partitionEnds is each partition's end offset.
func partitionEnds(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// storedOffsets is the group's next_offset by partition in sink_offsets.
func storedOffsets(t *testing.T, pool *pgxpool.Pool, group, topic string) map[int32]int64 {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT partition, next_offset FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, group, topic)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var (
			p    int32
			next int64
		)
		require.NoError(t, rows.Scan(&p, &next))
		out[p] = next
	}
	require.NoError(t, rows.Err())
	return out
}

// waitLockWait waits until a backend of the member waits for a lock in a
// statement on the offsets table: the partition's offsets row lock.
func waitLockWait(t *testing.T, pool *pgxpool.Pool, group, member string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%sink_offsets%'`,
			sink.ApplicationName(group, member)).Scan(&n)
		return err == nil && n > 0
	}, 60*time.Second, 20*time.Millisecond, "%s waits for the offsets row lock", member)
}
