package main

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape parses the worker's /metrics into metric families by name.
func (w *worker) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + w.addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sum adds up a family's values (counters, gauges, histogram counts) over
// the series whose label has the value (any series when label is "").
func sum(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var total float64
	for _, m := range f.GetMetric() {
		if label != "" {
			match := false
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// TestMetricsMove scrapes /metrics during a real run: the contract's
// series exist and move as records flow.
func TestMetricsMove(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 4), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	w := startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "500"})
	require.Eventually(t, func() bool { n, err := w.assigned(); return err == nil && n == 4 }, 30*time.Second, 50*time.Millisecond)

	before := w.scrape(t)
	assert.LessOrEqual(t, sum(before, "sinkworker_records_total", "outcome", "written"), 0.0, "nothing written yet (no series, or 0)")
	// Values first, then one tombstone for each of 500 keys that exist by
	// then, as that key's last record: each deletes exactly one row, so the
	// split below is exact whatever the batch boundaries.
	recs := workload(20_000, 2_000, 0, 3)
	produce(t, topic, recs)
	waitApplied(t, pool, group, topic, time.Minute)
	alive := slices.Sorted(maps.Keys(upsertModel(recs)))
	require.Greater(t, len(alive), 500)
	var tombstones []rec
	for _, k := range alive[:500] {
		tombstones = append(tombstones, rec{key: k})
	}
	produce(t, topic, tombstones)
	produced := len(recs) + len(tombstones)
	waitApplied(t, pool, group, topic, time.Minute)
	require.Eventually(t, func() bool {
		return sum(w.scrape(t), "sinkworker_kafka_commits_total", "", "") > 0
	}, 10*time.Second, 100*time.Millisecond, "offsets copied to Kafka")
	var after map[string]*dto.MetricFamily
	var written, deleted, deduplicated float64
	assert.Eventually(t, func() bool { // the counters move just after the commit sink_offsets shows
		after = w.scrape(t)
		written, deleted = sum(after, "sinkworker_records_total", "outcome", "written"), sum(after, "sinkworker_records_total", "outcome", "deleted")
		deduplicated = sum(after, "sinkworker_records_total", "outcome", "deduplicated")
		return written+deleted+deduplicated == float64(produced)
	}, 10*time.Second, 100*time.Millisecond, "written + deleted + deduplicated == produced")
	t.Logf("written %v + deleted %v + deduplicated %v, produced %d", written, deleted, deduplicated, produced)
	assert.Positive(t, written)
	assert.Positive(t, deduplicated, "repeated keys within a batch")
	assert.EqualValues(t, len(tombstones), deleted, "each tombstone deleted its key's row")
	for _, outcome := range []string{"already_applied", "tombstone_skipped", "dead_lettered"} {
		assert.LessOrEqual(t, sum(after, "sinkworker_records_total", "outcome", outcome), 0.0, "no %s records", outcome)
	}
	for _, name := range []string{"sinkworker_batch_records", "sinkworker_transaction_seconds", "sinkworker_pool_acquire_seconds"} {
		assert.Positive(t, sum(after, name, "", ""), name)
	}
	assert.Equal(t, -1.0, sum(after, "sinkworker_dead_letters_total", "", ""), "nothing dead-lettered, so no series")
	assert.Equal(t, 4.0, sum(after, "sinkworker_assigned_partitions", "", ""))
	assert.Equal(t, 4.0, sum(after, "sinkworker_pool_connections", "state", "max_allowed"))
	assert.LessOrEqual(t, sum(after, "sinkworker_pool_connections", "state", "idle")+sum(after, "sinkworker_pool_connections", "state", "in_use"), 4.0)
	assert.Zero(t, sum(after, "sinkworker_lag_records", "", ""), "caught up")
	assert.Len(t, after["sinkworker_lag_records"].GetMetric(), 4, "a lag series per partition")
	assert.Greater(t, sum(after, "sinkworker_last_commit_timestamp_seconds", "partition", "0"), float64(time.Now().Add(-time.Minute).Unix()))
	assert.Equal(t, 1.0, sum(after, "sinkworker_rebalances_total", "kind", "assigned"))
	assert.Equal(t, 1.0, sum(after, "sinkworker_ready", "", ""))
	assert.Equal(t, -1.0, sum(after, "sinkworker_retries_total", "", ""), "no retry, so no retries series")
	assert.Positive(t, sum(after, "sinkworker_kafka_read_bytes_total", "", ""), "franz-go's client metrics (kprom)")
	w.stop()
}

