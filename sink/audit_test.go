package sink

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAuditJudge(t *testing.T) {
	for _, tc := range []struct {
		name          string
		row           AuditRow
		problem, note string
		lag           int64
	}{
		{"caught up", AuditRow{DBNextOffset: 10, KafkaCommitted: 10, LogStart: 0, LogEnd: 10}, "", "", 0},
		{"behind", AuditRow{DBNextOffset: 4, KafkaCommitted: 3, LogStart: 0, LogEnd: 10}, "", "", 6},
		{"no row, records in the log", AuditRow{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 2, LogEnd: 10}, "no row", "", 8},
		{"no row, empty partition", AuditRow{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 0, LogEnd: 0}, "", "empty partition", 0},
		{"beyond the log end", AuditRow{DBNextOffset: 50, LogStart: 0, LogEnd: 10}, "beyond the log end", "", 0},
		{"below the log start", AuditRow{DBNextOffset: 3, LogStart: 7, LogEnd: 10}, "below the log start 7: 4 records", "", 7},
		{"kafka ahead of the database", AuditRow{DBNextOffset: 5, KafkaCommitted: 9, LogStart: 0, LogEnd: 10}, "", "ahead of the database", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.row
			r.judge()
			if tc.problem == "" {
				assert.Empty(t, r.Problem)
			} else {
				assert.Contains(t, r.Problem, tc.problem)
			}
			if tc.note == "" {
				assert.Empty(t, r.Note)
			} else {
				assert.Contains(t, r.Note, tc.note)
			}
			assert.Equal(t, tc.lag, r.Lag)
		})
	}
}
