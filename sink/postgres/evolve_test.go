package postgres

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// columnTypes is the table's columns with their types, as format_type
// spells them.
func columnTypes(t *testing.T, q Querier, table pgx.Identifier) map[string]string {
	t.Helper()
	rows, err := q.Query(t.Context(), `SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table.Sanitize())
	require.NoError(t, err)
	out := map[string]string{}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error { out[name] = typ; return nil })
	require.NoError(t, err)
	return out
}

var paymentShape = &format.Shape{Columns: []format.Column{
	{Name: "id", Type: "bigint"}, {Name: "amount", Type: "numeric(10,2)"}, {Name: "created", Type: "timestamptz"},
	{Name: "tags", Type: "text[]", Nullable: true}, {Name: "Mixed Case", Type: "text", Nullable: true},
}}

// TestEnsureCreatesTypedTable: a missing table is created from the first
// value schema, keyed by the key schema's fields, and the batch's typed
// values land exactly through jsonb_populate_record.
func TestEnsureCreatesTypedTable(t *testing.T) {
	db := testPool(t)
	table := pgx.Identifier{"evolve_create_" + testenv.Suffix()}
	topic := table[0] // a topic of its own: its offsets rows are new
	dropTablesAtCleanup(t, db, table)
	c := testConfig(t, decode.ModeUpsert, "sink_offsets", map[string]string{topic: table[0]}, topic)
	c.Mapping, c.CreateTables = decode.MappingColumns, true
	cols, err := LoadColumns(t.Context(), db, table, TableOptions{Create: true})
	require.NoError(t, err)
	require.True(t, cols.Absent())

	// A first batch of tombstones only: nothing to create the table from,
	// nothing to delete; skipped and counted, the offset moves on.
	w := NewWriter(c, topic, 0, cols)
	res, err := w.Write(t.Context(), db, []decode.Row{{Record: &kgo.Record{Topic: topic, Offset: 0}, Key: `{"id":1}`,
		KeyObject: []byte(`{"id":1}`), Op: decode.OpDelete}}, nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, 1, res.TombstonesSkipped)
	assert.Equal(t, int64(1), res.NextOffset)
	assert.True(t, cols.Absent(), "no table yet")

	key := &format.Shape{Columns: []format.Column{{Name: "id", Type: "bigint"}}}
	rows := []decode.Row{{
		Record:    &kgo.Record{Topic: topic, Offset: 1, Timestamp: time.Unix(1, 0)},
		Key:       `{"id":1}`,
		KeyObject: []byte(`{"id":1}`),
		Value:     []byte(`{"id":1,"amount":12345678.91,"created":"2026-01-01T01:02:03.456789+02:00","tags":["a","b"],"Mixed Case":null}`),
		Shape:     paymentShape, KeyShape: key,
	}}
	res, err = w.Write(t.Context(), db, rows, nil, noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Written)
	assert.Empty(t, res.ColumnsAdded, "creating the table adds no columns")
	assert.Equal(t, map[string]string{"id": "bigint", "amount": "numeric(10,2)", "created": "timestamp with time zone",
		"tags": "text[]", "Mixed Case": "text", "kafka_topic": "text", "kafka_partition": "integer", "kafka_offset": "bigint",
		"kafka_timestamp": "timestamp with time zone"}, columnTypes(t, db, table))
	assert.Equal(t, []string{"id"}, cols.PrimaryKey())
	var amount, created, tags string
	require.NoError(t, db.QueryRow(t.Context(), `SELECT amount::text, (created AT TIME ZONE 'UTC')::text, tags::text FROM `+table.Sanitize()).
		Scan(&amount, &created, &tags))
	assert.Equal(t, "12345678.91", amount, "a decimal lands exactly")
	assert.Equal(t, "2025-12-31 23:02:03.456789", created, "a timestamp keeps its zone")
	assert.Equal(t, "{a,b}", tags)
}

// TestEnsureAddsColumnsOnce: with add-columns, workers meeting one new
// schema at once add each new column once, without an error; without it,
// nothing is added.
func TestEnsureAddsColumnsOnce(t *testing.T) {
	db := testPool(t)
	table := pgx.Identifier{"evolve_add_" + testenv.Suffix()}
	dropTablesAtCleanup(t, db, table)
	_, err := db.Exec(t.Context(), `CREATE TABLE `+table.Sanitize()+` (id bigint PRIMARY KEY)`)
	require.NoError(t, err)
	v2 := &format.Shape{Columns: []format.Column{{Name: "id", Type: "bigint"}, {Name: "email", Type: "text", Nullable: true},
		{Name: "score", Type: "double precision", Nullable: true}}}
	rows := []decode.Row{{Record: &kgo.Record{}, Shape: v2}}

	fixed, err := LoadColumns(t.Context(), db, table, TableOptions{})
	require.NoError(t, err)
	added, err := fixed.Ensure(t.Context(), db, rows)
	require.NoError(t, err)
	assert.Empty(t, added, "SINK_SCHEMA_EVOLUTION=none adds nothing")
	assert.Len(t, columnTypes(t, db, table), 1)

	const workers = 6
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total []string
	)
	for range workers {
		cols, err := LoadColumns(t.Context(), db, table, TableOptions{Evolve: true})
		require.NoError(t, err)
		wg.Go(func() {
			added, err := cols.Ensure(t.Context(), db, rows)
			assert.NoError(t, err)
			mu.Lock()
			total = append(total, added...)
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.ElementsMatch(t, []string{"email", "score"}, total, "each column added once across the workers")
	assert.Equal(t, map[string]string{"id": "bigint", "email": "text", "score": "double precision"}, columnTypes(t, db, table))
}

// TestCreateTableKeys: the created table's primary key in each case.
func TestCreateTableKeys(t *testing.T) {
	value := &format.Shape{Columns: []format.Column{{Name: "id", Type: "bigint"}, {Name: "name", Type: "text"}}}
	key := &format.Shape{Columns: []format.Column{{Name: "tenant", Type: "text"}, {Name: "id", Type: "bigint"}}}
	id := pgx.Identifier{"t"}
	for _, tc := range []struct {
		name string
		cols *Columns
		key  *format.Shape
		want string
	}{
		{"key schema fields", &Columns{id: id}, key, `PRIMARY KEY ("tenant", "id")`},
		{"key not a record", &Columns{id: id}, nil, `PRIMARY KEY ("key")`},
		{"SINK_PRIMARY_KEY", &Columns{id: id, valueKey: []string{"name"}}, key, `PRIMARY KEY ("name")`},
		{"insert mode", &Columns{id: id, keyless: true}, key, `PRIMARY KEY ("kafka_topic", "kafka_partition", "kafka_offset")`},
	} {
		sql := tc.cols.createSQL(value, tc.key)
		assert.Contains(t, sql, tc.want, tc.name)
		assert.NotContains(t, sql, "NOT NULL", "%s: columns are nullable (a later schema may make a field optional)", tc.name)
	}
}

// TestColumnsStatementBuildsEachRowOnce: the columns statement builds a
// row's record once, not once per column it sets (the planner copied a
// select-list jsonb_populate_record into every column read from it: 4-6x
// slower with 11 columns, BenchmarkColumnsUpsert); and no column name
// captures a name the statements use (a column "r" did, once: 42809).
func TestColumnsStatementBuildsEachRowOnce(t *testing.T) {
	db := testPool(t)
	table := pgx.Identifier{"cols_plan_" + testenv.Suffix()}
	dropTablesAtCleanup(t, db, table)
	_, err := db.Exec(t.Context(), `CREATE TABLE `+table.Sanitize()+` (id bigint PRIMARY KEY, a text, b numeric, c date, d text[],
		r real, s text, t text, u text, v text, k text, o text, ts text, rec text,
		kafka_topic text, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamptz)`)
	require.NoError(t, err)
	cols, err := LoadColumns(t.Context(), db, table, TableOptions{})
	require.NoError(t, err)
	used := []string{"a", "b", "c", "d", "id", "k", "kafka_offset", "kafka_partition", "kafka_timestamp", "kafka_topic",
		"o", "r", "rec", "s", "t", "ts", "u", "v"}
	for _, sql := range []string{cols.writeSQL(decode.ModeUpsert, used, []string{"id"}), cols.deleteSQL([]string{"id"})} {
		rows, err := db.Query(t.Context(), `EXPLAIN (VERBOSE, COSTS OFF) `+sql, "t", int32(0),
			[]string{`{"a":"x"}`}, []string{`{"id":1}`}, []int64{1}, []time.Time{time.Now()})
		require.NoError(t, err)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		text := strings.Join(plan, "\n")
		assert.Equal(t, 1, strings.Count(text, "jsonb_populate_record("), "one call per row:\n%s", text)
	}

	// Rows land, columns named like the statements' aliases included.
	c := testConfig(t, decode.ModeUpsert, "sink_offsets", map[string]string{table[0]: table[0]}, table[0])
	c.Mapping = decode.MappingColumns
	w := NewWriter(c, table[0], 0, cols)
	_, err = w.Write(t.Context(), db, changeRows(table[0], 0,
		change{decode.OpWrite, "1", `{"id":1,"a":"x","r":1.5,"s":"s","t":"t","u":"u","v":"v","k":"k","o":"o","ts":"ts","rec":"rec"}`, nil},
		change{decode.OpWrite, "2", `{"id":2,"a":"y"}`, nil},
		change{op: decode.OpDelete, id: "2"}), nil, noDeadLetters(t))
	require.NoError(t, err)
	var got string
	require.NoError(t, db.QueryRow(t.Context(), `SELECT concat_ws(',', id, a, r, s, t, u, v, k, o, ts, rec) FROM `+table.Sanitize()).Scan(&got))
	assert.Equal(t, "1,x,1.5,s,t,u,v,k,o,ts,rec", got)
}
