package sink

import (
	"github.com/sinkworker/sinkworker/sink/observe"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// outcomes is a batch's Result as sinkworker_records_total counts it.
func outcomes(r postgres.Result) observe.Outcomes {
	return observe.Outcomes{
		Written:           r.Written,
		Deleted:           r.Deleted,
		Deduplicated:      r.Deduplicated,
		AlreadyApplied:    r.AlreadyApplied,
		TombstonesSkipped: r.TombstonesSkipped,
		NotChanges:        r.NotChanges,
		Truncated:         r.Truncated,
		TruncatesSkipped:  r.TruncatesSkipped,
		DeadLettered:      r.DeadLettered,
		UnknownFields:     r.UnknownFields,
	}
}
