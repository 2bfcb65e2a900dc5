package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/dlq"
)

// These tests write dead letters themselves, as the worker writes them, to
// put precise cases in front of `sinkworker redrive`: rows from later
// offsets, keys that moved partitions, letters of other topics, a
// dead-letter topic written transactionally or trimmed.

// letter is a dead letter for the record of topic at partition/offset; a
// nil value is a tombstone.
type letter struct {
	topic     string
	partition int32
	offset    int64
	key       string
	value     []byte
	dlqPart   int32 // the dead-letter topic's partition it goes to
}

func (l letter) record(dlqTopic string) *kgo.Record {
	return &kgo.Record{Topic: dlqTopic, Partition: l.dlqPart, Key: []byte(l.key), Value: l.value, Headers: []kgo.RecordHeader{
		{Key: dlq.HeaderTopic, Value: []byte(l.topic)},
		{Key: dlq.HeaderPartition, Value: strconv.AppendInt(nil, int64(l.partition), 10)},
		{Key: dlq.HeaderOffset, Value: strconv.AppendInt(nil, l.offset, 10)},
		{Key: dlq.HeaderClass, Value: []byte("constraint")},
		{Key: dlq.HeaderMessage, Value: []byte("rejected by the test")},
	}}
}

// produceLetters writes letters to dlqTopic, in order, and waits for the acks.
func produceLetters(t *testing.T, dlqTopic string, letters ...letter) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	for _, l := range letters {
		require.NoError(t, cl.ProduceSync(t.Context(), l.record(dlqTopic)).FirstErr())
	}
}

// jsonbUpsertTable creates the table SINK_MAPPING=jsonb upserts into,
// dropped after the test.
func jsonbUpsertTable(t *testing.T, pool *pgxpool.Pool) (table, ident string) {
	t.Helper()
	table = uniq("t")
	dropTable(t, pool, table)
	ident = pgx.Identifier{table}.Sanitize()
	_, err := pool.Exec(t.Context(), `CREATE TABLE `+ident+` (key text PRIMARY KEY, value jsonb NOT NULL,
kafka_partition int, kafka_offset bigint, kafka_timestamp timestamptz, updated_at timestamptz)`)
	require.NoError(t, err)
	return table, ident
}

// rows is the table's value->>'n' by key (column n in columns mapping).
func rows(t *testing.T, pool *pgxpool.Pool, query string) map[string]string {
	t.Helper()
	r, err := pool.Query(t.Context(), query)
	require.NoError(t, err)
	out := map[string]string{}
	var k, n string
	_, err = pgx.ForEachRow(r, []any{&k, &n}, func() error { out[k] = n; return nil })
	require.NoError(t, err)
	return out
}

// TestRedriveLeavesNewerRowsAlone (SINK_MAPPING=jsonb, upsert): a redriven
// tombstone or value never deletes or replaces a row written from a later
// offset of its partition, nor a row from another partition (the key moved:
// the two cannot be ordered); it does replace or delete a row from an
// earlier offset. A letter of a topic outside KAFKA_TOPICS, in a shared
// DLQ_TOPIC, is skipped and counted.
func TestRedriveLeavesNewerRowsAlone(t *testing.T) {
	pool := db(t)
	topic, dlqTopic, group := uniq("src"), newTopic(t, 1), uniq("g")
	table, ident := jsonbUpsertTable(t, pool)
	_, err := pool.Exec(t.Context(), `INSERT INTO `+ident+` (key, value, kafka_partition, kafka_offset) VALUES
	('newer', '{"n":10}', 0, 10), ('newer-up', '{"n":10}', 0, 10), ('older', '{"n":3}', 0, 3),
	('moved', '{"n":1}', 1, 1), ('moved-up', '{"n":1}', 1, 1)`)
	require.NoError(t, err)
	produceLetters(t, dlqTopic,
		letter{topic: topic, offset: 5, key: "newer"},                              // tombstone older than the row
		letter{topic: topic, offset: 5, key: "newer-up", value: []byte(`{"n":5}`)}, // value older than the row
		letter{topic: topic, offset: 7, key: "older"},                              // tombstone newer than the row: deletes
		letter{topic: topic, offset: 8, key: "moved"},                              // the row is from partition 1
		letter{topic: topic, offset: 8, key: "moved-up", value: []byte(`{"n":8}`)},
		letter{topic: topic, offset: 9, key: "absent", value: []byte(`{"n":9}`)}, // no row: lands
		letter{topic: uniq("other"), offset: 1, key: "alien", value: []byte(`{"n":1}`)},
	)

	out, _, code := redriveCmd(t, map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "DLQ_TOPIC": dlqTopic})
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "read 7, landed 2, skipped 4 (already there or newer), other topics 1, failed again 0")
	assert.Equal(t, map[string]string{"newer": "10", "newer-up": "10", "moved": "1", "moved-up": "1", "absent": "9"},
		rows(t, pool, `SELECT key, value->>'n' FROM `+ident))
}

