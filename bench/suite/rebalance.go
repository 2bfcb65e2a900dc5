package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/sink"
)

// rebalanceOptions are the rebalance scenario's flags.
type rebalanceOptions struct {
	parts                int
	rate                 float64
	rounds               int
	settle, warmup, poll time.Duration
}

func (o *rebalanceOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&o.parts, "rebalance-partitions", 12, "rebalance: partitions of each protocol's topic")
	fs.Float64Var(&o.rate, "rebalance-rate", 3000, "rebalance: records/s produced in total, alternating between the two topics")
	fs.IntVar(&o.rounds, "rebalance-rounds", 5, "rebalance: rounds; each has a quiet window, then a join and a leave per protocol")
	fs.DurationVar(&o.settle, "rebalance-settle", 15*time.Second, "rebalance: time after each event (and length of the quiet window) before the next")
	fs.DurationVar(&o.warmup, "rebalance-warmup", 20*time.Second, "rebalance: time from the workers' start to the first round (then until the groups are settled)")
	fs.DurationVar(&o.poll, "rebalance-poll", 50*time.Millisecond, "rebalance: how often sink_offsets is read for both groups")
}

// smoke makes the flags not set on the command line -smoke's.
func (o *rebalanceOptions) smoke(set map[string]bool) {
	for name, f := range map[string]func(){
		"rebalance-partitions": func() { o.parts = 6 },
		"rebalance-rate":       func() { o.rate = 600 },
		"rebalance-rounds":     func() { o.rounds = 1 },
		"rebalance-settle":     func() { o.settle = 3 * time.Second },
		"rebalance-warmup":     func() { o.warmup = 3 * time.Second },
	} {
		if !set[name] {
			f()
		}
	}
}

// validate names every bad flag at once.
func (o rebalanceOptions) validate() error {
	var errs []error
	if o.parts < 3 {
		errs = append(errs, errors.New("-rebalance-partitions must be at least 3 (one per worker)"))
	}
	if o.rate < 10 {
		errs = append(errs, errors.New("-rebalance-rate must be at least 10 records/s"))
	}
	if o.rounds < 1 {
		errs = append(errs, errors.New("-rebalance-rounds must be at least 1"))
	}
	if o.settle < 2*time.Second {
		errs = append(errs, errors.New("-rebalance-settle must be at least 2s"))
	}
	if o.warmup < 0 {
		errs = append(errs, errors.New("-rebalance-warmup must not be negative"))
	}
	if o.poll < 5*time.Millisecond || o.poll > time.Second {
		errs = append(errs, errors.New("-rebalance-poll must be between 5ms and 1s"))
	}
	return errors.Join(errs...)
}

// rebalancer is one run of the rebalance scenario: per group protocol a
// fleet, a recorder polling both groups' sink_offsets, a producer feeding
// both topics. Only the goroutine that calls run uses it.
type rebalancer struct {
	b      *bench
	o      rebalanceOptions
	res    *rebalanceResult
	fleets []*fleet
	rec    *recorder
}

// rebalance runs the scenario once: set-up, warm-up, the rounds, every
// worker stopped (each must exit 0); the result holds what was measured,
// also after a failure.
func (b *bench) rebalance(ctx context.Context) (*rebalanceResult, error) {
	s := b.s
	h := &rebalancer{b: b, o: b.o.reb, res: &rebalanceResult{o: b.o.reb, env: b.o.env}}
	h.res.brokerCfg = s.brokerSettings(ctx, "group.consumer.heartbeat.interval.ms", "group.consumer.session.timeout.ms",
		"group.consumer.assignors", "group.initial.rebalance.delay.ms")
	for i, p := range []string{sink.GroupProtocolClassic, sink.GroupProtocolConsumer} {
		id, group, table := b.fresh()
		f := &fleet{protocol: p, index: i, parts: h.o.parts, topic: fmt.Sprintf("bench-suite-%s-%s-%d", b.stamp, p, id),
			group: group, table: table, bin: b.workerBin, dir: b.tmp, id: id}
		own := []string{"KAFKA_GROUP_PROTOCOL=" + p}
		for _, kv := range b.o.env {
			if p != sink.GroupProtocolConsumer || !strings.HasPrefix(kv, "KAFKA_SESSION_TIMEOUT=") { // refused under consumer
				own = append(own, kv)
			}
		}
		f.env = proc.WorkerEnv(os.Environ(), s.brokers, s.dsn, f.topic, group, table, own...)
		h.fleets = append(h.fleets, f)
		h.res.protocols = append(h.res.protocols, p)
		defer func() {
			if !b.o.keep {
				s.dropTopics(f.topic, f.topic+".dlq")
			}
		}()
		defer b.forget(table, group)
		defer func() { killAll(f.procs) }() // after a failure; runs first
	}
	err := h.run(ctx)
	h.finish()
	return h.res, err
}

