package sink

import (
	"context"
	"regexp"

	"github.com/sinkworker/sinkworker/sink/dlq"
)

// DLQTopicFor is the dead-letter topic of topic: DLQ_TOPIC, else "<topic>.dlq".
func (c Config) DLQTopicFor(topic string) string { return dlq.TopicFor(c.DLQTopic, topic) }

// ensureDLQTopics creates the missing dead-letter topics under
// ERROR_POLICY=dlq (dlq.EnsureTopics).
func (w *Worker) ensureDLQTopics(ctx context.Context) error {
	if w.cfg.ErrorPolicy != "dlq" {
		return nil
	}
	return dlq.EnsureTopics(ctx, w.cl, w.log, w.cfg.Topics, w.cfg.DLQTopic)
}

// dlqPattern matches the dead-letter topics whole: DLQ_TOPIC, else every
// "<topic>.dlq".
func dlqPattern(override string) string {
	if override != "" {
		return "^" + regexp.QuoteMeta(override) + "$"
	}
	return `^.*\.dlq$`
}
