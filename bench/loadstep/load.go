package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// otherLoad is the competing database load, shaped like a second sink job:
// each of its connections runs, in a tight loop, one-statement write
// transactions that upsert rows consecutive keys (wrapping around) of a
// scratch table of its own, prefilled with tableRows rows, so that every
// transaction rewrites rows, their index entries and WAL, and waits for its
// commit to be flushed as the sink's do. start and stop may be called
// again after wait; Tx may be read at any time.
type otherLoad struct {
	conns     []*pgx.Conn
	tables    []string
	rows      int
	tableRows int

	tx      atomic.Int64 // transactions committed, all runs
	halt    atomic.Bool
	wg      sync.WaitGroup
	began   time.Time
	mu      sync.Mutex
	ended   time.Time // when the last transaction of the run ended
	lastErr error
}

// newOtherLoad creates and fills the scratch tables loadstep_<stamp>_other_<i>
// and opens one connection per table (application_name bench-loadstep-other).
// Call close, which drops the tables, whatever it returns.
func newOtherLoad(ctx context.Context, s *services, stamp string, conns, rows, tableRows int) (*otherLoad, error) {
	l := &otherLoad{rows: rows, tableRows: tableRows}
	pc, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return l, errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	pc.RuntimeParams["application_name"] = "bench-loadstep-other"
	for i := range conns {
		table := fmt.Sprintf("loadstep_%s_other_%d", stamp, i)
		l.tables = append(l.tables, table)
		id := pgx.Identifier{table}.Sanitize()
		if _, err := s.db.Exec(ctx, "CREATE TABLE "+id+" (k int PRIMARY KEY, v text NOT NULL, n bigint NOT NULL)"); err != nil {
			return l, fmt.Errorf("create scratch table %s: %w", table, err)
		}
		if _, err := s.db.Exec(ctx, "INSERT INTO "+id+" SELECT g, repeat(md5(g::text), 3), 0 FROM generate_series(0, $1::int - 1) g", tableRows); err != nil {
			return l, fmt.Errorf("fill scratch table %s: %w", table, err)
		}
		if _, err := s.db.Exec(ctx, "VACUUM ANALYZE "+id); err != nil {
			return l, fmt.Errorf("vacuum scratch table %s: %w", table, err)
		}
		cn, err := pgx.ConnectConfig(ctx, pc)
		if err != nil {
			return l, fmt.Errorf("other load connection: %w", err)
		}
		l.conns = append(l.conns, cn)
	}
	return l, nil
}

// start begins the loops; ctx ends them too, as an error.
func (l *otherLoad) start(ctx context.Context) {
	l.halt.Store(false)
	l.mu.Lock()
	l.began, l.ended = time.Now(), time.Time{}
	l.mu.Unlock()
	for i, cn := range l.conns {
		sql := "INSERT INTO " + pgx.Identifier{l.tables[i]}.Sanitize() + ` AS t (k, v, n)
SELECT ($1::int + g) % $2::int, repeat(md5((g + $3::int)::text), 3), 1 FROM generate_series(0, $4::int - 1) g
ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = t.n + 1`
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var err error
			for j := 0; !l.halt.Load() && err == nil; j++ {
				if _, err = cn.Exec(ctx, sql, (j*l.rows)%l.tableRows, l.tableRows, j, l.rows); err == nil {
					l.tx.Add(1)
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if now := time.Now(); now.After(l.ended) {
				l.ended = now
			}
			if err != nil && l.lastErr == nil {
				l.lastErr = fmt.Errorf("other load on %s: %w", l.tables[i], err)
			}
		}()
	}
}

// stop asks the loops to end after their current transaction; it does not
// wait.
func (l *otherLoad) stop() { l.halt.Store(true) }

// failed is the first error of a loop, which ends that loop.
func (l *otherLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// wait waits for the loops after stop and returns the run's span, from
// start to its last transaction's end.
func (l *otherLoad) wait() (time.Duration, error) {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended.Sub(l.began), l.lastErr
}

// close stops the loops, closes the connections and drops the scratch
// tables over s.
func (l *otherLoad) close(s *services) {
	l.stop()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, cn := range l.conns {
		cn.Close(ctx)
	}
	for _, t := range l.tables {
		if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize()); err != nil {
			logf("cleanup: drop scratch table %s: %v", t, err)
		}
	}
}
