package sink

import (
	"context"
	"fmt"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/postgres"
)

// startOffsets is the AdjustFetchOffsetsFn: newly assigned partitions start
// at the next_offset stored in the database, which is the source of truth;
// Kafka's committed offset (already in offsets) stays only where the
// database has no row, and KAFKA_START_OFFSET applies where neither has
// one. It retries while the database is unreachable: starting from Kafka's
// copy could skip records if that copy were ahead (a manual reset, a
// restored database); /readyz reports not-ready meanwhile. A fatal error
// (the offsets table gone, a privilege revoked) stops the worker instead.
// An offset the log no longer has is not corrected here: the fetch fails
// with OFFSET_OUT_OF_RANGE and the partition halts (outOfRange). ctx ends
// when the session starts revoking.
func (w *Worker) startOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topics := make([]string, 0, len(offsets))
	for t := range offsets {
		topics = append(topics, t)
	}
	read := func() (map[string]map[int32]int64, error) {
		ctx, cancel := context.WithTimeout(ctx, w.cfg.TxTimeout) // a dead connection fails the read, then retried
		defer cancel()
		return w.cfg.Postgres().Offsets().Read(ctx, w.pool, topics)
	}
	stored, err := backoff.Retry(ctx, func() (map[string]map[int32]int64, error) {
		s, err := read()
		if err != nil && postgres.Classify(err) == postgres.Fatal {
			return nil, backoff.Permanent(err)
		}
		if err != nil {
			w.health.SetStarting(true)
			w.log.Warn("reading start offsets from the database, retrying", "err", err)
		}
		return s, err
	}, backoff.WithBackOff(newBackoff()), backoff.WithMaxElapsedTime(0))
	w.health.SetStarting(false)
	if err != nil {
		if postgres.Classify(err) == postgres.Fatal {
			err = fmt.Errorf("read start offsets from %s: %w", w.cfg.offsetsTable().Sanitize(), err)
			w.fatal(err)
		}
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, ps := range offsets {
		for part, o := range ps {
			if next, ok := stored[topic][part]; ok {
				// Kafka's copy lags the database by design and may be ahead
				// after a manual reset; the database wins either way. Epoch -1:
				// no log-truncation check on a seek.
				o = kgo.NewOffset().At(next).WithEpoch(-1)
				ps[part] = o
			}
			// Negative: KAFKA_START_OFFSET, resolved by the client.
			if at := o.EpochOffset().Offset; at >= 0 && w.parts[topic][part] != nil {
				w.parts[topic][part].setStart(at)
				w.committer.started(topic, part, at)
			}
		}
	}
	w.log.Info("start offsets", "offsets", stored)
	return offsets, nil
}
