package main

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// The formats scenario's records: one logical shape, an order, written
// once as plain JSON and once as Avro in Confluent's wire format. Both
// topics get the same records in the same partitions (id % P) at the same
// offsets and timestamps, so their tables must end up identical.

// orderKeySchema and orderValueSchema are the Avro schemas; the type map
// makes them the columns of orderTableDDL.
const (
	orderKeySchema   = `{"type":"record","name":"OrderKey","namespace":"bench.formats","fields":[{"name":"id","type":"long"}]}`
	orderValueSchema = `{"type":"record","name":"Order","namespace":"bench.formats","fields":[
{"name":"id","type":"long"},
{"name":"name","type":"string"},
{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
{"name":"created","type":{"type":"long","logicalType":"timestamp-micros"}},
{"name":"day","type":{"type":"int","logicalType":"date"}},
{"name":"tags","type":{"type":"array","items":"string"}},
{"name":"note","type":["null","string"],"default":null}]}`
)

// orderTableDDL is the JSON topic's table, made up front: what the worker
// creates from the Avro schemas (the key's fields first as the primary
// key, then the value's, then the record's coordinates). formatsCompare
// checks that the two agree column by column.
const orderTableDDL = `CREATE TABLE %s (
	id bigint,
	name text,
	amount numeric(10,2),
	created timestamptz,
	day date,
	tags text[],
	note text,
	kafka_topic text,
	kafka_partition integer,
	kafka_offset bigint,
	kafka_timestamp timestamptz,
	PRIMARY KEY (id))`

// orderTags are the values tags draw from.
var orderTags = []string{"red", "green", "blue", "gold", "new", "sale"}

// order is one record, compactly.
type order struct {
	id      int64
	cents   int64 // amount * 100, below 10^10: decimal(10,2)
	created int64 // Unix microseconds
	tags    uint8 // bit i: orderTags[i]
	note    bool
}

// orders is the scenario's records and where they go: record i is
// recs[i] at partition part[i], offset off[i], timestamp tsMs[i] on both
// topics.
type orders struct {
	recs  []order
	parts int
	part  []int32
	off   []int64
	tsMs  []int64
}

// newOrders draws n records with ids uniformly from keys (fixed seed) and
// lays them out on parts partitions by id.
func newOrders(n, keys, parts int) *orders {
	o := &orders{recs: make([]order, n), parts: parts, part: make([]int32, n), off: make([]int64, n), tsMs: make([]int64, n)}
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	now := time.Now().UnixMilli()
	next := make([]int64, parts)
	for i := range o.recs {
		r := order{
			id:      int64(rng.IntN(keys)),
			cents:   rng.Int64N(10_000_000_000),
			created: base + rng.Int64N(30*24*3600*1_000_000),
			tags:    uint8(rng.IntN(1 << len(orderTags))),
			note:    rng.IntN(2) == 0,
		}
		o.recs[i] = r
		p := int32(r.id % int64(parts))
		o.part[i], o.off[i], o.tsMs[i] = p, next[p], now+int64(i)/100
		next[p]++
	}
	return o
}

// expected is what an upsert table of all records holds: one row per id,
// its last record's offset; the row count and the offsets' sum.
func (o *orders) expected() (rows int, offsetSum int64) {
	last := map[int64]int{}
	for i, r := range o.recs {
		last[r.id] = i
	}
	for _, i := range last {
		offsetSum += o.off[i]
	}
	return len(last), offsetSum
}

func (r order) name() string { return "customer-" + strconv.FormatInt(r.id, 10) }

func (r order) noteText(i int) string { return "deliver to door " + strconv.Itoa(i%997) }

func (r order) tagList() []string {
	out := []string{}
	for j, t := range orderTags {
		if r.tags&(1<<j) != 0 {
			out = append(out, t)
		}
	}
	return out
}

// appendJSON appends record i as a plain JSON object (~170 bytes), e.g.
// {"id":123,"name":"customer-123","amount":12345678.90,"created":"2026-11-03T04:05:06.123456Z","day":"2026-11-03","tags":["red"],"note":null}.
func (r order) appendJSON(b []byte, i int) []byte {
	created := time.UnixMicro(r.created).UTC()
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, r.id, 10)
	b = append(b, `,"name":"`...)
	b = append(b, r.name()...)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, r.cents/100, 10)
	b = append(b, '.', byte('0'+r.cents%100/10), byte('0'+r.cents%10))
	b = append(b, `,"created":"`...)
	b = created.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","day":"`...)
	b = created.AppendFormat(b, "2006-01-02")
	b = append(b, `","tags":[`...)
	for j, t := range r.tagList() {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '"') // tags need no escaping
		b = append(b, t...)
		b = append(b, '"')
	}
	b = append(b, `],"note":`...)
	if r.note {
		return append(append(append(b, '"'), r.noteText(i)...), `"}`...)
	}
	return append(b, `null}`...)
}

