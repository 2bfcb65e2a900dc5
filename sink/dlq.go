package sink

import (
	"context"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
)

// DLQTopicFor is the dead-letter topic of topic: DLQ_TOPIC, else "<topic>.dlq".
func (c Config) DLQTopicFor(topic string) string { return dlq.TopicFor(c.DLQTopic, topic) }

// deadLetter sends bad records to their dead-letter topics through the
// worker's producer and waits for the acknowledgements (dlq.Producer.Send).
func (w *Worker) deadLetter(ctx context.Context, bad []badRecord) error {
	letters := make([]decode.Rejection, len(bad))
	for i, b := range bad {
		letters[i] = decode.Rejection{Record: b.rec, Class: b.class, Reason: b.reason, Code: b.code}
	}
	return w.dead.Send(ctx, letters)
}

// ensureDLQTopics creates the missing dead-letter topics under
// ERROR_POLICY=dlq (dlq.EnsureTopics).
func (w *Worker) ensureDLQTopics(ctx context.Context) error {
	if w.cfg.ErrorPolicy != "dlq" {
		return nil
	}
	return dlq.EnsureTopics(ctx, w.cl, w.log, w.cfg.Topics, w.cfg.DLQTopic)
}
