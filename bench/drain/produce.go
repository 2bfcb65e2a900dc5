package main

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// produce draws -records records with keys uniformly (fixed seed) from a
// space of -keys, writes them to the run's topic, logging every tenth
// acknowledged, and checks that the partitions' end offsets add up to them.
func produce(ctx context.Context, s *services, topic string, o options, r *report) (*dataset.Dataset, *dataset.Layout, error) {
	d := dataset.New(o.records, o.keys)
	r.distinctKeys = d.DistinctKeys
	logf("producing %d records (%d distinct keys of %d) to %s ...", d.N, d.DistinctKeys, o.keys, topic)
	step := max(d.N/10, 1)
	start := time.Now()
	progress := func(acked int) {
		if acked%step == 0 {
			logf("  produced %d/%d (%.0f records/s)", acked, d.N, float64(acked)/time.Since(start).Seconds())
		}
	}
	l, err := dataset.Produce(ctx, d, topic, o.partitions, progress, kgo.SeedBrokers(s.brokers...))
	if err != nil {
		return nil, nil, err
	}
	r.produceTime = l.Took
	logf("produced %d records in %s (%.0f records/s)", d.N, l.Took.Round(time.Millisecond), float64(d.N)/l.Took.Seconds())
	return d, l, nil
}
