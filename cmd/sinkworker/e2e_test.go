package main

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	e2eRecords    = 200_000
	e2ePartitions = 8
)

// TestSinkExact covers (a) upsert mode and (b) insert mode, each run
// undisturbed and (c) with the worker SIGKILLed in the middle and started
// again: the table must be exact every time.
func TestSinkExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode string
		kill bool
	}{
		{"upsert", "upsert", false},
		{"insert", "insert", false},
		{"upsert_sigkill", "upsert", true},
		{"insert_sigkill", "insert", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := db(t)
			topic, table, group := newTopic(t, e2ePartitions), uniq("t"), uniq("g")
			dropTable(t, pool, table)
			recs := workload(e2eRecords, 20_000, 5, uint64(len(tc.name)))
			produce(t, topic, recs)

			env := map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": tc.mode,
				"SINK_TABLE_MAP": topic + "=" + table,
			}
			if tc.kill {
				// Smaller batches so the kill lands between many commits.
				env["BATCH_MAX_RECORDS"] = "500"
			}
			w := startWorker(t, "w1", env)
			var applied int64 // by the killed worker
			if tc.kill {
				waitProgress(t, pool, group, topic, e2eRecords/4)
				require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
				<-w.exited
				// A COMMIT sent just before the kill may still be applied by
				// its backend: count what the killed worker applied once its
				// backends are gone.
				require.Eventually(t, func() bool {
					n, err := connections(t.Context(), pool, group, "w1")
					return err == nil && n == 0
				}, 30*time.Second, 20*time.Millisecond, "the killed worker's backends end")
				var err error
				applied, err = appliedOffsets(t.Context(), pool, group, topic)
				require.NoError(t, err)
				require.Less(t, applied, int64(e2eRecords), "the kill must land before the end")
				t.Logf("killed after %d of %d records applied", applied, e2eRecords)
				w = startWorker(t, "w1", env)
			}
			waitApplied(t, pool, group, topic, 3*time.Minute)
			if tc.mode == "insert" {
				// The restarted worker writes exactly what the killed one had not committed.
				assertWritten(t, int64(e2eRecords)-applied, w)
			}
			assert.Zero(t, counter(t, "sinkworker_records_total", "outcome", "already_applied", w),
				"a worker starting at the database's offsets fetches nothing it must drop")
			w.stop()

			if tc.mode == "upsert" {
				assertUpsertTable(t, pool, table, upsertModel(recs))
				assert.Zero(t, dlqCount(t, topic+".dlq"), "nothing dead-lettered")
			} else {
				assertInsertTable(t, pool, table, topic, recs)
			}
		})
	}
}

// waitProgress waits until at least n records of topic are applied.
func waitProgress(t *testing.T, pool *pgxpool.Pool, group, topic string, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, err := appliedOffsets(t.Context(), pool, group, topic)
		return err == nil && got >= n
	}, 2*time.Minute, 5*time.Millisecond)
}

func assertUpsertTable(t *testing.T, pool *pgxpool.Pool, table string, model map[string]string) {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT key, value::text FROM "+pgx.Identifier{table}.Sanitize())
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		got[k] = v
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, len(model), "rows in the table vs keys alive in the model")
	missing := 0
	for k := range model {
		if _, ok := got[k]; !ok {
			missing++
		}
	}
	assert.Zero(t, missing, "keys missing from the table")
	// Every value, compared as jsonb (the server normalises spacing).
	keys, values := make([]string, 0, len(model)), make([]string, 0, len(model))
	for k, v := range model {
		keys, values = append(keys, k), append(values, v)
	}
	var mismatched int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` t
JOIN unnest($1::text[], $2::text[]) AS m(k, v) ON m.k = t.key WHERE t.value <> m.v::jsonb`,
		keys, values).Scan(&mismatched))
	assert.Zero(t, mismatched, "rows whose value is not the last produced for their key")
}

