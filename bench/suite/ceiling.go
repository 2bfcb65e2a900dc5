package main

import (
	"context"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// ceilingRun upserts every batch into a fresh table with conns connections:
// connection i writes the batches of partitions p with p % conns == i,
// round-robin over its partitions, the upsert alone per batch (its own
// transaction). It returns the elapsed time after a CHECKPOINT and checks
// the table.
func ceilingRun(ctx context.Context, s *services, d *dataset.Dataset, l *dataset.Layout, perPart [][]ceiling.Batch, conns int, table string) (time.Duration, error) {
	if err := sinkdb.EnsureTable(ctx, s.db, l.Topic, table); err != nil {
		return 0, err
	}
	elapsed, err := ceiling.Write(ctx, ceiling.Config{DSN: s.dsn, App: "bench-suite-ceiling", Table: table,
		Conns: conns, Tx: ceiling.Statement}, perPart)
	if err != nil {
		return 0, err
	}
	return elapsed, checkTable(ctx, s, table, d, l)
}

// checkTable compares an upsert table with what the records imply.
func checkTable(ctx context.Context, s *services, table string, d *dataset.Dataset, l *dataset.Layout) error {
	wantRows, wantSum := l.Expected(d)
	return sinkdb.Check(ctx, s.db, table, wantRows, wantSum)
}
