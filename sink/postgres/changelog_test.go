package postgres

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// debeziumRecord reads a change event Debezium 3.6.1 wrote
// (testdata/debezium, see its README) as a record of topic.
func debeziumRecord(t *testing.T, topic, name string) *kgo.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "debezium", name+".json"))
	require.NoError(t, err)
	var f struct {
		Offset     int64
		Key, Value json.RawMessage
	}
	require.NoError(t, json.Unmarshal(b, &f))
	r := &kgo.Record{Topic: topic, Offset: f.Offset}
	if len(f.Key) > 0 && string(f.Key) != "null" {
		r.Key = f.Key
	}
	if len(f.Value) > 0 && string(f.Value) != "null" {
		r.Value = f.Value
	}
	return r
}

// TestWriterDebeziumChangeLog: in insert mode with SINK_ENVELOPE=debezium
// the table is a change log: Debezium's own events (snapshot read,
// insert, update, delete, an update with an unchanged TOASTed column, a
// truncate) each become one row with op, before, after and the source
// position (lsn), in the jsonb mapping and in the columns mapping with
// the table created from the events' schema. The truncate is a row like
// the others, also with SINK_TRUNCATE=true: nothing is emptied. The
// tombstone after the delete is not a change and writes nothing.
func TestWriterDebeziumChangeLog(t *testing.T) {
	db := testPool(t)
	type logged struct {
		Offset int64
		Op     string
		Before string // before's id, or "-" when before is null
		After  string // after's id, or "-"
		LSN    string // source.lsn
	}
	want := []logged{
		{0, "r", "-", "1", "26376784"},
		{1, "c", "-", "2", "26376824"},
		{2, "u", "-", "2", "26377280"},
		{3, "d", "2", "-", "26377632"},
		{6, "u", "-", "3", "26391896"},
		{7, "t", "-", "-", "26394984"},
	}
	for _, mapping := range []decode.Mapping{decode.MappingJSONB, decode.MappingColumns} {
		t.Run(string(mapping), func(t *testing.T) {
			table := pgx.Identifier{"dbz_log_" + string(mapping) + "_" + testenv.Suffix()}
			topic := table[0]
			dropTablesAtCleanup(t, db, table)
			c := testConfig(t, decode.ModeInsert, "sink_offsets", map[string]string{topic: table[0]}, topic)
			c.Mapping = mapping
			var cols *Columns
			if mapping == decode.MappingColumns {
				c.CreateTables = true
				var err error
				cols, err = LoadColumns(t.Context(), db, table, TableOptions{Keyless: true, Create: true})
				require.NoError(t, err)
				require.True(t, cols.Absent(), "the change log is created from the events' schema")
			} else {
				require.NoError(t, EnsureTables(t.Context(), db, c))
			}
			dec := decode.Config{Mode: decode.ModeInsert, Mapping: mapping, MaxRecordBytes: 4 << 20, DeleteOnTombstone: true,
				KeyFormat: decode.FormatConnectJSON, ValueFormat: decode.FormatConnectJSON,
				Envelope: decode.EnvelopeDebezium, Truncate: true}
			w := NewWriter(c, topic, 0, cols)
			for _, batch := range [][]string{
				{"snapshot-read", "insert", "update", "delete", "delete-tombstone"},
				{"update-toast-unavailable", "truncate"},
			} {
				records := make([]*kgo.Record, len(batch))
				for i, name := range batch {
					records[i] = debeziumRecord(t, topic, name)
				}
				rows, bad, err := dec.Decode(t.Context(), records)
				require.NoError(t, err)
				require.Empty(t, bad)
				res, err := w.Write(t.Context(), db, rows, bad, noDeadLetters(t))
				require.NoError(t, err)
				assert.Zero(t, res.Truncated, "a change log is never truncated")
			}

			row := `value->>'op', coalesce(value->'before'->>'id', '-'), coalesce(value->'after'->>'id', '-'), value->'source'->>'lsn'`
			if mapping == decode.MappingColumns {
				assert.Equal(t, "jsonb", columnTypes(t, db, table)["before"], "before, after and source are records: jsonb")
				row = `op, coalesce(before->>'id', '-'), coalesce(after->>'id', '-'), source->>'lsn'`
			}
			q, err := db.Query(t.Context(), `SELECT kafka_offset, `+row+` FROM `+table.Sanitize()+` ORDER BY kafka_offset`)
			require.NoError(t, err)
			got, err := pgx.CollectRows(q, pgx.RowToStructByPos[logged])
			require.NoError(t, err)
			assert.Equal(t, want, got, "one row per change, the truncate included, with op, before, after and lsn")

			var kept string
			require.NoError(t, db.QueryRow(t.Context(), `SELECT `+map[decode.Mapping]string{
				decode.MappingJSONB: `value->'after'->>'big_text'`, decode.MappingColumns: `after->>'big_text'`}[mapping]+
				` FROM `+table.Sanitize()+` WHERE kafka_offset = 6`).Scan(&kept))
			assert.Equal(t, "__debezium_unavailable_value", kept, "the log holds the event as Debezium sent it")
		})
	}
}
