package sink

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
)

// Result counts what one batch transaction did.
type Result struct {
	Written           int   // rows inserted or upserted
	Deleted           int   // keys deleted by tombstones
	Deduplicated      int   // records superseded by a later record of the same key in the batch
	Applied           int   // records at or above next_offset, i.e. handled by this transaction
	AlreadyApplied    int   // records below next_offset: an earlier transaction applied them
	TombstonesSkipped int   // tombstones ignored because SINK_DELETE_ON_TOMBSTONE is false
	DeadLettered      int   // records sent to the dead-letter topic
	Statements        int   // sub-statements spent isolating bad records (0 without any)
	Shrunk            int   // statements split in two after the server's statement_timeout cancelled them
	UnknownFields     int   // JSON fields no column takes (SINK_MAPPING=columns), ignored
	NextOffset        int64 // the partition's next_offset after the commit
}

// HaltError is returned under ERROR_POLICY=stop: the records before Record
// were applied and committed, Record and everything after it were not.
type HaltError struct {
	Record *kgo.Record
	Class  string
	Reason string // may quote the record: never logged

	logReason string // what a log line may say (badRecord.logReason)
}

func (e *HaltError) Error() string {
	return fmt.Sprintf("ERROR_POLICY=stop: %s[%d] offset %d: %s: %s",
		e.Record.Topic, e.Record.Partition, e.Record.Offset, e.Class, e.logReason)
}

// deadLetterFunc produces bad records to the dead-letter topic and returns
// once every one is acknowledged.
type deadLetterFunc func(context.Context, []badRecord) error

// writer applies one partition's batches to PostgreSQL. Each Write is one
// transaction that:
//
//  1. locks the partition's row in the offsets table (creating it first);
//  2. drops records below its next_offset;
//  3. sets aside records that fail validation in Go, writes the rest
//     (upsert by key or insert by offset, deleting tombstoned keys) and, if
//     the database rejects the statement for its data, isolates the
//     culprits by bisection under SAVEPOINTs, keeping the good rows;
//  4. dead-letters the bad records and waits for the acknowledgements;
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
type writer struct {
	topic          string
	partition      int32
	group          string
	mode           string
	mapping        string
	deletes        bool // SINK_DELETE_ON_TOMBSTONE
	stop           bool // ERROR_POLICY=stop
	maxRecordBytes int
	systemic       int           // ERROR_SYSTEMIC_REJECTS, 0: never systemic
	cols           *columnsTable // SINK_MAPPING=columns, else nil

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

	begin                                                pgx.TxOptions // BEGIN, with SINK_TX_IDLE_TIMEOUT
	lockSQL, advanceSQL, upsertSQL, insertSQL, deleteSQL string
}

