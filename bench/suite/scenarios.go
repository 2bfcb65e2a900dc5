package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// sweep is the list of sinkworker points.
func sweep(o options) []point {
	var pts []point
	seen := map[point]bool{}
	add := func(p point) {
		p.pool = min(p.pool, p.parts)
		if p.workers > p.parts || seen[p] {
			return
		}
		seen[p] = true
		pts = append(pts, p)
	}
	pools := func(P int) []int { return []int{1, 2, 4, 8, 16, P, autoPool} } // auto: the default POOL_MAX_CONNS; 16: the one before
	if o.points != nil {
		return o.points
	}
	if o.smoke {
		P := slices.Max(o.partitions)
		add(point{P, 1, 1, 5000})
		add(point{P, 2, P, 1000})
		return pts
	}
	if o.full {
		for _, P := range o.partitions {
			for _, w := range []int{1, 2, 4} {
				for _, pool := range pools(P) {
					for _, bs := range []int{100, 1000, 5000} {
						add(point{P, w, pool, bs})
					}
				}
			}
		}
		return pts
	}
	for _, P := range o.partitions {
		for _, pool := range pools(P) {
			add(point{P, 1, pool, 5000})
		}
	}
	// Batch size and worker count at one partition count: 16, else the largest below it.
	mid := o.partitions[0]
	for _, P := range o.partitions {
		if P <= 16 {
			mid = max(mid, P)
		}
	}
	for _, bs := range []int{100, 1000} {
		add(point{mid, 1, mid, bs})
	}
	for _, w := range []int{2, 4} {
		add(point{mid, w, mid, 5000})
	}
	return pts
}

