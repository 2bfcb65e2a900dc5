package audit

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAuditJudge(t *testing.T) {
	for _, tc := range []struct {
		name          string
		row           Row
		readCommitted bool
		problem, note string
		lag           int64
	}{
		{"caught up", Row{DBNextOffset: 10, KafkaCommitted: 10, LogStart: 0, LogEnd: 10}, false, "", "", 0},
		{"behind", Row{DBNextOffset: 4, KafkaCommitted: 3, LogStart: 0, LogEnd: 10}, false, "", "", 6},
		{"no row, records in the log", Row{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 2, LogEnd: 10}, false, "no row", "", 8},
		{"no row, empty partition", Row{DBNextOffset: -1, KafkaCommitted: -1, LogStart: 0, LogEnd: 0}, false, "", "empty partition", 0},
		{"beyond the log end", Row{DBNextOffset: 50, LogStart: 0, LogEnd: 10}, false, "beyond the log end", "", 0},
		{"below the log start", Row{DBNextOffset: 3, LogStart: 7, LogEnd: 10}, false, "below the log start 7: 4 records", "", 7},
		{"kafka ahead of the database", Row{DBNextOffset: 5, KafkaCommitted: 9, LogStart: 0, LogEnd: 10}, false, "", "ahead of the database", 5},
		{"read_committed: lag to the last stable offset", Row{DBNextOffset: 8, LogStart: 0, LogEnd: 10, LastStable: 8},
			true, "", "", 0},
		{"read_committed: behind", Row{DBNextOffset: 3, LogStart: 0, LogEnd: 10, LastStable: 8},
			true, "", "", 5},
		{"beyond the log end names the command", Row{Topic: "orders", Partition: 2, DBNextOffset: 5003, LogStart: 0, LogEnd: 3000},
			true, "sinkworker offsets reset --topic orders --partition 2 --to earliest", "", 0},
		{"below the log start names the command", Row{Topic: "orders", Partition: 1, DBNextOffset: 3, LogStart: 7, LogEnd: 10, LastStable: 10},
			true, "sinkworker offsets reset --topic orders --partition 1 --to earliest", "", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.row
			r.judge(tc.readCommitted)
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
