package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers: Kafka Connect's names, so existing tooling reads them.
const (
	HeaderTopic     = "__connect.errors.topic"
	HeaderPartition = "__connect.errors.partition"
	HeaderOffset    = "__connect.errors.offset"
	HeaderClass     = "__connect.errors.exception.class.name"
	HeaderMessage   = "__connect.errors.exception.message"
)

// HeaderTimestamp is the dead letter's source record timestamp, in
// milliseconds since the epoch, which redrive gives the row. The letter's
// own timestamp is the time of dead-lettering: the dead-letter topic's
// retention counts from then, not from the source record's time.
const HeaderTimestamp = "__sinkworker.timestamp"

// Headers of a dead letter that the dead-letter topic refused whole (its
// max.message.bytes is below the letter's size) and that was sent again
// without parts of the source record, so that the partition moves on. Each
// holds the size in bytes of what was left out, in decimal; the source
// record itself stays at its topic, partition and offset until retention
// removes it.
const (
	// HeaderValueDropped: the letter's value is empty (never null, so no
	// tool reads it as a tombstone) instead of the record's value.
	HeaderValueDropped = "__sinkworker.value.dropped"
	// HeaderKeyDropped: the letter has no key; set only when the letter
	// did not fit without its value either (a huge key), and then the
	// value is dropped too.
	HeaderKeyDropped = "__sinkworker.key.dropped"
	// HeaderHeadersDropped: the record's own headers are left out, with
	// the key; the value is the sum of their keys' and values' sizes.
	HeaderHeadersDropped = "__sinkworker.headers.dropped"
)

// dlqDeliveryTimeout bounds a dead-letter produce (the client's
// RecordDeliveryTimeout) and deadLetter as a whole: an unreachable
// dead-letter topic surfaces as a transient error after it, with the batch
// transaction still open.
const dlqDeliveryTimeout = 30 * time.Second

// dlqBatchMaxBytes is the dead-letter producer's record batch limit
// (kgo.ProducerBatchMaxBytes, franz-go's default being 1,000,012 bytes) and
// the least max.message.bytes of a dead-letter topic the worker creates.
// The records dead-lettered for their size are those over
// SINK_MAX_RECORD_BYTES, so the bound is not that setting but the largest
// record the worker can fetch. Kafka returns a batch larger than any fetch
// size (KIP-74), so that is limited by the source topic's max.message.bytes
// and by what the client reads in one fetch response, BrokerMaxReadBytes:
// 100 MiB. A produce request cannot be larger either: BrokerMaxWriteBytes
// is 100 MiB, the broker's default socket.request.max.bytes, and franz-go
// keeps a batch under it with the request's framing. So a letter (record,
// headers and ours) fits unless its record decompresses past 100 MiB. The
// topic's limit must not be below the producer's: the broker would refuse
// batches of several letters that each fit.
const dlqBatchMaxBytes = 100 << 20

// DLQTopicFor is the dead-letter topic of topic: DLQ_TOPIC, else "<topic>.dlq".
func (c Config) DLQTopicFor(topic string) string {
	if c.DLQTopic != "" {
		return c.DLQTopic
	}
	return topic + ".dlq"
}

