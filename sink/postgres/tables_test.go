package postgres

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// column is one column of a table as information_schema reports it.
type column struct {
	Name, Type string
}

// tableColumns lists table's columns in order; table is one or two parts
// (an unqualified name is looked up in the current schema).
func tableColumns(t *testing.T, db *pgxpool.Pool, table pgx.Identifier) []column {
	t.Helper()
	schema, name := splitIdent(table)
	rows, err := db.Query(t.Context(), `SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2 ORDER BY ordinal_position`, schema, name)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	require.NoError(t, err)
	return cols
}

// notNullColumns lists table's NOT NULL columns in order.
func notNullColumns(t *testing.T, db *pgxpool.Pool, table pgx.Identifier) []string {
	t.Helper()
	schema, name := splitIdent(table)
	rows, err := db.Query(t.Context(), `SELECT column_name FROM information_schema.columns
WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2 AND is_nullable = 'NO'
ORDER BY ordinal_position`, schema, name)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return cols
}

// primaryKey lists table's primary-key columns in key order.
func primaryKey(t *testing.T, db *pgxpool.Pool, table pgx.Identifier) []string {
	t.Helper()
	schema, name := splitIdent(table)
	rows, err := db.Query(t.Context(), `SELECT k.column_name
FROM information_schema.table_constraints c
JOIN information_schema.key_column_usage k
	ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name
	AND k.table_schema = c.table_schema AND k.table_name = c.table_name
WHERE c.constraint_type = 'PRIMARY KEY'
	AND c.table_schema = coalesce($1, current_schema()) AND c.table_name = $2
ORDER BY k.ordinal_position`, schema, name)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return cols
}

// tableExists reports whether table exists.
func tableExists(t *testing.T, db *pgxpool.Pool, table pgx.Identifier) bool {
	t.Helper()
	var ok bool
	require.NoError(t, db.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, table.Sanitize()).Scan(&ok))
	return ok
}

func splitIdent(id pgx.Identifier) (schema *string, name string) {
	if len(id) == 2 {
		return &id[0], id[1]
	}
	return nil, id[0]
}

// The table shapes the README gives under "How it works" ("Tables").
var (
	upsertColumns = []column{
		{"key", "text"},
		{"value", "jsonb"},
		{"kafka_partition", "integer"},
		{"kafka_offset", "bigint"},
		{"kafka_timestamp", "timestamp with time zone"},
		{"updated_at", "timestamp with time zone"},
	}
	upsertKey    = []string{"key"}
	insertColumn = []column{
		{"kafka_topic", "text"},
		{"kafka_partition", "integer"},
		{"kafka_offset", "bigint"},
		{"key", "text"},
		{"value", "jsonb"},
		{"kafka_timestamp", "timestamp with time zone"},
	}
	insertKey     = []string{"kafka_topic", "kafka_partition", "kafka_offset"}
	offsetsColumn = []column{
		{"consumer_group", "text"},
		{"topic", "text"},
		{"partition", "integer"},
		{"next_offset", "bigint"},
		{"updated_at", "timestamp with time zone"},
	}
	offsetsKey = []string{"consumer_group", "topic", "partition"}
)

// assertShape checks that table has the README's shape of mode ("offsets"
// for the offsets table).
func assertShape(t *testing.T, db *pgxpool.Pool, table pgx.Identifier, mode decode.Mode) {
	t.Helper()
	var (
		cols    []column
		key     []string
		notNull []string // what the README requires: the key columns, and value in upsert mode
	)
	switch mode {
	case decode.ModeUpsert:
		cols, key, notNull = upsertColumns, upsertKey, []string{"key", "value"}
	case decode.ModeInsert:
		cols, key, notNull = insertColumn, insertKey, insertKey
	default:
		cols, key, notNull = offsetsColumn, offsetsKey, offsetsKey
	}
	assert.Equal(t, cols, tableColumns(t, db, table), "columns of %s", table.Sanitize())
	assert.Equal(t, key, primaryKey(t, db, table), "primary key of %s", table.Sanitize())
	gotNotNull := notNullColumns(t, db, table)
	for _, c := range notNull {
		assert.Contains(t, gotNotNull, c, "%s.%s must be NOT NULL", table.Sanitize(), c)
	}
	if mode == decode.ModeUpsert {
		// The README: only the key and the value are NOT NULL.
		assert.Equal(t, notNull, gotNotNull, "NOT NULL columns of %s", table.Sanitize())
	}
	if mode == decode.ModeInsert {
		// A tombstone row has a NULL value; a null key is a NULL key.
		assert.Equal(t, insertKey, gotNotNull, "NOT NULL columns of %s", table.Sanitize())
	}
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func TestTableName(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  string
	}{
		{name: "plain", topic: "orders", want: "orders"},
		{name: "dot", topic: "orders.v1", want: "orders_v1"},
		{name: "dash", topic: "my-topic", want: "my_topic"},
		{name: "run of dots and dashes is one underscore", topic: "a..b--c.-d", want: "a_b_c_d"},
		{name: "underscore kept", topic: "a_b", want: "a_b"},
		{name: "upper case lowered", topic: "Orders.V2", want: "orders_v2"},
		{name: "leading digit gets t_ prefix", topic: "1orders", want: "t_1orders"},
		{name: "leading dot becomes underscore", topic: ".orders", want: "_orders"},
		{name: "leading underscore needs no prefix", topic: "_orders", want: "_orders"},
		{name: "non-ASCII replaced", topic: "Ünïcode", want: "_n_code"},
		{name: "63 bytes kept", topic: strings.Repeat("a", 63), want: strings.Repeat("a", 63)},
		{name: "cut to 63 bytes", topic: strings.Repeat("a", 249), want: strings.Repeat("a", 63)},
		{name: "prefix counts toward 63 bytes", topic: "9" + strings.Repeat("b", 100), want: "t_9" + strings.Repeat("b", 60)},
		{name: "empty", topic: "", want: "t_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TableName(tt.topic)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len(got), 63, "fits PostgreSQL's NAMEDATALEN")
			assert.Regexp(t, identRE, got, "a plain lower-case identifier")
			id, err := ParseIdentifier(got)
			assert.NoError(t, err, "a derived name is a valid identifier")
			assert.Equal(t, pgx.Identifier{got}, id)
		})
	}
}

