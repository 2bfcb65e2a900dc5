package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/sink"
)

// bench runs the whole benchmark: set-up, warm-up, the rounds, the report
// (also after a failure, with what was measured), and clean-up unless
// -keep.
func bench(ctx context.Context, o options) error {
	s, err := connect(ctx)
	if err != nil {
		return err
	}
	defer s.close()

	rep := &report{opts: o, started: time.Now()}
	if err := rep.describe(ctx, s); err != nil {
		return err
	}
	if rep.dir, err = os.MkdirTemp("", "bench-rebalance-"); err != nil {
		return err
	}
	bin := filepath.Join(rep.dir, "sinkworker")
	logf("building the worker: go build -o %s ./cmd/sinkworker", bin)
	if err := proc.Build(ctx, rep.root, "./cmd/sinkworker", bin); err != nil {
		return err
	}

	h := &harness{o: o, s: s, rep: rep}
	stamp := time.Now().Unix()
	for i, p := range []string{sink.GroupProtocolClassic, sink.GroupProtocolConsumer} {
		h.fleets = append(h.fleets, newFleet(s, p, i, o.partitions, stamp, bin, rep.dir, o.env))
	}
	rep.fleets = h.fleets
	for _, f := range h.fleets {
		logf("%s: topic %s, group %s, table %s", f.protocol, f.topic, f.group, f.table)
	}
	defer func() {
		for _, f := range h.fleets {
			f.killAll() // after a failure; a no-op for stopped workers
		}
		if o.keep {
			logf("kept (-keep): the topics, groups, tables and sink_offsets rows above")
			return
		}
		s.cleanup(h.fleets)
	}()

	err = h.run(ctx)
	_ = os.Remove(bin) // the logs and progress.csv stay
	if err != nil {
		rep.failure = err.Error()
	}
	rep.finish(h)
	if werr := rep.write(); werr != nil && err == nil {
		err = werr
	}
	return err
}

// harness is one run's state. Only the goroutine that calls run uses it;
// the recorder and the producer run in goroutines run owns.
type harness struct {
	o      options
	s      *services
	rep    *report
	fleets []*fleet
	rec    *recorder
	prod   *producer
}

// run sets up the topics, tables, recorder, producer and base workers,
// warms up, runs the rounds and stops every worker (each must exit 0).
// The producer and the recorder stop when it returns.
func (h *harness) run(ctx context.Context) error {
	for _, f := range h.fleets {
		if err := broker.CreateTopic(ctx, h.s.adm, f.topic, int32(f.parts)); err != nil {
			return err
		}
		// Created beforehand so that two workers starting at once do not race to create it.
		if err := sinkdb.EnsureTable(ctx, h.s.db, f.topic, f.table); err != nil {
			return fmt.Errorf("create table %s: %w", f.table, err)
		}
	}

	pollConn, err := dial(ctx, h.s.dsn, "bench-rebalance-poll")
	if err != nil {
		return err
	}
	h.rec = &recorder{db: pollConn, dsn: h.s.dsn, start: time.Now(), every: h.o.poll, fleets: h.fleets,
		series: make([]series, len(h.fleets))}
	recCtx, stopRec := context.WithCancel(ctx)
	recDone := make(chan struct{})
	go func() { h.rec.run(recCtx); close(recDone) }()
	defer func() { stopRec(); <-recDone }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(h.s.brokers...), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer cl.Close() // after the producer has stopped: defers run last first
	var topics []string
	for _, f := range h.fleets {
		topics = append(topics, f.topic)
	}
	h.prod = &producer{cl: cl, topics: topics, rate: h.o.rate}
	prodCtx, stopProd := context.WithCancel(ctx)
	prodDone := make(chan struct{})
	go func() { h.prod.run(prodCtx); close(prodDone) }()
	defer func() { stopProd(); <-prodDone }()
	logf("producing %.0f records/s to %v; polling sink_offsets every %s", h.o.rate, topics, h.o.poll)

	for _, f := range h.fleets {
		for n := 1; n <= 2; n++ {
			p, err := f.start(f.member(n, 0))
			if err != nil {
				return err
			}
			f.base = append(f.base, p)
		}
	}
	logf("started 2 workers per protocol (logs in %s); warming up for %s", h.rep.dir, h.o.warmup)
	if err := h.hold(ctx, h.o.warmup); err != nil {
		return err
	}
	for _, f := range h.fleets {
		w, err := h.settled(ctx, f, 2, 2*time.Minute)
		if err != nil {
			return err
		}
		h.rep.warmupExtra += w
	}
	h.rep.roundsStart = h.rec.now()

	for round := 1; round <= h.o.rounds; round++ {
		if err := h.quiet(ctx, round); err != nil {
			return err
		}
		order := slices.Clone(h.fleets)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, f := range order {
			if err := h.join(ctx, f, round); err != nil {
				return err
			}
			if err := h.leave(ctx, f, round); err != nil {
				return err
			}
		}
	}
	return h.stopAll()
}

// hold waits d, checking every 200 ms that no worker has died.
func (h *harness) hold(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return h.died()
		case <-tick.C:
			if err := h.died(); err != nil {
				return err
			}
		}
	}
}

func (h *harness) died() error {
	for _, f := range h.fleets {
		if err := f.died(); err != nil {
			return err
		}
	}
	return nil
}

// settled waits until f's group is Stable with n members sharing every
// partition and every partition advanced within the last second; it
// returns how long that took, an error after limit.
func (h *harness) settled(ctx context.Context, f *fleet, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		a, derr := f.describe(ctx, h.s.adm)
		ok, idle := steady(h.rec.progress(f.index), h.rec.now())
		if derr == nil && a.complete(n, f.parts) && ok {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%s group %s not settled with %d members after %s: %s (describe error: %v); partitions without progress in the last second: %v",
				f.protocol, f.group, n, limit, a, derr, idle)
		}
		if err := h.hold(ctx, 250*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// stopAll sends SIGTERM to every base worker in turn; each must exit 0.
func (h *harness) stopAll() error {
	for _, f := range h.fleets {
		for _, p := range f.base {
			exit := p.Stop(time.Minute)
			h.rep.baseExits = append(h.rep.baseExits, exit.Code)
			if exit.Killed || exit.Code != 0 {
				return fmt.Errorf("%s worker exited with status %d after SIGTERM (killed: %v), want 0\n%s",
					f.protocol, exit.Code, exit.Killed, p.Tail(30))
			}
		}
	}
	logf("stopped every worker: all exited 0")
	return nil
}