// TestRedriveColumns (SINK_MAPPING=columns, upsert): with kafka_partition
// and kafka_offset columns, a redriven letter replaces or deletes only a
// row from an earlier offset of its partition; without them, order cannot
// be told, so a letter only inserts a key that is absent and never deletes,
// and the log says why, once per table.
func TestRedriveColumns(t *testing.T) {
	pool := db(t)
	ordered, unordered, dlqTopic, group := uniq("src"), uniq("src"), newTopic(t, 1), uniq("g")
	oTable, uTable := uniq("ordered"), uniq("unordered")
	dropTable(t, pool, oTable)
	dropTable(t, pool, uTable)
	oIdent, uIdent := pgx.Identifier{oTable}.Sanitize(), pgx.Identifier{uTable}.Sanitize()
	_, err := pool.Exec(t.Context(), `CREATE TABLE `+oIdent+` (id text PRIMARY KEY, n int, kafka_partition int, kafka_offset bigint);
INSERT INTO `+oIdent+` VALUES ('a', 10, 0, 10), ('b', 3, 0, 3), ('c', 1, 0, 1);
CREATE TABLE `+uIdent+` (id text PRIMARY KEY, n int);
INSERT INTO `+uIdent+` VALUES ('a', 10), ('b', 3)`)
	require.NoError(t, err)
	produceLetters(t, dlqTopic,
		letter{topic: ordered, offset: 5, key: "a", value: []byte(`{"n":5}`)}, // older than the row
		letter{topic: ordered, offset: 6, key: "a"},                           // older tombstone
		letter{topic: ordered, offset: 7, key: "b", value: []byte(`{"n":7}`)}, // newer: replaces
		letter{topic: ordered, offset: 8, key: "c"},                           // newer tombstone: deletes
		letter{topic: ordered, offset: 9, key: "d", value: []byte(`{"n":9}`)}, // absent: lands
		letter{topic: unordered, offset: 5, key: "a", value: []byte(`{"n":5}`)},
		letter{topic: unordered, offset: 6, key: "b"},
		letter{topic: unordered, offset: 9, key: "d", value: []byte(`{"n":9}`)},
	)

	out, log, code := redriveCmd(t, map[string]string{"KAFKA_TOPICS": ordered + "," + unordered, "KAFKA_GROUP": group,
		"SINK_MAPPING": "columns", "SINK_TABLE_MAP": ordered + "=" + oTable + "," + unordered + "=" + uTable, "DLQ_TOPIC": dlqTopic})
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "read 8, landed 4, skipped 4 (already there or newer), other topics 0, failed again 0")
	assert.Equal(t, map[string]string{"a": "10/10", "b": "7/7", "d": "9/9"},
		rows(t, pool, `SELECT id, n || '/' || kafka_offset FROM `+oIdent))
	assert.Equal(t, map[string]string{"a": "10", "b": "3", "d": "9"},
		rows(t, pool, `SELECT id, n::text FROM `+uIdent))
	assert.Equal(t, 1, strings.Count(log, "cannot tell a newer row"), "one warning for the unordered table:\n%s", log)
}

// TestRedriveReadsCommittedLetters: a dead-letter topic written by a
// transactional producer ends with a transaction marker, not a record;
// redrive still ends, and the letters of an aborted transaction never land.
func TestRedriveReadsCommittedLetters(t *testing.T) {
	pool := db(t)
	topic, dlqTopic, group := uniq("src"), newTopic(t, 1), uniq("g")
	table, ident := jsonbUpsertTable(t, pool)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(uniq("txn")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	for _, tx := range []struct {
		l      letter
		commit kgo.TransactionEndTry
	}{
		{letter{topic: topic, offset: 1, key: "committed", value: []byte(`{"n":1}`)}, kgo.TryCommit},
		{letter{topic: topic, offset: 2, key: "aborted", value: []byte(`{"n":2}`)}, kgo.TryAbort},
	} {
		require.NoError(t, cl.BeginTransaction())
		require.NoError(t, cl.ProduceSync(t.Context(), tx.l.record(dlqTopic)).FirstErr())
		require.NoError(t, cl.EndTransaction(t.Context(), tx.commit))
	}

	out, _, code := redriveCmd(t, map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "DLQ_TOPIC": dlqTopic})
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "read 1, landed 1, skipped 0 (already there or newer), other topics 0, failed again 0")
	assert.Equal(t, map[string]string{"committed": "1"}, rows(t, pool, `SELECT key, value->>'n' FROM `+ident))
}

// TestRedriveEndsWhenLettersAreDeleted: records deleted from the
// dead-letter topic (retention, DeleteRecords) are not waited for: a
// partition whose letters are all gone ends at once, and one whose first
// letters are gone redrives the rest.
func TestRedriveEndsWhenLettersAreDeleted(t *testing.T) {
	pool := db(t)
	topic, dlqTopic, group := uniq("src"), newTopic(t, 2), uniq("g")
	table, ident := jsonbUpsertTable(t, pool)
	produceLetters(t, dlqTopic,
		letter{topic: topic, offset: 1, key: "gone-1", value: []byte(`{"n":1}`)},
		letter{topic: topic, offset: 2, key: "gone-2", value: []byte(`{"n":2}`)},
		letter{topic: topic, offset: 3, key: "gone-3", value: []byte(`{"n":3}`), dlqPart: 1},
		letter{topic: topic, offset: 4, key: "kept", value: []byte(`{"n":4}`), dlqPart: 1},
	)
	var trim kadm.Offsets
	trim.AddOffset(dlqTopic, 0, 2, -1) // all of partition 0
	trim.AddOffset(dlqTopic, 1, 1, -1) // the first letter of partition 1
	resp, err := admin(t).DeleteRecords(t.Context(), trim)
	require.NoError(t, err)
	resp.Each(func(r kadm.DeleteRecordsResponse) { require.NoError(t, r.Err) })

	out, _, code := redriveCmd(t, map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "DLQ_TOPIC": dlqTopic})
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "read 1, landed 1, skipped 0 (already there or newer), other topics 0, failed again 0")
	assert.Equal(t, map[string]string{"kept": "4"}, rows(t, pool, `SELECT key, value->>'n' FROM `+ident))
}