// run sets up the topics, tables, recorder, producer and base workers,
// warms up, runs the rounds and stops every worker. The producer and the
// recorder stop when it returns.
func (h *rebalancer) run(ctx context.Context) error {
	s := h.b.s
	var topics []string
	for _, f := range h.fleets {
		if err := broker.CreateTopic(ctx, s.adm, f.topic, int32(f.parts)); err != nil {
			return err
		}
		// Created beforehand so that two workers starting at once do not race to create it.
		if err := sinkdb.EnsureTable(ctx, s.db, f.topic, f.table, h.b.o.insert); err != nil {
			return err
		}
		topics = append(topics, f.topic)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer cl.Close() // after the producer has stopped: defers run last first
	h.rec = &recorder{db: s.db, start: time.Now(), every: h.o.poll, fleets: h.fleets, series: make([]series, len(h.fleets))}
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() { h.rec.run(bg) })
	wg.Go(func() {
		start, r := time.Now(), h.res
		n, err := feed(bg, cl, dataset.New(100_000, producerKeys), topics, h.o.rate, 0, nil)
		r.produced, r.produceTook = n, time.Since(start)
		if err != nil {
			r.produceErr = err.Error()
		}
	})
	logf("    producing %.0f records/s to %v; polling sink_offsets every %s", h.o.rate, topics, h.o.poll)

	for _, f := range h.fleets {
		for n := 1; n <= 2; n++ {
			p, err := f.start(f.member(n, 0))
			if err != nil {
				return err
			}
			f.base = append(f.base, p)
		}
	}
	if err := h.hold(ctx, h.o.warmup); err != nil {
		return err
	}
	for _, f := range h.fleets {
		w, err := h.settled(ctx, f, 2, 2*time.Minute)
		if err != nil {
			return err
		}
		h.res.warmupExtra += w
	}
	h.res.roundsStart = h.rec.now()
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
	for _, f := range h.fleets {
		for _, p := range f.base {
			exit := p.Stop(time.Minute)
			h.res.baseExits = append(h.res.baseExits, exit.Code)
			if exit.Killed || exit.Code != 0 {
				return fmt.Errorf("%s worker exited with status %d after SIGTERM (killed: %v), want 0\n%s",
					f.protocol, exit.Code, exit.Killed, p.Tail(30))
			}
		}
	}
	return nil
}

// hold waits d, checking every 200 ms that no worker has died.
func (h *rebalancer) hold(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		for _, f := range h.fleets {
			for _, p := range append(slices.Clip(f.base), f.third) {
				if p != nil && p.Done() {
					return fmt.Errorf("%s worker exited unexpectedly (%s)\n%s", f.protocol, p.Cmd.ProcessState, p.Tail(30))
				}
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

// settled waits until f's group is Stable with n members sharing every
// partition and every partition advanced within the last second; it
// returns how long that took, an error after limit.
func (h *rebalancer) settled(ctx context.Context, f *fleet, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		a, derr := f.describe(ctx, h.b.s.adm)
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

// finish measures every event on the whole series (gaps that ran past a
// window have closed by now) and gathers the counters and logs.
func (h *rebalancer) finish() {
	r := h.res
	if h.rec != nil {
		for i := range h.fleets {
			r.progs = append(r.progs, h.rec.progress(i))
		}
		for i := range r.events {
			from, to := r.events[i].span(h.o.settle)
			r.events[i].windows = nil
			for _, p := range r.progs {
				r.events[i].windows = append(r.events[i].windows, p.measure(from, to))
			}
		}
		r.polls, r.pollErrs, r.pollErr, r.slowestPoll = h.rec.stats()
		r.trace = filepath.Join(h.b.tmp, fmt.Sprintf("rebalance-%d-progress.csv", h.fleets[0].id))
		if err := h.rec.writeCSV(r.trace); err != nil {
			logf("could not write %s: %v", r.trace, err)
			r.trace = ""
		}
	}
	for _, f := range h.fleets {
		for _, p := range f.procs {
			member := strings.TrimSuffix(filepath.Base(p.Log), ".log")
			for _, l := range p.Lines() {
				r.logLines = append(r.logLines, member+": "+l)
			}
		}
	}
}

// steady reports whether every partition advanced within the last second
// (as of now, a recorder time), and if not, which did not.
func steady(p progress, now time.Duration) (bool, []int) {
	var idle []int
	for part, adv := range p.adv {
		if len(adv) == 0 || now-adv[len(adv)-1] > time.Second {
			idle = append(idle, part)
		}
	}
	return len(idle) == 0, idle
}
