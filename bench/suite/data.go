package main

import (
	"context"
	"encoding/json"
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

// dataset is the records every scenario writes, compactly: record i has
// key "user-<keyIdx[i]>" and a ~100-byte JSON value rebuilt by value(i).
type dataset struct {
	n            int
	keyIdx       []int32
	points       []int32
	distinctKeys int
}

func newDataset(n, keys int) *dataset {
	d := &dataset{n: n, keyIdx: make([]int32, n), points: make([]int32, n)}
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
	return d
}

func (d *dataset) key(i int32) []byte {
	return strconv.AppendInt([]byte("user-"), int64(d.keyIdx[i]), 10)
}

// value is e.g. {"user_id":123,"event":"points-changed","points":4567,"ts":"2026-01-02T03:04:05.678Z","pad":"abc..."}.
func (d *dataset) value(i int32, tsMs int64) []byte {
	b := make([]byte, 0, valueSize+16)
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, int64(d.keyIdx[i]), 10)
	b = append(b, `,"event":"points-changed","points":`...)
	b = strconv.AppendInt(b, int64(d.points[i]), 10)
	b = append(b, `,"ts":"`...)
	b = time.UnixMilli(tsMs).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","pad":"`...)
	for j := 0; j < max(1, valueSize-len(b)-2); j++ {
		b = append(b, byte('a'+(int(i)+j)%26))
	}
	return append(b, `"}`...)
}

// layout is where one topic's broker put the dataset's records.
type layout struct {
	topic  string
	parts  int
	tsMs   []int64
	part   []int32
	off    []int64
	byPart [][]int32 // record indices of partition p in offset order
	rate   float64   // produce rate, records/s
}

// produce writes the dataset to topic (parts partitions), waits for every
// acknowledgement and checks the end offsets.
func produce(ctx context.Context, s *services, d *dataset, topic string, parts int) (*layout, error) {
	l := &layout{topic: topic, parts: parts, tsMs: make([]int64, d.n), part: make([]int32, d.n), off: make([]int64, d.n)}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	start := time.Now()
	for i := range d.n {
		if ctx.Err() != nil {
			break
		}
		l.tsMs[i] = time.Now().UnixMilli()
		idx := int32(i)
		rec := &kgo.Record{Key: d.key(idx), Value: d.value(idx, l.tsMs[i]), Timestamp: time.UnixMilli(l.tsMs[i])}
		wg.Add(1)
		cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			l.part[idx], l.off[idx] = rec.Partition, rec.Offset
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, *e)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.rate = float64(d.n) / time.Since(start).Seconds()
	ends, err := s.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	return l, l.index(d.n, ends)
}

func (l *layout) index(n int, ends map[int32]int64) error {
	var sum int64
	l.byPart = make([][]int32, l.parts)
	for p := range l.parts {
		sum += ends[int32(p)]
		l.byPart[p] = make([]int32, ends[int32(p)])
		for j := range l.byPart[p] {
			l.byPart[p][j] = -1
		}
	}
	if sum != int64(n) {
		return fmt.Errorf("%s: end offsets add up to %d, produced %d (a retried produce after a broker restart duplicates)", l.topic, sum, n)
	}
	for i := range n {
		p, o := l.part[i], l.off[i]
		if int(p) >= l.parts || o < 0 || o >= int64(len(l.byPart[p])) || l.byPart[p][o] != -1 {
			return fmt.Errorf("%s: record %d acknowledged at %d/%d: outside the end offsets or twice", l.topic, i, p, o)
		}
		l.byPart[p][o] = int32(i)
	}
	return nil
}

// expected is what an upsert table must hold: one row per distinct key at
// its highest offset; the row count and the sum of their offsets.
func (l *layout) expected(d *dataset) (rows int, offsetSum int64) {
	last := map[int32]int32{}
	for p := range l.byPart {
		for _, i := range l.byPart[p] {
			last[d.keyIdx[i]] = i
		}
	}
	for _, i := range last {
		offsetSum += l.off[i]
	}
	return len(last), offsetSum
}

// produceEnvelope writes the same records (keys, values, partitions,
// offsets and timestamps of src) to topic in Kafka Connect's JSON-with-schema
// envelope, which JsonConverter with schemas.enable=true requires: the key a
// struct {key: string}, the value a struct whose fields are the table's
// columns (value as io.debezium.data.Json, kafka_timestamp as
// io.debezium.time.ZonedTimestamp). Records go to the partition src put
// them in, in offset order, so offsets match too.
func produceEnvelope(ctx context.Context, s *services, d *dataset, src *layout, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	// No RecordDeliveryTimeout here: franz-go measures it from the record's
	// Timestamp, and these carry the original (minutes old) timestamps.
	if err != nil {
		return err
	}
	defer cl.Close()
	keySchema := json.RawMessage(`{"type":"struct","name":"bench.Key","optional":false,"fields":[{"field":"key","type":"string","optional":false}]}`)
	valSchema := json.RawMessage(`{"type":"struct","name":"bench.Value","optional":false,"fields":[` +
		`{"field":"value","type":"string","optional":false,"name":"io.debezium.data.Json"},` +
		`{"field":"kafka_partition","type":"int32","optional":true},` +
		`{"field":"kafka_offset","type":"int64","optional":true},` +
		`{"field":"kafka_timestamp","type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp"}]}`)
	type env struct {
		Schema  json.RawMessage `json:"schema"`
		Payload any             `json:"payload"`
	}
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for p, idx := range src.byPart {
		for _, i := range idx {
			ts := time.UnixMilli(src.tsMs[i]).UTC()
			k, _ := json.Marshal(env{keySchema, map[string]any{"key": string(d.key(i))}})
			v, _ := json.Marshal(env{valSchema, map[string]any{
				"value": string(d.value(i, src.tsMs[i])), "kafka_partition": p, "kafka_offset": src.off[i],
				"kafka_timestamp": ts.Format("2006-01-02T15:04:05.000Z07:00"),
			}})
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Key: k, Value: v, Partition: int32(p), Timestamp: ts}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("produce envelope to %s: %w", topic, *e)
	}
	return ctx.Err()
}

// sent is one record of a rate-limited run: where it went and when it was produced.
type sent struct {
	part int32
	off  int64
	at   time.Time
}

// produceAtRate produces records of d (from the start, wrapping) to topic
// at rate records/s for dur, in 5 ms ticks; it returns each record's
// partition, offset and produce time.
func produceAtRate(ctx context.Context, s *services, d *dataset, topic string, rate float64, dur time.Duration) ([]sent, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(time.Minute))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	total := int(rate * dur.Seconds())
	out := make([]sent, total)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	const tick = 5 * time.Millisecond
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	for next < total && ctx.Err() == nil {
		<-t.C
		due := min(total, int(rate*time.Since(start).Seconds()))
		for ; next < due; next++ {
			i := int32(next % d.n)
			now := time.Now()
			out[next].at = now
			idx := next
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Key: d.key(i), Value: d.value(i, now.UnixMilli()), Timestamp: now},
				func(r *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					out[idx].part, out[idx].off = r.Partition, r.Offset
				})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("produce at rate to %s: %w", topic, *e)
	}
	return out[:next], ctx.Err()
}
