package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// runCeiling writes the same records straight into PostgreSQL, twice: the
// upsert statement alone in one transaction per batch (the ceiling), and
// the writer's whole transaction (lock the offsets row, upsert, advance
// it). Batches are BATCH_MAX_RECORDS consecutive records of one partition,
// de-duplicated by batch.Dedupe, written by one goroutine and connection
// per partition. Building the batches is not timed.
func runCeiling(ctx context.Context, s *services, o options, n names, d *dataset.Dataset, l *dataset.Layout, r *report) error {
	perPart, rows := ceiling.Batches(d, l, o.batch)
	logf("ceiling: %d records in %d batches of up to %d per partition, %d rows after de-duplication",
		d.N, countBatches(perPart), o.batch, rows)
	r.ceilingRows = rows

	for _, run := range []struct {
		table, group string
		tx           ceiling.Tx
		out          *time.Duration
		check        *string
	}{
		{n.ceiling, "", ceiling.Upsert, &r.ceilingTime, &r.ceilingCheck},
		{n.full, n.fullGroup, ceiling.Writer, &r.fullTime, &r.fullCheck},
	} {
		if err := sinkdb.EnsureTable(ctx, s.db, n.topic, run.table); err != nil {
			return err
		}
		elapsed, err := ceiling.Write(ctx, ceiling.Config{DSN: s.dsn, App: "bench-drain-ceiling", Table: run.table,
			Conns: l.Parts, Tx: run.tx, Group: run.group, Topic: n.topic}, perPart)
		if err != nil {
			return err
		}
		*run.out = elapsed
		if *run.check, err = checkTable(ctx, s.db, run.table, d, l); err != nil {
			return err
		}
		if err := sameRows(ctx, s.db, n.table, run.table); err != nil {
			return err
		}
		logf("ceiling %s: %d records in %s (%.0f records/s, %.0f rows/s)", run.table, d.N,
			elapsed.Round(time.Millisecond), float64(d.N)/elapsed.Seconds(), float64(rows)/elapsed.Seconds())
	}
	return nil
}

func countBatches(perPart [][]ceiling.Batch) (n int) {
	for _, b := range perPart {
		n += len(b)
	}
	return n
}

// sameRows checks that two upsert tables hold the same keys with the same
// values, partitions, offsets and timestamps.
func sameRows(ctx context.Context, db *pgx.Conn, a, b string) error {
	var diff int64
	err := db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s a FULL JOIN %s b USING (key)
WHERE a.value IS DISTINCT FROM b.value OR a.kafka_partition IS DISTINCT FROM b.kafka_partition
	OR a.kafka_offset IS DISTINCT FROM b.kafka_offset OR a.kafka_timestamp IS DISTINCT FROM b.kafka_timestamp`,
		pgx.Identifier{a}.Sanitize(), pgx.Identifier{b}.Sanitize())).Scan(&diff)
	if err != nil {
		return fmt.Errorf("compare %s with %s: %w", a, b, err)
	}
	if diff != 0 {
		return fmt.Errorf("%s and %s differ in %d keys: the ceiling did not write the worker's rows", a, b, diff)
	}
	return nil
}