func assertInsertTable(t *testing.T, pool *pgxpool.Pool, table, topic string, recs []rec) {
	t.Helper()
	var rows, gaps, tombstones int64
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE value IS NULL)
FROM `+pgx.Identifier{table}.Sanitize()+` WHERE kafka_topic = $1`, topic).Scan(&rows, &tombstones))
	// No gap: per partition, offsets are exactly 0..count-1.
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM (
	SELECT kafka_partition FROM `+pgx.Identifier{table}.Sanitize()+`
	GROUP BY kafka_partition HAVING min(kafka_offset) <> 0 OR max(kafka_offset) <> count(*) - 1) g`).Scan(&gaps))
	var wantTombstones int64
	for _, r := range recs {
		if r.value == nil {
			wantTombstones++
		}
	}
	assert.Equal(t, int64(len(recs)), rows, "one row per produced record")
	assert.Zero(t, gaps, "partitions with a gap in offsets")
	assert.Equal(t, wantTombstones, tombstones, "tombstones kept as rows with a null value")
	// The primary key makes a second row for a record impossible: a replayed
	// record would be refused and dead-lettered as a constraint violation.
	assert.Zero(t, dlqCount(t, topic+".dlq"), "records in the dead-letter topic (a replay is dead-lettered as a primary key violation)")
}

// counter adds up a counter of the workers' /metrics over the series whose
// label has the value (a missing series counts 0).
func counter(t *testing.T, name, label, value string, ws ...*worker) float64 {
	t.Helper()
	var total float64
	for _, w := range ws {
		total += max(0, sum(w.scrape(t), name, label, value))
	}
	return total
}

// assertWritten requires the workers' records_total{outcome="written"} to
// add up to want: every record inserted once, none twice (an insert-mode
// table's primary key hides a replay from a row count, not from this). The
// counter moves just after the commit that sink_offsets shows, so it is
// polled.
func assertWritten(t *testing.T, want int64, ws ...*worker) {
	t.Helper()
	var got float64
	assert.Eventually(t, func() bool {
		got = counter(t, "sinkworker_records_total", "outcome", "written", ws...)
		return got == float64(want)
	}, 10*time.Second, 50*time.Millisecond, "records_total{outcome=\"written\"} of the workers: want %d", want)
	if got != float64(want) {
		t.Logf("records_total{outcome=\"written\"}: %v, want %d", got, want)
	}
}

// TestConnectionsFollowAssignment is (d): two, then three workers join one
// group while records flow. Sampled continuously: each worker's connections
// (pg_stat_activity by application_name) never exceed its assigned
// partitions, the sum never exceeds the partition count and reaches it,
// and the final table is exact.
func TestConnectionsFollowAssignment(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) { connectionsFollowAssignment(t, protocol) })
	}
}

