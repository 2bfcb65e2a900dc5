package sink

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAuditJudge(t *testing.T) {
	for _, tc := range []struct {
		name          string
		row           AuditRow
		isolation     string
		problem, note string
		lag           int64
	}{
		{"caught up", AuditRow{DBNextOffset: 10, KafkaCommitted: 10, LogStart: 0, LogEnd: 10}, "", "", "", 0},
		{"behind", AuditRow{DBNextOffset: 4, KafkaCommitted: 3, LogStart: 0, LogEnd: 10}, "", "", "", 6},
		{"no row, records in the log", AuditRow{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 2, LogEnd: 10}, "", "no row", "", 8},
		{"no row, empty partition", AuditRow{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 0, LogEnd: 0}, "", "", "empty partition", 0},
		{"beyond the log end", AuditRow{DBNextOffset: 50, LogStart: 0, LogEnd: 10}, "", "beyond the log end", "", 0},
		{"below the log start", AuditRow{DBNextOffset: 3, LogStart: 7, LogEnd: 10}, "", "below the log start 7: 4 records", "", 7},
		{"kafka ahead of the database", AuditRow{DBNextOffset: 5, KafkaCommitted: 9, LogStart: 0, LogEnd: 10}, "", "", "ahead of the database", 5},
		{"read_committed: lag to the last stable offset", AuditRow{DBNextOffset: 8, LogStart: 0, LogEnd: 10, LastStable: 8},
			IsolationReadCommitted, "", "", 0},
		{"read_committed: behind", AuditRow{DBNextOffset: 3, LogStart: 0, LogEnd: 10, LastStable: 8},
			IsolationReadCommitted, "", "", 5},
		{"beyond the log end names the command", AuditRow{Topic: "orders", Partition: 2, DBNextOffset: 5003, LogStart: 0, LogEnd: 3000},
			IsolationReadCommitted, "sinkworker offsets reset --topic orders --partition 2 --to earliest", "", 0},
		{"below the log start names the command", AuditRow{Topic: "orders", Partition: 1, DBNextOffset: 3, LogStart: 7, LogEnd: 10, LastStable: 10},
			IsolationReadCommitted, "sinkworker offsets reset --topic orders --partition 1 --to earliest", "", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.row
			isolation := tc.isolation
			if isolation == "" {
				isolation = IsolationReadUncommitted
			}
			r.judge(isolation)
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
