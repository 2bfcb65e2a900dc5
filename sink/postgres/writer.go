package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// Result counts what one batch transaction did.
type Result struct {
	Written           int      // rows inserted or upserted
	Deleted           int      // keys deleted by tombstones
	Deduplicated      int      // records superseded by a later record of the same key in the batch
	Applied           int      // records at or above next_offset, i.e. handled by this transaction
	AlreadyApplied    int      // records below next_offset: an earlier transaction applied them
	TombstonesSkipped int      // tombstones ignored: SINK_DELETE_ON_TOMBSTONE=false, or Debezium's after a delete
	NotChanges        int      // Debezium records that change no row: heartbeats, schema changes, transactions, messages
	Truncated         int      // Debezium truncates applied (SINK_TRUNCATE=true)
	TruncatesSkipped  int      // Debezium truncates ignored (SINK_TRUNCATE=false)
	DeadLettered      int      // records sent to the dead-letter topic
	Statements        int      // sub-statements spent isolating bad records (0 without any)
	Shrunk            int      // statements split in two after the server's statement_timeout cancelled them
	Copied            int      // rows written with COPY (insert mode, SINK_MAPPING=jsonb), counted in Written too
	UnknownFields     int      // JSON fields no column takes (SINK_MAPPING=columns), ignored
	ColumnsAdded      []string // columns added for new schema fields (SINK_SCHEMA_EVOLUTION=add-columns)
	NextOffset        int64    // the partition's next_offset after the commit
	GroupTransactions int      // with Config.CountGroup: the group's transactions open as this one began, itself included
}

// HaltError is returned under ERROR_POLICY=stop: the records before
// Record were applied and committed, Record and everything after it were
// not. Its Reason may quote the record: log LogReason instead.
type HaltError struct {
	decode.Rejection
}

// Error names the record and its class and LogReason, never row data.
func (e *HaltError) Error() string {
	return fmt.Sprintf("ERROR_POLICY=stop: %s[%d] offset %d: %s: %s",
		e.Record.Topic, e.Record.Partition, e.Record.Offset, e.Class, e.LogReason())
}

// DeadLetterFunc produces rejected records to the dead-letter topic and
// returns once every one is acknowledged.
type DeadLetterFunc func(context.Context, []decode.Rejection) error

// Writer applies one partition's batches to PostgreSQL. Each Write is one
// transaction that:
//
//  1. locks the partition's row in the offsets table (creating it first);
//  2. drops the rows and rejections below its next_offset;
//  3. writes the rows (upsert by key or insert by offset, deleting
//     tombstoned keys) and, if the database rejects the statement for its
//     data, isolates the culprits by bisection under SAVEPOINTs, keeping
//     the good rows;
//  4. dead-letters the rejections, decode's and the database's, and waits
//     for the acknowledgements;
//  5. sets next_offset past the batch's last record, and commits.
//
// Fencing: a member that lost the partition but still writes (a zombie
// after a pause, a worker whose revoke timed out) blocks on the same row
// lock as the new owner and, once it gets it, sees the next_offset the new
// owner committed, so it drops every record already applied. Whichever order
// the transactions commit in, each offset is applied once and a key never
// goes back to an older value. A retry after an unknown commit outcome is
// safe for the same reason. Dead-lettering is at least once: a crash after
// the acknowledgement and before the commit sends the record again.
//
// A Writer belongs to one partition's goroutine: it is not safe for
// concurrent use.
type Writer struct {
	topic     string
	partition int32
	offsets   Offsets
	mode      decode.Mode
	stop      bool     // ERROR_POLICY=stop
	systemic  int      // ERROR_SYSTEMIC_REJECTS, 0: never systemic
	cols      *Columns // SINK_MAPPING=columns, else nil

	// streak is the run of records the database rejected last, in offset
	// order, carried from one committed batch to the next (the writer
	// belongs to one partition goroutine).
	streak rejectStreak
	// pending is streak as the transaction in progress leaves it, kept
	// only once it commits.
	pending rejectStreak
	// reread is set once a vanished column (42703) made the columns be
	// read again, until the next commit.
	reread bool
	// lastOfKey is collapse's scratch map, kept from batch to batch.
	lastOfKey map[string]int

	idle                            time.Duration // SINK_TX_IDLE_TIMEOUT, 0: the server's setting
	countGroup                      string        // Config.CountGroup
	lockSQL, advanceSQL             string
	upsertSQL, insertSQL, deleteSQL string
	mergeSQL, truncateSQL, copySQL  string
}

