package postgres

// BenchmarkColumnsUpsert compares ways to upsert a SINK_MAPPING=columns
// batch into a typed table against a real PostgreSQL (DATABASE_URL; it
// fails, never skips, without one). Each sub-benchmark gets a fresh table
// of the formats scenario's shape (bench/suite: id bigint key, name text,
// amount numeric(10,2), created timestamptz, day date, tags text[], note
// text, the record's coordinates), pre-filled with the even ids below
// 2*colBenchSeed; every batch is 5,000 distinct ids, half of them existing
// even ids (updates) and half odd ids never written before (inserts), the
// same sequence of batches for every variant. A variant's time per batch
// includes its Go work (buildColumnsRows, splicing, parsing) and its
// statement, one autocommitted statement per batch unless it says so:
//
//   - current: Columns.writeSQL as the writer runs it;
//   - lateral: the same expression in a LATERAL FROM item;
//   - split: the value and the key populated separately (LATERAL), the
//     coordinates straight from the parameters, no jsonb concatenation;
//   - jsonb-unnest, json-unnest: one object per row spliced in Go (value,
//     key fields, coordinates), json(b)_populate_record over unnest;
//   - jsonb-recordset, json-recordset: the spliced objects as one JSON
//     array parameter, json(b)_populate_recordset;
//   - typed-unnest: the values parsed in Go into one typed array per
//     column (amount and tags as text, cast by the server);
//   - copy: the parsed values COPYed into a typed temporary table, then
//     INSERT .. SELECT .. ON CONFLICT, in one transaction;
//   - jsonb-mapping: the SINK_MAPPING=jsonb upsert of the same records,
//     the reference.
//
// After the timed loop each variant writes one check batch; every typed
// variant must leave the same rows as the first one run.
//
// Run:
//
//	eval "$(scripts/services env)"
//	go test -run '^$' -bench BenchmarkColumnsUpsert -count 3 ./sink/postgres/

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

const (
	colBenchBatch = 5000
	colBenchSeed  = 100_000 // rows in the table before the first batch
	colBenchTopic = "bench.columns"
	colBenchCheck = -1 // batch index of the check batch
)

const colBenchDDL = `CREATE TABLE %s (
	id bigint, name text, amount numeric(10,2), created timestamptz, day date, tags text[], note text,
	kafka_topic text, kafka_partition integer, kafka_offset bigint, kafka_timestamp timestamptz,
	PRIMARY KEY (id))`

// colBenchVariant writes one batch on conn; prepare runs before the timer.
type colBenchVariant struct {
	name    string
	prepare func(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func(rows []decode.Row) error
}

var colBenchVariants = []colBenchVariant{
	{"current", colBenchCurrent},
	{"lateral", colBenchFrom(func(T string) string {
		return `unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(v, k, o, ts)
CROSS JOIN LATERAL jsonb_populate_record(NULL::` + T + `, u.v::jsonb || u.k::jsonb || jsonb_build_object('kafka_topic', $1::text,
	'kafka_partition', $2::int, 'kafka_offset', u.o, 'kafka_timestamp', u.ts)) AS r`
	})},
	{"split", colBenchSplit},
	{"jsonb-unnest", colBenchSpliced(false, "jsonb", "unnest($1::text[]) AS u(j) CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, u.j::jsonb) AS r")},
	{"json-unnest", colBenchSpliced(false, "json", "unnest($1::text[]) AS u(j) CROSS JOIN LATERAL json_populate_record(NULL::%s, u.j::json) AS r")},
	{"jsonb-recordset", colBenchSpliced(true, "jsonb", "jsonb_populate_recordset(NULL::%s, $1::jsonb) AS r")},
	{"json-recordset", colBenchSpliced(true, "json", "json_populate_recordset(NULL::%s, $1::json) AS r")},
	{"typed-unnest", colBenchTyped},
	{"copy", colBenchCopy},
}

// colBenchDigest is the check batch's rows as the first typed variant left them.
var colBenchDigest string

func BenchmarkColumnsUpsert(b *testing.B) {
	url := testenv.DatabaseURL(b)
	for _, v := range colBenchVariants {
		b.Run(v.name, func(b *testing.B) { colBenchRun(b, url, v) })
	}
	b.Run("jsonb-mapping", func(b *testing.B) { colBenchJSONB(b, url) })
}

func colBenchRun(b *testing.B, url string, v colBenchVariant) {
	ctx := context.Background()
	conn := colBenchConnect(b, ctx, url)
	table := pgx.Identifier{"colbench_" + testenv.Suffix()}
	T := table.Sanitize()
	colBenchDropAtCleanup(b, conn, table)
	colBenchExec(b, ctx, conn, fmt.Sprintf(colBenchDDL, T),
		`INSERT INTO `+T+` SELECT 2*g, 'customer-' || 2*g, (g % 100000) / 100.0, '2026-11-01'::timestamptz + g * interval '1 s',
	'2026-11-01'::date + g % 30, ARRAY['red', 'sale'], 'seed', 'seed', 0, -1, now()
FROM generate_series(0, `+strconv.Itoa(colBenchSeed-1)+`) AS g`,
		`ALTER TABLE `+T+` SET (autovacuum_enabled = false)`, `VACUUM (ANALYZE) `+T)
	cols, err := LoadColumns(ctx, conn, table, TableOptions{})
	if err != nil {
		b.Fatal(err)
	}
	write := v.prepare(b, ctx, conn, cols)

	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := write(colBenchRows(n)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*colBenchBatch), "ns/row")
	b.StopTimer()

	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+T).Scan(&count); err != nil {
		b.Fatal(err)
	}
	if want := colBenchSeed + n*colBenchBatch/2; count != want {
		b.Fatalf("%d rows after %d batches, want %d", count, n, want)
	}
	check := colBenchRows(colBenchCheck)
	if err := write(check); err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, len(check))
	for i, r := range check {
		ids[i], _ = strconv.ParseInt(r.Key, 10, 64)
	}
	var digest string
	if err := conn.QueryRow(ctx, `SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM `+T+` AS t WHERE id = ANY($1)`, ids).
		Scan(&digest); err != nil {
		b.Fatal(err)
	}
	switch {
	case colBenchDigest == "":
		colBenchDigest = digest
	case digest != colBenchDigest:
		b.Fatalf("the check batch left other rows than the first variant's (md5 %s, want %s)", digest, colBenchDigest)
	}
}

