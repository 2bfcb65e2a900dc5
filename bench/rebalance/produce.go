package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// producer writes keyed ~100-byte JSON records (bench/internal/dataset,
// keys drawn from 20,000) to every topic in turn, rate records/s in total,
// until its ctx is done. Start run in a goroutine; the counters are safe to
// read meanwhile.
type producer struct {
	cl     *kgo.Client
	topics []string
	rate   float64

	acked, failed atomic.Int64
	firstErr      atomic.Pointer[error]
	took          time.Duration // set when run returns
}

// producerKeys is the key space: keys repeat, as upserts expect, and
// spread over every partition.
const producerKeys = 20_000

// run produces in 5 ms ticks, as many records as the rate says are due,
// and returns once ctx is done and what it produced is flushed (up to
// 10 s).
func (p *producer) run(ctx context.Context) {
	d := dataset.New(100_000, producerKeys)
	start := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var wg sync.WaitGroup
	done := func(_ *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			p.failed.Add(1)
			p.firstErr.CompareAndSwap(nil, &err)
			return
		}
		p.acked.Add(1)
	}
	// Records are not cancelled with ctx: stopping flushes what was due.
	rctx := context.WithoutCancel(ctx)
	sent := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		for due := int(p.rate * time.Since(start).Seconds()); sent < due && ctx.Err() == nil; sent++ {
			i := int32(sent % d.N)
			now := time.Now()
			wg.Add(1)
			p.cl.Produce(rctx, &kgo.Record{
				Topic: p.topics[sent%len(p.topics)], Key: d.Key(i), Value: d.Value(i, now.UnixMilli()), Timestamp: now,
			}, done)
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.cl.Flush(fctx) // what is not flushed by then fails with its own error
	wg.Wait()
	p.took = time.Since(start)
}
