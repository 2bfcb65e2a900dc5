package demo

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is what a run found. Passed is the final check: the table equals
// the model, every bad record is in the dead-letter topic and nothing else
// is, nothing produced is unaccounted for, and the fleet never held more
// connections than there are partitions.
type Result struct {
	Passed   bool
	Problems []string // why not Passed, one line each

	Broker   string // what served as Kafka
	Postgres string // what served as PostgreSQL
	// Topic, Table and Group the run used (left in place on a real broker
	// or database).
	Topic, Table, Group string
	// Format is Options.Format. For avro and protobuf, Columns is the
	// table the workers created from the value schema, in column order,
	// and SampleRows a few of its rows as JSON (the Kafka coordinates left
	// out).
	Format     string
	Columns    []TableColumn
	SampleRows []string

	Events   int   // good events produced (creates, changes, deletes)
	Creates  int   // user-created events
	Changes  int   // points-changed events
	Deletes  int   // tombstones
	Bad      int   // bad records produced
	Records  int64 // all records produced: Events + Bad
	Sunk     int64 // sum of next_offset at the end: records applied or dead-lettered
	Rows     int   // rows in the table
	Model    int   // rows the model expects
	Mismatch int   // keys missing, extra or with another value (compared as jsonb)

	DeadLetters []DeadLetter // what the dead-letter topic holds
	PeakConns   int          // most fleet connections seen in pg_stat_activity
	PeakRate    float64      // most records sunk per second (over ~2 s)
	Partitions  int
	Recovery    *Recovery // nil with NoKill

	ProduceTime time.Duration // first send to last acknowledgement
	SunkAfter   time.Duration // first send to everything sunk (sampled every 250 ms)
	Elapsed     time.Duration // the whole run, start-up included
}

// TableColumn is one column of the table, as PostgreSQL has it.
type TableColumn struct {
	Name     string
	Type     string // format_type: "bigint", "numeric(10,2)", "text[]", "timestamp with time zone", ...
	Nullable bool
}

// DeadLetter is one record of the dead-letter topic.
type DeadLetter struct {
	Partition int32  // source partition (header __connect.errors.partition)
	Offset    int64  // source offset (header __connect.errors.offset)
	Class     string // __connect.errors.exception.class.name
	Message   string // __connect.errors.exception.message
	Kind      string // what the demo produced there; empty when it produced no bad record there
	Duplicate bool   // a second copy of an earlier dead letter (at-least-once delivery)
}

// check compares the outcome with the model and fills r.res.
func (r *run) check(ctx context.Context) error {
	res, st := &r.res, r.prod.story
	res.Events, res.Creates, res.Changes, res.Deletes = r.opts.Events, st.creates, st.changes, st.deletes
	res.Bad, res.Records, res.Sunk, res.Model = len(r.prod.bad), r.prod.total, r.final.sunk, len(st.model)
	if res.Sunk != res.Records {
		r.problem("sum(next_offset) is %s, but %s records were produced", count(res.Sunk), count(res.Records))
	}
	res.Format = r.opts.Format
	if err := r.checkTable(ctx); err != nil {
		return err
	}
	if res.Format != FormatJSON {
		if err := r.describeTable(ctx); err != nil {
			return err
		}
	}
	if err := r.checkDLQ(ctx); err != nil {
		return err
	}
	if res.PeakConns > res.Partitions {
		r.problem("the fleet held %d database connections at its peak, more than the %d partitions", res.PeakConns, res.Partitions)
	}
	res.Passed = len(res.Problems) == 0
	return nil
}

func (r *run) problem(format string, args ...any) {
	r.res.Problems = append(r.res.Problems, fmt.Sprintf(format, args...))
}

// metaColumns are the Kafka coordinates of a typed table's rows, left out
// of the comparison with the model.
const metaColumns = ` - 'kafka_topic' - 'kafka_partition' - 'kafka_offset' - 'kafka_timestamp'`

