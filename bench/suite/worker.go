package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// point is one sinkworker configuration of the sweep.
type point struct {
	parts, workers, pool, batch int
}

func (p point) String() string {
	return fmt.Sprintf("P=%d W=%d POOL=%s BATCH=%d", p.parts, p.workers, poolSetting(p.pool), p.batch)
}

// autoPool is POOL_MAX_CONNS=auto in a point.
const autoPool = -1

// poolSetting is a point's POOL_MAX_CONNS value.
func poolSetting(pool int) string {
	if pool == autoPool {
		return "auto"
	}
	return strconv.Itoa(pool)
}

// conns is how many connections the design should hold: each worker
// max(1, min(its partitions, POOL_MAX_CONNS)).
func (p point) conns() int {
	n := 0
	for w := range p.workers {
		mine := p.parts / p.workers
		if w < p.parts%p.workers {
			mine++
		}
		switch {
		case mine > 0 && p.pool == autoPool:
			n += mine // at most: the limit adapts below it
		case mine > 0:
			n += max(1, min(mine, p.pool))
		}
	}
	return n
}

// pointResult is what one sweep point measured.
type pointResult struct {
	point
	round       int // of the sweep, from 1
	records     int
	drain       time.Duration // first worker start to every offset in sink_offsets
	firstCommit time.Duration // start to the first poll showing a commit
	firstCount  int64         // records committed at that poll
	stall       time.Duration // longest time without progress after the first commit
	peakConns   int
	cpu         time.Duration // all worker processes, user+system
	maxRSS      int64         // largest peak RSS of one worker process, bytes
	sumRSS      int64         // sum of the workers' peak RSS
	latRate     float64       // records/s offered in the latency run
	latN        int
	p50, p99    time.Duration
	attempts    int
	logLines    int
	notes       []string
}

func (r pointResult) rate() float64 { return rate(int64(r.records), r.drain) }

// steadyRate leaves start-up out: records committed after the first poll
// that showed a commit, over the time since.
func (r pointResult) steadyRate() float64 {
	if r.firstCount >= int64(r.records) { // all of it at the first poll: nothing to leave out
		return r.rate()
	}
	return rate(int64(r.records)-r.firstCount, r.drain-r.firstCommit)
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// workerCmd is what a run's workers execute and connect to.
type workerCmd struct {
	bin string // the worker binary
	dsn string // their DATABASE_URL; holds the password: never in a log line or error
}

// ownWorker is the suite's worker binary on the suite's database.
func (b *bench) ownWorker() workerCmd { return workerCmd{bin: b.workerBin, dsn: b.s.dsn} }

// runPoint drains the point's pre-produced topic with fresh group and table,
// then (latency > 0) measures end-to-end latency on a fresh topic at half
// the drain rate. Retrying on disturbance is the caller's.
func (b *bench) runPoint(ctx context.Context, pt point, d *dataset.Dataset, l *dataset.Layout, latency time.Duration) (pointResult, error) {
	return b.runPointWith(ctx, b.ownWorker(), pt, d, l, latency)
}

// runPointWith is runPoint with the workers wk (another binary, another
// DSN); the harness still polls over its own connection.
func (b *bench) runPointWith(ctx context.Context, wk workerCmd, pt point, d *dataset.Dataset, l *dataset.Layout, latency time.Duration) (pointResult, error) {
	s := b.s
	r := pointResult{point: pt, records: d.N}
	id, group, table := b.fresh()
	defer b.forget(table, group)
	extra := append([]string{"POOL_MAX_CONNS=" + poolSetting(pt.pool), "BATCH_MAX_RECORDS=" + strconv.Itoa(pt.batch)}, b.o.env...)
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, fmt.Errorf("checkpoint: %w", err)
	}
	procs, err := b.startWorkersWith(wk, pt.workers, l.Topic, group, table, id, extra)
	if err != nil {
		return r, err
	}
	defer killAll(procs)
	if err := b.awaitDrain(ctx, procs, &r, group, l.Topic); err != nil {
		return r, err
	}
	if err := stopWorkers(procs, &r); err != nil {
		return r, err
	}
	if err := b.checkTable(ctx, table, d, l); err != nil {
		return r, err
	}
	if latency > 0 {
		if err := b.latency(ctx, wk, &r, extra, latency); err != nil {
			return r, fmt.Errorf("latency run: %w", err)
		}
	}
	return r, nil
}

