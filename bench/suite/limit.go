package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// The limit scenario: the fastest way this PostgreSQL takes the dataset's
// rows into the sink's table shapes, per partition count and connection
// count, whatever the worker does. Each method writes every batch of a
// topic's records from memory, one transaction per batch, into a fresh
// table; connection i writes the partitions p with p % conns == i.

// limitMethod is one way of writing a batch.
type limitMethod string

const (
	// limitCopy is insert mode by binary COPY (pgx CopyFrom) straight into
	// the table, one COPY per batch in its implicit transaction.
	limitCopy limitMethod = "copy"
	// limitUnnest is the writer's own statement (postgres.CeilingStatements:
	// INSERT .. SELECT FROM unnest(..) ON CONFLICT ..), the ceiling scenario's.
	limitUnnest limitMethod = "unnest"
	// limitCopyUpsert is upsert mode by COPY into a per-connection temp
	// table (ON COMMIT DELETE ROWS, created before the clock starts), then
	// INSERT .. SELECT FROM it ON CONFLICT (key) DO UPDATE: BEGIN, COPY,
	// INSERT, COMMIT.
	limitCopyUpsert limitMethod = "copy+insert"
	// limitMerge is upsert mode by MERGE (PostgreSQL 15) from the same
	// unnest parameters as the writer's statement.
	limitMerge limitMethod = "merge"
)

// limitMethods are the methods measured per mode, in the order they run
// at each connection count.
var limitMethods = map[string][]limitMethod{
	"insert": {limitCopy, limitUnnest},
	"upsert": {limitUnnest, limitCopyUpsert, limitMerge},
}

var limitModes = []string{"insert", "upsert"}

type limitOptions struct {
	batch    int
	connsArg string
	conns    []int // -limit-conns, plus P at each partition count; capped at P
}

func (l *limitOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&l.batch, "limit-batch", 5000, "records per batch (one transaction each) in the limit scenario, before upsert de-duplication")
	fs.StringVar(&l.connsArg, "limit-conns", "1,2,4,8,16", "connection counts of the limit scenario (plus P, all capped at each partition count P)")
}

func (l *limitOptions) validate() error {
	var errs []error
	if l.batch < 1 {
		errs = append(errs, errors.New("-limit-batch must be at least 1"))
	}
	var err error
	if l.conns, err = ints(l.connsArg); err != nil || len(l.conns) == 0 {
		errs = append(errs, errors.New("-limit-conns: want a comma-separated list of positive numbers"))
	}
	return errors.Join(errs...)
}