func TestParseIdentifier(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      pgx.Identifier
		sanitized string // Sanitize of want
		wantErr   bool
	}{
		{name: "table", in: "orders", want: pgx.Identifier{"orders"}, sanitized: `"orders"`},
		{name: "schema and table", in: "sales.orders", want: pgx.Identifier{"sales", "orders"}, sanitized: `"sales"."orders"`},
		{name: "case kept", in: "Sales.Orders", want: pgx.Identifier{"Sales", "Orders"}, sanitized: `"Sales"."Orders"`},
		{name: "63 bytes", in: strings.Repeat("x", 63), want: pgx.Identifier{strings.Repeat("x", 63)}, sanitized: `"` + strings.Repeat("x", 63) + `"`},
		{
			name: "quote and semicolon quoted safely", in: `we"ird; DROP TABLE x;--`,
			want: pgx.Identifier{`we"ird; DROP TABLE x;--`}, sanitized: `"we""ird; DROP TABLE x;--"`,
		},
		{
			name: "quoted schema too", in: `s"c; x.t"b`,
			want: pgx.Identifier{`s"c; x`, `t"b`}, sanitized: `"s""c; x"."t""b"`,
		},
		{name: "unicode", in: "Ünïcode.tàble", want: pgx.Identifier{"Ünïcode", "tàble"}, sanitized: `"Ünïcode"."tàble"`},
		{name: "spaces", in: "my table", want: pgx.Identifier{"my table"}, sanitized: `"my table"`},
		{name: "too many dots", in: "a.b.c", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "dot only", in: ".", wantErr: true},
		{name: "empty schema", in: ".orders", wantErr: true},
		{name: "empty table", in: "sales.", wantErr: true},
		{name: "64 bytes", in: strings.Repeat("x", 64), wantErr: true},
		{name: "64-byte schema", in: strings.Repeat("x", 64) + ".t", wantErr: true},
		{name: "64 bytes of multi-byte runes", in: strings.Repeat("é", 32), wantErr: true},
		{name: "NUL", in: "ord\x00ers", wantErr: true},
		{name: "NUL in schema", in: "s\x00.t", wantErr: true},
		{name: "invalid UTF-8", in: "ord\xffers", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIdentifier(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.sanitized, got.Sanitize())
		})
	}
}

func TestEnsureTablesShapes(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name string
		// names returns the SINK_TABLE_MAP entry of the test's topic (""
		// leaves it unmapped) and a schema to create first ("" for none).
		names func(sfx, sentinel string) (table, schema string)
	}{
		{
			name: "unmapped topic uses TableName",
			names: func(_, _ string) (string, string) {
				return "", ""
			},
		},
		{
			name: "quote semicolon and comment",
			names: func(sfx, sentinel string) (string, string) {
				return `we"ird; DROP TABLE ` + sentinel + `;--` + sfx, ""
			},
		},
		{
			name: "unicode spaces and case",
			names: func(sfx, _ string) (string, string) {
				return "Ünï Cødé " + sfx, ""
			},
		},
		{
			name: "schema-qualified",
			names: func(sfx, _ string) (string, string) {
				return "sw_schema_" + sfx + ".orders", "sw_schema_" + sfx
			},
		},
		{
			name: "hostile schema and table",
			names: func(sfx, sentinel string) (string, string) {
				s := `s"; DROP TABLE ` + sentinel + `;--` + sfx
				return s + `.t"; DROP TABLE ` + sentinel + `;--`, s
			},
		},
	}
	for _, tt := range tests {
		for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				sfx := testenv.Suffix()
				sentinel := "sw_sentinel_" + sfx
				_, err := db.Exec(t.Context(), `CREATE TABLE `+sentinel+` (id int)`)
				require.NoError(t, err)
				topic := "sw.tables-" + sfx
				offsets := pgx.Identifier{"sw_offsets_" + sfx}
				dropTablesAtCleanup(t, db, pgx.Identifier{sentinel}, offsets)

				table, schema := tt.names(sfx, sentinel)
				var tableMap map[string]string
				if table != "" {
					tableMap = map[string]string{topic: table}
				}
				if schema != "" {
					createSchema(t, db, schema)
				}
				cfg := testConfig(t, mode, offsets[0], tableMap, topic)
				id := cfg.Table(topic)
				if table == "" {
					require.Equal(t, pgx.Identifier{"sw_tables_" + sfx}, id)
				}
				dropTablesAtCleanup(t, db, id)
				require.False(t, tableExists(t, db, id), "the table is fresh")

				require.NoError(t, EnsureTables(t.Context(), db, cfg))

				assert.True(t, tableExists(t, db, id), "table %s created", id.Sanitize())
				assertShape(t, db, id, mode)
				assertShape(t, db, offsets, "offsets")
				assert.True(t, tableExists(t, db, pgx.Identifier{sentinel}), "no SQL was injected")
			})
		}
	}
}

