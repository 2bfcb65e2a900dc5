package dataset

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
)

// Layout is where one topic's broker put a Dataset's records, indexed by
// record number.
type Layout struct {
	Topic string
	Parts int     // the topic's partition count
	TsMs  []int64 // record timestamps, Unix milliseconds (also the values' "ts")
	Part  []int32 // the partition of each record
	Off   []int64 // the offset of each record
	// ByPart[p] lists the record numbers of partition p in offset order.
	ByPart [][]int32
	// Took is how long producing took, from the first record handed to
	// the client to the last acknowledgement.
	Took time.Duration
}

// Produce writes every record of d, in order, to topic (which has parts
// partitions) with a client made of opts (which must hold
// kgo.SeedBrokers), waits for every acknowledgement and checks that the end
// offsets hold each record once: a fresh topic written by an idempotent
// producer holds offsets 0..end-1. A record's timestamp is the time it was
// handed to the client. progress, unless nil, is called after each
// acknowledgement with the count so far, from the client's goroutines.
func Produce(ctx context.Context, d *Dataset, topic string, parts int, progress func(acked int), opts ...kgo.Opt) (*Layout, error) {
	l := &Layout{Topic: topic, Parts: parts, TsMs: make([]int64, d.N), Part: make([]int32, d.N), Off: make([]int64, d.N)}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var (
		wg       sync.WaitGroup
		acked    atomic.Int64
		firstErr atomic.Pointer[error]
	)
	start := time.Now()
	for i := range d.N {
		if ctx.Err() != nil {
			break
		}
		l.TsMs[i] = time.Now().UnixMilli()
		idx := int32(i)
		rec := &kgo.Record{Key: d.Key(idx), Value: d.Value(idx, l.TsMs[i]), Timestamp: time.UnixMilli(l.TsMs[i])}
		wg.Add(1)
		cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			l.Part[idx], l.Off[idx] = rec.Partition, rec.Offset
			if n := acked.Add(1); progress != nil {
				progress(int(n))
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, *e)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.Took = time.Since(start)
	ends, err := broker.EndOffsets(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return nil, err
	}
	return l, l.index(d.N, ends)
}

// index builds ByPart and checks it against the end offsets.
func (l *Layout) index(n int, ends map[int32]int64) error {
	var sum int64
	l.ByPart = make([][]int32, l.Parts)
	for p := range l.Parts {
		sum += ends[int32(p)]
		l.ByPart[p] = make([]int32, ends[int32(p)])
		for j := range l.ByPart[p] {
			l.ByPart[p][j] = -1
		}
	}
	if sum != int64(n) {
		return fmt.Errorf("%s: end offsets add up to %d, produced %d (a retried produce after a broker restart duplicates)", l.Topic, sum, n)
	}
	for i := range n {
		p, o := l.Part[i], l.Off[i]
		if int(p) >= l.Parts || o < 0 || o >= int64(len(l.ByPart[p])) || l.ByPart[p][o] != -1 {
			return fmt.Errorf("%s: record %d acknowledged at %d/%d: outside the end offsets or twice", l.Topic, i, p, o)
		}
		l.ByPart[p][o] = int32(i)
	}
	return nil
}

// Expected is what a table must hold once every record of d, laid out as
// l, is applied: in upsert mode one row per distinct key, the one of its
// highest offset (a key always maps to the same partition); in insert mode
// (insert) one row per record. It returns the row count and the sum of
// their offsets.
func (l *Layout) Expected(d *Dataset, insert bool) (rows int, offsetSum int64) {
	if insert {
		for _, idx := range l.ByPart {
			offsetSum += int64(len(idx)) * int64(len(idx)-1) / 2 // offsets 0..len-1
		}
		return d.N, offsetSum
	}
	last := map[int32]int32{}
	for p := range l.ByPart {
		for _, i := range l.ByPart[p] {
			last[d.keyIdx[i]] = i
		}
	}
	for _, i := range last {
		offsetSum += l.Off[i]
	}
	return len(last), offsetSum
}
