package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// execIsolating writes ops under a savepoint and returns the ops the
// database rejected on their own, keeping every good one:
//   - a statement cancelled by the server's statement_timeout is split in
//     two halves, each written the same way, down to one record; a single
//     record that still times out is a Transient error (retried with
//     backoff, never dead-lettered);
//   - a rejection of the data is bisected (batch.Bisect) to the records
//     that fail on their own, unless it proves systemic (see
//     rejectStreak): then it returns a *SystemicError and nothing of the
//     batch is dead-lettered.
func (w *Writer) execIsolating(ctx context.Context, tx *pgx.Conn, ops []decode.Row, res *Result) ([]rejectedRow, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	err := w.execSavepoint(ctx, tx, ops, res)
	switch {
	case err == nil:
		w.pending.reset()
		return nil, nil
	case StatementTimeout(ctx, err) && len(ops) > 1:
		res.Shrunk++
		mid := len(ops) / 2
		bad, err := w.execIsolating(ctx, tx, ops[:mid], res)
		if err != nil {
			return nil, err
		}
		more, err := w.execIsolating(ctx, tx, ops[mid:], res)
		return append(bad, more...), err
	case Classify(err) != Permanent:
		return nil, err
	}
	whole := err
	rejected, n, err := batch.Bisect(len(ops), whole,
		func(lo, hi int) error {
			if err := w.execSavepoint(ctx, tx, ops[lo:hi], res); err != nil {
				if hi-lo == 1 && Classify(err) == Permanent {
					// Bisect finishes ranges in offset order: a single
					// record rejected here follows the last one finished.
					if serr := w.pending.reject(ops[lo].Record, err, w.systemic); serr != nil {
						return serr
					}
				}
				return err
			}
			w.pending.reset()
			return nil
		},
		func(err error) bool {
			var sys *SystemicError
			return Classify(err) == Permanent && !errors.As(err, &sys)
		})
	res.Statements += n
	if err != nil {
		return nil, err
	}
	if len(ops) == 1 { // Bisect had nothing to split: whole is its rejection
		if err := w.pending.reject(ops[0].Record, whole, w.systemic); err != nil {
			return nil, err
		}
	}
	bad := make([]rejectedRow, len(rejected))
	for i, r := range rejected {
		bad[i] = rejectedRow{row: ops[r.Index], err: r.Err}
	}
	if err := systemicShare(bad, len(ops), w.systemic); err != nil {
		return nil, err
	}
	return bad, nil
}

// execSavepoint runs ops' statements after a SAVEPOINT, in one round trip,
// and rolls back to it on failure so the transaction stays usable.
//
// In SINK_MAPPING=columns, a column the statement names but the table no
// longer has (SQLSTATE 42703: dropped or renamed since the catalog was
// read) fails the statement before its SAVEPOINT runs, so the whole
// transaction is lost: the columns are marked for a new catalog read and a
// Transient error retries the batch, where the field becomes an unknown
// one. Only when the catalog was read again since the last commit does
// 42703 stay Fatal.
func (w *Writer) execSavepoint(ctx context.Context, tx *pgx.Conn, ops []decode.Row, res *Result) error {
	err := w.execOnce(ctx, tx, ops, res)
	if w.cols == nil || sqlstate(err) != "42703" || w.reread {
		return err
	}
	w.reread = true
	w.cols.invalidate()
	return fmt.Errorf("%s[%d]: a column is gone from %s, reading the catalog again: %s",
		w.topic, w.partition, w.cols.id.Sanitize(), Loggable(err)) // no %w: Transient, not the Fatal 42703
}

func (w *Writer) execOnce(ctx context.Context, tx *pgx.Conn, ops []decode.Row, res *Result) error {
	var writes, dels []decode.Row
	if w.mode == decode.ModeInsert {
		writes = ops
	} else {
		for _, r := range ops {
			if r.Op == decode.OpDelete {
				dels = append(dels, r)
			} else {
				writes = append(writes, r)
			}
		}
	}
	var (
		b                pgx.Batch
		written, deleted int64
		unknown          int
	)
	b.Queue("SAVEPOINT sink")
	var err error
	if w.cols != nil {
		unknown, err = w.queueColumns(ctx, tx, &b, writes, dels, &written, &deleted)
	} else {
		w.queueJSONB(&b, writes, dels, &written, &deleted)
	}
	if err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		// The transaction stays usable for whatever comes next: the
		// isolation of bad records, smaller statements, a catalog read.
		if Classify(err) == Permanent || StatementTimeout(ctx, err) {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT sink"); rerr != nil {
				// The transaction is lost (the error came before the
				// SAVEPOINT ran, or the connection): retry all of it, and
				// never take the rollback's failure for the records'.
				return fmt.Errorf("%s[%d]: rollback to savepoint: %s, after: %s",
					w.topic, w.partition, Loggable(rerr), Loggable(err))
			}
		}
		return w.wrapBatch("write", ops, err)
	}
	res.Written += int(written)
	if w.mode == decode.ModeInsert {
		// ON CONFLICT DO NOTHING: rows already there are replays.
		res.AlreadyApplied += len(writes) - int(written)
	}
	res.Deleted += int(deleted)
	res.UnknownFields += unknown
	return nil
}