// NewWriter returns the Writer of topic's partition; cols is the topic's
// table in SINK_MAPPING=columns (LoadColumns), nil in jsonb mapping.
func NewWriter(c Config, topic string, partition int32, cols *Columns) *Writer {
	table := c.Table(topic).Sanitize()
	offsets := c.Offsets()
	value := "u.v::" + c.valueType()
	return &Writer{
		topic:      topic,
		partition:  partition,
		offsets:    offsets,
		mode:       c.Mode,
		stop:       c.StopOnReject,
		systemic:   c.SystemicRejects,
		cols:       cols,
		idle:       c.TxIdleTimeout,
		countGroup: c.CountGroup,
		lockSQL:    offsets.lockSQL(),
		advanceSQL: offsets.advanceSQL(),
		upsertSQL: `INSERT INTO ` + table + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, ` + value + `, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`,
		// A row already there is a replay (the offsets table lost, restored
		// or renamed): a no-op, not a constraint violation to dead-letter.
		insertSQL: `INSERT INTO ` + table + ` (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp)
SELECT $1, $2, u.o, u.k, ` + value + `, u.ts
FROM unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING`,
		deleteSQL: `DELETE FROM ` + table + ` WHERE key = ANY($1::text[])`,
		// An upsert that keeps the stored value's fields the new one lacks
		// (Debezium's TOAST placeholders, left out by decode).
		mergeSQL: `INSERT INTO ` + table + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, ` + value + `, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = t.value || EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`,
		truncateSQL: `TRUNCATE ` + table,
		copySQL:     `COPY ` + table + ` (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp) FROM STDIN`,
	}
}

// Beginner is what Write needs of a connection: *pgxpool.Conn, *pgx.Conn
// or *pgxpool.Pool (see connOf).
type Beginner interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}

// Write applies one batch of this partition, decoded (decode.Config.Decode):
// rows and rejected each in offset order, together in one transaction. It
// dead-letters the rejections, and the rows the database rejects on their
// own, through dlq before the commit, and returns what it did. Rows and
// rejections below the stored next_offset were handled by an earlier
// transaction: they are dropped, and such a rejection is not dead-lettered
// again. On error nothing was applied (or, if the commit's outcome is
// unknown, exactly all of it was: the offsets row tells, and a retry is
// safe either way). Under ERROR_POLICY=stop a rejection ends the batch
// before it and Write returns a *HaltError.
func (w *Writer) Write(ctx context.Context, db Beginner, rows []decode.Row, rejected []decode.Rejection, dlq DeadLetterFunc) (Result, error) {
	var res Result
	if len(rows)+len(rejected) == 0 {
		return res, nil
	}
	if w.cols != nil {
		added, err := w.cols.Ensure(ctx, db, rows)
		if err != nil {
			return res, w.wrap("table", err)
		}
		res.ColumnsAdded = added
	}
	conn, release, err := connOf(ctx, db)
	if err != nil {
		return res, w.wrap("begin", err)
	}
	defer release()
	defer rollback(ctx, conn) // a no-op after the commit
	next, group, err := w.beginLocked(ctx, conn)
	if err != nil {
		return res, w.wrap("begin and lock offsets row", err)
	}
	fresh, freshBad := rows, rejected
	for len(fresh) > 0 && fresh[0].Record.Offset < next {
		fresh = fresh[1:]
	}
	for len(freshBad) > 0 && freshBad[0].Record.Offset < next {
		freshBad = freshBad[1:]
	}
	res.Applied = len(fresh) + len(freshBad)
	res.AlreadyApplied = len(rows) + len(rejected) - res.Applied
	res.NextOffset, res.GroupTransactions = next, group
	if res.Applied == 0 {
		return res, nil // nothing new: leave the row as it is
	}

	w.pending = w.streak
	dbBad, err := w.apply(ctx, conn, fresh, &res)
	if err != nil {
		return res, err
	}
	bad := append(slices.Clip(freshBad), dbBad...)
	if len(bad) > 0 && w.stop {
		// End this transaction before halt begins another on the same
		// connection: a BEGIN inside it would be a no-op.
		if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
			return res, w.wrap("rollback", err)
		}
		return w.halt(ctx, conn, rows, rejected, bad, dlq) // on this connection: a pool of one has no other
	}
	if err := dlq(ctx, bad); err != nil {
		return res, err
	}
	res.DeadLettered = len(bad)
	last := int64(-1)
	if len(fresh) > 0 {
		last = fresh[len(fresh)-1].Record.Offset
	}
	if len(freshBad) > 0 {
		last = max(last, freshBad[len(freshBad)-1].Record.Offset)
	}
	last++
	if err := w.advanceCommit(ctx, conn, last); err != nil {
		return res, w.wrap("advance offset and commit", err)
	}
	w.streak = w.pending
	w.reread = false
	res.NextOffset = last
	return res, nil
}

