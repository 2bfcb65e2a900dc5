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
type committer struct {
	cl  *kgo.Client
	w   *Worker
	mu  sync.Mutex
	hot map[string]map[int32]kgo.EpochOffset // marked, not yet committed

	flushMu sync.Mutex // one commit at a time, in order
}

func newCommitter(w *Worker) *committer {
	return &committer{w: w, hot: map[string]map[int32]kgo.EpochOffset{}}
}

// mark records that the database has committed up to next (exclusive).
func (c *committer) mark(topic string, partition int32, next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hot[topic] == nil {
		c.hot[topic] = map[int32]kgo.EpochOffset{}
	}
	c.hot[topic][partition] = kgo.EpochOffset{Epoch: epoch, Offset: next}
}

// take removes and returns the marks of the given partitions, or all of
// them when parts is nil.
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
				if out[topic] == nil {
					out[topic] = map[int32]kgo.EpochOffset{}
				}
				out[topic][p] = eo
				delete(c.hot[topic], p)
			}
		}
	}
	return out
}

// commit synchronously commits the marks of parts (all when nil) and
// returns the commit's error. A failure is logged, not retried: the next
// mark supersedes it and the database holds the truth.
func (c *committer) commit(ctx context.Context, parts map[string][]int32) (err error) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	offsets := c.take(parts)
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
			err := c.commit(cctx, nil)
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
