package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// timeline is one run: every sample and the moments that split it.
type timeline struct {
	samples   []sample
	start     time.Time // the workers started
	t0        time.Time // the first sample showing a commit
	t1, t2    time.Time // the other load started; asked to stop
	firstDone time.Time // the first sample with a partition at its end offset
	end       time.Time // the first sample with every record applied

	loadSpan  time.Duration // the other load's start to its last transaction's end
	loadTx    int64         // its transactions in that span
	aloneTx   int64         // -alone: its transactions alone after the drain
	aloneSpan time.Duration
}

func loadstep(ctx context.Context, o options) error {
	started := time.Now()
	root, err := testbed.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results")
	}
	s, err := connect(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	rep := &report{o: o, started: started.UTC()}
	if err := rep.describe(ctx, s, root); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-loadstep-")
	if err != nil {
		return err
	}
	bin := filepath.Join(tmp, "sinkworker")
	logf("loadstep: building the worker; logs in %s", tmp)
	if err := proc.Build(ctx, root, "./cmd/sinkworker", bin); err != nil {
		return err
	}

	stamp := strconv.FormatInt(time.Now().Unix()%1_000_000, 10)
	topic := "bench-loadstep-" + stamp
	group, table := "bl"+stamp, "bench_loadstep_"+stamp
	defer func() {
		if !o.keep {
			s.forget(topic, group, table)
		}
	}()
	d, l, err := produce(ctx, s, o, topic)
	if err != nil {
		return err
	}
	rep.distinctKeys, rep.produced = d.DistinctKeys, l.Took
	load, err := newOtherLoad(ctx, s, stamp, o.loadConns, o.loadRows, o.loadTable)
	defer load.close(s)
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}

	sm := &sampler{s: s, client: &http.Client{Timeout: time.Second}, group: group, topic: topic, load: load}
	for _, part := range l.ByPart {
		sm.ends = append(sm.ends, int64(len(part)))
	}
	tl := &timeline{start: time.Now()}
	procs, err := startWorkers(s, o, bin, tmp, topic, group, table, sm)
	defer func() {
		for _, p := range procs {
			p.Kill()
		}
	}()
	if err != nil {
		return err
	}
	logf("%d worker(s) started, POOL_MAX_CONNS=auto; the other load starts %s after the first commit, for %s", o.workers, o.t1, o.loadFor)
	if err := watch(ctx, o, sm, procs, tl); err != nil {
		return err
	}
	for _, p := range procs {
		if exit := p.Stop(60 * time.Second); exit.Code != 0 {
			return fmt.Errorf("a worker exited with status %d after SIGTERM\n%s", exit.Code, p.Tail(20))
		}
	}
	rows, sum := l.Expected(d, o.insert)
	if err := sinkdb.Check(ctx, s.db, table, rows, sum); err != nil {
		return err
	}
	rep.checked = rows
	if err := alone(ctx, o, load, tl); err != nil {
		return err
	}
	rep.total = time.Since(started)
	return rep.write(tl)
}

// produce writes the suite's records to topic, a fresh topic of o.parts
// partitions, as the suite does.
func produce(ctx context.Context, s *services, o options, topic string) (*dataset.Dataset, *dataset.Layout, error) {
	if err := broker.CreateTopic(ctx, s.adm, topic, int32(o.parts)); err != nil {
		return nil, nil, err
	}
	d := dataset.New(o.records, o.keys)
	logf("producing %d records to %s (%d partitions) ...", o.records, topic, o.parts)
	l, err := dataset.Produce(ctx, d, topic, o.parts, nil, kgo.SeedBrokers(s.brokers...),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		return nil, nil, err
	}
	logf("  produced at %.0f records/s", rate(float64(o.records), l.Took))
	return d, l, nil
}

