package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// More format tests, in the style of formats_test.go: text values
// (SINK_VALUE_FORMAT=string), a schema id deleted from the registry,
// SINK_PRIMARY_KEY, and a type change that halts the partition, against
// the real broker, registry and PostgreSQL.

// assertRowPerRecord checks that the insert-mode table holds one row per
// record of topic: in every partition, each offset below the end once.
func assertRowPerRecord(t *testing.T, pool *pgxpool.Pool, table, topic string) {
	t.Helper()
	ends := partitionEnds(t, topic)
	var want []string
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		if ends[p] > 0 {
			want = append(want, fmt.Sprintf("%s | %d | %d | 0 | %d", topic, p, ends[p], ends[p]-1))
		}
	}
	assert.Equal(t, want, textRows(t, pool, `SELECT kafka_topic, kafka_partition::text, count(*)::text,
	min(kafka_offset)::text, max(kafka_offset)::text FROM `+pgx.Identifier{table}.Sanitize()+` t
	GROUP BY t.kafka_topic, t.kafka_partition ORDER BY t.kafka_partition`), "one row per record, by its coordinates")
}

// batchesOver is how many batches of more than n records (a bucket bound
// of sinkworker_batch_records: 1, 4, 16, 64, ...) the worker wrote.
func batchesOver(t *testing.T, w *worker, n float64) uint64 {
	t.Helper()
	fam, ok := w.scrape(t)["sinkworker_batch_records"]
	require.True(t, ok, "sinkworker_batch_records")
	h := fam.GetMetric()[0].GetHistogram()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == n {
			return h.GetSampleCount() - b.GetCumulativeCount()
		}
	}
	t.Fatalf("sinkworker_batch_records has no bucket %v", n)
	return 0
}

// textValues are values SINK_VALUE_FORMAT=string must store verbatim: not
// JSON, quotes and backslashes, COPY's escapes and its null marker \N,
// unicode, the word null, text that only looks like JSON (jsonb would
// reorder it), and the empty value (not a null).
var textValues = []string{
	`plain text, not JSON`,
	`she said "hi" and \ left \"twice\"`,
	`\N`,
	"tab\there, newline\nthere, CR\r\nend",
	`naïve café, 日本語, emoji 🚀, עברית`,
	`{"b": 1,   "a": [1, 2]}`,
	`null`,
	"  padded  ",
	"",
}

// textTable creates the table of SINK_VALUE_FORMAT=string in mode before
// the worker starts, as a user would: its columns in another order than
// the worker's, a text value column and a column of the user's own with a
// default.
func textTable(t *testing.T, pool *pgxpool.Pool, table, mode string) {
	t.Helper()
	id := pgx.Identifier{table}.Sanitize()
	sql := `CREATE TABLE ` + id + ` (mine text DEFAULT 'kept', updated_at timestamptz, kafka_timestamp timestamptz,
	kafka_offset bigint, kafka_partition int, value text NOT NULL, key text PRIMARY KEY)`
	if mode == "insert" {
		sql = `CREATE TABLE ` + id + ` (mine text DEFAULT 'kept', value text, key text, kafka_timestamp timestamptz,
	kafka_offset bigint NOT NULL, kafka_partition int NOT NULL, kafka_topic text NOT NULL,
	PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset))`
	}
	_, err := pool.Exec(t.Context(), sql)
	require.NoError(t, err)
}

// TestFormatStringValues: SINK_VALUE_FORMAT=string stores each value as
// the text it is, byte for byte, in the value column of a table the worker
// creates (value text) or of one that exists, in upsert and insert mode.
// In insert mode the first batch is large enough to be written with COPY
// (whose text format escapes and null marker the values test) and the
// second is not. A value that is not UTF-8 or holds a NUL is
// dead-lettered (class decode); the rest lands. Upsert replaces and
// deletes by key; insert keeps a row per record (a tombstone's value
// null).
func TestFormatStringValues(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"upsert", "insert"} {
		for _, table := range []string{"created", "existing"} {
			t.Run(mode+"/"+table, func(t *testing.T) {
				t.Parallel()
				testStringValues(t, mode, table == "existing")
			})
		}
	}
}

