package postgres

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// copyMinRows is the smallest insert-mode batch written with COPY: below
// it the one-round-trip statement costs less than COPY's two. A variable
// so BenchmarkInsertBatch can measure the statement at every size.
var copyMinRows = 64

// copyInsert writes an insert-mode batch (SINK_MAPPING=jsonb) with COPY in
// text format under a savepoint, and reports whether it did. The bench
// suite's limit scenario measured COPY at 1.6-1.9x the INSERT .. SELECT
// FROM unnest statement on this table shape. COPY is all or nothing and
// has no ON CONFLICT: any rejection (a replayed row already there, a value
// the table refuses) rolls back to the savepoint and reports false, and
// the caller writes the batch with the statement, which skips replays and
// isolates bad rows as ever. An error is one the statement would not fix
// either (the connection, the transaction).
func (w *Writer) copyInsert(ctx context.Context, tx *pgx.Conn, ops []decode.Row, res *Result) (bool, error) {
	var buf bytes.Buffer
	buf.Grow(len(ops) * 128)
	topic, partition := copyText(nil, []byte(w.topic)), strconv.AppendInt(nil, int64(w.partition), 10)
	for i := range ops {
		r := &ops[i]
		buf.Write(topic)
		buf.WriteByte('\t')
		buf.Write(partition)
		buf.WriteByte('\t')
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), r.Record.Offset, 10))
		buf.WriteByte('\t')
		writeCopyField(&buf, r.KeyText)
		buf.WriteByte('\t')
		writeCopyField(&buf, r.Value)
		buf.WriteByte('\t')
		buf.WriteString(r.Record.Timestamp.UTC().Format(time.RFC3339Nano))
		buf.WriteByte('\n')
	}
	// The SAVEPOINT rides with the COPY: one simple query, one round trip
	// (pgconn sends the data without waiting for the server's go-ahead).
	tag, err := tx.PgConn().CopyFrom(ctx, &buf, "SAVEPOINT sink; "+w.copySQL)
	if err == nil {
		res.Written += int(tag.RowsAffected())
		res.Copied += int(tag.RowsAffected())
		return true, nil
	}
	if Classify(err) != Permanent && !StatementTimeout(ctx, err) {
		return false, w.wrapBatch("copy", ops, err)
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT sink"); rerr != nil {
		return false, w.wrapBatch("copy: rollback to savepoint", ops, rerr)
	}
	return false, nil
}

// writeCopyField writes b as a field of COPY's text format: \N for SQL
// NULL, else b with backslash, tab, newline and carriage return escaped.
func writeCopyField(buf *bytes.Buffer, b []byte) {
	if b == nil {
		buf.WriteString(`\N`)
		return
	}
	buf.Write(copyText(buf.AvailableBuffer()[:0], b))
}

// copyText appends b to dst escaped for COPY's text format.
func copyText(dst, b []byte) []byte {
	start := 0
	for i, c := range b {
		var esc byte
		switch c {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		default:
			continue
		}
		dst = append(dst, b[start:i]...)
		dst = append(dst, '\\', esc)
		start = i + 1
	}
	return append(dst, b[start:]...)
}
