package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// side is one database's end of a comparison: a connection holding one
// read-only REPEATABLE READ transaction, so every query sees one snapshot,
// and what it costs on the wire.
type side struct {
	name    string // "source" or "target", for messages
	conn    *pgx.Conn
	wire    wire
	startup int64 // round trips of connecting
	fetched int64 // (key, hash) rows read; one goroutine at a time

	table       string            // the table as the catalog quotes it
	lockTimeout time.Duration     // each wait for the table's lock
	cols        map[string]column // by name
	order       []string          // column names in table order
	db          string            // the database's default collation
}

type column struct {
	typ  string // format_type: what a key's text is cast back to
	coll string // resolved collation name, "" when not collatable
}

// wire is what a connection moved: bytes in both directions (TLS
// included), and round trips, counted as reads that follow a write (a
// batch of queries is one).
type wire struct {
	bytes atomic.Int64
	trips atomic.Int64
	wrote atomic.Bool
}

// countConn counts a connection's traffic into w.
type countConn struct {
	net.Conn
	w *wire
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.w.wrote.Swap(false) {
		c.w.trips.Add(1)
	}
	c.w.bytes.Add(int64(n))
	return n, err
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.wrote.Store(true)
	c.w.bytes.Add(int64(n))
	return n, err
}

// traffic is the side's cost so far; round trips after connecting.
func (s *side) traffic() Traffic {
	return Traffic{RoundTrips: int(s.wire.trips.Load() - s.startup), Bytes: s.wire.bytes.Load()}
}

// snapshotSQL opens the transaction every query of a side runs in. The
// settings fix the text form of values, so that the same value hashes the
// same in two databases configured differently. The queries take the
// table's ACCESS SHARE lock, held until the transaction ends; lock_timeout
// bounds the wait for it behind an ACCESS EXCLUSIVE lock (a TRUNCATE or
// ALTER TABLE, which would otherwise also make every later reader queue).
func snapshotSQL(lockTimeout time.Duration) string {
	return fmt.Sprintf(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle = 'ISO, MDY';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 1;
SET LOCAL bytea_output = 'hex';
SET LOCAL statement_timeout = 0;
SET LOCAL lock_timeout = '%dms'`, lockTimeout.Milliseconds())
}

// openSide connects, opens the snapshot and reads the table's columns. A
// missing table is an ErrSettings error; an unreachable database is not.
func openSide(ctx context.Context, name, url, table string, lockTimeout time.Duration) (*side, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: the %s database URL: %w", ErrSettings, name, err)
	}
	s := &side{name: name, table: table, lockTimeout: lockTimeout}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countConn{Conn: c, w: &s.wire}, nil
	}
	// The default, QueryExecModeCacheStatement, is what keeps the bytes
	// low: a batch prepares its few distinct statements once, and every
	// range after sends only its bounds.
	cfg.RuntimeParams["application_name"] = "sinkworker reconcile"
	if s.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%s database: %w", name, err) // pgconn's text names host, user and database, never the password
	}
	s.startup = s.wire.trips.Load()
	if err := s.conn.PgConn().Exec(ctx, snapshotSQL(lockTimeout)).Close(); err != nil {
		s.close()
		return nil, fmt.Errorf("%s database: open a read-only snapshot: %w", name, err)
	}
	if err := s.readColumns(ctx, table); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// readColumns fills table, cols, order and db from the catalog.
func (s *side) readColumns(ctx context.Context, table string) error {
	rows, err := s.conn.Query(ctx, `SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod),
	CASE WHEN a.attcollation = 0 THEN '' WHEN co.collname = 'default' THEN d.datcollate ELSE co.collname END,
	d.datcollate
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_collation co ON co.oid = a.attcollation
JOIN pg_database d ON d.datname = current_database()
WHERE c.oid = to_regclass($1::text) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY a.attnum`, pgx.QueryExecModeExec, table)
	if err != nil {
		return fmt.Errorf("%s database: read the columns of %s: %w", s.name, table, err)
	}
	s.cols = map[string]column{}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&s.table, &name, &c.typ, &c.coll, &s.db); err != nil {
			return fmt.Errorf("%s database: read the columns of %s: %w", s.name, table, err)
		}
		s.cols[name] = c
		s.order = append(s.order, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s database: read the columns of %s: %w", s.name, table, err)
	}
	if len(s.order) == 0 {
		return fmt.Errorf("%w: the %s table %s does not exist (or has no columns, or is not visible to this user)", ErrSettings, s.name, table)
	}
	return nil
}

// close ends the snapshot (by closing the connection: nothing was written)
// and the connection.
func (s *side) close() {
	if s.conn != nil {
		_ = s.conn.Close(context.Background())
	}
}

// run sends b and runs its callbacks: one round trip, two when it holds
// statements not yet prepared on this connection.
func (s *side) run(ctx context.Context, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := s.conn.SendBatch(ctx, b).Close(); err != nil {
		return s.failed("", err)
	}
	return nil
}

// failed wraps err, from a query on the table (what it was doing, or ""),
// with the side's name; a lock_timeout is ErrLocked, told as such.
func (s *side) failed(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return fmt.Errorf("%w: %s database: the table %s is locked by another session (a TRUNCATE, ALTER TABLE, VACUUM FULL "+
			"or LOCK TABLE): waited %s for the ACCESS SHARE lock a plain SELECT takes; try again once it is released: %w",
			ErrLocked, s.name, s.table, s.lockTimeout, err)
	}
	if what != "" {
		what += ": "
	}
	return fmt.Errorf("%s database: %s%w", s.name, what, err)
}

// quote quotes an identifier.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// list joins the strings with ", ".
func list(xs []string) string { return strings.Join(xs, ", ") }
