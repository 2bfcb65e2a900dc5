package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The user service: its two tables in the source database, and signups.
//
// The outbox rows are deleted in the transaction that inserts them, so the
// outbox table stays empty: Debezium reads the insert by logical decoding
// of the write-ahead log, which hands out a transaction once it commits and
// never when it rolls back, and the EventRouter drops the delete events.

// createSourceTables creates users and outbox, with what the user service
// and Debezium's EventRouter need (id, aggregatetype, aggregateid, type,
// payload).
func createSourceTables(ctx context.Context, src *pgxpool.Pool, n Names) error {
	_, err := src.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE %s (user_id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE %s (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL,
			type text NOT NULL, payload jsonb NOT NULL)`,
		pgx.Identifier{n.Users}.Sanitize(), pgx.Identifier{n.Outbox}.Sanitize()))
	return err
}

// signup is one attempt: the user row and its UserCreated event in ONE
// transaction, then COMMIT, or ROLLBACK when rollback is set (the failure
// after both writes: the event must not escape, and it cannot, since it
// leaves only through logical decoding, which skips rolled-back work).
func signup(ctx context.Context, src *pgxpool.Pool, n Names, userID int64, rollback bool) error {
	tx, err := src.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	b := &pgx.Batch{}
	b.Queue(fmt.Sprintf(`INSERT INTO %s (user_id, name) VALUES ($1::bigint, 'user ' || $1::bigint)`, pgx.Identifier{n.Users}.Sanitize()), userID)
	id := newUUID()
	b.Queue(fmt.Sprintf(`INSERT INTO %s (id, aggregatetype, aggregateid, type, payload)
		VALUES ($1, 'user', $2::bigint::text, 'UserCreated', jsonb_build_object('user_id', $2::bigint, 'points', 100))`,
		pgx.Identifier{n.Outbox}.Sanitize()), id, userID)
	b.Queue(fmt.Sprintf(`DELETE FROM %s WHERE id = $1`, pgx.Identifier{n.Outbox}.Sanitize()), id)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if rollback {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// newUUID is a random (version 4) UUID in its text form.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// plan decides which attempts roll back: attempt i (user_id i, from 1)
// rolls back when a hash of i falls under pct, so a run is reproducible;
// attempts go on until users of them commit. It returns the rollback
// flags, indexed by user_id-1.
func plan(users int64, pct float64) []bool {
	var out []bool
	limit := uint64(pct / 100 * (1 << 32))
	for committed := int64(0); committed < users; {
		i := uint64(len(out) + 1)
		rb := splitmix(i)>>32 < limit
		out = append(out, rb)
		if !rb {
			committed++
		}
	}
	return out
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// signups runs the planned attempts on clients goroutines, at most rate per
// second (0: no cap). It returns the attempts committed and rolled back,
// and the first error, after every client stopped.
func signups(ctx context.Context, src *pgxpool.Pool, n Names, rollback []bool, clients int,
	rate float64) (committed, rolledBack int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
	}
	total := int64(len(rollback))
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		c, r     atomic.Int64
	)
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total || ctx.Err() != nil {
					return
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				rb := rollback[i-1]
				if err := signup(ctx, src, n, i, rb); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("signup of user %d: %w", i, err); cancel() })
					return
				}
				if rb {
					r.Add(1)
				} else {
					c.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return c.Load(), r.Load(), firstErr
}
