package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// copyBatch is n insert-mode records from offset first whose keys and
// values hold what COPY's text format must escape.
func copyBatch(first int64, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		off := first + int64(i)
		recs[i] = &kgo.Record{Offset: off, Timestamp: time.UnixMilli(1_700_000_000_000 + off).UTC(),
			Key:   fmt.Appendf(nil, "k\t%d\\\n\r é", off),
			Value: fmt.Appendf(nil, "{\"n\": %d, \"s\": \"a\\\\b\\t\\n \\\" é\",\n\t\"x\": [1, 2]}", off)}
		if i%10 == 3 {
			recs[i].Key = nil
		}
	}
	return recs
}

// TestWriterInsertCopy: an insert-mode batch goes in with COPY and lands
// exactly as the statement writes it (escapes, null keys, timestamps); a
// replay (rows already there, the offsets row lost) and a row the table
// refuses make COPY fail, and the batch falls back to the statement, which
// skips the replayed rows and dead-letters only the refused one.
func TestWriterInsertCopy(t *testing.T) {
	db := testPool(t)
	viaCopy := newWriterFixture(t, db, decode.ModeInsert, true)
	viaStatement := newWriterFixture(t, db, decode.ModeInsert, true)
	recs := copyBatch(0, 200)
	res := viaCopy.write(t, 0, recs)
	assert.Equal(t, 200, res.Written)
	assert.Equal(t, 200, res.Copied, "written with COPY")
	for i := 0; i < len(recs); i += copyMinRows - 1 { // batches the statement writes
		end := min(i+copyMinRows-1, len(recs))
		assert.Zero(t, viaStatement.write(t, 0, recs[i:end]).Copied)
	}
	rows := func(f *writerFixture) []string {
		t.Helper()
		var out []string
		r, err := db.Query(t.Context(), `SELECT concat_ws('|', kafka_partition, kafka_offset, coalesce(key, 'NULL'), value::text, kafka_timestamp)
FROM `+f.table.Sanitize()+` ORDER BY kafka_offset`)
		require.NoError(t, err)
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, r.Err())
		return out
	}
	got := rows(viaCopy)
	require.Len(t, got, 200)
	assert.Equal(t, rows(viaStatement), got, "COPY and the statement write the same rows")

	// The offsets row lost: the batch again is a replay of rows already there.
	_, err := db.Exec(t.Context(), `DELETE FROM `+viaCopy.offsets.Sanitize())
	require.NoError(t, err)
	res = viaCopy.write(t, 0, recs)
	assert.Zero(t, res.Written)
	assert.Zero(t, res.Copied, "COPY refused the replay: the statement wrote the batch")
	assert.Equal(t, 200, res.AlreadyApplied, "the replay is a no-op")

	// A row the table refuses: only it is dead-lettered.
	_, err = db.Exec(t.Context(), `ALTER TABLE `+viaCopy.table.Sanitize()+` ADD CONSTRAINT small CHECK ((value->>'n')::int <> 250)`)
	require.NoError(t, err)
	var dead deadLetters
	res, err = newWriter(viaCopy.cfg, viaCopy.topic, 0, nil).Write(context.Background(), db, viaCopy.records(0, copyBatch(200, 100)), dead.send)
	require.NoError(t, err)
	assert.Equal(t, 99, res.Written)
	assert.Zero(t, res.Copied)
	require.Len(t, dead.bad, 1)
	assert.Equal(t, int64(250), dead.bad[0].Record.Offset)
}

// BenchmarkInsertBatch: 5,000-record insert-mode batches (~150-byte JSON
// values), each its own fenced transaction, written with COPY and with
// the INSERT .. SELECT FROM unnest statement, side by side:
// go test -run '^$' -bench BenchmarkInsertBatch -count 3 ./sink/postgres/
func BenchmarkInsertBatch(b *testing.B) {
	for _, path := range []struct {
		name    string
		minRows int
	}{{"copy", 64}, {"statement", 1 << 30}} {
		b.Run(path.name, func(b *testing.B) {
			prev := copyMinRows
			copyMinRows = path.minRows
			defer func() { copyMinRows = prev }()
			f := newWriterFixture(b, testPool(b), decode.ModeInsert, true)
			w := newWriter(f.cfg, f.topic, 0, nil)
			const n = 5000
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				recs := f.records(0, copyBatch(int64(i)*n, n))
				if _, err := w.Write(b.Context(), f.db, recs, func(context.Context, []decode.Rejection) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
