package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The read path against the real broker: transactions (I7, and offsets
// past their markers), offsets the log no longer has (I8) and new
// partitions.

// cleanupSink removes what a test's worker leaves on the shared services
// besides the topic: the dead-letter topic, the table and the offsets rows.
func cleanupSink(t *testing.T, pool *pgxpool.Pool, topic, table, group string) {
	t.Helper()
	dropTable(t, pool, table)
	t.Cleanup(func() {
		_, _ = admin(t).DeleteTopics(context.Background(), topic+".dlq")
		_, _ = pool.Exec(context.Background(), "DELETE FROM sink_offsets WHERE consumer_group = $1", group)
	})
}

// produceTransactions writes txns transactions of perTxn records with a
// transactional producer, records spread over the partitions in turn,
// aborting every transaction for which abort is true, then one committed
// transaction holding a record "end-<p>" for each partition. Values carry
// {"txn": i, "aborted": bool}. It returns the committed records, the
// end records included.
func produceTransactions(t *testing.T, topic string, partitions int32, txns, perTxn int, abort func(int) bool) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID(uniq("tx")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	committed := 0
	txn := func(i int, recs []*kgo.Record, commit kgo.TransactionEndTry) {
		require.NoError(t, cl.BeginTransaction())
		for _, r := range recs {
			cl.Produce(t.Context(), r, func(_ *kgo.Record, err error) { assert.NoError(t, err, "transaction %d", i) })
		}
		require.NoError(t, cl.Flush(t.Context()))
		require.NoError(t, cl.EndTransaction(t.Context(), commit))
		if commit == kgo.TryCommit {
			committed += len(recs)
		}
	}
	for i := range txns {
		recs := make([]*kgo.Record, perTxn)
		for j := range recs {
			recs[j] = &kgo.Record{Partition: int32(j) % partitions, Key: fmt.Appendf(nil, "t%d-r%d", i, j),
				Value: fmt.Appendf(nil, `{"txn":%d,"aborted":%t}`, i, abort(i))}
		}
		commit := kgo.TryCommit
		if abort(i) {
			commit = kgo.TryAbort
		}
		txn(i, recs, commit)
	}
	var ends []*kgo.Record
	for p := range partitions {
		ends = append(ends, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "end-%d", p), Value: []byte(`{"end":true}`)})
	}
	txn(txns, ends, kgo.TryCommit)
	return committed
}

// sinkTransactions produces 30 transactions of 100 records to a new
// 2-partition topic, aborting one in three, runs a worker until the last
// transaction's records are in the table, and returns the worker (still
// running) with its names and the number of committed records.
func sinkTransactions(t *testing.T) (w *worker, pool *pgxpool.Pool, topic, table, group string, committed int) {
	t.Helper()
	pool = db(t)
	topic, table, group = newTopic(t, 2), uniq("t"), uniq("g")
	cleanupSink(t, pool, topic, table, group)
	committed = produceTransactions(t, topic, 2, 30, 100, func(i int) bool { return i%3 == 1 })
	w = startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table})
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table+" WHERE key LIKE 'end-%'").Scan(&n)
		return err == nil && n == 2
	}, time.Minute, 100*time.Millisecond, "the last transaction's records land")
	return w, pool, topic, table, group, committed
}

// TestAbortedTransactionsNeverLand (I7): of a transactional producer's
// transactions, one in three aborted, only the committed records land.
func TestAbortedTransactionsNeverLand(t *testing.T) {
	_, pool, _, table, _, committed := sinkTransactions(t)
	var rows, aborted int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*), count(*) FILTER (WHERE value->>'aborted' = 'true') FROM "+
		table).Scan(&rows, &aborted))
	assert.Zero(t, aborted, "records of aborted transactions in the table")
	assert.Equal(t, committed, rows, "exactly the committed records land")
}