// startWorkers starts o.workers worker processes (members w0, w1, ...) with
// POOL_MAX_CONNS=auto, each on an HTTP_ADDR of its own, which it adds to
// sm. The processes it returns are the caller's to stop, also on error.
func startWorkers(s *services, o options, bin, tmp, topic, group, table string, sm *sampler) ([]*proc.Proc, error) {
	var procs []*proc.Proc
	for w := range o.workers {
		addr, err := freeAddr()
		if err != nil {
			return procs, err
		}
		env := proc.WorkerEnv(os.Environ(), s.brokers, s.dsn, topic, group, table,
			append([]string{"POOL_MAX_CONNS=auto", "HTTP_ADDR=" + addr, fmt.Sprintf("SINK_MEMBER=w%d", w)}, o.env...)...)
		p, err := proc.Start(bin, nil, env, filepath.Join(tmp, fmt.Sprintf("worker-%d.log", w)))
		if err != nil {
			return procs, err
		}
		procs, sm.addrs = append(procs, p), append(sm.addrs, addr)
	}
	return procs, nil
}

// alone runs the other load without the sink for o.alone (none when 0),
// for its reference rate.
func alone(ctx context.Context, o options, load *otherLoad, tl *timeline) error {
	if o.alone <= 0 {
		return nil
	}
	logf("the other load alone for %s ...", o.alone)
	before := load.tx.Load()
	load.start(ctx)
	select {
	case <-ctx.Done():
	case <-time.After(o.alone):
	}
	load.stop()
	span, err := load.wait()
	if err != nil {
		return err
	}
	tl.aloneTx, tl.aloneSpan = load.tx.Load()-before, span
	return nil
}

// watch samples every sampleEvery until every record is applied: it starts
// the other load o.t1 after the first commit and stops it o.loadFor later.
func watch(ctx context.Context, o options, sm *sampler, procs []*proc.Proc, tl *timeline) error {
	var total int64
	for _, e := range sm.ends {
		total += e
	}
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	lastLog := time.Now()
	running := false
	defer func() {
		if running {
			sm.load.stop()
			_, _ = sm.load.wait()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for _, p := range procs {
			if p.Done() {
				return fmt.Errorf("a worker exited early (%s)\n%s", p.Cmd.ProcessState, p.Tail(20))
			}
		}
		if err := sm.load.failed(); err != nil {
			return err
		}
		smp, err := sm.take(ctx)
		if err != nil {
			return err
		}
		tl.samples = append(tl.samples, smp)
		now := smp.at
		if tl.t0.IsZero() && smp.committed > 0 {
			tl.t0 = now
			logf("  first commit %.1f s after the start", now.Sub(tl.start).Seconds())
		}
		if !tl.t0.IsZero() && tl.t1.IsZero() && now.Sub(tl.t0) >= o.t1 {
			sm.load.start(ctx)
			tl.t1, running = time.Now(), true
			logf("  T1: the other load started (%d connections)", o.loadConns)
		}
		if running && tl.t2.IsZero() && now.Sub(tl.t1) >= o.loadFor {
			sm.load.stop()
			tl.t2 = time.Now()
			logf("  T2: the other load asked to stop")
		}
		if tl.firstDone.IsZero() && smp.drained > 0 {
			tl.firstDone = now
		}
		if smp.committed >= total {
			tl.end = now
			if tl.t2.IsZero() && running {
				sm.load.stop()
				tl.t2 = time.Now()
				logf("  the drain ended before T2: the other load stopped now")
			}
			break
		}
		if now.Sub(tl.start) > o.timeout {
			return fmt.Errorf("not drained after %s: %d of %d records applied", o.timeout, smp.committed, total)
		}
		if now.Sub(lastLog) >= 5*time.Second {
			lastLog = now
			logf("    %.0f s: %d/%d applied, fleet limit %.0f, ratio %.2f, other load %d tx",
				now.Sub(tl.start).Seconds(), smp.committed, total, smp.total(), smp.meanRatio(), smp.loadTx)
		}
	}
	if tl.t1.IsZero() {
		return fmt.Errorf("every record was applied %.1f s after the first commit, before T1 (-t1 %s): produce more records (-records)",
			tl.end.Sub(tl.t0).Seconds(), o.t1)
	}
	if running {
		running = false
		span, err := sm.load.wait()
		if err != nil {
			return err
		}
		tl.loadSpan, tl.loadTx = span, sm.load.tx.Load()
	}
	logf("  drained %.1f s after the start", tl.end.Sub(tl.start).Seconds())
	return nil
}