// halt rolls back and applies only the rows before the first bad record
// (the rejections before it are all below next_offset: dropped again).
func (w *Writer) halt(ctx context.Context, db Beginner, rows []decode.Row, rejected, bad []decode.Rejection, dlq DeadLetterFunc) (Result, error) {
	first := bad[0]
	for _, b := range bad[1:] {
		if b.Record.Offset < first.Record.Offset {
			first = b
		}
	}
	before := func(off int64) bool { return off < first.Record.Offset }
	rowsBefore := rows[:len(rows):len(rows)]
	for i, r := range rows {
		if !before(r.Record.Offset) {
			rowsBefore = rows[:i]
			break
		}
	}
	var rejBefore []decode.Rejection
	for _, r := range rejected {
		if before(r.Record.Offset) {
			rejBefore = append(rejBefore, r)
		}
	}
	res, err := w.Write(ctx, db, rowsBefore, rejBefore, dlq) // a new transaction; the deferred rollback ends this one
	if err != nil {
		return res, err
	}
	return res, &HaltError{Rejection: first}
}

// rejectedRow is a row the database rejected on its own, with its error.
type rejectedRow struct {
	row decode.Row
	err error
}

// apply writes rows and returns the ones the database rejected on their
// own. In upsert mode the batch is first collapsed to the last row per
// key; when that row is rejected, the key's previous row in the batch is
// tried next, so the table holds the last GOOD value of each key.
func (w *Writer) apply(ctx context.Context, tx *pgx.Conn, rows []decode.Row, res *Result) ([]decode.Rejection, error) {
	if w.cols != nil && w.cols.Absent() {
		// A table still to be created from a record schema (Columns.Ensure)
		// has no row to delete or truncate: only tombstones, deletes and
		// records that change no row came so far.
		for _, r := range rows {
			countSkip(r, res)
		}
		return nil, nil
	}
	// A truncate (SINK_TRUNCATE) splits the batch: the rows before it are
	// written, then the table emptied, then the rows after it written.
	var bad []decode.Rejection
	for {
		i := slices.IndexFunc(rows, func(r decode.Row) bool { return r.Op == decode.OpTruncate })
		if i < 0 {
			break
		}
		more, err := w.applySegment(ctx, tx, rows[:i], res)
		if err != nil {
			return nil, err
		}
		bad = append(bad, more...)
		if _, err := tx.Exec(ctx, w.truncateSQL); err != nil {
			return nil, w.wrapBatch("truncate", rows[i:i+1], err)
		}
		res.Truncated++
		rows = rows[i+1:]
	}
	more, err := w.applySegment(ctx, tx, rows, res)
	return append(bad, more...), err
}

// countSkip counts a row that leaves the table alone by its reason; a
// delete or a truncate on a table that does not exist yet counts as
// skipped too.
func countSkip(r decode.Row, res *Result) {
	switch {
	case r.Op == decode.OpTruncate:
		res.TruncatesSkipped++
	case r.Skip == decode.SkipNotChange:
		res.NotChanges++
	case r.Skip == decode.SkipTruncate:
		res.TruncatesSkipped++
	default:
		res.TombstonesSkipped++
	}
}