// deadLetter produces bad records to their dead-letter topic and waits for
// every acknowledgement (acks=all, idempotent). Any failure is returned:
// the caller treats it as transient and does not move the offset past the
// records. It returns within dlqDeliveryTimeout, and as soon as ctx ends
// (a revocation past its budget) even with a produce on the wire, which a
// context cannot recall: the letter may still land later, but the offset
// does not move without the acknowledgement, so the records are
// dead-lettered again by whoever next writes the batch. Dead-lettering is
// therefore at least once: a letter may be duplicated, never lost.
//
// A letter the dead-letter topic refuses as too large (MESSAGE_TOO_LARGE
// or RECORD_LIST_TOO_LARGE from the broker, or the client's own
// kerr.MessageTooLarge) is sent again alone, then without its value, then
// also without its key and headers (see HeaderValueDropped), so a
// partition is never held by a letter that cannot fit.
func (w *Worker) deadLetter(ctx context.Context, bad []badRecord) error {
	if len(bad) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, dlqDeliveryTimeout)
	defer cancel()
	letters := make([]*kgo.Record, len(bad))
	for i, b := range bad {
		letters[i] = letter(w.cfg.DLQTopicFor(b.rec.Topic), b, whole)
	}
	errs, err := produce(ctx, w.cl, letters)
	if err != nil {
		return fmt.Errorf("dead-letter produce: %w", err)
	}
	for _, err := range errs {
		if err != nil && !tooLarge(err) {
			return fmt.Errorf("dead-letter produce: %w", err)
		}
	}
	shapes := make([]shape, len(bad))
	for i, err := range errs {
		if err != nil {
			if shapes[i], err = w.resend(ctx, bad[i]); err != nil {
				return err
			}
		}
	}
	for i, b := range bad {
		w.metrics.deadLetters.WithLabelValues(b.rec.Topic, b.class).Inc()
		attrs := []any{"topic", b.rec.Topic, "partition", b.rec.Partition, "offset", b.rec.Offset,
			"class", b.class, "reason", b.logReason()}
		if shapes[i] != whole {
			attrs = append(attrs, "left_out", shapes[i].String(), "dlq_topic", w.cfg.DLQTopicFor(b.rec.Topic),
				"hint", "the dead-letter topic's max.message.bytes is below the letter's size: raise it")
		}
		w.log.Warn("record dead-lettered", attrs...)
	}
	return nil
}

// resend sends b's letter after the dead-letter topic refused it as too
// large, one produce at a time, in shrinking shapes: whole again, as the
// refusal may have been of a batch that other letters, of this partition
// or another, made too large; then without the value; then bare. It
// returns the shape that was acknowledged.
func (w *Worker) resend(ctx context.Context, b badRecord) (shape, error) {
	topic := w.cfg.DLQTopicFor(b.rec.Topic)
	var refusal error
	for s := whole; s <= bare; s++ {
		if s == noValue && len(b.rec.Value) == 0 {
			continue // no value to leave out
		}
		errs, err := produce(ctx, w.cl, []*kgo.Record{letter(topic, b, s)})
		if err == nil {
			err = errs[0]
		}
		if err == nil {
			return s, nil
		}
		if !tooLarge(err) {
			return 0, fmt.Errorf("dead-letter produce: %w", err)
		}
		refusal = err
	}
	// Only a limit below a few kilobytes gets here; the batch is retried,
	// so raising the topic's limit lets the partition go on.
	return 0, fmt.Errorf("dead-letter topic %s refuses even a letter without key, value and headers for %s[%d] offset %d; raise its max.message.bytes: %w",
		topic, b.rec.Topic, b.rec.Partition, b.rec.Offset, refusal)
}

// tooLarge reports whether err says a letter, or the batch it was in, is
// over a size limit of the client or of the dead-letter topic.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// shape is how much of its source record a dead letter carries.
type shape int

const (
	whole   shape = iota // key, value and headers
	noValue              // key and headers, an empty value
	bare                 // no key, an empty value, none of the record's headers
)

func (s shape) String() string {
	switch s {
	case whole:
		return "nothing"
	case noValue:
		return "value"
	default:
		return "key, value and headers"
	}
}

// letter is b's dead letter to topic: the record's headers and Kafka
// Connect's, and as much of the record as s says, with a header for each
// part left out.
func letter(topic string, b badRecord, s shape) *kgo.Record {
	r := b.rec
	own := r.Headers
	if s == bare {
		own = nil
	}
	l := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value,
		Headers: append(make([]kgo.RecordHeader, 0, len(own)+9), own...)}
	l.Headers = append(l.Headers,
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: HeaderClass, Value: []byte(b.class)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(b.reason)},
		kgo.RecordHeader{Key: HeaderTimestamp, Value: strconv.AppendInt(nil, r.Timestamp.UnixMilli(), 10)},
	)
	size := func(n int) []byte { return strconv.AppendInt(nil, int64(n), 10) }
	if s >= noValue {
		l.Value = []byte{}
		l.Headers = append(l.Headers, kgo.RecordHeader{Key: HeaderValueDropped, Value: size(len(r.Value))})
	}
	if s == bare {
		l.Key = nil
		hdrs := 0
		for _, h := range r.Headers {
			hdrs += len(h.Key) + len(h.Value)
		}
		l.Headers = append(l.Headers,
			kgo.RecordHeader{Key: HeaderKeyDropped, Value: size(len(r.Key))},
			kgo.RecordHeader{Key: HeaderHeadersDropped, Value: size(hdrs)})
	}
	return l
}

