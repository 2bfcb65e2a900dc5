package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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

// dlqDeliveryTimeout bounds a dead-letter produce (the client's
// RecordDeliveryTimeout): an unreachable dead-letter topic surfaces as a
// transient error after it, with the batch transaction still open.
const dlqDeliveryTimeout = 30 * time.Second

// DLQTopicFor is the dead-letter topic of topic: DLQ_TOPIC, else "<topic>.dlq".
func (c Config) DLQTopicFor(topic string) string {
	if c.DLQTopic != "" {
		return c.DLQTopic
	}
	return topic + ".dlq"
}

// deadLetter produces bad records to their dead-letter topic and waits for
// every acknowledgement (acks=all, idempotent, bounded by the client's
// RecordDeliveryTimeout). Any failure is returned: the caller treats it as
// transient and does not move the offset past the records.
func (w *Worker) deadLetter(ctx context.Context, bad []badRecord) error {
	if len(bad) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(bad))
	for i, b := range bad {
		headers := append(make([]kgo.RecordHeader, 0, len(b.rec.Headers)+5), b.rec.Headers...)
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(b.rec.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(b.rec.Partition), 10)},
			kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, b.rec.Offset, 10)},
			kgo.RecordHeader{Key: HeaderClass, Value: []byte(b.class)},
			kgo.RecordHeader{Key: HeaderMessage, Value: []byte(b.reason)},
		)
		recs[i] = &kgo.Record{Topic: w.cfg.DLQTopicFor(b.rec.Topic), Key: b.rec.Key, Value: b.rec.Value, Headers: headers}
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter produce: %w", err)
	}
	for _, b := range bad {
		w.metrics.deadLetters.WithLabelValues(b.rec.Topic, b.class).Inc()
		w.log.Warn("record dead-lettered", "topic", b.rec.Topic, "partition", b.rec.Partition,
			"offset", b.rec.Offset, "class", b.class, "reason", b.reason)
	}
	return nil
}

// ensureDLQTopics creates missing dead-letter topics with their source
// topic's partition count (the largest, for one shared DLQ_TOPIC). An
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
	want := map[string]int32{}
	for _, t := range w.cfg.Topics {
		d, ok := details[t]
		if !ok || d.Err != nil {
			continue // a missing source topic: the consumer waits for it
		}
		dlq := w.cfg.DLQTopicFor(t)
		want[dlq] = max(want[dlq], int32(len(d.Partitions)))
	}
	for dlq, partitions := range want {
		resp, err := adm.CreateTopic(ctx, partitions, -1, nil, dlq)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create dead-letter topic %s: %w", dlq, err)
		}
	}
	return nil
}