// TestTransactionMarkersLeaveNoLag: a fully sunk transactional topic, whose
// log ends in a commit marker, shows no lag anywhere: the database's
// next_offset is the log end, and so are Kafka's committed copy (kadm's
// group lag 0), the lag gauge in /metrics and `sinkworker audit`.
func TestTransactionMarkersLeaveNoLag(t *testing.T) {
	w, pool, topic, table, group, _ := sinkTransactions(t)
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	next := func(p int32) int64 {
		var n int64
		_ = pool.QueryRow(t.Context(), `SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2
AND partition = $3`, group, topic, p).Scan(&n)
		return n
	}
	ends.Each(func(e kadm.ListedOffset) {
		require.Eventually(t, func() bool { return next(e.Partition) == e.Offset }, 30*time.Second, 100*time.Millisecond,
			"partition %d: next_offset reaches the log end %d past the commit marker (stuck at %d)", e.Partition, e.Offset, next(e.Partition))
	})
	require.Eventually(t, func() bool {
		lags, err := admin(t).Lag(t.Context(), group)
		if err != nil {
			return false
		}
		g := lags[group]
		if g.Error() != nil {
			return false
		}
		l := g.Lag
		return len(l[topic]) == 2 && l.Total() == 0
	}, 30*time.Second, 200*time.Millisecond, "Kafka's committed offsets reach the log end (kadm group lag 0)")
	require.Eventually(t, func() bool { return sum(w.scrape(t), "sinkworker_lag_records", "topic", topic) == 0 },
		10*time.Second, 100*time.Millisecond, "sinkworker_lag_records is 0")
	w.stop()

	rows, consistent, code := auditRows(t, topic, group, table)
	assert.True(t, consistent)
	assert.Zero(t, code)
	for p, r := range rows {
		assert.Zero(t, r.Lag, "audit lag of partition %d", p)
		assert.Equal(t, r.LogEnd, r.DBNextOffset, "partition %d", p)
		assert.Equal(t, r.LogEnd, r.KafkaCommitted, "partition %d", p)
	}
}

// sinkworkerCmd is the binary with args, in the test's environment plus env.
func sinkworkerCmd(args []string, env map[string]string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// exitCode is the exit status a finished command's error stands for.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	return exit.ExitCode()
}

// logLine is the first line of the JSON log at path whose msg is msg, nil
// when there is none yet.
func logLine(path, msg string) map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			return line
		}
	}
	return nil
}

// recreatedTopic sinks 5000 records ("old-<i>") of a one-partition topic,
// deletes and recreates the topic, and produces 3000 records ("new-<i>")
// to it: the database's next_offset (5000) is now beyond the log end.
func recreatedTopic(t *testing.T) (pool *pgxpool.Pool, topic, table, group string, env map[string]string) {
	t.Helper()
	pool = db(t)
	topic, table, group = newTopic(t, 1), uniq("t"), uniq("g")
	cleanupSink(t, pool, topic, table, group)
	env = map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table}
	keyed := func(prefix string, n int) []rec {
		recs := make([]rec, n)
		for i := range recs {
			recs[i] = rec{key: fmt.Sprintf("%s-%d", prefix, i), value: fmt.Appendf(nil, `{"i":%d}`, i)}
		}
		return recs
	}
	produce(t, topic, keyed("old", 5000))
	w := startWorker(t, "w1", env)
	waitApplied(t, pool, group, topic, time.Minute)
	w.stop()

	adm := admin(t)
	_, err := adm.DeleteTopics(t.Context(), topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool { // the deletion completes asynchronously
		resp, err := adm.CreateTopic(t.Context(), 1, 1, nil, topic)
		return err == nil && resp.Err == nil
	}, time.Minute, 500*time.Millisecond, "recreate the topic")
	produce(t, topic, keyed("new", 3000))
	require.EqualValues(t, 3000, endOffsets(t, topic))
	return pool, topic, table, group, env
}

// storedNext is the database's next_offset of partition 0, -1 without a row.
func storedNext(t *testing.T, pool *pgxpool.Pool, group, topic string) int64 {
	t.Helper()
	var n int64 = -1
	_ = pool.QueryRow(t.Context(), `SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2
AND partition = 0`, group, topic).Scan(&n)
	return n
}

// countKeys is the number of rows of table whose key starts with prefix,
// -1 when it cannot be read.
func countKeys(t *testing.T, pool *pgxpool.Pool, table, prefix string) int {
	t.Helper()
	n := -1
	_ = pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table+" WHERE key LIKE $1", prefix+"%").Scan(&n)
	return n
}

