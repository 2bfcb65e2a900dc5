package postgres

import "github.com/sinkworker/sinkworker/sink/decode"

// CeilingStatements are the statements the Writer of topic runs for each
// batch in SINK_MAPPING=jsonb under c, taken from NewWriter itself, so that
// a measurement of the database alone (bench/internal/ceiling) runs the
// writer's own SQL rather than a copy:
//   - lock locks the partition's offsets row and returns its next_offset
//     ($1 group, $2 topic, $3 partition);
//   - write writes the rows: the upsert ($1 partition, then text arrays of
//     keys and values, int8 offsets, timestamptz timestamps), or in insert
//     mode the insert ($1 topic, then the same shifted by one);
//   - advance sets the row's next_offset ($1-$3 as lock, $4 the offset).
func CeilingStatements(c Config, topic string) (lock, write, advance string) {
	w := NewWriter(c, topic, 0, nil)
	write = w.upsertSQL
	if c.Mode == decode.ModeInsert {
		write = w.insertSQL
	}
	return w.offsets.lockSQL(), write, w.advanceSQL
}