func newWriter(c Config, topic string, partition int32, cols *columnsTable) *writer {
	table := c.Table(topic).Sanitize()
	offsets := c.offsetsTable().Sanitize()
	return &writer{
		topic:          topic,
		partition:      partition,
		group:          c.Group,
		mode:           c.Mode,
		mapping:        c.Mapping,
		deletes:        c.DeleteOnTombstone,
		stop:           c.ErrorPolicy == "stop",
		maxRecordBytes: c.MaxRecordBytes,
		systemic:       c.SystemicRejects,
		cols:           cols,
		begin:          beginOptions(c.TxIdleTimeout),
		// The no-op DO UPDATE takes the row lock and returns the stored
		// offset in one round trip, for a new row and an existing one alike.
		lockSQL: `INSERT INTO ` + offsets + ` AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING o.next_offset`,
		advanceSQL: `UPDATE ` + offsets + ` SET next_offset = $4, updated_at = now()
WHERE consumer_group = $1 AND topic = $2 AND partition = $3`,
		upsertSQL: `INSERT INTO ` + table + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, u.v::jsonb, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`,
		// A row already there is a replay (the offsets table lost, restored
		// or renamed): a no-op, not a constraint violation to dead-letter.
		insertSQL: `INSERT INTO ` + table + ` (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp)
SELECT $1, $2, u.o, u.k, u.v::jsonb, u.ts
FROM unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING`,
		deleteSQL: `DELETE FROM ` + table + ` WHERE key = ANY($1::text[])`,
	}
}

// beginOptions begins a batch transaction that the server ends if it sits
// idle for longer than idle (none when 0): a worker gone silent mid-batch
// must not hold its partition's offsets row lock for as long as the server
// takes to notice the dead connection. BEGIN and SET LOCAL go as one simple
// query, one round trip like a plain BEGIN, and the setting ends with the
// transaction, so a connection pooler in transaction mode is not bothered.
func beginOptions(idle time.Duration) pgx.TxOptions {
	if idle <= 0 {
		return pgx.TxOptions{}
	}
	return pgx.TxOptions{BeginQuery: fmt.Sprintf(
		"BEGIN; SET LOCAL idle_in_transaction_session_timeout = %d", idle.Milliseconds())}
}

// beginner is what Write needs of a connection: *pgxpool.Conn, *pgx.Conn
// and *pgxpool.Pool all have it.
type beginner interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}

// Write applies records, which must be this partition's in offset order, in
// one transaction, dead-letters the bad ones through dlq before the commit,
// and returns what it did. On error nothing was applied (or, if the commit's
// outcome is unknown, exactly all of it was: the offsets row tells, and a
// retry is safe either way). Under ERROR_POLICY=stop a bad record ends the
// batch before it and Write returns a *HaltError.
func (w *writer) Write(ctx context.Context, db beginner, records []*kgo.Record, dlq deadLetterFunc) (Result, error) {
	var res Result
	if len(records) == 0 {
		return res, nil
	}
	tx, err := db.BeginTx(ctx, w.begin)
	if err != nil {
		return res, w.wrap("begin", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit; the connection is discarded if it fails

	var next int64
	if err := tx.QueryRow(ctx, w.lockSQL, w.group, w.topic, w.partition).Scan(&next); err != nil {
		return res, w.wrap("lock offsets row", err)
	}
	fresh := records
	for len(fresh) > 0 && fresh[0].Offset < next {
		fresh = fresh[1:]
	}
	res.AlreadyApplied = len(records) - len(fresh)
	res.Applied = len(fresh)
	res.NextOffset = next
	if len(fresh) == 0 {
		return res, nil // nothing new: leave the row as it is
	}

	w.pending = w.streak
	good, bad := w.validate(fresh)
	dbBad, err := w.apply(ctx, tx, good, &res)
	if err != nil {
		return res, err
	}
	bad = append(bad, dbBad...)
	if len(bad) > 0 && w.stop {
		// End this transaction before halt begins another on the same
		// connection: a BEGIN inside it would be a no-op.
		if err := tx.Rollback(ctx); err != nil {
			return res, w.wrap("rollback", err)
		}
		return w.halt(ctx, db, records, bad, dlq)
	}
	if err := dlq(ctx, bad); err != nil {
		return res, err
	}
	res.DeadLettered = len(bad)
	last := fresh[len(fresh)-1].Offset + 1
	if _, err := tx.Exec(ctx, w.advanceSQL, w.group, w.topic, w.partition, last); err != nil {
		return res, w.wrap("advance offset", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, w.wrap("commit", err)
	}
	w.streak = w.pending
	w.reread = false
	res.NextOffset = last
	return res, nil
}

// halt rolls back and applies only the records before the first bad one.
func (w *writer) halt(ctx context.Context, db beginner, records []*kgo.Record, bad []badRecord, dlq deadLetterFunc) (Result, error) {
	first := bad[0]
	for _, b := range bad[1:] {
		if b.rec.Offset < first.rec.Offset {
			first = b
		}
	}
	before := records
	for i, r := range records {
		if r.Offset >= first.rec.Offset {
			before = records[:i]
			break
		}
	}
	res, err := w.Write(ctx, db, before, dlq) // a new transaction; the deferred rollback ends this one
	if err != nil {
		return res, err
	}
	return res, &HaltError{Record: first.rec, Class: first.class, Reason: first.reason, logReason: first.logReason()}
}

// validate splits records into those that pass the Go checks and those
// that cannot be written, and drops tombstones when they are not deletes.
func (w *writer) validate(records []*kgo.Record) (good []*kgo.Record, bad []badRecord) {
	good = make([]*kgo.Record, 0, len(records))
	for _, r := range records {
		if b, ok := w.check(r); !ok {
			bad = append(bad, b)
			continue
		}
		if w.cols != nil && r.Key != nil && w.mode == ModeUpsert {
			_, pk, _ := w.cols.snapshot()
			if _, err := keyObject(r.Key, pk); err != nil {
				bad = append(bad, badRecord{rec: r, class: ClassKey, reason: err.Error()})
				continue
			}
		}
		good = append(good, r)
	}
	return good, bad
}

// apply writes good records and returns the ones the database rejected on
// their own. In upsert mode the batch is first collapsed to the last record
// per key; when that record is rejected, the key's previous record in the
// batch is tried next, so the table holds the last GOOD value of each key.
func (w *writer) apply(ctx context.Context, tx pgx.Tx, records []*kgo.Record, res *Result) ([]badRecord, error) {
	var bad []badRecord
	pending := records
	for len(pending) > 0 {
		ops := pending
		if w.mode == ModeUpsert {
			ops = w.collapse(pending, res)
		}
		rejected, err := w.execIsolating(ctx, tx, ops, res)
		if err != nil {
			return nil, err
		}
		bad = append(bad, rejected...)
		if w.mode != ModeUpsert || len(rejected) == 0 {
			break
		}
		pending = w.earlierOfSameKeys(pending, rejected)
	}
	return bad, nil
}

// collapse is batch.Dedupe after dropping tombstones that are not deletes.
func (w *writer) collapse(records []*kgo.Record, res *Result) []*kgo.Record {
	live := records
	if !w.deletes {
		live = make([]*kgo.Record, 0, len(records))
		for _, r := range records {
			if r.Value == nil {
				res.TombstonesSkipped++
				continue
			}
			live = append(live, r)
		}
	}
	var upserts, deletes []*kgo.Record
	if w.cols == nil {
		upserts, deletes = batch.Dedupe(live)
	} else {
		upserts, deletes = batch.DedupeBy(live, w.rowKey, func(r *kgo.Record) bool { return r.Value == nil })
	}
	res.Deduplicated += len(live) - len(upserts) - len(deletes)
	return append(upserts, deletes...)
}

// rowKey is the row a record writes, for de-duplication: the key bytes in
// SINK_MAPPING=jsonb, the decoded primary key in columns mapping, where
// "42" and 42, or a composite key with its fields in another order, are
// the same row.
func (w *writer) rowKey(r *kgo.Record) string {
	if w.cols == nil {
		return string(r.Key)
	}
	_, pk, _ := w.cols.snapshot()
	if k, err := canonicalKey(r.Key, pk); err == nil {
		return k
	}
	return string(r.Key) // validate has dead-lettered keys that do not decode
}

// earlierOfSameKeys returns the records of pending that share a row key
// with a rejected record and come before it.
func (w *writer) earlierOfSameKeys(pending []*kgo.Record, rejected []badRecord) []*kgo.Record {
	cut := make(map[string]int64, len(rejected))
	for _, b := range rejected {
		cut[w.rowKey(b.rec)] = b.rec.Offset
	}
	var out []*kgo.Record
	for _, r := range pending {
		if off, ok := cut[w.rowKey(r)]; ok && r.Offset < off {
			out = append(out, r)
		}
	}
	return out
}

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
func (w *writer) execIsolating(ctx context.Context, tx pgx.Tx, ops []*kgo.Record, res *Result) ([]badRecord, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	err := w.execSavepoint(ctx, tx, ops, res)
	switch {
	case err == nil:
		w.pending.reset()
		return nil, nil
	case statementTimeout(ctx, err) && len(ops) > 1:
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
					if serr := w.pending.reject(ops[lo], err, w.systemic); serr != nil {
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
		if err := w.pending.reject(ops[0], whole, w.systemic); err != nil {
			return nil, err
		}
	}
	bad := make([]badRecord, len(rejected))
	for i, r := range rejected {
		bad[i] = dbRejection(ops[r.Index], r.Err)
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
func (w *writer) execSavepoint(ctx context.Context, tx pgx.Tx, ops []*kgo.Record, res *Result) error {
	err := w.execOnce(ctx, tx, ops, res)
	if w.cols == nil || sqlstate(err) != "42703" || w.reread {
		return err
	}
	w.reread = true
	w.cols.invalidate()
	return fmt.Errorf("%s[%d]: a column is gone from %s, reading the catalog again: %s",
		w.topic, w.partition, w.cols.id.Sanitize(), Loggable(err)) // no %w: Transient, not the Fatal 42703
}

func (w *writer) execOnce(ctx context.Context, tx pgx.Tx, ops []*kgo.Record, res *Result) error {
	var writes, dels []*kgo.Record
	if w.mode == ModeInsert {
		writes = ops
	} else {
		for _, r := range ops {
			if r.Value == nil {
				dels = append(dels, r)
			} else {
				writes = append(writes, r)
			}
		}
	}
	var (
		b                pgx.Batch
		written, deleted pgconn.CommandTag
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
		if Classify(err) == Permanent || statementTimeout(ctx, err) {
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
	res.Written += int(written.RowsAffected())
	if w.mode == ModeInsert {
		// ON CONFLICT DO NOTHING: rows already there are replays.
		res.AlreadyApplied += len(writes) - int(written.RowsAffected())
	}
	res.Deleted += int(deleted.RowsAffected())
	res.UnknownFields += unknown
	return nil
}

// queueJSONB queues the SINK_MAPPING=jsonb statements.
func (w *writer) queueJSONB(b *pgx.Batch, writes, dels []*kgo.Record, written, deleted *pgconn.CommandTag) {
	if len(writes) > 0 {
		cols := columnsOf(writes)
		var q *pgx.QueuedQuery
		if w.mode == ModeInsert {
			q = b.Queue(w.insertSQL, w.topic, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps)
		} else {
			q = b.Queue(w.upsertSQL, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps)
		}
		q.Exec(func(ct pgconn.CommandTag) error { *written = ct; return nil })
	}
	if len(dels) > 0 {
		b.Queue(w.deleteSQL, textArray(dels, recordKey)).Exec(func(ct pgconn.CommandTag) error { *deleted = ct; return nil })
	}
}

// queueColumns queues the SINK_MAPPING=columns statements and returns the
// number of unknown fields among the writes.
func (w *writer) queueColumns(ctx context.Context, tx pgx.Tx, b *pgx.Batch, writes, dels []*kgo.Record,
	written, deleted *pgconn.CommandTag) (int, error) {
	unknown := 0
	if len(writes) > 0 {
		rows, err := w.cols.prepare(ctx, tx, writes)
		if err != nil {
			return 0, w.wrapBatch("prepare rows", writes, err)
		}
		_, pk, _ := w.cols.snapshot()
		b.Queue(w.cols.writeSQL(w.mode, rows.used, pk), w.topic, w.partition, rows.values, rows.keys, rows.offsets, rows.timestamps).
			Exec(func(ct pgconn.CommandTag) error { *written = ct; return nil })
		unknown = rows.unknown
	}
	if len(dels) > 0 {
		rows, err := w.cols.prepare(ctx, tx, dels)
		if err != nil {
			return 0, w.wrapBatch("prepare deletes", dels, err)
		}
		_, pk, _ := w.cols.snapshot()
		b.Queue(w.cols.deleteSQL(pk), w.topic, w.partition, rows.values, rows.keys, rows.offsets, rows.timestamps).
			Exec(func(ct pgconn.CommandTag) error { *deleted = ct; return nil })
	}
	return unknown, nil
}

// columns is a batch turned into the parallel arrays unnest takes. Values
// travel as text and are cast to jsonb by the server: a jsonb[] parameter
// parses far slower for big arrays (LIBRARY-NOTES.md). keys and values are
// textArray results.
type columns struct {
	keys, values any
	offsets      []int64
	timestamps   []time.Time
}

func columnsOf(records []*kgo.Record) columns {
	c := columns{
		keys:       textArray(records, recordKey),
		values:     textArray(records, recordValue),
		offsets:    make([]int64, len(records)),
		timestamps: make([]time.Time, len(records)),
	}
	for i, r := range records {
		c.offsets[i] = r.Offset
		c.timestamps[i] = r.Timestamp
	}
	return c
}

func recordKey(r *kgo.Record) []byte   { return r.Key }
func recordValue(r *kgo.Record) []byte { return r.Value }

// textArray is a text[] parameter holding field of each record: a
// []string when no field is null (the common case, which pgx encodes
// without reflection), else a []*string with nil for SQL NULL. The strings
// share the records' bytes rather than copy them: a fetched record is
// never modified, and the batch outlives the statement
// (BenchmarkEncodeColumns: half the time and 56% of the allocations of
// copied strings in a []*string).
func textArray(records []*kgo.Record, field func(*kgo.Record) []byte) any {
	for _, r := range records {
		if field(r) == nil {
			out := make([]*string, len(records))
			for i, r := range records {
				if b := field(r); b != nil {
					s := bytesText(b)
					out[i] = &s
				}
			}
			return out
		}
	}
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = bytesText(field(r))
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

func (w *writer) wrap(step string, err error) error {
	return fmt.Errorf("%s %s[%d]: %w", step, w.topic, w.partition, err)
}

func (w *writer) wrapBatch(step string, records []*kgo.Record, err error) error {
	if len(records) == 0 {
		return w.wrap(step, err)
	}
	return fmt.Errorf("%s %s[%d] offsets %d-%d: %w", step, w.topic, w.partition,
		records[0].Offset, records[len(records)-1].Offset, err)
}
