package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// valueSize is the target size of a record value in bytes.
const valueSize = 100

// dataset is what was produced, compactly: record i has key
// "user-<keyIdx[i]>" and a value rebuilt from its fields by value(i), so the
// ceiling can write exactly the rows the worker consumed without holding a
// million kgo.Records.
type dataset struct {
	n      int
	parts  int
	keyIdx []int32
	points []int32
	tsMs   []int64 // the record timestamp, also the value's "ts"
	part   []int32 // where the broker put it
	off    []int64
	// byPart[p] lists record indices of partition p in offset order.
	byPart [][]int32

	valueBytes   int64
	distinctKeys int
}

func (d *dataset) key(i int32) []byte {
	return strconv.AppendInt([]byte("user-"), int64(d.keyIdx[i]), 10)
}

// value is ~100 bytes of JSON, e.g.
// {"user_id":123,"event":"points-changed","points":4567,"ts":"2026-01-02T03:04:05.678Z","pad":"abc"}.
func (d *dataset) value(i int32) []byte {
	b := make([]byte, 0, valueSize+16)
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, int64(d.keyIdx[i]), 10)
	b = append(b, `,"event":"points-changed","points":`...)
	b = strconv.AppendInt(b, int64(d.points[i]), 10)
	b = append(b, `,"ts":"`...)
	b = time.UnixMilli(d.tsMs[i]).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","pad":"`...)
	for j := 0; j < max(1, valueSize-len(b)-2); j++ {
		b = append(b, byte('a'+(int(i)+j)%26))
	}
	return append(b, `"}`...)
}

// produce writes n records with keys drawn uniformly (fixed seed) from a
// space of keys, waits for every acknowledgement, and checks that the
// partitions' end offsets add up to n.
func produce(ctx context.Context, s *services, topic string, n, keys int, r *report) (*dataset, error) {
	parts := r.opts.partitions
	d := &dataset{
		n: n, parts: parts,
		keyIdx: make([]int32, n), points: make([]int32, n), tsMs: make([]int64, n),
		part: make([]int32, n), off: make([]int64, n),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make([]bool, keys)
	for i := range n {
		k := rng.IntN(keys)
		d.keyIdx[i], d.points[i] = int32(k), int32(rng.IntN(10_000))
		if !seen[k] {
			seen[k] = true
			d.distinctKeys++
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()

	var (
		wg       sync.WaitGroup
		acked    atomic.Int64
		firstErr atomic.Pointer[error]
		step     = max(int64(n/10), 1)
	)
	r.distinctKeys = d.distinctKeys
	logf("producing %d records (%d distinct keys of %d) to %s ...", n, d.distinctKeys, keys, topic)
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		d.tsMs[i] = time.Now().UnixMilli()
		idx := int32(i)
		rec := &kgo.Record{Key: d.key(idx), Value: d.value(idx), Timestamp: time.UnixMilli(d.tsMs[i])}
		d.valueBytes += int64(len(rec.Value))
		wg.Add(1)
		cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			d.part[idx], d.off[idx] = rec.Partition, rec.Offset
			if a := acked.Add(1); a%step == 0 {
				logf("  produced %d/%d (%.0f records/s)", a, n, float64(a)/time.Since(start).Seconds())
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("produce: %w", *e)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.produceTime = time.Since(start)
	logf("produced %d records in %s (%.0f records/s)", n, r.produceTime.Round(time.Millisecond), float64(n)/r.produceTime.Seconds())

	ends, err := s.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	return d, d.index(ends)
}

// index builds byPart and checks it against the end offsets: a fresh topic
// written by an idempotent producer holds offsets 0..end-1, each once.
func (d *dataset) index(ends map[int32]int64) error {
	var sum int64
	d.byPart = make([][]int32, d.parts)
	for p := range d.parts {
		sum += ends[int32(p)]
		d.byPart[p] = make([]int32, ends[int32(p)])
		for j := range d.byPart[p] {
			d.byPart[p][j] = -1
		}
	}
	if sum != int64(d.n) {
		return fmt.Errorf("end offsets add up to %d, produced %d", sum, d.n)
	}
	for i := range d.n {
		p, o := d.part[i], d.off[i]
		if int(p) >= d.parts || o < 0 || o >= int64(len(d.byPart[p])) || d.byPart[p][o] != -1 {
			return fmt.Errorf("record %d acknowledged at %d/%d: outside the end offsets or twice", i, p, o)
		}
		d.byPart[p][o] = int32(i)
	}
	return nil
}

// expected is what the upsert table must hold after all records: one row
// per distinct key, the one of its highest offset (a key always maps to the
// same partition). It returns the row count and the sum of their offsets.
func (d *dataset) expected() (rows int, offsetSum int64) {
	last := map[int32]int32{}
	for p := range d.byPart {
		for _, i := range d.byPart[p] {
			last[d.keyIdx[i]] = i
		}
	}
	for _, i := range last {
		offsetSum += d.off[i]
	}
	return len(last), offsetSum
}
