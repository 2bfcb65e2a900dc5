package sink

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/sink/audit"
)

// outOfRange halts a partition whose fetch offset the log no longer has:
// the database's next_offset is beyond the log end (the topic was
// recreated, or the database restored against another cluster) or below
// the log start (retention deleted records before they were sunk). The
// client never resets such an offset (kgo.NoResetOffset): resetting to the
// start would drop every new record as "already applied", resetting to
// the end would skip the records in between. So the partition's fetching
// is paused, /readyz turns not-ready, sinkworker_offset_out_of_range_total
// counts it, and one ERROR names the partition, the offset, the log's
// bounds and the command that resolves it deliberately. Nothing is written
// past the offset; records fetched before it are still written. A new
// assignment of the partition fetches, and checks, again.
//
// It runs in the poll loop: the two list requests are bounded by a short
// timeout, and a partition is reported once per assignment.
func (w *Worker) outOfRange(ctx context.Context, topic string, partition int32) {
	tp := map[string][]int32{topic: {partition}}
	w.cl.PauseFetchPartitions(tp)
	w.mu.Lock()
	p := w.parts[topic][partition]
	w.mu.Unlock()
	if p == nil {
		return // revoked since the fetch
	}
	if w.health.IsHalted(p.key()) {
		return // reported already; a resume by backpressure only fetched the error again
	}
	w.health.SetHalted(p.key(), true)
	w.metrics.OutOfRange.WithLabelValues(topic).Inc()

	offset := p.fetchOffset()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(w.cl)
	logStart, logEnd := int64(-1), int64(-1)
	if starts, err := adm.ListStartOffsets(lctx, topic); err == nil {
		if o, ok := starts.Lookup(topic, partition); ok && o.Err == nil {
			logStart = o.Offset
		}
	}
	if ends, err := adm.ListEndOffsets(lctx, topic); err == nil {
		if o, ok := ends.Lookup(topic, partition); ok && o.Err == nil {
			logEnd = o.Offset
		}
	}
	w.log.Error("offset out of range: partition halted, nothing skipped",
		"topic", topic, "partition", partition, "offset", offset,
		"log_start", logStart, "log_end", logEnd, "condition", rangeCondition(offset, logStart, logEnd),
		"resolve", audit.ResetCommand(topic, partition, "earliest"))
}

// rangeCondition says how offset lies outside [logStart, logEnd]; -1 is an
// unknown bound.
func rangeCondition(offset, logStart, logEnd int64) string {
	switch {
	case logEnd >= 0 && offset > logEnd:
		return "beyond the log end: the topic was recreated or truncated, or the database belongs to another cluster"
	case logStart >= 0 && offset < logStart:
		return "below the log start: records were deleted (retention) before they were sunk"
	default:
		return "outside the log"
	}
}
