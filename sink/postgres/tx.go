package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The writer begins and ends a batch's transaction by hand on one
// connection (beginLocked, advanceCommit, rollback), and its statements
// run on that *pgx.Conn, so that BEGIN travels with the offsets row lock and
// COMMIT with the offsets advance: a clean batch costs three round trips
// (BEGIN + lock, SAVEPOINT + statements, advance + COMMIT) where pgx.Tx,
// which sends BEGIN and COMMIT on their own, needs five. Across a network
// each round trip is a partition's whole latency.

// connOf returns the connection db stands for and how to give it back.
// Write holds one connection from BEGIN to COMMIT.
func connOf(ctx context.Context, db Beginner) (*pgx.Conn, func(), error) {
	switch c := db.(type) {
	case *pgxpool.Conn:
		return c.Conn(), func() {}, nil
	case *pgx.Conn:
		return c, func() {}, nil
	case *pgxpool.Pool:
		pc, err := c.Acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		return pc.Conn(), pc.Release, nil
	}
	return nil, nil, fmt.Errorf("postgres: a batch needs a *pgxpool.Conn, *pgxpool.Pool or *pgx.Conn, not %T", db)
}

// beginLocked begins the batch transaction and locks the partition's
// offsets row (creating it first), in one round trip, and returns the
// stored next_offset. With a SINK_TX_IDLE_TIMEOUT the server ends the
// transaction if it sits idle for longer: a worker gone silent mid-batch
// must not hold the row lock for as long as the server takes to notice the
// dead connection. SET LOCAL ends with the transaction, so a connection
// pooler in transaction mode is not bothered. With a countGroup it also
// counts the group's open transactions (countGroupSQL), in the same round
// trip.
func (w *Writer) beginLocked(ctx context.Context, conn *pgx.Conn) (next int64, group int, err error) {
	var b pgx.Batch
	b.Queue("BEGIN")
	if w.idle > 0 {
		b.Queue(idleSQL(w.idle))
	}
	if w.countGroup != "" {
		b.Queue(countGroupSQL, w.countGroup).QueryRow(func(r pgx.Row) error { return r.Scan(&group) })
	}
	b.Queue(w.lockSQL, w.offsets.Group, w.topic, w.partition).QueryRow(func(r pgx.Row) error { return r.Scan(&next) })
	return next, group, conn.SendBatch(ctx, &b).Close()
}

// countGroupSQL counts the transactions open in the database on
// connections whose application_name starts with $1: the group's batch
// transactions in flight, the one asking included, as the database sees
// them. Only sessions of the same role (or one granted pg_read_all_stats)
// show their xact_start; a group's members normally share one.
const countGroupSQL = `SELECT count(*)::int FROM pg_stat_activity WHERE left(application_name, length($1::text)) = $1::text AND xact_start IS NOT NULL`

// ErrGroupUnseen: the session asking is not among the group's in
// pg_stat_activity, so the count would miss every member's transactions,
// its own included.
var ErrGroupUnseen = errors.New("this session does not see itself among the group's in pg_stat_activity " +
	"(its application_name does not reach the server as set: a connection pooler in between?)")

// CheckCountGroup asks countGroupSQL's question once for prefix, outside a
// batch, about the asking session alone, whose application_name starts
// with prefix: a database that cannot answer it (a PostgreSQL-compatible
// one without pg_stat_activity's columns) must not fail every batch, and
// one that does not show the session as the worker named it (a pooler that
// drops application_name) would count nothing. On an error the caller
// leaves Config.CountGroup empty.
func CheckCountGroup(ctx context.Context, q Querier, prefix string) error {
	rows, err := q.Query(ctx, countGroupSQL+" AND pid = pg_backend_pid()", prefix)
	if err != nil {
		return err
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
	if err == nil && n != 1 {
		err = ErrGroupUnseen
	}
	return err
}

// idleSQL sets the transaction's idle_in_transaction_session_timeout.
func idleSQL(idle time.Duration) string {
	return fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", idle.Milliseconds())
}

// errCommitRollback is a COMMIT the server answered with ROLLBACK: the
// transaction had failed before it.
var errCommitRollback = errors.New("commit unexpectedly resulted in rollback")

// advanceCommit sets next_offset to last and commits, in one round trip:
// one simple query of both statements, the parameters interpolated by pgx
// (QueryExecModeSimpleProtocol; COMMIT is then where every proxy and log
// expects it, a simple query's last statement). If the advance fails the
// server skips the COMMIT and the transaction stays open for the caller's
// rollback.
func (w *Writer) advanceCommit(ctx context.Context, conn *pgx.Conn, last int64) error {
	ct, err := conn.Exec(ctx, w.advanceSQL+";\nCOMMIT", pgx.QueryExecModeSimpleProtocol,
		w.offsets.Group, w.topic, w.partition, last)
	if err == nil && ct.String() != "COMMIT" {
		err = errCommitRollback
	}
	return err
}

// rollback ends a transaction the batch did not commit. A connection whose
// rollback fails is closed: its state is unknown, and a pool discards a
// closed connection.
func rollback(ctx context.Context, conn *pgx.Conn) {
	if conn.PgConn().TxStatus() == 'I' {
		return // never began, or already ended
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}
}
