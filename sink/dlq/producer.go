package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// DeliveryTimeout bounds a dead-letter produce (the client's
// kgo.RecordDeliveryTimeout) and Send as a whole: an unreachable
// dead-letter topic surfaces as a transient error after it, with the batch
// transaction still open. A batch transaction's own bounds
// (SINK_TX_TIMEOUT, SINK_TX_IDLE_TIMEOUT) must exceed it.
const DeliveryTimeout = 30 * time.Second

// BatchMaxBytes is the dead-letter producer's record batch limit
// (kgo.ProducerBatchMaxBytes, franz-go's default being 1,000,012 bytes) and
// the least max.message.bytes of a dead-letter topic EnsureTopics creates.
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
const BatchMaxBytes = 100 << 20

// TopicFor is the dead-letter topic of source: override (DLQ_TOPIC) when
// set, else "<source>.dlq".
func TopicFor(override, source string) string {
	if override != "" {
		return override
	}
	return source + ".dlq"
}

// Producer sends dead letters over a client the caller owns, which must
// have been built with kgo.RecordDeliveryTimeout(DeliveryTimeout) and
// kgo.ProducerBatchMaxBytes(BatchMaxBytes) (acks=all and idempotence are
// franz-go's defaults). Send may be called from many goroutines at once.
type Producer struct {
	cl       *kgo.Client
	override string // DLQ_TOPIC
	log      *slog.Logger
	counted  func(topic, class string)
}

// NewProducer returns a Producer that sends letters of a source topic to
// TopicFor(override, topic), logs each letter (coordinates, class and
// LogReason(), never the record) and calls counted (may be nil) once per
// acknowledged letter with its source topic and class.
func NewProducer(cl *kgo.Client, override string, log *slog.Logger, counted func(topic, class string)) *Producer {
	if counted == nil {
		counted = func(string, string) {}
	}
	return &Producer{cl: cl, override: override, log: log, counted: counted}
}

// Send produces the rejected records, letters, to their dead-letter topics and waits for every
// acknowledgement (acks=all, idempotent). Any failure is returned: the
// caller treats it as transient and does not move the offset past the
// records. It returns within DeliveryTimeout, and as soon as ctx ends (a
// revocation past its budget) even with a produce on the wire, which a
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
func (p *Producer) Send(ctx context.Context, letters []decode.Rejection) error {
	if len(letters) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, DeliveryTimeout)
	defer cancel()
	recs := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		recs[i] = letterRecord(TopicFor(p.override, l.Record.Topic), l, whole)
	}
	errs, err := produce(ctx, p.cl, recs)
	if err != nil {
		return fmt.Errorf("dead-letter produce: %w", err)
	}
	for _, err := range errs {
		if err != nil && !tooLarge(err) {
			return fmt.Errorf("dead-letter produce: %w", err)
		}
	}
	shapes := make([]shape, len(letters))
	for i, err := range errs {
		if err != nil {
			if shapes[i], err = p.resend(ctx, letters[i]); err != nil {
				return err
			}
		}
	}
	for i, l := range letters {
		r := l.Record
		p.counted(r.Topic, l.Class)
		attrs := []any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"class", l.Class, "reason", l.LogReason()}
		if shapes[i] != whole {
			attrs = append(attrs, "left_out", shapes[i].String(), "dlq_topic", TopicFor(p.override, r.Topic),
				"hint", "the dead-letter topic's max.message.bytes is below the letter's size: raise it")
		}
		p.log.Warn("record dead-lettered", attrs...)
	}
	return nil
}

// resend sends l after the dead-letter topic refused it as too large, one
// produce at a time, in shrinking shapes: whole again, as the refusal may
// have been of a batch that other letters, of this partition or another,
// made too large; then without the value; then bare. It returns the shape
// that was acknowledged.
func (p *Producer) resend(ctx context.Context, l decode.Rejection) (shape, error) {
	r := l.Record
	topic := TopicFor(p.override, r.Topic)
	var refusal error
	for s := whole; s <= bare; s++ {
		if s == noValue && len(r.Value) == 0 {
			continue // no value to leave out
		}
		errs, err := produce(ctx, p.cl, []*kgo.Record{letterRecord(topic, l, s)})
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
		topic, r.Topic, r.Partition, r.Offset, refusal)
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

// String names what a letter of shape s leaves out, for the log.
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

// letterRecord is l's dead letter to topic: the record's headers and Kafka
// Connect's, and as much of the record as s says, with a header for each
// part left out.
func letterRecord(topic string, l decode.Rejection, s shape) *kgo.Record {
	r := l.Record
	own := r.Headers
	if s == bare {
		own = nil
	}
	out := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value,
		Headers: append(make([]kgo.RecordHeader, 0, len(own)+9), own...)}
	out.Headers = append(out.Headers,
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: HeaderClass, Value: []byte(l.Class)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(l.Reason)},
		kgo.RecordHeader{Key: HeaderTimestamp, Value: strconv.AppendInt(nil, r.Timestamp.UnixMilli(), 10)},
	)
	size := func(n int) []byte { return strconv.AppendInt(nil, int64(n), 10) }
	if s >= noValue {
		out.Value = []byte{}
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: HeaderValueDropped, Value: size(len(r.Value))})
	}
	if s == bare {
		out.Key = nil
		hdrs := 0
		for _, h := range r.Headers {
			hdrs += len(h.Key) + len(h.Value)
		}
		out.Headers = append(out.Headers,
			kgo.RecordHeader{Key: HeaderKeyDropped, Value: size(len(r.Key))},
			kgo.RecordHeader{Key: HeaderHeadersDropped, Value: size(hdrs)})
	}
	return out
}

// produce sends recs and waits until every one is acknowledged or has
// failed, returning each one's error, or until ctx ends, returning its
// error at once: a context does not recall an idempotent produce already
// on the wire (franz-go enforces RecordDeliveryTimeout only before a
// request or after its response), and a revocation must not wait for one.
// The callbacks of records still in flight then write to errs, which
// nothing reads any more.
func produce(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) ([]error, error) {
	errs := make([]error, len(recs))
	var left atomic.Int64
	left.Store(int64(len(recs)))
	done := make(chan struct{})
	for i, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
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
