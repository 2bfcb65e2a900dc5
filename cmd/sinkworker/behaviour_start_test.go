package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/sink"
)

// TestStartOffset: a newly assigned partition starts at the database's
// next_offset; where the database has no row, at the group's offset
// committed in Kafka; where neither has one, at KAFKA_START_OFFSET
// (earliest: the log start; latest: the log end, so the records produced
// before the worker joined are never applied). Each case seeds the
// offsets, starts one worker in insert mode and reads which offsets
// became rows.
func TestStartOffset(t *testing.T) {
	t.Parallel()
	const before = 100 // records in the log before the worker starts
	for _, tc := range []struct {
		name             string
		dbRow, committed int64 // -1: none
		start            string
		want             int64 // the first offset applied; atEnd: the log end when the worker joined
	}{
		{"database row wins over Kafka's offset", 30, 60, "latest", 30},
		{"Kafka's committed offset without a database row", -1, 60, "latest", 60},
		{"KAFKA_START_OFFSET=earliest without either", -1, -1, "earliest", 0},
		{"KAFKA_START_OFFSET=latest without either", -1, -1, "latest", atEnd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
			dropTable(t, pool, table)
			produce(t, topic, workload(before, 1000, 0, 1))
			if tc.dbRow >= 0 {
				cfg := sink.Config{Topics: []string{topic}, TableMap: map[string]string{topic: table},
					Mode: sink.ModeInsert, Mapping: sink.MappingJSONB, OffsetsTable: "sink_offsets"}
				require.NoError(t, sink.EnsureTables(t.Context(), pool, cfg))
				_, err := pool.Exec(t.Context(), `INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, 0, $3, now())`, group, topic, tc.dbRow)
				require.NoError(t, err)
			}
			if tc.committed >= 0 {
				offsets := kadm.Offsets{}
				offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: tc.committed, LeaderEpoch: -1})
				resp, err := admin(t).CommitOffsets(t.Context(), group, offsets)
				require.NoError(t, err)
				require.NoError(t, resp.Error())
			}

			w := startWorker(t, "w1", map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
				"SINK_TABLE_MAP": topic + "=" + table, "KAFKA_START_OFFSET": tc.start,
			})
			require.Eventually(t, func() bool { n, err := w.assigned(); return err == nil && n == 1 },
				30*time.Second, 50*time.Millisecond)
			produceUntilCaughtUp(t, pool, group, topic)
			w.stop()

			first, rows, last := offsetSpan(t, pool, table)
			end := endOffsets(t, topic)
			if tc.want == atEnd {
				assert.GreaterOrEqual(t, first, int64(before), "no record produced before the worker joined is applied")
			} else {
				assert.Equal(t, tc.want, first, "the first offset applied")
			}
			assert.Equal(t, end-1, last, "applied up to the log end")
			assert.Equal(t, last-first+1, rows, "every offset from the start on, once")
		})
	}
}

// atEnd stands for "the log end when the worker joined" in TestStartOffset.
const atEnd = -1

// produceUntilCaughtUp produces 10 records at a time until the worker has
// applied everything in the topic. A worker starting at the log end reads
// that end some moment after its assignment: records produced before then
// are skipped by design, the later ones land.
func produceUntilCaughtUp(t *testing.T, pool *pgxpool.Pool, group, topic string) {
	t.Helper()
	for i := range 20 {
		produce(t, topic, workload(10, 1000, 0, uint64(i+2)))
		end := endOffsets(t, topic)
		caughtUp := func() bool {
			n, err := appliedOffsets(t.Context(), pool, group, topic)
			return err == nil && n == end
		}
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if caughtUp() {
				return
			}
		}
	}
	t.Fatalf("the worker never caught up with %s", topic)
}

// offsetSpan is the lowest and highest kafka_offset of an insert-mode
// table and its row count.
func offsetSpan(t *testing.T, pool *pgxpool.Pool, table string) (first, rows, last int64) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(), fmt.Sprintf(
		`SELECT coalesce(min(kafka_offset), -1), count(*), coalesce(max(kafka_offset), -1) FROM %s`,
		pgx.Identifier{table}.Sanitize())).Scan(&first, &rows, &last))
	return first, rows, last
}
