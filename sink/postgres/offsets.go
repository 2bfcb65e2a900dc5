package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The offsets table: one row per (consumer group, topic, partition) holding
// next_offset, the first offset not yet applied. It is the source of truth
// the worker starts from, and the row every batch transaction locks and
// advances (fencing). Its schema and every statement on it are in this
// file.

// createOffsetsTable is the offsets table's DDL.
func createOffsetsTable(table pgx.Identifier) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	consumer_group text NOT NULL,
	topic text NOT NULL,
	partition int NOT NULL,
	next_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer_group, topic, partition))`, table.Sanitize())
}

// Offsets is one consumer group's rows of an offsets table. Its methods
// are safe for concurrent use.
type Offsets struct {
	Table pgx.Identifier // SINK_OFFSETS_TABLE
	Group string         // KAFKA_GROUP
}

// Querier is what a read needs: *pgx.Conn, *pgxpool.Pool, *pgxpool.Conn
// and pgx.Tx have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Execer is what a single statement needs.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// lockSQL locks a partition's row, creating it at 0 first, and returns its
// next_offset: the no-op DO UPDATE takes the row lock and returns the
// stored offset in one round trip, for a new row and an existing one alike.
// Its parameters are group, topic, partition.
func (o Offsets) lockSQL() string {
	return `INSERT INTO ` + o.Table.Sanitize() + ` AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING o.next_offset`
}

// advanceSQL sets a locked row's next_offset to $4.
func (o Offsets) advanceSQL() string {
	return `UPDATE ` + o.Table.Sanitize() + ` SET next_offset = $4, updated_at = now()
WHERE consumer_group = $1 AND topic = $2 AND partition = $3`
}

// Lock locks a partition's row in tx until tx ends, creating the row at 0
// first, and returns its next_offset: the fencing step of every batch
// transaction. A second transaction locking the same row waits for the
// first to end, then sees what it committed.
func (o Offsets) Lock(ctx context.Context, tx pgx.Tx, topic string, partition int32) (next int64, err error) {
	err = tx.QueryRow(ctx, o.lockSQL(), o.Group, topic, partition).Scan(&next)
	return next, err
}

// Read returns the stored next_offset of the group's partitions of topics,
// by topic and partition; a partition without a row is absent. Errors are
// the database's, unwrapped.
func (o Offsets) Read(ctx context.Context, q Querier, topics []string) (map[string]map[int32]int64, error) {
	rows, err := q.Query(ctx, `SELECT topic, partition, next_offset FROM `+o.Table.Sanitize()+
		` WHERE consumer_group = $1 AND topic = ANY($2)`, o.Group, topics)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	var (
		topic string
		part  int32
		next  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&topic, &part, &next}, func() error {
		if out[topic] == nil {
			out[topic] = map[int32]int64{}
		}
		out[topic][part] = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SkipMarkers moves a partition's next_offset from any stored value in
// [low, to) to to, creating the row when there is none, and reports
// whether it wrote. It is its own statement, so its own transaction; the
// UPDATE takes the row's lock and re-reads the row after a concurrent
// batch transaction commits. A row already at or past to, or below low (an
// operator's reset), is left alone. The caller proves that [low, to) holds
// no record to write (transaction markers, aborted records).
func (o Offsets) SkipMarkers(ctx context.Context, db Execer, topic string, partition int32, to, low int64) (bool, error) {
	tag, err := db.Exec(ctx, `INSERT INTO `+o.Table.Sanitize()+` AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
WHERE o.next_offset >= $5 AND o.next_offset < EXCLUDED.next_offset`, o.Group, topic, partition, to, low)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

// Reset reads the stored next_offset of the given partitions of topic
// (current; a partition without a row is absent) and, with execute, sets
// each to its target, creating rows as needed: one transaction that takes
// the rows' locks, waiting at most 10 s for a batch in flight. Without
// execute it changes nothing.
func (o Offsets) Reset(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, topic string, targets map[int32]int64, execute bool) (current map[int32]int64, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return nil, fmt.Errorf("set lock_timeout: %w", err)
	}
	parts := slices.Sorted(maps.Keys(targets))
	lock := ""
	if execute {
		lock = " FOR UPDATE"
	}
	rows, err := tx.Query(ctx, `SELECT partition, next_offset FROM `+o.Table.Sanitize()+
		` WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)`+lock, o.Group, topic, parts)
	if err != nil {
		return nil, fmt.Errorf("read the offsets table: %w", err)
	}
	current = map[int32]int64{}
	var (
		part int32
		next int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&part, &next}, func() error { current[part] = next; return nil }); err != nil {
		return nil, fmt.Errorf("read the offsets table: %w", err)
	}
	if !execute {
		return current, nil
	}
	for _, p := range parts {
		if _, err := tx.Exec(ctx, `INSERT INTO `+o.Table.Sanitize()+` AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`,
			o.Group, topic, p, targets[p]); err != nil {
			return nil, fmt.Errorf("write %s[%d]: %w", topic, p, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return current, nil
}
