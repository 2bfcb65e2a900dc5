package sink

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// assigned starts a goroutine for each newly assigned partition, after
// letting the pool grow to the new assignment.
func (w *Worker) assigned(ctx context.Context, cl *kgo.Client, added map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.prepareTopics(ctx, topicsOf(added)); err != nil { // KAFKA_TOPICS_REGEX: topics new to the worker
		w.log.Error("cannot sink a new topic; stopping", "err", err)
		w.fatal(err)
		return
	}
	w.health.SetJoined()
	var started []*partition
	for topic, ps := range added {
		if w.parts[topic] == nil {
			w.parts[topic] = map[int32]*partition{}
		}
		for _, id := range ps {
			if w.parts[topic][id] != nil {
				continue // already running: never two goroutines for one partition
			}
			p := newPartition(w, topic, id)
			w.parts[topic][id] = p
			started = append(started, p)
		}
	}
	cl.ResumeFetchPartitions(added) // a pause from an earlier assignment must not carry over
	w.committer.take(added)         // nor an offset known from it
	n := w.countLocked()
	share, auto := w.resizePool(ctx, cl, n)
	w.metrics.Assigned.Set(float64(n))
	w.metrics.Rebalances.WithLabelValues("assigned").Inc()
	for _, p := range started {
		go p.run()
	}
	args := []any{"added", added, "assigned", n}
	if auto {
		args = append(args, "alone_in_group", share >= 1, "group_share", share)
	}
	w.log.Info("partitions assigned", args...)
}

// resizePool tells the pool the worker's n assigned partitions and, under
// POOL_MAX_CONNS=auto, their share of every partition of its topics (1:
// alone in its group; one metadata lookup, which a fixed cap does not
// need).
func (w *Worker) resizePool(ctx context.Context, cl *kgo.Client, n int) (share float64, auto bool) {
	w.pool.SetAssigned(context.Background(), n)
	if _, _, _, auto = w.pool.Adaptive(); auto {
		share = groupShare(ctx, cl, n)
		w.pool.SetShare(share)
	}
	return share, auto
}

// revoked finishes the revoked partitions' batches (within revokeBudget),
// commits their offsets to Kafka, and shrinks the pool, all before the
// rebalance proceeds.
func (w *Worker) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if len(revoked) == 0 {
		return
	}
	w.drop(revoked, func(p *partition) { p.stop(min(revokeBudget, w.cfg.ShutdownTimeout)) })
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w.committer.commit(cctx, revoked, false)
	w.metrics.Rebalances.WithLabelValues("revoked").Inc()
	w.log.Info("partitions revoked", "revoked", revoked, "assigned", w.count())
}

// lost abandons the lost partitions at once: another member may own them
// already, and the database keeps their offsets.
func (w *Worker) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if len(lost) == 0 {
		return
	}
	w.drop(lost, (*partition).abandon)
	w.committer.take(lost) // never commit for partitions we no longer own
	w.metrics.Rebalances.WithLabelValues("lost").Inc()
	w.log.Warn("partitions lost", "lost", lost, "assigned", w.count())
}

// serial runs a group callback under rebalanceMu, so that forgotten never
// interleaves with one.
func (w *Worker) serial(fn func(context.Context, *kgo.Client, map[string][]int32)) func(context.Context, *kgo.Client, map[string][]int32) {
	return func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
		w.rebalanceMu.Lock()
		defer w.rebalanceMu.Unlock()
		fn(ctx, cl, parts)
	}
}

// forgotten abandons every partition when the group coordinator refused a
// commit with UNKNOWN_MEMBER_ID for member: its session expired (a frozen
// process, a broker outage longer than the session timeout) and the
// partitions belong to other members now. The Kafka client learns this only
// from its next heartbeat, up to the broker's heartbeat interval later (5 s
// by default, more while it backs off after an outage): KIP-848 clients,
// Java's and franz-go's, leave fencing to the heartbeat. Until then the
// partitions would keep writing (fenced by the offsets table, so without
// effect) and keep their connections, above the fleet's bound (I4). The
// client's own OnPartitionsLost, when it comes, finds nothing left, and its
// rejoin assigns partitions afresh. A refusal of an older member (the
// client has rejoined since the commit was sent) changes nothing.
func (w *Worker) forgotten(member string) {
	w.rebalanceMu.Lock()
	defer w.rebalanceMu.Unlock()
	if now, _ := w.cl.GroupMetadata(); now != member {
		return
	}
	all := w.owned()
	if len(all) == 0 {
		return
	}
	w.log.Warn("the group coordinator no longer knows this member: abandoning its partitions until the client rejoins")
	w.lost(context.Background(), w.cl, all)
}

// drop stops the given partitions with stop, concurrently, forgets them,
// clears their fetch pauses and shrinks the pool.
func (w *Worker) drop(parts map[string][]int32, stop func(*partition)) {
	w.mu.Lock()
	var stopping []*partition
	for topic, ps := range parts {
		for _, id := range ps {
			if p := w.parts[topic][id]; p != nil {
				stopping = append(stopping, p)
				delete(w.parts[topic], id)
			}
		}
	}
	n := w.countLocked()
	w.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range stopping {
		wg.Go(func() { stop(p) })
	}
	wg.Wait()
	for _, p := range stopping {
		w.health.Forget(p.key())
		w.metrics.Lag.DeleteLabelValues(p.topic, p.label)
		w.metrics.LastCommit.DeleteLabelValues(p.topic, p.label)
	}
	w.cl.ResumeFetchPartitions(parts)
	w.resizePool(context.Background(), w.cl, n)
	w.metrics.Assigned.Set(float64(n))
}

// groupShare is the share of a worker assigned n partitions in every
// partition of the topics it consumes: 1 when it holds them all (no other
// member of its group writes to the database), 0 when unknown. The
// partition counts come from the client's cached metadata. POOL_MAX_CONNS=
// auto adapts alone by one rule, and shared takes this share of what the
// group's concurrency should be (pool.Adaptive.SetShare).
func groupShare(ctx context.Context, cl *kgo.Client, n int) float64 {
	topics := cl.GetConsumeTopics()
	if n == 0 || len(topics) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return 0
	}
	total := 0
	for _, t := range listed {
		if t.Err != nil {
			return 0
		}
		total += len(t.Partitions)
	}
	if total == 0 {
		return 0
	}
	return min(1, float64(n)/float64(total))
}

// stopAll finishes every partition within budget (shutdown).
func (w *Worker) stopAll(budget time.Duration) {
	w.drop(w.owned(), func(p *partition) { p.stop(budget) })
}

// owned lists the partitions the worker runs.
func (w *Worker) owned() map[string][]int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := map[string][]int32{}
	for topic, ps := range w.parts {
		for id := range ps {
			all[topic] = append(all[topic], id)
		}
	}
	return all
}

func (w *Worker) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.countLocked()
}

func (w *Worker) countLocked() int {
	n := 0
	for _, ps := range w.parts {
		n += len(ps)
	}
	return n
}