// TestRecreatedTopicHaltsLoudly (I8): the database's next_offset (5000) is
// beyond the end (3000) of a recreated topic. The worker must not reset
// and skip: the partition halts, /readyz is not ready, an ERROR names
// topic, partition, offset and log bounds, the metric counts it, nothing is
// written and the offsets row is unchanged.
func TestRecreatedTopicHaltsLoudly(t *testing.T) {
	pool, topic, table, group, env := recreatedTopic(t)
	w := startWorker(t, "w2", env)
	var line map[string]any
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		line = logLine(w.logs, "offset out of range: partition halted, nothing skipped")
		assert.NotNil(c, line, "an error log names the out-of-range offset")
		assert.Equal(c, http.StatusServiceUnavailable, w.readyz(), "/readyz")
		assert.Zero(c, countKeys(t, pool, table, "new-"), "records of the recreated topic written")
	}, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, topic, line["topic"])
	assert.EqualValues(t, 0, line["partition"])
	assert.EqualValues(t, 5000, line["offset"])
	assert.EqualValues(t, 0, line["log_start"])
	assert.EqualValues(t, 3000, line["log_end"])
	assert.Contains(t, line["condition"], "beyond the log end")
	assert.Equal(t, "sinkworker offsets reset --topic "+topic+" --partition 0 --to earliest", line["resolve"])
	fams := w.scrape(t)
	assert.EqualValues(t, 1, sum(fams, "sinkworker_offset_out_of_range_total", "topic", topic))
	assert.EqualValues(t, 1, sum(fams, "sinkworker_halted_partitions", "", ""))

	time.Sleep(2 * time.Second) // a reset would have written by now; make sure nothing is
	assert.Equal(t, http.StatusServiceUnavailable, w.readyz(), "still not ready")
	assert.Zero(t, countKeys(t, pool, table, "new-"), "nothing of the recreated topic is written")
	assert.EqualValues(t, 5000, storedNext(t, pool, group, topic), "the offsets row is unchanged")
	w.stop()
}

// TestOffsetsReset: the operator's way out of TestRecreatedTopicHaltsLoudly's
// halt. The audit names the condition and the command; a dry run prints the
// change and changes nothing; --execute writes it; a worker then sinks the
// recreated topic from its start. Bad flags exit 2.
func TestOffsetsReset(t *testing.T) {
	pool, topic, table, group, env := recreatedTopic(t)

	rows, consistent, code := auditRows(t, topic, group, table)
	assert.False(t, consistent)
	assert.Equal(t, 1, code)
	assert.Contains(t, rows[0].Problem, "beyond the log end")
	assert.Contains(t, rows[0].Problem, "sinkworker offsets reset --topic "+topic+" --partition 0 --to earliest")

	reset := func(args ...string) (string, int) {
		cmd := sinkworkerCmd(append([]string{"offsets", "reset"}, args...), map[string]string{"KAFKA_GROUP": group})
		out, err := cmd.CombinedOutput()
		return string(out), exitCode(t, err)
	}
	out, code := reset("--topic", topic, "--to", "earliest")
	require.Zero(t, code, out)
	assert.Regexp(t, topic+`\s+0\s+0\s+3000\s+5000\s+0\n`, out, "the dry run shows log start, end, current and target")
	assert.Contains(t, out, "dry run")
	assert.EqualValues(t, 5000, storedNext(t, pool, group, topic), "a dry run changes nothing")

	for _, bad := range [][]string{{"--to", "earliest"}, {"--topic", topic}, {"--topic", topic, "--to", "earliest", "--bogus"}} {
		out, code := reset(bad...)
		assert.Equal(t, 2, code, "%v: %s", bad, out)
	}
	out, code = reset("--topic", topic, "--to", "4000")
	assert.Equal(t, 1, code, "an offset outside the log is refused: %s", out)
	assert.Contains(t, out, "outside the log")

	out, code = reset("--topic", topic, "--partition", "0", "--to", "earliest", "--execute")
	require.Zero(t, code, out)
	assert.EqualValues(t, 0, storedNext(t, pool, group, topic), "--execute writes the target")
	committed, err := admin(t).FetchOffsets(t.Context(), group)
	require.NoError(t, err)
	o, ok := committed.Lookup(topic, 0)
	require.True(t, ok)
	assert.EqualValues(t, 0, o.At, "Kafka's copy follows while no worker runs")

	w := startWorker(t, "w2", env)
	waitApplied(t, pool, group, topic, time.Minute)
	assert.Equal(t, 3000, countKeys(t, pool, table, "new-"), "the recreated topic is sunk from its start")
	assert.Equal(t, http.StatusOK, w.readyz())
	w.stop()
}

// TestNewPartitionsPickedUp: partitions added to a consumed topic are
// consumed within 30 s (franz-go's default metadata age is 5 minutes).
func TestNewPartitionsPickedUp(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 1), uniq("t"), uniq("g")
	cleanupSink(t, pool, topic, table, group)
	w := startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table})
	produce(t, topic, workload(100, 50, 0, 1))
	waitApplied(t, pool, group, topic, time.Minute)

	resp, err := admin(t).CreatePartitions(t.Context(), 1, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	added := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	require.Eventually(t, func() bool { // the producer's own metadata must see the partition too
		return cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Partition: 1, Key: []byte("new-p"), Value: []byte(`{"new":true}`)}).FirstErr() == nil
	}, 30*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool { return countKeys(t, pool, table, "new-p") == 1 }, 30*time.Second, 100*time.Millisecond,
		"a record on the new partition lands within 30 s")
	t.Logf("new partition picked up %.1f s after it was added", time.Since(added).Seconds())
	w.stop()
}
