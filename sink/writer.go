package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
)

// Result counts what one batch transaction did.
type Result struct {
	Written           int   // rows inserted or upserted
	Deleted           int   // keys deleted by tombstones
	Deduplicated      int   // records superseded by a later record of the same key in the batch
	Applied           int   // records at or above next_offset, i.e. applied by this transaction
	AlreadyApplied    int   // records below next_offset: an earlier transaction applied them
	TombstonesSkipped int   // tombstones ignored because SINK_DELETE_ON_TOMBSTONE is false
	NextOffset        int64 // the partition's next_offset after the commit
}

// writer applies one partition's batches to PostgreSQL. Each Write is one
// transaction that:
//
//  1. locks the partition's row in the offsets table (creating it first);
//  2. drops records below its next_offset;
//  3. writes the rows (upsert by key or insert by offset) and deletes
//     tombstoned keys;
//  4. sets next_offset past the batch's last record, and commits.
//
// Fencing: a member that lost the partition but still writes (a zombie
// after a pause, a worker whose revoke timed out) blocks on the same row
// lock as the new owner and, once it gets it, sees the next_offset the new
// owner committed, so it drops every record already applied. Whichever order
// the transactions commit in, each offset is applied once and a key never
// goes back to an older value. A retry after an unknown commit outcome is
// safe for the same reason.
type writer struct {
	topic     string
	partition int32
	group     string
	mode      string
	deletes   bool // SINK_DELETE_ON_TOMBSTONE

	lockSQL, advanceSQL, upsertSQL, insertSQL, deleteSQL string
}

func newWriter(c Config, topic string, partition int32) *writer {
	table := c.Table(topic).Sanitize()
	offsets := c.offsetsTable().Sanitize()
	return &writer{
		topic:     topic,
		partition: partition,
		group:     c.Group,
		mode:      c.Mode,
		deletes:   c.DeleteOnTombstone,
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
		insertSQL: `INSERT INTO ` + table + ` (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp)
SELECT $1, $2, u.o, u.k, u.v::jsonb, u.ts
FROM unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(k, v, o, ts)`,
		deleteSQL: `DELETE FROM ` + table + ` WHERE key = ANY($1::text[])`,
	}
}

// beginner is what Write needs of a connection: *pgxpool.Conn, *pgx.Conn
// and *pgxpool.Pool all have it.
type beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// Write applies records, which must be this partition's in offset order, in
// one transaction. On error nothing was applied (or, if the commit's outcome
// is unknown, exactly all of it was: the offsets row tells, and a retry is
// safe either way).
func (w *writer) Write(ctx context.Context, db beginner, records []*kgo.Record) (Result, error) {
	var res Result
	if len(records) == 0 {
		return res, nil
	}
	tx, err := db.Begin(ctx)
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
	if w.mode == ModeInsert {
		err = w.insert(ctx, tx, fresh, &res)
	} else {
		err = w.upsert(ctx, tx, fresh, &res)
	}
	if err != nil {
		return res, err
	}
	last := fresh[len(fresh)-1].Offset + 1
	if _, err := tx.Exec(ctx, w.advanceSQL, w.group, w.topic, w.partition, last); err != nil {
		return res, w.wrap("advance offset", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, w.wrap("commit", err)
	}
	res.NextOffset = last
	return res, nil
}

func (w *writer) upsert(ctx context.Context, tx pgx.Tx, records []*kgo.Record, res *Result) error {
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
	upserts, deletes := batch.Dedupe(live)
	res.Deduplicated = len(live) - len(upserts) - len(deletes)
	if len(upserts) > 0 {
		cols := columnsOf(upserts)
		tag, err := tx.Exec(ctx, w.upsertSQL, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps)
		if err != nil {
			return w.wrapBatch("upsert", upserts, err)
		}
		res.Written = int(tag.RowsAffected())
	}
	if len(deletes) > 0 {
		keys := make([]*string, len(deletes))
		for i, r := range deletes {
			keys[i] = keyOf(r)
		}
		tag, err := tx.Exec(ctx, w.deleteSQL, keys)
		if err != nil {
			return w.wrapBatch("delete", deletes, err)
		}
		res.Deleted = int(tag.RowsAffected())
	}
	return nil
}

func (w *writer) insert(ctx context.Context, tx pgx.Tx, records []*kgo.Record, res *Result) error {
	cols := columnsOf(records)
	tag, err := tx.Exec(ctx, w.insertSQL, w.topic, w.partition, cols.keys, cols.values, cols.offsets, cols.timestamps)
	if err != nil {
		return w.wrapBatch("insert", records, err)
	}
	res.Written = int(tag.RowsAffected())
	return nil
}

// columns is a batch turned into the parallel arrays unnest takes. Values
// travel as text and are cast to jsonb by the server: a jsonb[] parameter
// parses far slower for big arrays (LIBRARY-NOTES.md).
type columns struct {
	keys, values []*string
	offsets      []int64
	timestamps   []time.Time
}

func columnsOf(records []*kgo.Record) columns {
	c := columns{
		keys:       make([]*string, len(records)),
		values:     make([]*string, len(records)),
		offsets:    make([]int64, len(records)),
		timestamps: make([]time.Time, len(records)),
	}
	for i, r := range records {
		c.keys[i] = keyOf(r)
		if r.Value != nil {
			v := string(r.Value)
			c.values[i] = &v
		}
		c.offsets[i] = r.Offset
		c.timestamps[i] = r.Timestamp
	}
	return c
}

// keyOf is the record key as text; a null key is SQL NULL.
func keyOf(r *kgo.Record) *string {
	if r.Key == nil {
		return nil
	}
	k := string(r.Key)
	return &k
}

func (w *writer) wrap(step string, err error) error {
	return fmt.Errorf("%s %s[%d]: %w", step, w.topic, w.partition, err)
}

func (w *writer) wrapBatch(step string, records []*kgo.Record, err error) error {
	return fmt.Errorf("%s %s[%d] offsets %d-%d: %w", step, w.topic, w.partition,
		records[0].Offset, records[len(records)-1].Offset, err)
}