func testStringValues(t *testing.T, mode string, existing bool) {
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("fmt_string"), ownGroup(t, pool)
	dropTable(t, pool, table)
	if existing {
		textTable(t, pool, table, mode)
	}
	text := func(key, value string) rec { return rec{key: key, value: append([]byte{}, value...)} }
	var first []rec
	for i, v := range textValues {
		first = append(first, text(fmt.Sprintf("k-%d", i), v))
	}
	bad := map[string]string{"not utf-8": "not valid UTF-8", "nul": "NUL byte"} // key: reason word
	first = append(first, text("not utf-8", "caf\xe9 \xff"), text("nul", "a\x00b"))
	for i := len(first); i < 100; i++ {
		first = append(first, text(fmt.Sprintf("k-%d", i), fmt.Sprintf(`filler %d \ "%d"`, i, i)))
	}
	produce(t, topic, first)
	w := startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "SINK_VALUE_FORMAT": "string", "SINK_MODE": mode})
	waitApplied(t, pool, group, topic, 30*time.Second)
	if mode == "insert" {
		// COPY writes an insert-mode batch of 64 rows or more (copyMinRows):
		// the first batch, every record produced before the worker started.
		require.Positive(t, batchesOver(t, w, 64), "no batch was large enough for COPY")
	}
	second := []rec{text("k-1", `second "take" \ here`), {key: "k-2"}, text("k-new", "ünïcödé\tagain")}
	produce(t, topic, second)
	waitApplied(t, pool, group, topic, 30*time.Second)
	w.stop()

	ident := pgx.Identifier{table}.Sanitize()
	want := textRowsOf(mode, append(first, second...), bad)
	if mode == "upsert" {
		assert.Equal(t, want, textRows(t, pool, `SELECT key, value FROM `+ident+` ORDER BY key COLLATE "C"`),
			"k-1 replaced, k-2 deleted, every value verbatim")
	} else {
		assert.Equal(t, want, textRows(t, pool, `SELECT kafka_offset::text, key, value FROM `+ident+` t ORDER BY t.kafka_offset`),
			"a row per record, every value verbatim, the tombstone's null")
	}
	if existing {
		var mine int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+ident+` WHERE mine = 'kept'`).Scan(&mine))
		assert.Equal(t, len(want), mine, "the user's own column keeps its default")
	} else {
		cols := []string{"key text not null", "value text not null", "kafka_partition integer", "kafka_offset bigint",
			"kafka_timestamp timestamp with time zone", "updated_at timestamp with time zone"}
		if mode == "insert" {
			cols = []string{"kafka_topic text not null", "kafka_partition integer not null", "kafka_offset bigint not null",
				"key text", "value text", "kafka_timestamp timestamp with time zone"}
		}
		assert.Equal(t, cols, columnTypes(t, pool, table), "value is a text column")
	}
	dead := deadLetters(t, topic)
	require.Len(t, dead, len(bad))
	for _, d := range dead {
		assert.Equal(t, decode.ClassDecode, d.Class, d.Message)
		assert.Contains(t, d.Message, bad[string(d.Key)], "%s: the reason names the cause", d.Key)
	}
}

// textRowsOf is the table of SINK_VALUE_FORMAT=string after recs (one
// partition, from offset 0), those whose key is in bad rejected: in upsert
// mode "key | value" by key, the last value of each key, tombstoned keys
// absent; in insert mode "offset | key | value" for every record, a
// tombstone's value NULL.
func textRowsOf(mode string, recs []rec, bad map[string]string) []string {
	var want []string
	if mode == "upsert" {
		var good []rec
		for _, r := range recs {
			if _, ok := bad[r.key]; !ok {
				good = append(good, r)
			}
		}
		model := upsertModel(good)
		for _, k := range slices.Sorted(maps.Keys(model)) {
			want = append(want, k+" | "+model[k])
		}
		return want
	}
	for offset, r := range recs {
		if _, ok := bad[r.key]; ok {
			continue
		}
		v := "NULL"
		if r.value != nil {
			v = string(r.value)
		}
		want = append(want, fmt.Sprintf("%d | %s | %s", offset, r.key, v))
	}
	return want
}

