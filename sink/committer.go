package sink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// committer copies offsets the database has committed to Kafka, coalesced:
// partitions mark their latest next_offset after each transaction and a
// loop commits whatever changed once per interval. Kafka's copy only serves
// lag tooling; the database's is the one the worker starts from.
//
// An interval with nothing changed commits one owned partition's last
// known offset again: a probe of the membership. The group coordinator
// answers a commit of a member it no longer knows with UNKNOWN_MEMBER_ID,
// and an idle member would otherwise learn it was forgotten only from its
// next heartbeat (see Worker.forgotten).
type committer struct {
	cl   *kgo.Client
	w    *Worker
	mu   sync.Mutex
	hot  map[string]map[int32]kgo.EpochOffset // marked, not yet committed
	done map[string]map[int32]kgo.EpochOffset // committed, or where the partition started

	flushMu sync.Mutex // one commit at a time, in order
}

func newCommitter(w *Worker) *committer {
	return &committer{w: w, hot: map[string]map[int32]kgo.EpochOffset{}, done: map[string]map[int32]kgo.EpochOffset{}}
}

// mark records that the database has committed up to next (exclusive).
func (c *committer) mark(topic string, partition int32, next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setOffset(c.hot, topic, partition, kgo.EpochOffset{Epoch: epoch, Offset: next})
}

// started records where an assigned partition's fetching starts: the
// offset stored in the database (or Kafka's), which a probe may commit
// before the partition has committed anything.
func (c *committer) started(topic string, partition int32, next int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setOffset(c.done, topic, partition, kgo.EpochOffset{Epoch: -1, Offset: next})
}

// take removes and returns the marks of the given partitions, or all of
// them when parts is nil. The given partitions' known offsets go too:
// they are no longer ours, or are assigned afresh.
func (c *committer) take(parts map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if parts == nil {
		out := c.hot
		c.hot = map[string]map[int32]kgo.EpochOffset{}
		return out
	}
	out := map[string]map[int32]kgo.EpochOffset{}
	for topic, ps := range parts {
		for _, p := range ps {
			if eo, ok := c.hot[topic][p]; ok {
				setOffset(out, topic, p, eo)
				delete(c.hot[topic], p)
			}
			delete(c.done[topic], p)
		}
	}
	return out
}

// probe returns the last known offset of one owned partition, to commit
// again; nil when no owned partition has one.
func (c *committer) probe() map[string]map[int32]kgo.EpochOffset {
	owned := c.w.owned()
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range owned {
		for _, p := range ps {
			if eo, ok := c.done[topic][p]; ok {
				return map[string]map[int32]kgo.EpochOffset{topic: {p: eo}}
			}
		}
	}
	return nil
}

func setOffset(m map[string]map[int32]kgo.EpochOffset, topic string, partition int32, eo kgo.EpochOffset) {
	if m[topic] == nil {
		m[topic] = map[int32]kgo.EpochOffset{}
	}
	m[topic][partition] = eo
}

// commit synchronously commits the marks of parts (all when nil) and
// returns the commit's error. A failure is logged, not retried: the next
// mark supersedes it and the database holds the truth. With probe and no
// marks, it commits one owned partition's last known offset again.
func (c *committer) commit(ctx context.Context, parts map[string][]int32, probe bool) (err error) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	offsets := c.take(parts)
	if len(offsets) == 0 && probe {
		offsets = c.probe()
	}
	if len(offsets) == 0 {
		return nil
	}
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if cerr == nil {
			cerr = firstPartitionError(resp)
		}
		if err = cerr; err != nil {
			c.w.log.Warn("kafka offset commit failed (the database has the offsets)", "err", err)
			return
		}
		c.w.metrics.KafkaCommits.Inc()
		c.mu.Lock()
		defer c.mu.Unlock()
		for topic, ps := range offsets {
			for p, eo := range ps {
				setOffset(c.done, topic, p, eo)
			}
		}
	})
	return err
}

// loop commits every interval until ctx ends.
func (c *committer) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			member, _ := c.cl.GroupMetadata() // who the commit speaks for: read before it is sent
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.commit(cctx, nil, true)
			cancel()
			if errors.Is(err, kerr.UnknownMemberID) {
				c.w.forgotten(member)
			}
		}
	}
}

func firstPartitionError(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
