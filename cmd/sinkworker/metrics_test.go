package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	recs := workload(20_000, 2_000, 5, 3)
	produce(t, topic, recs)
	waitApplied(t, pool, group, topic, time.Minute)
	require.Eventually(t, func() bool {
		return sum(w.scrape(t), "sinkworker_kafka_commits_total", "", "") > 0
	}, 10*time.Second, 100*time.Millisecond, "offsets copied to Kafka")
	after := w.scrape(t)

	written, deleted := sum(after, "sinkworker_records_total", "outcome", "written"), sum(after, "sinkworker_records_total", "outcome", "deleted")
	deduplicated := sum(after, "sinkworker_records_total", "outcome", "deduplicated")
	assert.Positive(t, written)
	assert.Positive(t, deduplicated, "repeated keys within a batch")
	var tombstones float64
	for _, r := range recs {
		if r.value == nil {
			tombstones++
		}
	}
	assert.LessOrEqual(t, deleted, tombstones)
	assert.LessOrEqual(t, written+deleted+deduplicated, float64(len(recs)))
	assert.GreaterOrEqual(t, written+deleted+deduplicated+tombstones, float64(len(recs)),
		"every record is written, deduplicated or a tombstone")
	for _, name := range []string{"sinkworker_batch_records", "sinkworker_transaction_seconds", "sinkworker_pool_acquire_seconds"} {
		assert.Positive(t, sum(after, name, "", ""), name)
	}
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
