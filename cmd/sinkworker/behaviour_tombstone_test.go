package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestTombstonesSkipped: with SINK_DELETE_ON_TOMBSTONE=false, in upsert
// mode, a tombstone deletes nothing: every key keeps the last value it had,
// and each tombstone is counted as skipped.
func TestTombstonesSkipped(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 2), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	recs := workload(2000, 200, 20, 9)
	keep := map[string]string{} // the last value per key, tombstones ignored
	tombstones := 0
	for _, r := range recs {
		if r.value == nil {
			tombstones++
			continue
		}
		keep[r.key] = string(r.value)
	}
	produce(t, topic, recs)
	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"SINK_DELETE_ON_TOMBSTONE": "false", "BATCH_MAX_RECORDS": "100",
	})
	waitApplied(t, pool, group, topic, time.Minute)
	f := w.scrape(t)
	w.stop()

	skipped := sum(f, "sinkworker_records_total", "outcome", "tombstone_skipped")
	written := sum(f, "sinkworker_records_total", "outcome", "written")
	deduplicated := sum(f, "sinkworker_records_total", "outcome", "deduplicated")
	assert.Equal(t, float64(tombstones), skipped, "every tombstone counted as skipped")
	assert.LessOrEqual(t, sum(f, "sinkworker_records_total", "outcome", "deleted"), 0.0, "nothing deleted")
	assert.Equal(t, float64(len(recs)), skipped+written+deduplicated, "every record skipped, written or superseded")
	assertUpsertTable(t, pool, table, keep)
	assert.Zero(t, dlqCount(t, topic+".dlq"))
}