func TestEnsureTablesIdempotent(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			sfx := testenv.Suffix()
			topic := "sw.idem-" + sfx
			table := pgx.Identifier{`Idem"` + sfx}
			offsets := pgx.Identifier{"sw_offsets_" + sfx}
			dropTablesAtCleanup(t, db, table, offsets)
			cfg := testConfig(t, mode, offsets[0], map[string]string{topic: table[0]}, topic)

			require.NoError(t, EnsureTables(t.Context(), db, cfg))
			_, err := db.Exec(t.Context(), `INSERT INTO `+offsets.Sanitize()+
				` (consumer_group, topic, partition, next_offset, updated_at) VALUES ('g', $1, 0, 42, now())`, topic)
			require.NoError(t, err)
			var rowSQL string
			if mode == decode.ModeUpsert {
				rowSQL = `INSERT INTO ` + table.Sanitize() + ` (key, value) VALUES ('k', '{"a":1}')`
			} else {
				rowSQL = `INSERT INTO ` + table.Sanitize() + ` (kafka_topic, kafka_partition, kafka_offset, value) VALUES ($1, 0, 41, '{"a":1}')`
			}
			args := []any{}
			if mode == decode.ModeInsert {
				args = append(args, topic)
			}
			_, err = db.Exec(t.Context(), rowSQL, args...)
			require.NoError(t, err)

			for range 2 {
				require.NoError(t, EnsureTables(t.Context(), db, cfg), "EnsureTables again")
			}

			assertShape(t, db, table, mode)
			assertShape(t, db, offsets, "offsets")
			var rows, next int64
			require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM `+table.Sanitize()).Scan(&rows))
			assert.EqualValues(t, 1, rows, "existing rows are kept")
			require.NoError(t, db.QueryRow(t.Context(), `SELECT next_offset FROM `+offsets.Sanitize()+
				` WHERE consumer_group = 'g' AND topic = $1 AND partition = 0`, topic).Scan(&next))
			assert.EqualValues(t, 42, next, "existing offsets are kept")
		})
	}
}

func TestEnsureTablesConcurrent(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	const callers = 4
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			sfx := testenv.Suffix()
			topics := []string{"sw.conc-a-" + sfx, "sw.conc-b-" + sfx, "sw.conc-c-" + sfx}
			tableMap := map[string]string{
				topics[0]: `conc "a"; ` + sfx,
				topics[1]: "sw_schema_" + sfx + ".b", // the schema is created below
				// topics[2] unmapped
			}
			schema := "sw_schema_" + sfx
			createSchema(t, db, schema)
			offsets := pgx.Identifier{schema, "offsets"}
			cfg := testConfig(t, mode, schema+".offsets", tableMap, topics...)
			var tables []pgx.Identifier
			for _, topic := range topics {
				tables = append(tables, cfg.Table(topic))
			}
			dropTablesAtCleanup(t, db, tables...)

			start := make(chan struct{})
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					<-start
					errs[i] = EnsureTables(t.Context(), db, cfg)
				})
			}
			close(start)
			wg.Wait()

			for i, err := range errs {
				assert.NoError(t, err, "caller %d", i)
			}
			for _, tb := range tables {
				assertShape(t, db, tb, mode)
			}
			assertShape(t, db, offsets, "offsets")
		})
	}
}

func TestEnsureTablesColumnsMappingCreatesOnlyOffsets(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			sfx := testenv.Suffix()
			topic := "sw.cols-" + sfx
			offsets := pgx.Identifier{"sw_offsets_" + sfx}
			cfg := testConfig(t, mode, offsets[0], nil, topic)
			cfg.Mapping = decode.MappingColumns
			dropTablesAtCleanup(t, db, cfg.Table(topic), offsets)

			require.NoError(t, EnsureTables(t.Context(), db, cfg))

			assertShape(t, db, offsets, "offsets")
			assert.False(t, tableExists(t, db, cfg.Table(topic)), "in columns mapping the table is the user's")
		})
	}
}