// applySegment writes rows that hold no truncate (see apply).
func (w *Writer) applySegment(ctx context.Context, tx *pgx.Conn, rows []decode.Row, res *Result) ([]decode.Rejection, error) {
	var bad []decode.Rejection
	pending := rows
	if w.mode == decode.ModeInsert && slices.ContainsFunc(rows, func(r decode.Row) bool { return r.Op == decode.OpSkip }) {
		pending = nil // records of a change log that change nothing (Debezium heartbeats, tombstones)
		for _, r := range rows {
			if r.Op == decode.OpSkip {
				countSkip(r, res)
			} else {
				pending = append(pending, r)
			}
		}
	}
	if w.mode == decode.ModeInsert && w.cols == nil && len(pending) >= copyMinRows {
		copied, err := w.copyInsert(ctx, tx, pending, res)
		if err != nil {
			return nil, err
		}
		if copied {
			w.pending.reset()
			return nil, nil
		}
	}
	for len(pending) > 0 {
		ops := pending
		if w.mode == decode.ModeUpsert {
			ops = w.collapse(pending, res)
		}
		rejected, err := w.execIsolating(ctx, tx, ops, res)
		if err != nil {
			return nil, err
		}
		for _, r := range rejected {
			bad = append(bad, Rejected(r.row.Record, r.err))
		}
		if w.mode != decode.ModeUpsert || len(rejected) == 0 {
			break
		}
		pending = earlierOfSameKeys(pending, rejected)
	}
	return bad, nil
}

// collapse is batch.DedupeBy on the decoded key, after dropping the
// tombstones that are not deletes (decode.OpSkip): the upserts first, then
// the deletes. The rows are copied once (CPU profile of a 64-partition
// drain: copying them three times and a new key map per batch were a
// tenth of the worker's time).
func (w *Writer) collapse(rows []decode.Row, res *Result) []decode.Row {
	live := rows
	if slices.ContainsFunc(rows, func(r decode.Row) bool { return r.Op == decode.OpSkip || len(r.Keep) > 0 }) {
		live = make([]decode.Row, 0, len(rows)) // fillKept writes into its rows: never into the caller's
		for _, r := range rows {
			if r.Op == decode.OpSkip {
				countSkip(r, res)
				continue
			}
			live = append(live, r)
		}
		fillKept(live)
	}
	if w.lastOfKey == nil {
		w.lastOfKey = make(map[string]int, len(live))
	}
	out, _ := batch.DedupeBy(live, w.lastOfKey,
		func(r *decode.Row) string { return r.Key },
		func(r *decode.Row) bool { return r.Op == decode.OpDelete })
	res.Deduplicated += len(live) - len(out)
	return out
}

// earlierOfSameKeys returns the rows of pending that share a key with a
// rejected row and come before it.
func earlierOfSameKeys(pending []decode.Row, rejected []rejectedRow) []decode.Row {
	cut := make(map[string]int64, len(rejected))
	for _, b := range rejected {
		cut[b.row.Key] = b.row.Record.Offset
	}
	var out []decode.Row
	for _, r := range pending {
		if off, ok := cut[r.Key]; ok && r.Record.Offset < off {
			out = append(out, r)
		}
	}
	return out
}

// fillKept gives each write that keeps columns (Row.Keep: Debezium's TOAST
// placeholders) the values of those columns from the latest earlier write
// of its key in rows, which de-duplication drops: the columns then hold
// what the source holds, not what the table held before the batch.
func fillKept(rows []decode.Row) {
	if !slices.ContainsFunc(rows, func(r decode.Row) bool { return len(r.Keep) > 0 }) {
		return
	}
	last := make(map[string]int, len(rows))
	for i := range rows {
		r := &rows[i]
		if j, ok := last[r.Key]; ok && len(r.Keep) > 0 && r.Op == decode.OpWrite && rows[j].Op == decode.OpWrite {
			var prev, cur map[string]json.RawMessage
			if json.Unmarshal(rows[j].Value, &prev) == nil && json.Unmarshal(r.Value, &cur) == nil {
				var keep []string
				for _, c := range r.Keep {
					if v, ok := prev[c]; ok && !slices.Contains(rows[j].Keep, c) {
						cur[c] = v
					} else {
						keep = append(keep, c)
					}
				}
				if v, err := json.Marshal(cur); err == nil {
					r.Value, r.Keep = v, keep
				}
			}
		}
		last[r.Key] = i
	}
}