// queueJSONB queues the SINK_MAPPING=jsonb statements. Upserts of rows
// that keep some fields (Row.Keep: Debezium's TOAST placeholders, left
// out of the value) merge the new value into the stored one instead of
// replacing it, so the fields the source did not send keep theirs.
func (w *Writer) queueJSONB(b *pgx.Batch, writes, dels []decode.Row, written, deleted *int64) {
	count := func(n *int64) func(pgconn.CommandTag) error {
		return func(ct pgconn.CommandTag) error { *n += ct.RowsAffected(); return nil }
	}
	plain, merge := writes, []decode.Row(nil)
	if w.mode == decode.ModeUpsert && slices.ContainsFunc(writes, func(r decode.Row) bool { return len(r.Keep) > 0 }) {
		plain = nil
		for _, r := range writes {
			if len(r.Keep) > 0 {
				merge = append(merge, r)
			} else {
				plain = append(plain, r)
			}
		}
	}
	for _, group := range []struct {
		rows []decode.Row
		sql  string
	}{{plain, w.upsertSQL}, {merge, w.mergeSQL}} {
		if len(group.rows) == 0 {
			continue
		}
		cols := columnsOf(group.rows)
		if w.mode == decode.ModeInsert {
			b.Queue(w.insertSQL, w.topic, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps).Exec(count(written))
			continue
		}
		b.Queue(group.sql, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps).Exec(count(written))
	}
	if len(dels) > 0 {
		b.Queue(w.deleteSQL, textArray(dels, rowKey)).Exec(count(deleted))
	}
}

// queueColumns queues the SINK_MAPPING=columns statements and returns the
// number of unknown fields among the writes. Writes that keep some columns
// (Row.Keep) go in statements of their own that leave those columns out.
func (w *Writer) queueColumns(ctx context.Context, tx *pgx.Conn, b *pgx.Batch, writes, dels []decode.Row,
	written, deleted *int64) (int, error) {
	count := func(n *int64) func(pgconn.CommandTag) error {
		return func(ct pgconn.CommandTag) error { *n += ct.RowsAffected(); return nil }
	}
	unknown := 0
	for _, group := range byKeep(writes) {
		rows, err := w.cols.prepare(ctx, tx, group)
		if err != nil {
			return 0, w.wrapBatch("prepare rows", group, err)
		}
		used := rows.used
		if keep := group[0].Keep; len(keep) > 0 {
			used = slices.DeleteFunc(slices.Clone(used), func(c string) bool { return slices.Contains(keep, c) })
		}
		_, pk, _ := w.cols.snapshot()
		b.Queue(w.cols.writeSQL(w.mode, used, pk), w.topic, w.partition, rows.values, rows.keys, rows.offsets, rows.timestamps).
			Exec(count(written))
		unknown += rows.unknown
	}
	if len(dels) > 0 {
		rows, err := w.cols.prepare(ctx, tx, dels)
		if err != nil {
			return 0, w.wrapBatch("prepare deletes", dels, err)
		}
		_, pk, _ := w.cols.snapshot()
		b.Queue(w.cols.deleteSQL(pk), w.topic, w.partition, rows.values, rows.keys, rows.offsets, rows.timestamps).
			Exec(count(deleted))
	}
	return unknown, nil
}

// byKeep groups rows by the columns they keep (Row.Keep), in the order each
// group first appears; nearly always one group.
func byKeep(rows []decode.Row) [][]decode.Row {
	if len(rows) == 0 {
		return nil
	}
	if !slices.ContainsFunc(rows, func(r decode.Row) bool { return len(r.Keep) > 0 }) {
		return [][]decode.Row{rows}
	}
	var order []string
	groups := map[string][]decode.Row{}
	for _, r := range rows {
		k := strings.Join(r.Keep, "\x00")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([][]decode.Row, len(order))
	for i, k := range order {
		out[i] = groups[k]
	}
	return out
}

// columns is a batch turned into the parallel arrays unnest takes. Values
// travel as text and are cast to jsonb by the server: a jsonb[] parameter
// parses far slower for big arrays. keys and values are
// textArray results.
type columns struct {
	keys, values any
	offsets      []int64
	timestamps   []time.Time
}

func columnsOf(rows []decode.Row) columns {
	c := columns{
		keys:       textArray(rows, rowKey),
		values:     textArray(rows, rowValue),
		offsets:    make([]int64, len(rows)),
		timestamps: make([]time.Time, len(rows)),
	}
	for i := range rows {
		c.offsets[i] = rows[i].Record.Offset
		c.timestamps[i] = rows[i].Record.Timestamp
	}
	return c
}

// rowKey is the key column's text: the record key as it came, or as its
// format decoded it (NULL when there is none, in insert mode).
func rowKey(r *decode.Row) []byte   { return r.KeyText }
func rowValue(r *decode.Row) []byte { return r.Value }

// textArray is a text[] parameter holding field of each record: a
// []string when no field is null (the common case, which pgx encodes
// without reflection), else a []*string with nil for SQL NULL. The strings
// share the records' bytes rather than copy them: a fetched record is
// never modified, and the batch outlives the statement
// (BenchmarkEncodeColumns: half the time and 56% of the allocations of
// copied strings in a []*string).
func textArray(rows []decode.Row, field func(*decode.Row) []byte) any {
	for i := range rows {
		if field(&rows[i]) == nil {
			out := make([]*string, len(rows))
			for i := range rows {
				if b := field(&rows[i]); b != nil {
					s := bytesText(b)
					out[i] = &s
				}
			}
			return out
		}
	}
	out := make([]string, len(rows))
	for i := range rows {
		out[i] = bytesText(field(&rows[i]))
	}
	return out
}

// bytesText views b as a string without copying; b must not change while
// the string is in use.
func bytesText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (w *Writer) wrap(step string, err error) error {
	return fmt.Errorf("%s %s[%d]: %w", step, w.topic, w.partition, err)
}

func (w *Writer) wrapBatch(step string, rows []decode.Row, err error) error {
	if len(rows) == 0 {
		return w.wrap(step, err)
	}
	return fmt.Errorf("%s %s[%d] offsets %d-%d: %w", step, w.topic, w.partition,
		rows[0].Record.Offset, rows[len(rows)-1].Record.Offset, err)
}
