package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// metaColumns are filled from the record's coordinates when the table has
// columns of these names (SINK_MAPPING=columns).
var metaColumns = []string{"kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"}

// refreshEvery bounds how often a table's columns are read again because a
// record carried a field the table did not have.
const refreshEvery = 5 * time.Second

// Columns is a table written in SINK_MAPPING=columns: its writable
// columns and primary key, read from the catalog and read again when a
// record carries an unknown field (a column may have been added). It is
// shared by the partitions of a topic and safe for concurrent use.
type Columns struct {
	id pgx.Identifier
	// keyless (SINK_MODE=insert): the record key does not give the primary key.
	keyless bool
	// evolve is SINK_SCHEMA_EVOLUTION=add-columns (Ensure).
	evolve bool
	// valueKey is SINK_PRIMARY_KEY: the value fields of the primary key.
	valueKey []string

	mu     sync.Mutex
	cols   map[string]bool // writable columns (not generated, not identity ALWAYS)
	pk     []string        // primary key columns, in key order
	loaded time.Time
	stale  bool // read the catalog before the next prepare
	// absent: the table does not exist yet; Ensure creates it from the
	// first record schema.
	absent bool
	seen   map[*format.Shape]bool // value schemas Ensure has handled
}

// ErrNoTable marks a table SINK_MAPPING=columns cannot write: missing,
// with nothing to create it from. Fatal.
var ErrNoTable = errors.New("no table")

// TableOptions say how LoadColumns takes a topic's table.
type TableOptions struct {
	// Keyless is insert mode, where the record key does not give the
	// primary key.
	Keyless bool
	// Create lets the table be missing at start-up: Ensure creates it from
	// the first record's schema (a typed SINK_VALUE_FORMAT).
	Create bool
	// Evolve is SINK_SCHEMA_EVOLUTION=add-columns.
	Evolve bool
	// ValueKey is SINK_PRIMARY_KEY: an existing table's primary key must be
	// these columns.
	ValueKey []string
}

// LoadColumns reads table's columns from the catalog. A missing table is
// ErrNoTable unless o.Create; a table whose primary key is not
// SINK_PRIMARY_KEY's fields is a bad setting (ErrNoPrimaryKey).
func LoadColumns(ctx context.Context, q Querier, table pgx.Identifier, o TableOptions) (*Columns, error) {
	t := &Columns{id: table, keyless: o.Keyless, evolve: o.Evolve, valueKey: o.ValueKey}
	// to_regclass parses the quoted name itself: nothing is spliced into SQL.
	rows, err := q.Query(ctx, `SELECT to_regclass($1) IS NOT NULL`, table.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table.Sanitize(), err)
	}
	exists, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	switch {
	case err != nil:
		return nil, fmt.Errorf("read columns of %s: %w", table.Sanitize(), err)
	case !exists && o.Create:
		t.absent = true
		return t, nil
	case !exists:
		return nil, fmt.Errorf("%w: table %s does not exist: SINK_MAPPING=columns writes into tables you create "+
			"(or that a typed SINK_VALUE_FORMAT creates from the record schema)", ErrNoTable, table.Sanitize())
	}
	if err := t.load(ctx, q); err != nil {
		return nil, err
	}
	if len(o.ValueKey) > 0 && !o.Keyless && !slices.Equal(t.PrimaryKey(), o.ValueKey) {
		return nil, fmt.Errorf("%w: SINK_PRIMARY_KEY is %s but the primary key of %s is (%s)", ErrNoPrimaryKey,
			strings.Join(o.ValueKey, ","), table.Sanitize(), strings.Join(t.PrimaryKey(), ", "))
	}
	return t, nil
}

// Absent reports whether the table is still to be created (Ensure).
func (t *Columns) Absent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.absent
}

// PrimaryKey is the table's primary key columns, in key order, as last
// read (decode.Config.PrimaryKey).
func (t *Columns) PrimaryKey() []string {
	_, pk, _ := t.snapshot()
	return pk
}