// TestPprofOptIn: Go's profiles are served only when HTTP_PPROF is true.
func TestPprofOptIn(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic := newTopic(t, 1)
	get := func(w *worker, path string) (int, string) {
		resp, err := http.Get("http://" + w.addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	for _, on := range []bool{false, true} {
		table := uniq("t")
		dropTable(t, pool, table)
		env := map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": uniq("g"), "SINK_TABLE_MAP": topic + "=" + table}
		if on {
			env["HTTP_PPROF"] = "true"
		}
		w := startWorker(t, "w1", env)
		require.Eventually(t, func() bool { n, err := w.assigned(); return err == nil && n == 1 }, 30*time.Second, 50*time.Millisecond)
		code, body := get(w, "/debug/pprof/heap?debug=1")
		if on {
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, "heap profile:")
		} else {
			assert.Equal(t, http.StatusNotFound, code, "profiles are opt-in")
		}
		w.stop()
	}
}

// contractMetric is one row of the README's metrics table.
type contractMetric struct {
	typ    dto.MetricType
	labels []string // sorted
}

// readmeMetrics reads the metrics table of the README (rows
// "| `name` | type | `label`, ... |").
func readmeMetrics(t *testing.T) map[string]contractMetric {
	t.Helper()
	f, err := os.Open("../../README.md")
	require.NoError(t, err)
	defer f.Close()
	row := regexp.MustCompile("^\\| `(sinkworker_[a-z_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	out := map[string]contractMetric{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "-" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[m[1]] = contractMetric{typ: types[m[2]], labels: labels}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(out), 10, "the README's metrics table")
	return out
}

// TestMetricsContract runs a worker through what makes every series of the
// README's metrics table appear (records, a bad record, a transaction
// retried after its backend was terminated) and compares each family the
// registry exports with the table: its type and the label names of every
// series. Every sinkworker_ family is in the table (franz-go's own
// sinkworker_kafka_ client series aside), and every row is exported.
func TestMetricsContract(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 1), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	// POOL_MAX_CONNS=auto: its families are in the table too; small batches,
	// so that the adaptive limit decides rounds (of at least 3 batches).
	w := startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "POOL_MAX_CONNS": "auto", "BATCH_MAX_RECORDS": "10"})
	produce(t, topic, workload(100, 20, 0, 1))
	waitApplied(t, pool, group, topic, time.Minute)
	assert.Empty(t, testenv.LogField(w.logs, sink.MsgGroupUncounted, "err"),
		"the worker sees its own session among its group's, so it can count the group's transactions")

	// Hold the partition's offsets row, let the worker's next transaction
	// wait for it, and terminate that backend: a transient error, retried.
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit/Rollback a no-op
	_, err = tx.Exec(t.Context(), `SELECT 1 FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 FOR UPDATE`, group, topic)
	require.NoError(t, err)
	produce(t, topic, append(workload(50, 20, 20, 2), rec{key: "bad", value: []byte(`{"truncated":`)}))
	var pid int32
	require.Eventually(t, func() bool {
		err := pool.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1
AND wait_event_type = 'Lock'`, "sinkworker/"+group+"/w1").Scan(&pid)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "the worker's transaction waits for the offsets row")
	_, err = pool.Exec(t.Context(), "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(t.Context()))
	waitApplied(t, pool, group, topic, time.Minute)
	require.Eventually(t, func() bool {
		m := w.scrape(t)
		return sum(m, "sinkworker_retries_total", "class", "transient") > 0 &&
			sum(m, "sinkworker_dead_letters_total", "class", "decode") == 1 && sum(m, "sinkworker_kafka_commits_total", "", "") > 0 &&
			sum(m, "sinkworker_pool_limit_rounds_total", "", "") > 0
	}, 10*time.Second, 100*time.Millisecond, "a retry, the dead letter (class decode), a Kafka commit and a round of the adaptive limit counted")

	contract := readmeMetrics(t)
	fams := w.scrape(t)
	for name, f := range fams {
		if !strings.HasPrefix(name, "sinkworker_") || strings.HasPrefix(name, "sinkworker_kafka_") && name != "sinkworker_kafka_commits_total" {
			continue
		}
		want, ok := contract[name]
		if !assert.True(t, ok, "%s is exported but not in the README's metrics table", name) {
			continue
		}
		assert.Equal(t, want.typ, f.GetType(), "%s: type", name)
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			assert.Equal(t, want.labels, labels, "%s: label names of a series", name)
		}
	}
	for name := range contract {
		assert.Contains(t, fams, name, "%s is in the README's metrics table but not exported", name)
	}
	w.stop()
}