// TestFormatDeletedSchemaID: records carry the id of a schema whose
// subject is deleted, soft then permanently as Confluent's API does, before
// the worker first sees the id (it caches decoders by id). The registry no
// longer knows the id: those records are dead-lettered with class schema
// and a reason naming the id and the cause; the rest lands.
//
// Apicurio 3.3.3 (scripts/services) caches its answers to GET
// /schemas/ids/{id}: an id that was read by id before its subject was
// deleted keeps being served for a while after the hard delete, and
// records of it would decode. Nothing reads this id before the delete.
func TestFormatDeletedSchemaID(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("fmt_deleted"), ownGroup(t, pool)
	dropTable(t, pool, table)
	kept := register(t, topic+"-value", sr.TypeAvro, wireAvro)
	// A text of its own (the doc): the registry's ids are per content, and
	// no other subject may hold this one.
	doomedSubject := topic + "-doomed"
	doomed := register(t, doomedSubject, sr.TypeAvro, `{"type":"record","name":"Gone","doc":"`+topic+`",
	 "fields":[{"name":"id","type":"long"},{"name":"what","type":"string"}]}`)
	require.NotEqual(t, kept, doomed)
	var recs []rec
	for i := range 6 {
		if i%2 == 0 {
			recs = append(recs, rec{key: fmt.Sprintf("kept-%d", i), value: frame(kept, avSome(avLong(nil, int64(i)), "ok"))})
		} else {
			recs = append(recs, rec{key: fmt.Sprintf("gone-%d", i), value: frame(doomed, avStr(avLong(nil, int64(i)), "gone"))})
		}
	}
	produce(t, topic, recs)

	cl, err := sr.NewClient(sr.URLs(registryURL(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	versions, err := cl.DeleteSubject(ctx, doomedSubject, sr.SoftDelete)
	require.NoError(t, err, "soft delete")
	assert.Equal(t, []int{1}, versions)
	versions, err = cl.DeleteSubject(ctx, doomedSubject, sr.HardDelete)
	require.NoError(t, err, "hard delete")
	assert.Equal(t, []int{1}, versions)
	_, err = cl.SchemaByID(ctx, doomed)
	var re *sr.ResponseError
	require.ErrorAs(t, err, &re, "the registry no longer serves schema id %d", doomed)
	require.Equal(t, http.StatusNotFound, re.StatusCode)

	w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{"SINK_VALUE_FORMAT": "avro"}))
	waitApplied(t, pool, group, topic, 30*time.Second)
	w.stop()
	dead := deadLetters(t, topic)
	var keys []string
	for _, d := range dead {
		keys = append(keys, string(d.Key))
		assert.Equal(t, decode.ClassSchema, d.Class, d.Message)
		assert.Contains(t, d.Message, fmt.Sprintf("schema id %d: not in the registry (unknown or deleted)", doomed))
	}
	assert.Equal(t, []string{"gone-1", "gone-3", "gone-5"}, keys)
	assert.Equal(t, []string{"kept-0 | 0 | ok", "kept-2 | 2 | ok", "kept-4 | 4 | ok"},
		textRows(t, pool, `SELECT key, value->>'id', value->>'note' FROM `+pgx.Identifier{table}.Sanitize()+
			` t ORDER BY t.kafka_offset`))
}

// TestFormatPrimaryKeyFromValue: SINK_PRIMARY_KEY=id with a typed value
// and a key that holds no id (an unrelated string key, or none): the
// created table's primary key is the value's id, and a later record of an
// id replaces its row whatever its key, within a batch and across batches.
func TestFormatPrimaryKeyFromValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, amount string
		schema               string
		typ                  sr.SchemaType
		body                 func(payment) []byte
		key                  func(n int) []byte // the key of the n-th record
		env                  map[string]string
	}{
		{"avro, string key", "avro", "numeric(10,2)", paymentAvro, sr.TypeAvro, payment.avro,
			func(n int) []byte { return fmt.Appendf(nil, "order-%d", n) }, map[string]string{"SINK_KEY_FORMAT": "string"}},
		{"json-schema, no key", "json-schema", "numeric", paymentJSONSchema, sr.TypeJSON, payment.json,
			func(int) []byte { return nil }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 1), uniq("fmt_valuekey"), ownGroup(t, pool)
			dropTable(t, pool, table)
			id := register(t, topic+"-value", tc.typ, tc.schema)
			n := 0
			record := func(p payment) *kgo.Record {
				n++
				return &kgo.Record{Key: tc.key(n), Value: frame(id, tc.body(p))}
			}
			var model []payment
			var recs []*kgo.Record
			for i := range 6 {
				model = append(model, paymentOf(i))
				recs = append(recs, record(model[i]))
			}
			model[2].name, model[2].cents = "again", 4242
			recs = append(recs, record(model[2]))
			produceRaw(t, topic, recs...)
			env := map[string]string{"SINK_VALUE_FORMAT": tc.format, "SINK_MAPPING": "columns", "SINK_MODE": "upsert",
				"SINK_PRIMARY_KEY": "id"}
			for k, v := range tc.env {
				env[k] = v
			}
			w := startWorker(t, "w1", formatEnv(t, topic, table, group, env))
			waitApplied(t, pool, group, topic, 30*time.Second)
			assert.Equal(t, paymentColumns("upsert", tc.amount, "date"), columnTypes(t, pool, table))
			assert.Equal(t, []string{"id"}, primaryKey(t, pool, table))
			assert.Equal(t, paymentRows(model...), textRows(t, pool, paymentQuery(table)), "id 2 replaced within the batch")

			model[4].name, model[4].note = "later", nil
			produceRaw(t, topic, record(model[4]))
			waitApplied(t, pool, group, topic, 30*time.Second)
			w.stop()
			assert.Equal(t, paymentRows(model...), textRows(t, pool, paymentQuery(table)), "id 4 replaced by a later batch")
			assert.Zero(t, dlqCount(t, topic+".dlq"))
		})
	}
}