// load reads the columns from the catalog. A missing table is SQLSTATE
// 42P01: Fatal, as a configuration problem should be.
func (t *Columns) load(ctx context.Context, q Querier) error {
	rows, err := q.Query(ctx, `SELECT a.attname, coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
	AND a.attgenerated = '' AND a.attidentity <> 'a'
ORDER BY a.attnum`, t.id.Sanitize())
	if err != nil {
		return fmt.Errorf("read columns of %s: %w", t.id.Sanitize(), err)
	}
	cols := map[string]bool{}
	pkAt := map[int]string{}
	var (
		name string
		pos  int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &pos}, func() error {
		cols[name] = true
		if pos > 0 {
			pkAt[pos] = name
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read columns of %s: %w", t.id.Sanitize(), err)
	}
	pk := make([]string, len(pkAt))
	for p, n := range pkAt {
		pk[p-1] = n
	}
	t.mu.Lock()
	t.cols, t.pk, t.loaded, t.stale = cols, pk, time.Now(), false
	t.mu.Unlock()
	return nil
}

// invalidate makes the next prepare read the catalog again.
func (t *Columns) invalidate() {
	t.mu.Lock()
	t.stale = true
	t.mu.Unlock()
}

// snapshot returns the current columns and key.
func (t *Columns) snapshot() (map[string]bool, []string, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cols, t.pk, t.loaded
}

// columnsRows is a batch prepared for the columns statements.
type columnsRows struct {
	values, keys []string // value objects and key objects, JSON text
	offsets      []int64
	timestamps   []time.Time
	used         []string // table columns the batch sets, in a stable order
	unknown      int      // fields no column takes, summed over the batch
}

// prepare turns rows into the arrays the statements take, reading the
// catalog again (at most every refreshEvery) when a field is unknown.
func (t *Columns) prepare(ctx context.Context, q Querier, records []decode.Row) (columnsRows, error) {
	t.mu.Lock()
	stale := t.stale
	t.mu.Unlock()
	if stale {
		if err := t.load(ctx, q); err != nil {
			return columnsRows{}, err
		}
	}
	cols, pk, loaded := t.snapshot()
	if t.keyless {
		pk = nil
	}
	rows, err := buildColumnsRows(records, cols, pk)
	if err != nil || rows.unknown == 0 || time.Since(loaded) < refreshEvery {
		return rows, err
	}
	if err := t.load(ctx, q); err != nil {
		return rows, err
	}
	cols, pk, _ = t.snapshot()
	if t.keyless {
		pk = nil
	}
	return buildColumnsRows(records, cols, pk)
}

func buildColumnsRows(records []decode.Row, cols map[string]bool, pk []string) (columnsRows, error) {
	r := columnsRows{
		values:     make([]string, len(records)),
		keys:       make([]string, len(records)),
		offsets:    make([]int64, len(records)),
		timestamps: make([]time.Time, len(records)),
	}
	used := map[string]bool{}
	for _, c := range pk {
		used[c] = true
	}
	for _, c := range metaColumns {
		if cols[c] {
			used[c] = true
		}
	}
	unknownOf := map[*format.Shape]int{} // fields no column takes, by value schema
	for i, row := range records {
		rec := row.Record
		key := string(row.KeyObject)
		if row.KeyObject == nil {
			var err error
			if key, err = decode.KeyObject(rec.Key, pk); err != nil {
				return r, err
			}
		}
		r.keys[i], r.offsets[i], r.timestamps[i] = key, rec.Offset, rec.Timestamp
		r.values[i] = "{}"
		if row.Value == nil {
			continue
		}
		r.values[i] = string(row.Value)
		if row.Shape != nil {
			// A typed value holds its schema's fields, every one (null
			// when unset): the columns it sets and the fields no column
			// takes are its schema's, found once per schema.
			n, ok := unknownOf[row.Shape]
			if !ok {
				for _, c := range row.Shape.Columns {
					if cols[c.Name] {
						used[c.Name] = true
					} else {
						n++
					}
				}
				unknownOf[row.Shape] = n
			}
			r.unknown += n
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(row.Value, &fields); err != nil {
			return r, fmt.Errorf("value at offset %d: %w", rec.Offset, err) // decode lets only objects through
		}
		for f := range fields {
			if cols[f] {
				used[f] = true
			} else {
				r.unknown++
			}
		}
	}
	r.used = make([]string, 0, len(used))
	for c := range used {
		r.used = append(r.used, c)
	}
	slices.Sort(r.used)
	return r, nil
}

// rowsSQL selects the batch's rows, each column of the table by its name
// (s."col" to the statements that read it): the value object, overlaid by
// the key object and the record's coordinates. The record is built in
// FROM, once per row: as a select-list composite the planner copied
// jsonb_populate_record into every column read from it (4-6x slower with
// 11 columns, BenchmarkColumnsUpsert). Its alias is only ever used
// qualified (rec.*), so no column name can capture it.
func (t *Columns) rowsSQL() string {
	return `SELECT rec.* FROM unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(v, k, o, ts)
CROSS JOIN LATERAL jsonb_populate_record(NULL::` + t.id.Sanitize() + `, u.v::jsonb || u.k::jsonb ||
	jsonb_build_object('kafka_topic', $1::text, 'kafka_partition', $2::int, 'kafka_offset', u.o, 'kafka_timestamp', u.ts)) AS rec`
}

// writeSQL is the INSERT (insert mode) or INSERT .. ON CONFLICT (upsert
// mode) of the columns rows.used.
func (t *Columns) writeSQL(mode decode.Mode, used, pk []string) string {
	list, sel := make([]string, len(used)), make([]string, len(used))
	for i, c := range used {
		q := pgx.Identifier{c}.Sanitize()
		list[i], sel[i] = q, "s."+q
	}
	sql := `INSERT INTO ` + t.id.Sanitize() + ` (` + strings.Join(list, ", ") + `)
SELECT ` + strings.Join(sel, ", ") + ` FROM (` + t.rowsSQL() + `) AS s`
	if mode != decode.ModeUpsert {
		if offsetKeyed(pk) { // a replay is a no-op, as in jsonb mapping
			sql += "\nON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING"
		}
		return sql
	}
	var conflict, set []string
	for _, c := range pk {
		conflict = append(conflict, pgx.Identifier{c}.Sanitize())
	}
	for _, c := range used {
		if !slices.Contains(pk, c) {
			q := pgx.Identifier{c}.Sanitize()
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	sql += "\nON CONFLICT (" + strings.Join(conflict, ", ") + ")"
	if len(set) == 0 {
		return sql + " DO NOTHING"
	}
	return sql + " DO UPDATE SET " + strings.Join(set, ", ")
}

// offsetKeyed reports whether pk is the record's coordinates, the key of
// an insert-mode table: kafka_topic, kafka_partition, kafka_offset.
func offsetKeyed(pk []string) bool {
	k := slices.Sorted(slices.Values(pk))
	return slices.Equal(k, []string{"kafka_offset", "kafka_partition", "kafka_topic"})
}

// deleteSQL deletes the rows whose primary key the key objects give.
func (t *Columns) deleteSQL(pk []string) string {
	var on []string
	for _, c := range pk {
		q := pgx.Identifier{c}.Sanitize()
		on = append(on, "t."+q+" = s."+q)
	}
	return `DELETE FROM ` + t.id.Sanitize() + ` AS t USING (` + t.rowsSQL() + `) AS s WHERE ` + strings.Join(on, " AND ")
}