// scenarios runs the scenarios -scenarios selects, in order, on the
// pre-produced topics (layouts by partition count) and the sweep's points;
// a failed measurement is in the report, and the run goes on.
func (b *bench) scenarios(ctx context.Context, layouts map[int]*dataset.Layout, pts []point, topics *[]string) {
	o, s := b.o, b.s
	// 1. Ceiling: per partition count, on that topic's records (de-duplication
	// depends on how keys fall into partitions), at every connection count the
	// sweep uses there.
	phase := time.Now()
	for _, P := range o.partitions {
		if !o.scenarios["ceiling"] {
			break
		}
		l := layouts[P]
		conns := []int{}
		for _, c := range []int{1, 2, 4, 8, 16, P} {
			if c <= P && !slices.Contains(conns, c) {
				conns = append(conns, c)
			}
		}
		for _, p := range pts {
			if c := min(p.conns(), P); p.parts == P && !slices.Contains(conns, c) {
				conns = append(conns, c)
			}
		}
		slices.Sort(conns)
		perPart, rows := ceiling.Batches(b.d, l, 5000, o.insert)
		for _, c := range conns {
			res := ceilingResult{parts: P, conns: c, rows: rows}
			err := b.retry(ctx, fmt.Sprintf("ceiling, %d partitions, %d connections", P, c), func() error {
				var err error
				res.time, err = b.ceilingRun(ctx, l, perPart, c, ceiling.Statement)
				return err
			}, func(a int) { res.attempts = a })
			if err != nil {
				b.rep.failed(fmt.Sprintf("ceiling %d/%d", P, c), err)
				continue
			}
			logf("  ceiling %d partitions, %d connections: %.0f records/s (%d rows)", P, c, res.rate(o.records), rows)
			b.rep.ceiling = append(b.rep.ceiling, res)
		}
	}
	b.rep.timing("ceiling", time.Since(phase))

	// 2. sinkworker sweep.
	phase = time.Now()
	if !o.scenarios["sweep"] {
		pts = nil
	}
	for i := range len(pts) * o.rounds {
		pt, round, latency := pts[i%len(pts)], 1+i/len(pts), o.latency
		if round > 1 {
			latency = 0 // measured in the first round
		}
		var res pointResult
		label := fmt.Sprintf("sinkworker %d/%d %s", i+1, len(pts)*o.rounds, pt)
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runPoint(ctx, pt, b.d, layouts[pt.parts], latency)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			continue
		}
		res.round = round
		logf("  %s: %.0f records/s, peak %d connections, %.1f s CPU, max RSS %.0f MiB, latency p50 %s p99 %s at %.0f records/s",
			label, res.rate(), res.peakConns, res.cpu.Seconds(), mib(res.maxRSS), ms(res.p50), ms(res.p99), res.latRate)
		b.rep.points = append(b.rep.points, res)
	}
	b.rep.timing("sinkworker sweep", time.Since(phase))

	// 3. Naive consumer at the largest partition count (the connections question) and at 16 if swept.
	phase = time.Now()
	naiveParts := []int{slices.Max(o.partitions)}
	if slices.Contains(o.partitions, 16) && naiveParts[0] != 16 {
		naiveParts = append([]int{16}, naiveParts...)
	}
	if !o.scenarios["naive"] {
		naiveParts = nil
	}
	for _, P := range naiveParts {
		var res naiveResult
		label := fmt.Sprintf("naive consumer, %d partitions", P)
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runNaive(ctx, layouts[P], o.naiveTime)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			continue
		}
		logf("  %s: %.0f records/s, peak %d connections", label, res.rate(), res.peakConns)
		b.rep.naive = append(b.rep.naive, res)
	}
	b.rep.timing("naive consumer", time.Since(phase))

	// 4. Debezium.
	if o.debezium && o.scenarios["debezium"] {
		phase = time.Now()
		if err := b.debezium(ctx, layouts[o.dbzParts], topics); err != nil {
			b.rep.failed("debezium", err)
		}
		b.rep.timing("Kafka Connect + Debezium", time.Since(phase))
	}

	// 5. Memory.
	if len(o.memory) > 0 && o.scenarios["memory"] {
		phase = time.Now()
		for _, n := range o.memory {
			label := fmt.Sprintf("memory, %d records", n)
			var res pointResult
			err := b.retry(ctx, label, func() error {
				d := b.d
				if n != o.records {
					d = dataset.New(n, max(1, n/5))
				}
				topic := fmt.Sprintf("bench-suite-%s-mem%d", b.stamp, b.nextID())
				defer s.dropTopics(topic, topic+".dlq")
				if err := broker.CreateTopic(ctx, s.adm, topic, 16); err != nil {
					return err
				}
				logf("  producing %d records to %s ...", n, topic)
				l, err := produce(ctx, s, d, topic, 16)
				if err != nil {
					return err
				}
				res, err = b.runPoint(ctx, point{16, 1, autoPool, 5000}, d, l, 0)
				res.records = n
				return err
			}, func(a int) { res.attempts = a })
			if err != nil {
				b.rep.failed(label, err)
				continue
			}
			logf("  %s: %.0f records/s, max RSS %.0f MiB, %.1f s CPU", label, res.rate(), mib(res.maxRSS), res.cpu.Seconds())
			b.rep.memory = append(b.rep.memory, res)
		}
		b.rep.timing("memory", time.Since(phase))
	}

	// 6. Drain: one worker with its defaults against two ceilings.
	if o.scenarios["drain"] {
		phase = time.Now()
		var res drainResult
		label := fmt.Sprintf("drain, %d partitions", o.drainParts)
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.drain(ctx, layouts[o.drainParts])
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
		} else {
			logf("  %s: %.0f records/s, %.0f after start-up; ceiling %.0f, with the writer's transaction %.0f",
				label, res.rate(), res.steadyRate(), rate(int64(res.records), res.ceiling), rate(int64(res.records), res.writerTx))
			b.rep.drain = &res
		}
		b.rep.timing("drain", time.Since(phase))
	}

	// 7. Rebalance: the pause a member joining or leaving causes, per group protocol.
	if o.scenarios["rebalance"] {
		phase = time.Now()
		var res *rebalanceResult
		err := b.retry(ctx, "rebalance", func() error {
			var err error
			res, err = b.rebalance(ctx)
			return err
		}, nil)
		if res != nil {
			b.rep.rebalance = res
		}
		if err != nil {
			b.rep.failed("rebalance", err)
		}
		b.rep.timing("rebalance", time.Since(phase))
	}

	// 8. Formats: the same records as JSON and as Avro into a typed table.
	if o.scenarios["formats"] {
		phase = time.Now()
		res, err := b.formats(ctx, topics)
		b.rep.formats = res
		if err != nil {
			b.rep.failed("formats", err)
		}
		b.rep.timing("formats", time.Since(phase))
	}

	// 9. Limit: the fastest way PostgreSQL takes the rows, per mode.
	if o.scenarios["limit"] {
		phase = time.Now()
		b.rep.limit = b.limit(ctx, layouts)
		b.rep.timing("limit", time.Since(phase))
	}

	// 10. Network: the old and the new worker across a simulated network.
	if o.scenarios["network"] {
		phase = time.Now()
		b.rep.network = b.network(ctx, layouts[o.network.parts])
		b.rep.timing("network", time.Since(phase))
	}

	// 11. Peers: the peers' benchmark shape, sinkworker against the Debezium JDBC sink.
	if o.scenarios["peers"] {
		phase = time.Now()
		res, err := b.peers(ctx, topics)
		b.rep.peers = res
		if err != nil {
			b.rep.failed("peers", err)
		}
		b.rep.timing("peers", time.Since(phase))
	}
}

// debezium produces src's records in Kafka Connect's envelope to a topic of
// its own and runs the Debezium JDBC sink on it, with its defaults and tuned.
func (b *bench) debezium(ctx context.Context, src *dataset.Layout, topics *[]string) error {
	s := b.s
	dir, err := b.connectDir(ctx)
	if err != nil {
		return err
	}
	topic := fmt.Sprintf("bench-suite-%s-dbz-p%d", b.stamp, src.Parts)
	*topics = append(*topics, topic)
	err = b.retry(ctx, "produce envelope "+topic, func() error {
		s.dropTopics(topic)
		if err := broker.CreateTopic(ctx, s.adm, topic, int32(src.Parts)); err != nil {
			return err
		}
		return produceEnvelope(ctx, s, b.d, src, topic)
	}, nil)
	if err != nil {
		return err
	}
	for _, tuned := range []bool{false, true} {
		var res dbzResult
		label := "Kafka Connect + Debezium JDBC sink, defaults"
		if tuned {
			label = "Kafka Connect + Debezium JDBC sink, tuned"
		}
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runDebezium(ctx, dir, topic, b.upsertTarget(topic, src), tuned)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			if res.rowsAtEnd > 0 {
				b.rep.dbz = append(b.rep.dbz, res)
			}
			continue
		}
		logf("  %s: %.0f records/s (%.0f after start-up), peak %d connections", label, res.rate(), res.steadyRate(), res.peakConns)
		b.rep.dbz = append(b.rep.dbz, res)
	}
	return nil
}
