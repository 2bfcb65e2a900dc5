package main

import (
	"context"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// drainResult is the drain scenario: one worker with its defaults (and
// -env) drains the pre-produced -drain-partitions topic; the same rows go
// straight into PostgreSQL at one connection per partition, with the
// writer's statement alone and with its whole transaction.
type drainResult struct {
	pointResult
	rows     int           // rows the ceilings write after in-batch de-duplication
	ceiling  time.Duration // the write statement alone per batch
	writerTx time.Duration // BEGIN, lock the offsets row, write, advance it, COMMIT
}

// drain measures the drain scenario on l's topic.
func (b *bench) drain(ctx context.Context, l *dataset.Layout) (drainResult, error) {
	var r drainResult
	var err error
	if r.pointResult, err = b.runPoint(ctx, point{l.Parts, 1, autoPool, 5000}, b.d, l, 0); err != nil {
		return r, err
	}
	perPart, rows := ceiling.Batches(b.d, l, 5000, b.o.insert)
	r.rows = rows
	if r.ceiling, err = b.ceilingRun(ctx, l, perPart, l.Parts, ceiling.Statement); err != nil {
		return r, err
	}
	r.writerTx, err = b.ceilingRun(ctx, l, perPart, l.Parts, ceiling.Writer)
	return r, err
}