func connectionsFollowAssignment(t *testing.T, protocol string) {
	pool := db(t)
	topic, table, group := newTopic(t, e2ePartitions), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "200",
		"KAFKA_GROUP_PROTOCOL": protocol,
	}
	recs := workload(e2eRecords, 20_000, 5, 42)

	// Produce in slices over ~20 s while workers join.
	produced := make(chan error, 1)
	go func() {
		const slices = 40
		for i := range slices {
			lo, hi := i*len(recs)/slices, (i+1)*len(recs)/slices
			if err := produceRecords(t.Context(), topic, recs[lo:hi]); err != nil {
				produced <- err
				return
			}
			time.Sleep(400 * time.Millisecond)
		}
		produced <- nil
	}()

	var (
		mu      sync.Mutex
		workers []*worker
	)
	addWorker := func(name string) {
		w := startWorker(t, name, env)
		mu.Lock()
		workers = append(workers, w)
		mu.Unlock()
	}
	addWorker("w1")

	ctx, stopSampling := context.WithCancel(t.Context())
	var (
		samples, peakSum atomic.Int64
		violations       []string
		sampled          = make(chan struct{})
	)
	// sample checks the bound once. Past start-up (its table check), a
	// worker holds no connection without an assignment, so the per-worker
	// bound is strict.
	sample := func() (problems []string, sum int) {
		mu.Lock()
		ws := append([]*worker(nil), workers...)
		mu.Unlock()
		for _, w := range ws {
			before, err1 := w.assigned()
			conns, err2 := connections(ctx, pool, group, w.member)
			after, err3 := w.assigned()
			if err1 != nil || err2 != nil || err3 != nil {
				continue // the worker is starting or stopping
			}
			if allowed := max(before, after); conns > allowed {
				problems = append(problems, fmt.Sprintf("%s: %d connections, assigned %d..%d", w.member, conns, before, after))
			}
			sum += conns
		}
		if sum > e2ePartitions {
			problems = append(problems, fmt.Sprintf("fleet: %d connections > %d partitions", sum, e2ePartitions))
		}
		return problems, sum
	}
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			problems, sum := sample()
			if len(problems) > 0 {
				// A backend lingers in pg_stat_activity for a moment after its
				// client closed the connection (the pool trims on revoke):
				// only an excess that persists is a violation.
				time.Sleep(250 * time.Millisecond)
				problems, sum = sample()
				violations = append(violations, problems...)
			}
			if int64(sum) > peakSum.Load() {
				peakSum.Store(int64(sum))
			}
			samples.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	time.Sleep(5 * time.Second)
	addWorker("w2")
	time.Sleep(5 * time.Second)
	addWorker("w3")
	require.NoError(t, <-produced, "produce")
	waitApplied(t, pool, group, topic, 3*time.Minute)
	stopSampling()
	<-sampled
	listed, err := admin(t).ListGroupsByType(t.Context(), []string{protocol})
	require.NoError(t, err)
	assert.Contains(t, listed.Groups(), group, "the group runs the %s protocol", protocol)
	assertWritten(t, int64(len(recs)), workers...)
	for _, w := range workers {
		w.stop()
	}

	t.Logf("%d samples, peak fleet connections %d", samples.Load(), peakSum.Load())
	assert.Empty(t, violations, "connection bound violated")
	assert.Greater(t, samples.Load(), int64(50))
	assert.EqualValues(t, e2ePartitions, peakSum.Load(), "with data flowing on every partition the fleet uses one connection per partition")
	assertInsertTable(t, pool, table, topic, recs)
}

// connections counts the worker's connections in pg_stat_activity.
func connections(ctx context.Context, pool *pgxpool.Pool, group, member string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
		"sinkworker/"+group+"/"+member).Scan(&n)
	return n, err
}

// TestBadConfiguration is (e): the binary exits 2 and names every bad
// variable at once, without echoing secrets.
func TestBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		names []string
	}{
		{"nothing set", nil, []string{"KAFKA_BROKERS", "KAFKA_TOPICS", "DATABASE_URL"}},
		{"every kind of bad value", []string{
			"KAFKA_BROKERS=no-port", "KAFKA_TOPICS=ok,bad topic", "DATABASE_URL=postgres://u:s3cr3t-db@h:5432/x",
			"SINK_MODE=merge", "SINK_MAPPING=xml", "BATCH_MAX_RECORDS=lots", "BATCH_LINGER=-1s",
			"POOL_MAX_CONNS=0", "ERROR_POLICY=ignore", "KAFKA_START_OFFSET=middle", "SHUTDOWN_TIMEOUT=soon",
			"KAFKA_SASL_MECHANISM=GSSAPI", "KAFKA_SASL_PASSWORD=s3cr3t-sasl", "LOG_LEVEL=loud",
		}, []string{
			"KAFKA_BROKERS", "KAFKA_TOPICS", "SINK_MODE", "SINK_MAPPING", "BATCH_MAX_RECORDS",
			"BATCH_LINGER", "POOL_MAX_CONNS", "ERROR_POLICY", "KAFKA_START_OFFSET", "SHUTDOWN_TIMEOUT",
			"KAFKA_SASL_MECHANISM", "LOG_LEVEL",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tc.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "output:\n%s", out)
			assert.Equal(t, 2, exit.ExitCode())
			for _, name := range tc.names {
				assert.Contains(t, string(out), name)
			}
			assert.NotContains(t, string(out), "s3cr3t")
		})
	}
}