// TestFormatTypeChangeHalts: as TestFormatTypeChange, v2 of a schema turns
// a bigint field into a string, but more v2 records whose text is not a
// number come in a row than ERROR_SYSTEMIC_REJECTS: the rejection is
// systemic, not the records'. The partition halts (not ready, the halted
// gauge), nothing of them is dead-lettered, the applied offset stays
// before them, no value is coerced and the column is never retyped.
func TestFormatTypeChangeHalts(t *testing.T) {
	t.Parallel()
	r := newRetype(t, "fmt_retype_halt")
	recs, want := r.firstV1(20)
	produce(t, r.topic, recs)
	const systemic = 5
	w := startWorker(t, "w1", formatEnv(t, r.topic, r.table, r.group, map[string]string{
		"SINK_KEY_FORMAT": "avro", "SINK_VALUE_FORMAT": "avro", "SINK_MAPPING": "columns", "SINK_SCHEMA_EVOLUTION": "add-columns",
		"ERROR_SYSTEMIC_REJECTS": fmt.Sprint(systemic),
	}))
	waitApplied(t, r.pool, r.group, r.topic, 30*time.Second)

	recs = nil
	for i := 20; i < 20+2*systemic; i++ {
		recs = append(recs, r.v2Rec(i, fmt.Sprintf("lots-%d", i)))
	}
	recs = append(recs, r.v1Rec(30, 300))
	produce(t, r.topic, recs)
	require.Eventually(t, func() bool {
		return w.series(t, "sinkworker_halted_partitions", "", "") == 1
	}, 30*time.Second, 100*time.Millisecond, "the partition halts")

	assert.Equal(t, http.StatusServiceUnavailable, w.readyz(), "a halted partition is not ready")
	applied, err := appliedOffsets(t.Context(), r.pool, r.group, r.topic)
	require.NoError(t, err)
	assert.EqualValues(t, 20, applied, "no offset moves past the v2 records, neither applied nor dead-lettered")
	assert.Contains(t, columnTypes(t, r.pool, r.table), "qty bigint", "never retyped")
	assert.Equal(t, want, r.rows(t), "nothing coerced, nothing after the halt")
	assert.Zero(t, dlqCount(t, r.topic+".dlq"), "a systemic rejection dead-letters nothing")
	logs, err := os.ReadFile(w.logs)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(logs), "systemic database rejection"), "halted as systemic")
	assert.Contains(t, string(logs), "22P02", "the log names the SQLSTATE")
	assert.NotContains(t, string(logs), "lots-", "the database's message quotes the value: never in a log line")
}