// startWorkers starts n worker processes in one group, members w0..w<n-1>.
func (b *bench) startWorkers(n int, topic, group, table string, id int, extra []string) ([]*proc.Proc, error) {
	return b.startWorkersWith(b.ownWorker(), n, topic, group, table, id, extra)
}

// startWorkersWith is startWorkers with the workers wk.
func (b *bench) startWorkersWith(wk workerCmd, n int, topic, group, table string, id int, extra []string) ([]*proc.Proc, error) {
	var procs []*proc.Proc
	for w := range n {
		logPath := filepath.Join(b.tmp, fmt.Sprintf("worker-%d-%d.log", id, w))
		env := proc.WorkerEnv(os.Environ(), b.s.brokers, wk.dsn, topic, group, table,
			append([]string{fmt.Sprintf("SINK_MEMBER=w%d", w)}, extra...)...)
		p, err := proc.Start(wk.bin, nil, env, logPath)
		if err != nil {
			killAll(procs)
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// stopWorkers stops a run's workers with SIGTERM and adds their CPU, peak
// RSS and log lines to r; a worker that does not exit 0 is an error.
func stopWorkers(procs []*proc.Proc, r *pointResult) error {
	for _, p := range procs {
		exit := p.Stop(60 * time.Second)
		r.cpu += exit.CPU
		r.maxRSS, r.sumRSS = max(r.maxRSS, exit.PeakRSS), r.sumRSS+exit.PeakRSS
		r.logLines += len(p.Lines())
		if exit.Code != 0 {
			return fmt.Errorf("a worker exited with status %d after SIGTERM\n%s", exit.Code, p.Tail(20))
		}
	}
	return nil
}

// connectN opens n connections to the suite's database named app, and
// returns them with what closes them.
func (b *bench) connectN(ctx context.Context, n int, app string) ([]*pgx.Conn, func(), error) {
	pc, err := pgx.ParseConfig(b.s.dsn)
	if err != nil {
		return nil, nil, errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	pc.RuntimeParams["application_name"] = app
	cns := make([]*pgx.Conn, 0, n)
	closeAll := func() {
		for _, cn := range cns {
			cn.Close(context.Background())
		}
	}
	for range n {
		cn, err := pgx.ConnectConfig(ctx, pc)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s connection: %w", app, err)
		}
		cns = append(cns, cn)
	}
	return cns, closeAll, nil
}

// killAll kills the processes that are still running.
func killAll(procs []*proc.Proc) {
	for _, p := range procs {
		p.Kill()
	}
}

// latency runs the point's settings with the workers wk on a fresh topic
// of the same partition count: once the group is stable it produces at
// half the measured drain rate for dur, polls sink_offsets every 10 ms,
// and takes each record's latency from its produce time to the first poll
// that saw its offset committed.
func (b *bench) latency(ctx context.Context, wk workerCmd, r *pointResult, extra []string, dur time.Duration) error {
	s := b.s
	id, group, table := b.fresh()
	topic := fmt.Sprintf("bench-suite-%s-lat-%d", b.stamp, id)
	defer func() {
		if !b.o.keep {
			s.dropTopics(topic, topic+".dlq")
		}
	}()
	defer b.forget(table, group)
	if err := broker.CreateTopic(ctx, s.adm, topic, int32(r.parts)); err != nil {
		return err
	}
	// The table and offsets exist before the first poll.
	if err := sinkdb.EnsureTable(ctx, s.db, topic, table, b.o.insert); err != nil {
		return err
	}
	procs, err := b.startWorkersWith(wk, r.workers, topic, group, table, id, extra)
	if err != nil {
		return err
	}
	defer killAll(procs)
	if err := waitStable(ctx, s, group, r.workers, 60*time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	r.latRate = r.rate() / 2

	type obs struct {
		at   time.Time
		next []int64
	}
	var trace []obs
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				polled <- nil
				return
			case <-t.C:
				next, err := sinkdb.Next(pollCtx, s.db, group, topic, r.parts)
				if err != nil {
					if pollCtx.Err() != nil {
						polled <- nil
					} else {
						polled <- err
					}
					return
				}
				trace = append(trace, obs{time.Now(), next})
			}
		}
	}()
	sentRecs, err := produceAtRate(ctx, s, b.d, topic, r.latRate, dur)
	if err != nil {
		stopPoll()
		<-polled
		return err
	}
	want := make([]int64, r.parts)
	for _, x := range sentRecs {
		want[x.part] = max(want[x.part], x.off+1)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		next, err := sinkdb.Next(ctx, s.db, group, topic, r.parts)
		if err != nil {
			stopPoll()
			<-polled
			return err
		}
		if sum(next) >= sum(want) {
			break
		}
		if time.Now().After(deadline) {
			stopPoll()
			<-polled
			return fmt.Errorf("latency run: %d of %d committed after 2 minutes", sum(next), sum(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	stopPoll()
	if err := <-polled; err != nil {
		return err
	}
	for _, p := range procs {
		p.Stop(60 * time.Second)
	}
	// For each record: the first observation with next_offset > its offset.
	lat := make([]time.Duration, 0, len(sentRecs))
	for _, x := range sentRecs {
		j, _ := slices.BinarySearchFunc(trace, x, func(o obs, x sent) int {
			if o.next[x.part] > x.off {
				return 1
			}
			return -1
		})
		if j < len(trace) {
			lat = append(lat, max(0, trace[j].at.Sub(x.at)))
		}
	}
	if len(lat) == 0 {
		return errors.New("no latency observed")
	}
	slices.Sort(lat)
	r.latN = len(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	return nil
}

// waitStable waits until the group is Stable with n members.
func waitStable(ctx context.Context, s *services, group string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		gs, err := s.adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil && g.State == "Stable" && len(g.Members) == n && assigned(g) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s not stable with %d members after %s", group, n, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assigned(g kadm.DescribedGroup) bool {
	for _, m := range g.Members {
		if _, ok := m.Assigned.AsConsumer(); !ok {
			return false
		}
	}
	return true
}

// awaitDrain polls sink_offsets every pollInterval until the group has
// committed r.records records over r.parts partitions of topic, and fills
// r's drain figures (start-up: until the first poll showing a commit).
func (b *bench) awaitDrain(ctx context.Context, procs []*proc.Proc, r *pointResult, group, topic string) error {
	s := b.s
	start := time.Now()
	total := int64(r.records)
	app := "sinkworker/" + group + "/%"
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	lastPrint := start
	var lastProgress time.Time
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			for _, p := range procs {
				if p.Done() {
					return fmt.Errorf("a worker exited early (%s)\n%s", p.Cmd.ProcessState, p.Tail(20))
				}
			}
			next, err := sinkdb.Next(ctx, s.db, group, topic, r.parts)
			if err != nil {
				return fmt.Errorf("poll sink_offsets: %w", err)
			}
			c, err := sinkdb.Conns(ctx, s.db, app)
			if err != nil {
				return err
			}
			r.peakConns = max(r.peakConns, c)
			committed, elapsed := sum(next), now.Sub(start)
			if committed > 0 && r.firstCommit == 0 {
				r.firstCommit, r.firstCount, lastProgress = elapsed, committed, now
			}
			if committed > prev && r.firstCommit > 0 {
				r.stall = max(r.stall, now.Sub(lastProgress))
				lastProgress, prev = now, committed
			}
			if committed >= total {
				r.drain = elapsed
				return nil
			}
			if elapsed > b.o.timeout {
				return fmt.Errorf("not drained after %s: %d of %d", b.o.timeout, committed, total)
			}
			if now.Sub(lastPrint) >= 5*time.Second {
				lastPrint = now
				logf("    %s: %d/%d (%.0f records/s), %d connections", elapsed.Round(100*time.Millisecond),
					committed, total, float64(committed)/elapsed.Seconds(), c)
			}
		}
	}
}