// produce sends letters and waits until every one is acknowledged or has
// failed, returning each one's error, or until ctx ends, returning its
// error at once: a context does not recall an idempotent produce already
// on the wire (franz-go enforces RecordDeliveryTimeout only before a
// request or after its response), and a revocation must not wait for one.
// The callbacks of letters still in flight then write to errs, which
// nothing reads any more.
func produce(ctx context.Context, cl *kgo.Client, letters []*kgo.Record) ([]error, error) {
	errs := make([]error, len(letters))
	var left atomic.Int64
	left.Store(int64(len(letters)))
	done := make(chan struct{})
	for i, l := range letters {
		cl.Produce(ctx, l, func(_ *kgo.Record, err error) {
			errs[i] = err
			if left.Add(-1) == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
		return errs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ensureDLQTopics creates missing dead-letter topics with their source
// topic's partition count and a max.message.bytes of dlqBatchMaxBytes or
// the source topic's, whichever is larger (the largest of each, for one
// shared DLQ_TOPIC); an existing one is left as it is. An
// unreachable broker is an outage, not a reason to exit: it waits, with
// backoff, until ctx ends; other errors (authorization) return at once.
func (w *Worker) ensureDLQTopics(ctx context.Context) error {
	if w.cfg.ErrorPolicy != "dlq" {
		return nil
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := w.createDLQTopics(ctx)
		var opErr *net.OpError
		if err != nil && !errors.As(err, &opErr) && !kerr.IsRetriable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if err != nil {
			w.log.Warn("brokers not reachable yet to check the dead-letter topics, retrying", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(newBackoff()), backoff.WithMaxElapsedTime(0))
	return err
}

func (w *Worker) createDLQTopics(ctx context.Context) error {
	adm := kadm.NewClient(w.cl)
	details, err := adm.ListTopics(ctx, w.cfg.Topics...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for t, d := range details {
		if d.Err != nil {
			delete(details, t) // a missing source topic: the consumer waits for it
		}
	}
	limits, err := maxMessageBytes(ctx, adm, details.Names())
	if err != nil {
		return err
	}
	type spec struct {
		partitions int32
		maxBytes   int
	}
	want := map[string]spec{}
	for _, t := range w.cfg.Topics {
		d, ok := details[t]
		if !ok {
			continue
		}
		dlq := w.cfg.DLQTopicFor(t)
		want[dlq] = spec{
			partitions: max(want[dlq].partitions, int32(len(d.Partitions))),
			maxBytes:   max(want[dlq].maxBytes, dlqBatchMaxBytes, limits[t]),
		}
	}
	for dlq, s := range want {
		limit := strconv.Itoa(s.maxBytes)
		resp, err := adm.CreateTopic(ctx, s.partitions, -1, map[string]*string{"max.message.bytes": &limit}, dlq)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create dead-letter topic %s: %w", dlq, err)
		}
	}
	return nil
}

// maxMessageBytes reads the max.message.bytes of topics. A topic whose
// configs cannot be read (no DescribeConfigs permission) is left out: its
// dead-letter topic gets dlqBatchMaxBytes.
func maxMessageBytes(ctx context.Context, adm *kadm.Client, topics []string) (map[string]int, error) {
	configs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	limits := map[string]int{}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if rc.Err != nil || c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.Atoi(*c.Value); err == nil {
				limits[rc.Name] = n
			}
		}
	}
	return limits, nil
}
