package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// produce writes d to topic (parts partitions), lingering 5 ms and giving
// each record 2 minutes to be delivered, and checks the end offsets.
func produce(ctx context.Context, s *services, d *dataset.Dataset, topic string, parts int) (*dataset.Layout, error) {
	return dataset.Produce(ctx, d, topic, parts, nil, kgo.SeedBrokers(s.brokers...),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(2*time.Minute))
}

// produceEnvelope writes the same records (keys, values, partitions,
// offsets and timestamps of src) to topic in Kafka Connect's JSON-with-schema
// envelope, which JsonConverter with schemas.enable=true requires: the key a
// struct {key: string}, the value a struct whose fields are the table's
// columns (value as io.debezium.data.Json, kafka_timestamp as
// io.debezium.time.ZonedTimestamp). Records go to the partition src put
// them in, in offset order, so offsets match too.
func produceEnvelope(ctx context.Context, s *services, d *dataset.Dataset, src *dataset.Layout, topic string) error {
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
	for p, idx := range src.ByPart {
		for _, i := range idx {
			ts := time.UnixMilli(src.TsMs[i]).UTC()
			k, _ := json.Marshal(env{keySchema, map[string]any{"key": string(d.Key(i))}})
			v, _ := json.Marshal(env{valSchema, map[string]any{
				"value": string(d.Value(i, src.TsMs[i])), "kafka_partition": p, "kafka_offset": src.Off[i],
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

// produceAtRate produces rate*dur records of d to topic at rate records/s
// and returns each record's partition, offset and produce time.
func produceAtRate(ctx context.Context, s *services, d *dataset.Dataset, topic string, rate float64, dur time.Duration) ([]sent, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(time.Minute))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := make([]sent, int(rate*dur.Seconds()))
	n, err := feed(ctx, cl, d, []string{topic}, rate, len(out), func(i int, r *kgo.Record) {
		out[i] = sent{r.Partition, r.Offset, r.Timestamp}
	})
	if err == nil {
		err = ctx.Err()
	}
	return out[:n], err
}

// feed produces records of d (from the start, wrapping; a record's
// timestamp is when it was handed to the client) to topics in turn at rate
// records/s, in 5 ms ticks, until ctx is done or n records (n > 0) are
// handed over; then it flushes (up to 10 s: records are not cancelled with
// ctx) and returns how many it handed over and the first delivery error.
// ack, unless nil, gets each acknowledged record and its number.
func feed(ctx context.Context, cl *kgo.Client, d *dataset.Dataset, topics []string, rate float64, n int, ack func(int, *kgo.Record)) (int, error) {
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	rctx := context.WithoutCancel(ctx)
	start := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	next := 0
	for ctx.Err() == nil && (n <= 0 || next < n) {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		due := int(rate * time.Since(start).Seconds())
		if n > 0 {
			due = min(due, n)
		}
		for ; next < due && ctx.Err() == nil; next++ {
			i, now := next, time.Now()
			wg.Add(1)
			cl.Produce(rctx, &kgo.Record{Topic: topics[i%len(topics)], Key: d.Key(int32(i % d.N)), Value: d.Value(int32(i%d.N), now.UnixMilli()), Timestamp: now},
				func(r *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
					} else if ack != nil {
						ack(i, r)
					}
				})
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cl.Flush(fctx) // what is not flushed by then fails with its own error
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return next, fmt.Errorf("produce at rate to %v: %w", topics, *e)
	}
	return next, nil
}
