package ceiling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tx is what the transaction of one batch holds.
type Tx int

const (
	// Statement sends the write statement alone, in its implicit
	// transaction: one round trip per batch.
	Statement Tx = iota
	// Writer is the writer's whole transaction: BEGIN, lock the group's
	// sink_offsets row, write, advance the row to the batch's end, COMMIT.
	Writer
)

// Config says where and how Write writes.
type Config struct {
	// DSN is the database (a pgx connection string).
	DSN string
	// App is the connections' application_name.
	App string
	// Table is the table; it must exist (sinkdb.EnsureTable).
	Table string
	// Conns is how many connections write, at least 1: connection i writes
	// the batches of partitions p with p % Conns == i, taking one batch of
	// each in turn, as partitions progress together in a worker.
	Conns int
	// Tx is what each batch's transaction holds; Statement by default.
	Tx Tx
	// Topic is the records' topic. Group names the sink_offsets rows that
	// Writer locks and advances; required with Writer.
	Topic, Group string
	// Insert writes the rows in the writer's insert mode (Table in its
	// shape); else they are upserted.
	Insert bool
}

func (c Config) validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("ceiling: Table is empty"))
	}
	if c.Conns < 1 {
		errs = append(errs, fmt.Errorf("ceiling: Conns is %d, want at least 1", c.Conns))
	}
	if c.Tx == Writer && (c.Group == "" || c.Topic == "") {
		errs = append(errs, errors.New("ceiling: Tx Writer needs Group and Topic"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("ceiling: Topic is empty"))
	}
	return errors.Join(errs...)
}

// Write opens c.Conns connections, runs a CHECKPOINT so that it starts from
// clean buffers, then writes every batch of perPart concurrently, one
// transaction each, and returns the time that took. The first failing batch
// of a connection stops that connection; Write returns its error.
func Write(ctx context.Context, c Config, perPart [][]Batch) (time.Duration, error) {
	if err := c.validate(); err != nil {
		return 0, err
	}
	pc, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return 0, err
	}
	pc.RuntimeParams["application_name"] = c.App
	conns := make([]*pgx.Conn, c.Conns)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		if conns[i], err = pgx.ConnectConfig(ctx, pc); err != nil {
			return 0, fmt.Errorf("ceiling connection: %w", err)
		}
	}
	if _, err := conns[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	work := share(perPart, c.Conns)
	var sql stmts
	sql.lock, sql.write, sql.advance = statements(c.Topic, c.Table, c.Insert)

	var (
		wg   sync.WaitGroup
		errs = make([]error, c.Conns)
	)
	start := time.Now()
	for i, cn := range conns {
		wg.Go(func() {
			for _, b := range work[i] {
				if err := c.write(ctx, cn, sql, b); err != nil {
					errs[i] = fmt.Errorf("ceiling %s[%d] batch ending %d: %w", c.Table, b.part, b.next, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return elapsed, nil
}

// share gives connection i the batches of partitions p with p % conns == i,
// one batch of each partition in turn.
func share(perPart [][]Batch, conns int) [][]Batch {
	work := make([][]Batch, conns)
	for i := range conns {
		var mine [][]Batch
		for p := i; p < len(perPart); p += conns {
			mine = append(mine, perPart[p])
		}
		for j := 0; ; j++ {
			more := false
			for _, bs := range mine {
				if j < len(bs) {
					work[i], more = append(work[i], bs[j]), true
				}
			}
			if !more {
				break
			}
		}
	}
	return work
}

// stmts are the writer's statements for the table (see statements).
type stmts struct{ lock, write, advance string }

// write applies one batch in one transaction, as c.Tx says.
func (c Config) write(ctx context.Context, cn *pgx.Conn, sql stmts, b Batch) error {
	args := []any{b.part, b.keys, b.values, b.offsets, b.timestamps}
	if c.Insert {
		args = append([]any{c.Topic}, args...)
	}
	if c.Tx == Statement {
		_, err := cn.Exec(ctx, sql.write, args...)
		return err
	}
	tx, err := cn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if c.Tx == Writer {
		var next int64
		if err := tx.QueryRow(ctx, sql.lock, c.Group, c.Topic, b.part).Scan(&next); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, sql.write, args...); err != nil {
		return err
	}
	if c.Tx == Writer {
		if _, err := tx.Exec(ctx, sql.advance, c.Group, c.Topic, b.part, b.next); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