// at is the connection counts at P partitions: -limit-conns and P, at most P.
func (l *limitOptions) at(P int) []int {
	var out []int
	for _, c := range append(slices.Clone(l.conns), P) {
		if c <= P && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// limitBatch is consecutive records of one partition as the table's rows
// (de-duplicated with batch.Dedupe in upsert mode, as the writer does).
type limitBatch struct {
	part       int32
	keys       []string
	values     []string // JSON text; pgx sends a string as raw JSON to a jsonb column
	offsets    []int64
	timestamps []time.Time
}

// limitBatches cuts each partition's records of l, in offset order, into
// batches of size records (ceiling.Chunks); rows is how many rows they hold.
func limitBatches(d *dataset.Dataset, l *dataset.Layout, size int, insert bool) (perPart [][]limitBatch, rows int) {
	chunks, _ := ceiling.Chunks(d, l, size, insert)
	perPart = make([][]limitBatch, l.Parts)
	for p := range chunks {
		for _, recs := range chunks[p] {
			b := limitBatch{part: int32(p), keys: make([]string, len(recs)), values: make([]string, len(recs)),
				offsets: make([]int64, len(recs)), timestamps: make([]time.Time, len(recs))}
			for j, r := range recs {
				b.keys[j], b.values[j], b.offsets[j], b.timestamps[j] = string(r.Key), string(r.Value), r.Offset, r.Timestamp
			}
			rows += len(recs)
			perPart[p] = append(perPart[p], b)
		}
	}
	return perPart, rows
}

// limitShare gives connection i the batches of partitions p with
// p % conns == i, one batch of each partition in turn (as ceiling.Write).
func limitShare(perPart [][]limitBatch, conns int) [][]limitBatch {
	work := make([][]limitBatch, conns)
	for i := range conns {
		for j := 0; ; j++ {
			more := false
			for p := i; p < len(perPart); p += conns {
				if j < len(perPart[p]) {
					work[i], more = append(work[i], perPart[p][j]), true
				}
			}
			if !more {
				break
			}
		}
	}
	return work
}

// limitSQL is a table's statements for the methods.
type limitSQL struct {
	topic                  string
	table                  pgx.Identifier
	unnest                 string // the writer's write statement for the mode
	stageCreate, fromStage string // copy+insert
	merge                  string
}

func newLimitSQL(topic, table string, insert bool) limitSQL {
	mode := decode.ModeUpsert
	if insert {
		mode = decode.ModeInsert
	}
	_, write, _ := postgres.CeilingStatements(postgres.Config{OffsetsTable: pgx.Identifier{"sink_offsets"},
		Tables: map[string]pgx.Identifier{topic: {table}}, Mode: mode}, topic)
	t := pgx.Identifier{table}.Sanitize()
	return limitSQL{
		topic: topic, table: pgx.Identifier{table}, unnest: write,
		stageCreate: `CREATE TEMP TABLE limit_stage (k text, v jsonb, o int8, ts timestamptz) ON COMMIT DELETE ROWS`,
		fromStage: `INSERT INTO ` + t + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT s.k, s.v, $1, s.o, s.ts, now() FROM limit_stage AS s
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`,
		// A key lives in one partition, so no two connections insert it:
		// MERGE's unique violation under concurrent inserts cannot happen.
		merge: `MERGE INTO ` + t + ` AS t
USING (SELECT u.k, u.v::jsonb AS v, u.o, u.ts FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)) AS s
ON t.key = s.k
WHEN MATCHED THEN UPDATE SET value = s.v, kafka_partition = $1, kafka_offset = s.o, kafka_timestamp = s.ts, updated_at = now()
WHEN NOT MATCHED THEN INSERT (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
	VALUES (s.k, s.v, $1, s.o, s.ts, now())`,
	}
}

// write applies one batch by method m in one transaction.
func (q limitSQL) write(ctx context.Context, cn *pgx.Conn, m limitMethod, insert bool, b limitBatch) error {
	switch m {
	case limitUnnest:
		args := []any{b.part, b.keys, b.values, b.offsets, b.timestamps}
		if insert {
			args = append([]any{q.topic}, args...)
		}
		_, err := cn.Exec(ctx, q.unnest, args...)
		return err
	case limitMerge:
		_, err := cn.Exec(ctx, q.merge, b.part, b.keys, b.values, b.offsets, b.timestamps)
		return err
	case limitCopy:
		row := make([]any, 6) // CopyFrom encodes each row before asking for the next
		n, err := cn.CopyFrom(ctx, q.table, []string{"kafka_topic", "kafka_partition", "kafka_offset", "key", "value", "kafka_timestamp"},
			pgx.CopyFromSlice(len(b.keys), func(i int) ([]any, error) {
				row[0], row[1], row[2], row[3], row[4], row[5] = q.topic, b.part, b.offsets[i], b.keys[i], b.values[i], b.timestamps[i]
				return row, nil
			}))
		if err == nil && n != int64(len(b.keys)) {
			err = fmt.Errorf("copied %d rows, want %d", n, len(b.keys))
		}
		return err
	case limitCopyUpsert:
		tx, err := cn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		row := make([]any, 4)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"limit_stage"}, []string{"k", "v", "o", "ts"},
			pgx.CopyFromSlice(len(b.keys), func(i int) ([]any, error) {
				row[0], row[1], row[2], row[3] = b.keys[i], b.values[i], b.offsets[i], b.timestamps[i]
				return row, nil
			})); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q.fromStage, b.part); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	return fmt.Errorf("unknown method %q", m)
}

// limitRun is one measurement: every batch of a topic by one method.
type limitRun struct {
	mode     string // insert, upsert
	method   limitMethod
	parts    int
	conns    int
	rows     int
	time     time.Duration
	attempts int
}

// limitResult is the limit scenario's runs.
type limitResult struct {
	records, batch int
	runs           []limitRun
}

func (r limitRun) rate(records int) float64 { return rate(int64(records), r.time) }

// best is the fastest run of mode at P partitions, at conns connections
// (0: any).
func (l *limitResult) best(mode string, P, conns int) (limitRun, bool) {
	var out limitRun
	ok := false
	for _, r := range l.runs {
		if r.mode == mode && r.parts == P && (conns == 0 || r.conns == conns) && (!ok || r.time < out.time) {
			out, ok = r, true
		}
	}
	return out, ok
}

// limit measures every mode's methods at every partition count and
// connection count, on the pre-produced layouts.
func (b *bench) limit(ctx context.Context, layouts map[int]*dataset.Layout) *limitResult {
	o := b.o
	res := &limitResult{records: o.records, batch: o.limit.batch}
	for _, P := range o.partitions {
		l := layouts[P]
		for _, mode := range limitModes {
			insert := mode == "insert"
			perPart, rows := limitBatches(b.d, l, o.limit.batch, insert)
			for _, c := range o.limit.at(P) {
				for _, m := range limitMethods[mode] {
					run := limitRun{mode: mode, method: m, parts: P, conns: c, rows: rows}
					label := fmt.Sprintf("limit %s %s, %d partitions, %d connections", mode, m, P, c)
					err := b.retry(ctx, label, func() error {
						var err error
						run.time, err = b.limitRun(ctx, l, perPart, c, m, insert)
						return err
					}, func(a int) { run.attempts = a })
					if err != nil {
						b.rep.failed(label, err)
						continue
					}
					logf("  %s: %.0f records/s (%d rows)", label, run.rate(o.records), rows)
					res.runs = append(res.runs, run)
				}
			}
		}
	}
	return res
}

// limitRun writes perPart into a fresh table of the mode's shape by
// method m over conns connections, after a CHECKPOINT, and returns the
// time the writes took; then it checks the table.
func (b *bench) limitRun(ctx context.Context, l *dataset.Layout, perPart [][]limitBatch, conns int, m limitMethod, insert bool) (time.Duration, error) {
	_, group, table := b.fresh()
	defer b.forget(table, group)
	if err := sinkdb.EnsureTable(ctx, b.s.db, l.Topic, table, insert); err != nil {
		return 0, err
	}
	q := newLimitSQL(l.Topic, table, insert)
	cns, closeAll, err := b.connectN(ctx, conns, "bench-suite-limit")
	if err != nil {
		return 0, err
	}
	defer closeAll()
	for i := range cns {
		if m == limitCopyUpsert {
			if _, err := cns[i].Exec(ctx, q.stageCreate); err != nil {
				return 0, fmt.Errorf("limit stage table: %w", err)
			}
		}
	}
	if _, err := cns[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	work := limitShare(perPart, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i, cn := range cns {
		wg.Go(func() {
			for _, bt := range work[i] {
				if err := q.write(ctx, cn, m, insert, bt); err != nil {
					errs[i] = fmt.Errorf("limit %s %s[%d]: %w", m, table, bt.part, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	wantRows, wantSum := l.Expected(b.d, insert)
	if err := sinkdb.Check(ctx, b.s.db, table, wantRows, wantSum); err != nil {
		return 0, err
	}
	// The values must have landed as JSON objects, not as JSON strings.
	var objects bool
	if err := b.s.db.QueryRow(ctx, `SELECT bool_and(jsonb_typeof(value) = 'object') FROM `+q.table.Sanitize()).Scan(&objects); err != nil {
		return 0, fmt.Errorf("check %s: %w", table, err)
	}
	if !objects {
		return 0, fmt.Errorf("table %s: a value is not a JSON object", table)
	}
	return elapsed, nil
}

func (l *limitResult) markdown(w func(string, ...any), parts []int) {
	w("Every record of each partition count's topic, from memory (no Kafka, no worker), into a fresh table of the sink's shape per run, batches of %d consecutive records of one partition (de-duplicated as the writer does in upsert mode), one transaction per batch, connection i writes partitions p with p %% conns == i, after a CHECKPOINT; every table is checked (rows, offset sum, values are JSON objects). "+
		"**insert** (kafka_topic, kafka_partition, kafka_offset, key, value jsonb, kafka_timestamp): `copy` is binary COPY (pgx CopyFrom) straight into the table; `unnest` the writer's INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING. "+
		"**upsert** (key primary key): `unnest` the writer's INSERT .. ON CONFLICT (key) DO UPDATE (the ceiling scenario's); `copy+insert` binary COPY into a per-connection temp table (ON COMMIT DELETE ROWS) then INSERT .. SELECT FROM it ON CONFLICT (key) DO UPDATE; `merge` MERGE from the same unnest parameters. "+
		"records/s counts records, as the sink's figures do; the fastest method at each partition and connection count is in bold.", l.batch)
	w("")
	for _, mode := range limitModes {
		w("**%s**", mode)
		w("")
		head, sep := "| method | connections |", "| --- | ---: |"
		for _, P := range parts {
			head += fmt.Sprintf(" %d partitions |", P)
			sep += " ---: |"
		}
		w("%s", head)
		w("%s", sep)
		var conns []int
		for _, r := range l.runs {
			if r.mode == mode && !slices.Contains(conns, r.conns) {
				conns = append(conns, r.conns)
			}
		}
		slices.Sort(conns)
		for _, c := range conns {
			for _, m := range limitMethods[mode] {
				line := fmt.Sprintf("| %s | %d |", m, c)
				for _, P := range parts {
					cell := ""
					for _, r := range l.runs {
						if r.mode == mode && r.method == m && r.parts == P && r.conns == c {
							cell = fmt.Sprintf("%.0f", r.rate(l.records))
							if top, _ := l.best(mode, P, c); top.method == m {
								cell = "**" + cell + "**"
							}
						}
					}
					line += " " + cell + " |"
				}
				w("%s", line)
			}
		}
		w("")
		for _, P := range parts {
			if top, ok := l.best(mode, P, 0); ok {
				w("- %s, %d partitions: best **%.0f** records/s, %s at %d connections (%d rows)", mode, P, top.rate(l.records), top.method, top.conns, top.rows)
			}
		}
		w("")
	}
}

// summary is one line per mode: the best method and connection count at
// each partition count.
func (l *limitResult) summary(parts []int) []string {
	var out []string
	for _, mode := range limitModes {
		var at []string
		for _, P := range parts {
			if top, ok := l.best(mode, P, 0); ok {
				at = append(at, fmt.Sprintf("%d partitions %.0f (%s, %d connections)", P, top.rate(l.records), top.method, top.conns))
			}
		}
		if len(at) > 0 {
			out = append(out, fmt.Sprintf("**limit, %s** (records/s): %s", mode, strings.Join(at, "; ")))
		}
	}
	return out
}

func (l *limitResult) csv() [][]string {
	var rows [][]string
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	i := strconv.Itoa
	for _, r := range l.runs {
		rows = append(rows, []string{"limit-" + r.mode + "-" + string(r.method), i(r.parts), "", i(r.conns), i(l.batch), i(r.rows) + " rows",
			i(l.records), f(r.time.Seconds()), f(r.rate(l.records)), i(r.conns), "", "", "", "", "", i(r.attempts)})
	}
	return rows
}