// avroOrder is record i as github.com/twmb/avro encodes it.
type avroOrder struct {
	ID      int64     `avro:"id"`
	Name    string    `avro:"name"`
	Amount  *big.Rat  `avro:"amount"`
	Created time.Time `avro:"created"`
	Day     time.Time `avro:"day"`
	Tags    []string  `avro:"tags"`
	Note    *string   `avro:"note"`
}

type avroOrderKey struct {
	ID int64 `avro:"id"`
}

// avroCodec encodes keys and values in Confluent's wire format: magic
// byte 0, the 4-byte schema id, the Avro body.
type avroCodec struct {
	key, value     *avro.Schema
	keyID, valueID int
}

// registerAvro registers the key and value schemas under topic's subjects
// (TopicNameStrategy: <topic>-key, <topic>-value).
func registerAvro(ctx context.Context, cl *sr.Client, topic string) (*avroCodec, error) {
	c := &avroCodec{}
	var err error
	if c.key, err = avro.Parse(orderKeySchema); err != nil {
		return nil, err
	}
	if c.value, err = avro.Parse(orderValueSchema); err != nil {
		return nil, err
	}
	ks, err := cl.CreateSchema(ctx, topic+"-key", sr.Schema{Schema: orderKeySchema, Type: sr.TypeAvro})
	if err != nil {
		return nil, fmt.Errorf("register %s-key: %w", topic, err)
	}
	vs, err := cl.CreateSchema(ctx, topic+"-value", sr.Schema{Schema: orderValueSchema, Type: sr.TypeAvro})
	if err != nil {
		return nil, fmt.Errorf("register %s-value: %w", topic, err)
	}
	c.keyID, c.valueID = ks.ID, vs.ID
	return c, nil
}

func (c *avroCodec) encode(r order, i int) (key, value []byte, err error) {
	var h sr.ConfluentHeader
	if key, err = h.AppendEncode(nil, c.keyID, nil); err != nil {
		return nil, nil, err
	}
	if key, err = c.key.AppendEncode(key, &avroOrderKey{ID: r.id}); err != nil {
		return nil, nil, err
	}
	created := time.UnixMicro(r.created).UTC()
	v := avroOrder{ID: r.id, Name: r.name(), Amount: big.NewRat(r.cents, 100), Created: created,
		Day: time.Date(created.Year(), created.Month(), created.Day(), 0, 0, 0, 0, time.UTC), Tags: r.tagList()}
	if r.note {
		n := r.noteText(i)
		v.Note = &n
	}
	if value, err = h.AppendEncode(nil, c.valueID, nil); err != nil {
		return nil, nil, err
	}
	value, err = c.value.AppendEncode(value, &v)
	return key, value, err
}

// produceOrders writes every record to topic (o.parts partitions) through
// enc, each to its partition with its timestamp, and checks that each
// landed at its offset (a retried produce after a broker restart would
// duplicate).
func produceOrders(ctx context.Context, s *services, o *orders, topic string, enc func(order, int) (key, value []byte, err error)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	// No RecordDeliveryTimeout: franz-go measures it from the record's
	// Timestamp, and the second topic reuses the first one's.
	if err != nil {
		return err
	}
	defer cl.Close()
	var firstErr atomic.Pointer[error]
	var misplaced atomic.Int64
	var wg sync.WaitGroup
	for i, r := range o.recs {
		if ctx.Err() != nil {
			break
		}
		k, v, err := enc(r, i)
		if err != nil {
			return fmt.Errorf("encode record %d for %s: %w", i, topic, err)
		}
		wg.Add(1)
		want := o.off[i]
		cl.Produce(ctx, &kgo.Record{Key: k, Value: v, Partition: o.part[i], Timestamp: time.UnixMilli(o.tsMs[i])}, func(r *kgo.Record, err error) {
			defer wg.Done()
			switch {
			case err != nil:
				firstErr.CompareAndSwap(nil, &err)
			case r.Offset != want:
				misplaced.Add(1)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("produce to %s: %w", topic, *e)
	}
	if n := misplaced.Load(); n > 0 {
		return fmt.Errorf("produce to %s: %d records not at their expected offset (a fresh topic was expected)", topic, n)
	}
	return ctx.Err()
}

// jsonOrders encodes a record for the JSON topic: the id as the key, the
// object as the value.
func jsonOrders(r order, i int) (key, value []byte, err error) {
	return strconv.AppendInt(nil, r.id, 10), r.appendJSON(make([]byte, 0, 192), i), nil
}
