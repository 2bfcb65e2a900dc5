package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// changeRows builds the rows decode gives for Debezium events: each a
// write of value (keeping keep), or op alone.
type change struct {
	op    decode.Op
	id    string
	value string
	keep  []string
}

func changeRows(topic string, first int64, changes ...change) []decode.Row {
	rows := make([]decode.Row, len(changes))
	for i, c := range changes {
		rows[i] = decode.Row{Record: &kgo.Record{Topic: topic, Offset: first + int64(i)}, Op: c.op, Keep: c.keep,
			Key: c.id, KeyText: []byte(c.id), KeyObject: []byte(`{"id":` + c.id + `}`)}
		if c.value != "" {
			rows[i].Value = []byte(c.value)
		}
	}
	return rows
}

// TestWriterDebeziumChanges: a TOAST placeholder (Row.Keep) leaves its
// column as it is, in the columns and the jsonb mapping; a truncate in a
// batch empties the table between the rows before and after it.
func TestWriterDebeziumChanges(t *testing.T) {
	db := testPool(t)
	sfx := testenv.Suffix()
	colsTable, jsonbTable := pgx.Identifier{"dbz_cols_" + sfx}, pgx.Identifier{"dbz_jsonb_" + sfx}
	dropTablesAtCleanup(t, db, colsTable, jsonbTable)
	_, err := db.Exec(t.Context(), `CREATE TABLE `+colsTable.Sanitize()+` (id int PRIMARY KEY, name text, bio text)`)
	require.NoError(t, err)

	// Columns mapping.
	c := testConfig(t, decode.ModeUpsert, "sink_offsets", map[string]string{colsTable[0]: colsTable[0]}, colsTable[0])
	c.Mapping = decode.MappingColumns
	cols, err := LoadColumns(t.Context(), db, colsTable, TableOptions{})
	require.NoError(t, err)
	w := NewWriter(c, colsTable[0], 0, cols)
	rows := func(q string) []string {
		t.Helper()
		r, err := db.Query(t.Context(), q)
		require.NoError(t, err)
		out, err := pgx.CollectRows(r, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	_, err = w.Write(t.Context(), db, changeRows(colsTable[0], 0,
		change{decode.OpWrite, "1", `{"id":1,"name":"a","bio":"long"}`, nil},
		change{decode.OpWrite, "2", `{"id":2,"name":"x","bio":"y"}`, nil}), nil, noDeadLetters(t))
	require.NoError(t, err)
	res, err := w.Write(t.Context(), db, changeRows(colsTable[0], 2,
		change{decode.OpWrite, "1", `{"id":1,"name":"b"}`, []string{"bio"}},
		change{decode.OpWrite, "2", `{"id":2,"name":"z","bio":null}`, nil}), nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, 2, res.Written)
	assert.Equal(t, []string{"1 b long", "2 z -"}, rows(`SELECT id || ' ' || name || ' ' || coalesce(bio, '-') FROM `+colsTable.Sanitize()+` ORDER BY id`),
		"the kept column stays, a null sent is written")

	// In one batch: an insert, then an update whose TOASTed column Debezium
	// did not send: the update's row takes the column from the insert,
	// which de-duplication drops.
	_, err = w.Write(t.Context(), db, changeRows(colsTable[0], 100,
		change{decode.OpWrite, "5", `{"id":5,"name":"n","bio":"fresh"}`, nil},
		change{decode.OpWrite, "5", `{"id":5,"name":"m"}`, []string{"bio"}}), nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"5 m fresh"}, rows(`SELECT id || ' ' || name || ' ' || coalesce(bio, '-') FROM `+colsTable.Sanitize()+` WHERE id = 5`),
		"the kept column holds the batch's earlier value, not NULL")

	res, err = w.Write(t.Context(), db, changeRows(colsTable[0], 104,
		change{decode.OpWrite, "3", `{"id":3,"name":"before"}`, nil},
		change{op: decode.OpTruncate},
		change{decode.OpWrite, "4", `{"id":4,"name":"after"}`, nil}), nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Truncated)
	assert.Equal(t, []string{"4 after"}, rows(`SELECT id || ' ' || name FROM `+colsTable.Sanitize()+` ORDER BY id`),
		"the truncate empties what came before it in the batch, and only that")

	// jsonb mapping: the stored value keeps the fields the event lacks.
	cj := testConfig(t, decode.ModeUpsert, "sink_offsets", map[string]string{jsonbTable[0]: jsonbTable[0]}, jsonbTable[0])
	require.NoError(t, EnsureTables(t.Context(), db, cj))
	wj := NewWriter(cj, jsonbTable[0], 0, nil)
	_, err = wj.Write(t.Context(), db, changeRows(jsonbTable[0], 0,
		change{decode.OpWrite, "1", `{"id":1,"name":"a","bio":"long"}`, nil}), nil, noDeadLetters(t))
	require.NoError(t, err)
	_, err = wj.Write(t.Context(), db, changeRows(jsonbTable[0], 1,
		change{decode.OpWrite, "1", `{"id":1,"name":"b"}`, []string{"bio"}}), nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, []string{`{"id": 1, "bio": "long", "name": "b"}`}, rows(`SELECT value::text FROM `+jsonbTable.Sanitize()))
}

// TestRedriveTypedRows: redrive writes a letter as the worker decoded it
// (the key and value in their formats, not the record's bytes), keeps the
// fields of a TOAST placeholder, and never replays a truncate.
func TestRedriveTypedRows(t *testing.T) {
	db := testPool(t)
	table := pgx.Identifier{"dbz_redrive_" + testenv.Suffix()}
	dropTablesAtCleanup(t, db, table)
	c := testConfig(t, decode.ModeUpsert, "sink_offsets", map[string]string{table[0]: table[0]}, table[0])
	require.NoError(t, EnsureTables(t.Context(), db, c))
	_, err := db.Exec(t.Context(), `INSERT INTO `+table.Sanitize()+` (key, value, kafka_partition, kafka_offset) VALUES ('1', '{"id":1,"bio":"long"}', 0, 0),
		('2', '{"id":2}', 0, 0)`)
	require.NoError(t, err)
	conn, err := db.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	r := NewRedriver(c, nil)
	avro := []byte{0, 0, 0, 0, 7, 2, 4} // the record's own bytes: never written as they are
	rows := changeRows(table[0], 5,
		change{decode.OpWrite, "1", `{"id":1,"name":"b"}`, []string{"bio"}},
		change{op: decode.OpTruncate})
	rows[0].Record.Value = avro
	landed, bad, err := r.Apply(t.Context(), conn, nil, rows[0])
	require.NoError(t, err)
	require.Nil(t, bad)
	assert.True(t, landed)
	landed, bad, err = r.Apply(t.Context(), conn, nil, rows[1])
	require.NoError(t, err)
	require.Nil(t, bad)
	assert.False(t, landed, "a truncate is not replayed")
	var got []string
	q, err := db.Query(t.Context(), `SELECT key || ' ' || value::text FROM `+table.Sanitize()+` ORDER BY key`)
	require.NoError(t, err)
	got, err = pgx.CollectRows(q, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{`1 {"id": 1, "bio": "long", "name": "b"}`, `2 {"id": 2}`}, got)
}