// checkTable loads the model into a temporary table and lets PostgreSQL
// compare every key's value as jsonb (so key order and spacing don't
// count). A typed table's row is compared whole as jsonb, and the model's
// row goes through the table's own row type first, so it is compared as
// the typed values it stands for (12.5 and 12.50 are one numeric).
func (r *run) checkTable(ctx context.Context) error {
	keys := make([]string, 0, len(r.prod.story.model))
	values := make([]string, 0, len(keys))
	for k, v := range r.prod.story.model {
		keys, values = append(keys, k), append(values, string(v))
	}
	table := pgx.Identifier{r.names.table}.Sanitize()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE demo_model (key text PRIMARY KEY, value jsonb NOT NULL) ON COMMIT DROP`); err != nil {
			return err
		}
		model, key, value := "v::jsonb", "u.key", "u.value"
		if r.opts.Format != FormatJSON {
			model = "to_jsonb(jsonb_populate_record(NULL::" + table + ", v::jsonb))" + metaColumns
			key, value = "u.id::text", "(to_jsonb(u)"+metaColumns+")"
		}
		if _, err := tx.Exec(ctx, `INSERT INTO demo_model SELECT k, `+model+` FROM unnest($1::text[], $2::text[]) AS t(k, v)`, keys, values); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&r.res.Rows); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT coalesce(m.key, `+key+`), m.key IS NULL, `+key+` IS NULL
			FROM demo_model m FULL JOIN `+table+` u ON `+key+` = m.key
			WHERE m.value IS DISTINCT FROM `+value+` ORDER BY 1`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var key string
			var extra, missing bool
			if err := rows.Scan(&key, &extra, &missing); err != nil {
				return err
			}
			r.res.Mismatch++
			switch {
			case r.res.Mismatch > 5:
			case extra:
				r.problem("key %s: in the table, but deleted or never created", key)
			case missing:
				r.problem("key %s: missing from the table", key)
			default:
				r.problem("key %s: another value than the last one produced", key)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("compare the table with the model: %w", err)
	}
	if r.res.Mismatch > 5 {
		r.problem("... %d keys differ in all", r.res.Mismatch)
	}
	return nil
}

// describeTable reads the columns of the table the workers created, with
// their types as PostgreSQL names them, and a few rows.
func (r *run) describeTable(ctx context.Context) error {
	table := pgx.Identifier{r.names.table}.Sanitize()
	rows, err := r.pool.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull
		FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return fmt.Errorf("columns of %s: %w", table, err)
	}
	r.res.Columns, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableColumn, error) {
		var c TableColumn
		return c, row.Scan(&c.Name, &c.Type, &c.Nullable)
	})
	if err != nil {
		return fmt.Errorf("columns of %s: %w", table, err)
	}
	rows, err = r.pool.Query(ctx, `SELECT (to_jsonb(u)`+metaColumns+`)::text FROM `+table+` u ORDER BY u.id LIMIT 3`)
	if err != nil {
		return fmt.Errorf("rows of %s: %w", table, err)
	}
	r.res.SampleRows, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("rows of %s: %w", table, err)
	}
	return nil
}

// checkDLQ reads the whole dead-letter topic and matches it with the bad
// records produced, by source partition and offset, original bytes too.
func (r *run) checkDLQ(ctx context.Context) error {
	dls, err := readDLQ(ctx, r.brokers, r.names.dlq)
	if err != nil {
		return err
	}
	want := map[[2]int64]*sentBad{}
	for _, b := range r.prod.bad {
		want[[2]int64{int64(b.partition), b.offset}] = b
	}
	seen := map[[2]int64]bool{}
	for i := range dls {
		d := &dls[i]
		at := [2]int64{int64(d.dl.Partition), d.dl.Offset}
		d.dl.Duplicate = seen[at]
		seen[at] = true
		b, ok := want[at]
		if ok && bytes.Equal(b.key, d.key) && bytes.Equal(b.value, d.value) {
			d.dl.Kind = b.kind
		} else {
			r.problem("dead letter for partition %d offset %d is not a bad record the demo produced", at[0], at[1])
		}
		r.res.DeadLetters = append(r.res.DeadLetters, d.dl)
	}
	slices.SortStableFunc(r.res.DeadLetters, func(a, b DeadLetter) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	for at, b := range want {
		if !seen[at] {
			r.problem("bad record (%s) at partition %d offset %d is not in %s", b.kind, at[0], at[1], r.names.dlq)
		}
	}
	return nil
}

// dlqRecord is a dead letter with its original bytes.
type dlqRecord struct {
	dl         DeadLetter
	key, value []byte
}
