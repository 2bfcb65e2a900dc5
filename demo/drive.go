package demo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// sampleEvery is how often the pipeline is looked at (and the peak of
// connections measured).
const sampleEvery = 250 * time.Millisecond

// sink produces the story while the workers sink it, showing progress and
// killing and restarting one worker halfway; it returns once everything
// produced is sunk and the group is whole again (or nothing moved for
// StallTimeout), after a clean shutdown of the fleet.
func (r *run) sink(ctx context.Context) error {
	prod, err := newProducer(r.brokers, r.names.topic, r.opts, r.codec)
	if err != nil {
		return err
	}
	r.prod = prod
	if err := r.waitFormed(ctx); err != nil {
		prod.cl.Close()
		return err
	}
	prod.started = time.Now()
	pctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		prodErr error
	)
	prodDone := make(chan struct{})
	wg.Go(func() {
		prodErr = prod.run(pctx)
		close(prodDone)
	})
	err = r.watch(ctx, prodDone, &prodErr)
	cancel() // a stalled run may still be producing at a capped rate
	wg.Wait()
	if err != nil {
		return err
	}
	r.res.ProduceTime = prod.took
	for _, u := range r.fleet.stop(30 * time.Second) {
		r.res.Problems = append(r.res.Problems, "worker did not shut down cleanly: "+u)
	}
	r.say("%s stopped the workers (SIGTERM: flush, commit, leave the group)", r.elapsed())
	r.final = r.takeSample(ctx, r.last, nil)
	return nil
}

// watch samples until the run is complete, stalled or interrupted. prodErr
// may be read once prodDone is closed.
func (r *run) watch(ctx context.Context, prodDone <-chan struct{}, prodErr *error) error {
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	ch := &chaos{slot: r.opts.Workers / 2, off: r.opts.NoKill}
	w := &watcher{lastMove: time.Now()}
	for {
		select {
		case <-ctx.Done():
			r.progress.clear()
			r.say("%s interrupted: stopping the workers and removing temporary files", r.elapsed())
			return ctx.Err()
		case <-tick.C:
		}
		s := r.observe(ctx, w)
		if crashed := r.fleet.crashed(); len(crashed) > 0 {
			r.progress.clear()
			return fmt.Errorf("worker %s exited unexpectedly (%v); its log:\n%s",
				crashed[0].name, crashed[0].err, crashed[0].logTail(10))
		}
		produced := false
		select {
		case <-prodDone:
			if *prodErr != nil {
				return *prodErr
			}
			produced = true
		default:
		}
		if err := ch.step(ctx, r, s); err != nil {
			return err
		}
		if produced && r.finished(s, ch, w) {
			return nil
		}
		if s.at.Sub(w.lastMove) > r.opts.StallTimeout && s.sunk < s.produced {
			r.progress.clear()
			r.stalled(ctx, s)
			return nil
		}
	}
}

// watcher is watch's memory between samples.
type watcher struct {
	window   []sample  // the last ~2 s, for the rate
	lastMove time.Time // when sunk last grew
	settling time.Time // when all was sunk and the kill plan done, but the group not whole yet
}

// observe takes a sample, keeps the peaks and shows it.
func (r *run) observe(ctx context.Context, w *watcher) sample {
	s := r.takeSample(ctx, r.last, w.window)
	if s.sunk != r.last.sunk {
		w.lastMove = s.at
	}
	w.window = append(w.window, s)
	for len(w.window) > 1 && s.at.Sub(w.window[0].at) > 2*time.Second {
		w.window = w.window[1:]
	}
	r.last = s
	r.res.PeakConns = max(r.res.PeakConns, s.conns)
	r.res.PeakRate = max(r.res.PeakRate, s.rate)
	r.progress.show(s, r.prod.total, r.opts.Workers, r.opts.Partitions, false)
	return s
}

// finished says, once everything is produced, whether the run is over:
// all sunk, the kill plan done and the group whole (or given up on).
func (r *run) finished(s sample, ch *chaos, w *watcher) bool {
	if s.sunk < r.prod.total {
		return false
	}
	if r.res.SunkAfter == 0 {
		r.res.SunkAfter = s.at.Sub(r.prod.started)
	}
	if !ch.done() {
		return false
	}
	if w.settling.IsZero() {
		w.settling = s.at
	}
	whole := r.whole(s)
	if !whole && s.at.Sub(w.settling) <= moveBudget {
		return false
	}
	r.progress.show(s, r.prod.total, r.opts.Workers, r.opts.Partitions, true)
	r.progress.clear()
	if !whole {
		r.problem("the group was not whole (every worker a member, partitions spread evenly) within %s of the end", moveBudget)
	}
	r.say("%s all %s records sunk", r.elapsed(), count(r.prod.total))
	return true
}

// waitFormed waits until every worker is a member and every partition is
// assigned, before anything is produced.
func (r *run) waitFormed(ctx context.Context) error {
	deadline := time.Now().Add(moveBudget)
	for {
		r.last = r.takeSample(ctx, r.last, nil)
		if r.whole(r.last) {
			r.say("%s the group formed: %d partitions over %d members, %d database connections",
				r.elapsed(), r.opts.Partitions, r.opts.Workers, r.last.conns)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the group did not form within %s: %d of %d members, %d of %d partitions assigned",
				moveBudget, r.last.members, r.opts.Workers, r.last.assigned, r.opts.Partitions)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sampleEvery):
		}
	}
}

// whole says whether every worker runs and is a group member, and the
// partitions are spread evenly over them: the group is stable, no
// rebalance in flight.
func (r *run) whole(s sample) bool {
	if s.running != r.opts.Workers || s.members != r.opts.Workers || s.assigned != r.opts.Partitions {
		return false
	}
	for _, n := range s.perWorker {
		if n < r.opts.Partitions/r.opts.Workers {
			return false
		}
	}
	return true
}

// stalled records which partitions stopped moving.
func (r *run) stalled(ctx context.Context, s sample) {
	msg := fmt.Sprintf("nothing was sunk for %s with %s records waiting", r.opts.StallTimeout, count(s.produced-s.sunk))
	if stuck := r.stuckPartitions(ctx); len(stuck) > 0 {
		msg += ": " + strings.Join(stuck, ", ")
	}
	r.res.Problems = append(r.res.Problems, msg)
	r.say("%s %s", r.elapsed(), msg)
}

// stuckPartitions compares each partition's next_offset with its end offset.
func (r *run) stuckPartitions(ctx context.Context) []string {
	ends, err := r.adm.ListEndOffsets(ctx, r.names.topic)
	if err != nil {
		return nil
	}
	rows, err := r.pool.Query(ctx, `SELECT partition, next_offset FROM sink_offsets
		WHERE consumer_group = $1 AND topic = $2`, r.names.group, r.names.topic)
	if err != nil {
		return nil
	}
	next := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if rows.Scan(&p, &n) == nil {
			next[p] = n
		}
	}
	rows.Close()
	var out []string
	for p := range int32(r.opts.Partitions) {
		if end, ok := ends.Lookup(r.names.topic, p); ok && end.Offset > next[p] {
			out = append(out, fmt.Sprintf("partition %d at offset %d of %d", p, next[p], end.Offset))
		}
	}
	return out
}