// colBenchRows is batch i (colBenchCheck: the check batch): ids shuffled,
// offsets increasing, decoded as a typed format decodes (KeyObject set).
func colBenchRows(i int) []decode.Row {
	rng := rand.New(rand.NewPCG(uint64(i+2), 16))
	ids := make([]int64, 0, colBenchBatch)
	seen := map[int64]bool{}
	for len(ids) < colBenchBatch/2 {
		if id := 2 * rng.Int64N(colBenchSeed); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for j := range colBenchBatch / 2 {
		// Odd, distinct across batches and spread over the key space:
		// multiplying by an odd constant permutes the integers mod 2^40.
		n := uint64((i+1)*colBenchBatch/2 + j)
		ids = append(ids, int64(2*((n*0x9E3779B97F4A7C15)&(1<<40-1))+1))
	}
	rng.Shuffle(len(ids), func(a, c int) { ids[a], ids[c] = ids[c], ids[a] })
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tags := []string{"red", "green", "blue", "gold", "new", "sale"}
	rows := make([]decode.Row, len(ids))
	for j, id := range ids {
		off := int64((i+1)*colBenchBatch + j)
		created := base.Add(time.Duration(rng.Int64N(30*24*3600*1_000_000)) * time.Microsecond)
		cents := rng.Int64N(10_000_000_000)
		v := fmt.Appendf(nil, `{"id":%d,"name":"customer-%d","amount":%d.%02d,"created":"%s","day":"%s","tags":[`,
			id, id, cents/100, cents%100, created.Format(time.RFC3339Nano), created.Format(time.DateOnly))
		for _, t := range tags {
			if rng.IntN(2) == 0 {
				if v[len(v)-1] != '[' {
					v = append(v, ',')
				}
				v = strconv.AppendQuote(v, t)
			}
		}
		v = append(v, `],"note":`...)
		if rng.IntN(2) == 0 {
			v = append(v, "null"...)
		} else {
			v = fmt.Appendf(v, `"deliver to door %d"`, j%997)
		}
		v = append(v, '}')
		key := strconv.FormatInt(id, 10)
		rows[j] = decode.Row{
			Record: &kgo.Record{Topic: colBenchTopic, Offset: off, Timestamp: base.Add(time.Duration(off) * time.Millisecond),
				Key: []byte(key), Value: v},
			Key: key, KeyText: []byte(key), KeyObject: []byte(`{"id":` + key + `}`), Value: v,
		}
	}
	return rows
}

// colBenchCurrent is the writer's statement: Columns.prepare and writeSQL.
func colBenchCurrent(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
	return func(rows []decode.Row) error {
		r, err := t.prepare(ctx, conn, rows)
		if err != nil {
			return err
		}
		_, pk, _ := t.snapshot()
		return colBenchAll(conn.Exec(ctx, t.writeSQL(decode.ModeUpsert, r.used, pk),
			colBenchTopic, int32(0), r.values, r.keys, r.offsets, r.timestamps))
	}
}

// colBenchFrom is writeSQL's statement with the FROM clause from (given
// the table's name), selecting r.<column>.
func colBenchFrom(from func(T string) string) func(*testing.B, context.Context, *pgx.Conn, *Columns) func([]decode.Row) error {
	return func(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
		return func(rows []decode.Row) error {
			r, err := t.prepare(ctx, conn, rows)
			if err != nil {
				return err
			}
			_, pk, _ := t.snapshot()
			sql := colBenchUpsert(t, r.used, pk, colBenchCol("r"), from(t.id.Sanitize()))
			return colBenchAll(conn.Exec(ctx, sql, colBenchTopic, int32(0), r.values, r.keys, r.offsets, r.timestamps))
		}
	}
}

// colBenchSplit populates the value and the key on their own and takes
// the coordinates from the parameters: no jsonb concatenation.
func colBenchSplit(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
	meta := map[string]string{"kafka_topic": "$1::text", "kafka_partition": "$2::int", "kafka_offset": "u.o", "kafka_timestamp": "u.ts"}
	T := t.id.Sanitize()
	from := `unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(v, k, o, ts)
CROSS JOIN LATERAL jsonb_populate_record(NULL::` + T + `, u.v::jsonb) AS r
CROSS JOIN LATERAL jsonb_populate_record(NULL::` + T + `, u.k::jsonb) AS kr`
	return func(rows []decode.Row) error {
		r, err := t.prepare(ctx, conn, rows)
		if err != nil {
			return err
		}
		_, pk, _ := t.snapshot()
		sel := func(c string) string {
			switch {
			case meta[c] != "":
				return meta[c]
			case slices.Contains(pk, c):
				return "kr." + pgx.Identifier{c}.Sanitize()
			}
			return "r." + pgx.Identifier{c}.Sanitize()
		}
		return colBenchAll(conn.Exec(ctx, colBenchUpsert(t, r.used, pk, sel, from),
			colBenchTopic, int32(0), r.values, r.keys, r.offsets, r.timestamps))
	}
}

// colBenchSpliced sends one object per row, the value's fields followed by
// the key's and the coordinates (a repeated field: the last one counts, as
// with ||), as a text[] or, with array, as one JSON array; from has %s for
// the table and $1 for the parameter.
func colBenchSpliced(array bool, typ, from string) func(*testing.B, context.Context, *pgx.Conn, *Columns) func([]decode.Row) error {
	return func(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
		return func(rows []decode.Row) error {
			r, err := t.prepare(ctx, conn, rows)
			if err != nil {
				return err
			}
			_, pk, _ := t.snapshot()
			var buf []byte
			objs := make([]string, len(rows))
			for i := range rows {
				start := len(buf)
				if array {
					buf = append(buf, "[,"[min(i, 1)])
					start = len(buf)
				}
				buf = colBenchSplice(buf, r.values[i], r.keys[i], r.offsets[i], r.timestamps[i])
				objs[i] = string(buf[start:])
			}
			var arg any = objs
			if array {
				arg = string(append(buf, ']'))
			}
			sql := colBenchUpsert(t, r.used, pk, colBenchCol("r"), fmt.Sprintf(from, t.id.Sanitize()))
			return colBenchAll(conn.Exec(ctx, sql, arg))
		}
	}
}

// colBenchSplice appends the object value with key's fields and the
// record's coordinates added.
func colBenchSplice(dst []byte, value, key string, off int64, ts time.Time) []byte {
	v := strings.TrimRight(strings.TrimSpace(value)[:len(strings.TrimSpace(value))-1], " \t\r\n")
	dst = append(dst, v...)
	sep := v != "{"
	if k := strings.TrimSpace(key); len(k) > 2 {
		if inner := strings.TrimSpace(k[1 : len(k)-1]); inner != "" {
			if sep {
				dst = append(dst, ',')
			}
			dst, sep = append(dst, inner...), true
		}
	}
	if sep {
		dst = append(dst, ',')
	}
	dst = append(dst, `"kafka_topic":`...)
	dst, _ = format.AppendString(dst, colBenchTopic)
	dst = append(dst, `,"kafka_partition":0,"kafka_offset":`...)
	dst = format.AppendInt(dst, off)
	dst = append(dst, `,"kafka_timestamp":`...)
	dst = format.AppendTimestamp(dst, ts)
	return append(dst, '}')
}

// colBenchOrder is a value parsed in Go, as the typed variants need it.
type colBenchOrder struct {
	ID      int64       `json:"id"`
	Name    string      `json:"name"`
	Amount  json.Number `json:"amount"`
	Created time.Time   `json:"created"`
	Day     string      `json:"day"`
	Tags    []string    `json:"tags"`
	Note    *string     `json:"note"`
}

// colBenchParse parses each row's value and key (the key's id wins).
func colBenchParse(rows []decode.Row) ([]colBenchOrder, error) {
	out := make([]colBenchOrder, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Value, &out[i]); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(r.KeyObject, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// colBenchQuote escapes an element of an array literal.
var colBenchQuote = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// colBenchTyped sends one typed array per column.
func colBenchTyped(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
	sel := map[string]string{"id": "u.id", "name": "u.name", "amount": "u.amount::numeric(10,2)", "created": "u.created",
		"day": "u.day", "tags": "u.tags::text[]", "note": "u.note", "kafka_topic": "$1::text", "kafka_partition": "$2::int",
		"kafka_offset": "u.o", "kafka_timestamp": "u.ts"}
	from := `unnest($3::int8[], $4::text[], $5::text[], $6::timestamptz[], $7::date[], $8::text[], $9::text[], $10::int8[], $11::timestamptz[])
	AS u(id, name, amount, created, day, tags, note, o, ts)`
	return func(rows []decode.Row) error {
		r, err := t.prepare(ctx, conn, rows)
		if err != nil {
			return err
		}
		_, pk, _ := t.snapshot()
		vs, err := colBenchParse(rows)
		if err != nil {
			return err
		}
		n := len(vs)
		ids, names, amounts, tags := make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
		created, days, notes := make([]time.Time, n), make([]time.Time, n), make([]*string, n)
		for i, v := range vs {
			ids[i], names[i], amounts[i], created[i], notes[i] = v.ID, v.Name, v.Amount.String(), v.Created, v.Note
			if days[i], err = time.Parse(time.DateOnly, v.Day); err != nil {
				return err
			}
			lit := make([]string, len(v.Tags))
			for j, s := range v.Tags { // an array literal's elements, quoted
				lit[j] = `"` + colBenchQuote.Replace(s) + `"`
			}
			tags[i] = "{" + strings.Join(lit, ",") + "}"
		}
		sql := colBenchUpsert(t, r.used, pk, func(c string) string { return sel[c] }, from)
		return colBenchAll(conn.Exec(ctx, sql, colBenchTopic, int32(0), ids, names, amounts, created, days, tags, notes,
			r.offsets, r.timestamps))
	}
}

// colBenchCopy COPYs the parsed values into a typed temporary table (made
// once per connection, emptied at commit) and upserts from it.
func colBenchCopy(b *testing.B, ctx context.Context, conn *pgx.Conn, t *Columns) func([]decode.Row) error {
	colBenchExec(b, ctx, conn, fmt.Sprintf(strings.Replace(colBenchDDL, "CREATE TABLE", "CREATE TEMP TABLE", 1)+
		" ON COMMIT DELETE ROWS", "colbench_stage"))
	names := []string{"id", "name", "amount", "created", "day", "tags", "note",
		"kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"}
	return func(rows []decode.Row) error {
		r, err := t.prepare(ctx, conn, rows)
		if err != nil {
			return err
		}
		_, pk, _ := t.snapshot()
		vs, err := colBenchParse(rows)
		if err != nil {
			return err
		}
		in := make([][]any, len(vs))
		for i, v := range vs {
			var amount pgtype.Numeric
			if err := amount.Scan(v.Amount.String()); err != nil {
				return err
			}
			day, err := time.Parse(time.DateOnly, v.Day)
			if err != nil {
				return err
			}
			in[i] = []any{v.ID, v.Name, amount, v.Created, day, v.Tags, v.Note,
				colBenchTopic, int32(0), r.offsets[i], r.timestamps[i]}
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"colbench_stage"}, names, pgx.CopyFromRows(in)); err != nil {
			return err
		}
		sql := colBenchUpsert(t, r.used, pk, colBenchCol("s"), "colbench_stage AS s")
		if err := colBenchAll(tx.Exec(ctx, sql)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
}

// colBenchUpsert is writeSQL's upsert with the select list sel gives for
// each column (by its name, unquoted) and the FROM clause from.
func colBenchUpsert(t *Columns, used, pk []string, sel func(string) string, from string) string {
	list, exprs, set := make([]string, len(used)), make([]string, len(used)), []string(nil)
	for i, c := range used {
		q := pgx.Identifier{c}.Sanitize()
		list[i], exprs[i] = q, sel(c)
		if !slices.Contains(pk, c) {
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	conflict := make([]string, len(pk))
	for i, c := range pk {
		conflict[i] = pgx.Identifier{c}.Sanitize()
	}
	return `INSERT INTO ` + t.id.Sanitize() + ` (` + strings.Join(list, ", ") + `)
SELECT ` + strings.Join(exprs, ", ") + ` FROM ` + from + `
ON CONFLICT (` + strings.Join(conflict, ", ") + `) DO UPDATE SET ` + strings.Join(set, ", ")
}

// colBenchJSONB is the SINK_MAPPING=jsonb upsert (NewWriter's upsertSQL)
// of the same records, with the same pre-fill.
func colBenchJSONB(b *testing.B, url string) {
	ctx := context.Background()
	conn := colBenchConnect(b, ctx, url)
	sfx := testenv.Suffix()
	table, offsets := pgx.Identifier{"colbench_jsonb_" + sfx}, pgx.Identifier{"colbench_offsets_" + sfx}
	colBenchDropAtCleanup(b, conn, table, offsets)
	cfg := Config{Topics: []string{colBenchTopic}, Group: "bench", Mode: decode.ModeUpsert, Mapping: decode.MappingJSONB,
		DeleteOnTombstone: true, OffsetsTable: offsets, Tables: map[string]pgx.Identifier{colBenchTopic: table}}
	if err := EnsureTables(ctx, conn, cfg); err != nil {
		b.Fatal(err)
	}
	T := table.Sanitize()
	colBenchExec(b, ctx, conn, `INSERT INTO `+T+` (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT (2*g)::text, jsonb_build_object('id', 2*g, 'name', 'customer-' || 2*g, 'amount', (g % 100000) / 100.0,
	'created', '2026-11-01'::timestamptz + g * interval '1 s', 'day', '2026-11-01'::date + g % 30,
	'tags', jsonb_build_array('red', 'sale'), 'note', 'seed'), 0, -1, now(), now()
FROM generate_series(0, `+strconv.Itoa(colBenchSeed-1)+`) AS g`,
		`ALTER TABLE `+T+` SET (autovacuum_enabled = false)`, `VACUUM (ANALYZE) `+T)
	w := NewWriter(cfg, colBenchTopic, 0, nil)

	n := 0
	b.ReportAllocs()
	for b.Loop() {
		c := columnsOf(colBenchRows(n))
		if err := colBenchAll(conn.Exec(ctx, w.upsertSQL, int32(0), c.keys, c.values, c.offsets, c.timestamps)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*colBenchBatch), "ns/row")
	b.StopTimer()
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+T).Scan(&count); err != nil {
		b.Fatal(err)
	}
	if want := colBenchSeed + n*colBenchBatch/2; count != want {
		b.Fatalf("%d rows after %d batches, want %d", count, n, want)
	}
}

// colBenchCol selects a column of the FROM item alias.
func colBenchCol(alias string) func(string) string {
	return func(c string) string { return alias + "." + pgx.Identifier{c}.Sanitize() }
}

// colBenchAll checks that a statement wrote the whole batch.
func colBenchAll(tag interface{ RowsAffected() int64 }, err error) error {
	if err == nil && tag.RowsAffected() != colBenchBatch {
		return fmt.Errorf("%d rows written, want %d", tag.RowsAffected(), colBenchBatch)
	}
	return err
}

func colBenchConnect(b *testing.B, ctx context.Context, url string) *pgx.Conn {
	b.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// colBenchDropAtCleanup is dropTablesAtCleanup for a benchmark.
func colBenchDropAtCleanup(b *testing.B, conn *pgx.Conn, tables ...pgx.Identifier) {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range tables {
			if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+t.Sanitize()); err != nil {
				b.Errorf("drop %s: %v", t.Sanitize(), err)
			}
		}
	})
}

func colBenchExec(b *testing.B, ctx context.Context, conn *pgx.Conn, sqls ...string) {
	b.Helper()
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
