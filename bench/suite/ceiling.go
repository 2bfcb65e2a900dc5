package main

import (
	"context"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// ceilingRun writes every batch into a fresh table with conns connections
// (connection i writes the batches of partitions p with p % conns == i,
// round-robin over its partitions), one transaction per batch holding
// what tx says, with a fresh group for ceiling.Writer. It returns the
// elapsed time after a CHECKPOINT and checks the table.
func (b *bench) ceilingRun(ctx context.Context, l *dataset.Layout, perPart [][]ceiling.Batch, conns int, tx ceiling.Tx) (time.Duration, error) {
	_, group, table := b.fresh()
	defer b.forget(table, group)
	if err := sinkdb.EnsureTable(ctx, b.s.db, l.Topic, table, b.o.insert); err != nil {
		return 0, err
	}
	elapsed, err := ceiling.Write(ctx, ceiling.Config{DSN: b.s.dsn, App: "bench-suite-ceiling", Table: table,
		Conns: conns, Tx: tx, Group: group, Topic: l.Topic, Insert: b.o.insert}, perPart)
	if err != nil {
		return 0, err
	}
	return elapsed, b.checkTable(ctx, table, b.d, l)
}

// checkTable compares a table the workers' mode wrote with what the records imply.
func (b *bench) checkTable(ctx context.Context, table string, d *dataset.Dataset, l *dataset.Layout) error {
	wantRows, wantSum := l.Expected(d, b.o.insert)
	return sinkdb.Check(ctx, b.s.db, table, wantRows, wantSum)
}
