package sink

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cenkalti/backoff/v5"

	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// openDB prepares the database side: the pool, the tables, and in
// SINK_MAPPING=columns the tables' columns.
func (w *Worker) openDB(ctx context.Context) error {
	p, cols, err := openDatabase(ctx, w.cfg, w.log)
	if p != nil {
		w.pool = p // Close closes it, whatever failed after
	}
	if err != nil {
		return err
	}
	w.columns = cols
	w.metrics.WatchPool(p)
	p.SetAssigned(ctx, 0) // hold no connection until partitions are assigned
	return nil
}

// openDatabase connects the pool, creates the missing tables and checks the
// role's privileges (ensureTables), and in SINK_MAPPING=columns reads each
// topic's table (loadColumns). The pool is returned, to be closed by the
// caller, even with an error after it was connected.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*pool.Pool, map[string]*postgres.Columns, error) {
	p, err := pool.New(ctx, cfg.DatabaseURL, ApplicationName(cfg.Group, cfg.Member), cfg.Pool)
	if err != nil {
		return nil, nil, err
	}
	if err := ensureTables(ctx, p, cfg, log); err != nil {
		return p, nil, err
	}
	cols, err := loadColumns(ctx, p, cfg)
	return p, cols, err
}

// ensureTables creates the missing tables and checks the role's privileges
// on them (postgres.PrepareTables), retrying while the database is
// unreachable so a worker may start before its database; a fatal error
// (privilege, schema, login, untrusted server certificate) returns at once.
func ensureTables(ctx context.Context, db postgres.TablesDB, cfg Config, log *slog.Logger) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := postgres.PrepareTables(ctx, db, cfg.Postgres())
		if err != nil && postgres.FatalAtStart(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if err != nil {
			log.Warn("database not reachable yet, retrying", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(newBackoff()), backoff.WithMaxElapsedTime(0))
	return err
}

// loadColumns reads, in SINK_MAPPING=columns, each topic's table from the
// catalog (nil in jsonb mapping): a missing table, or one without a
// primary key in upsert mode, stops start-up.
func loadColumns(ctx context.Context, q postgres.Querier, cfg Config) (map[string]*postgres.Columns, error) {
	if cfg.Mapping != MappingColumns {
		return nil, nil
	}
	out := map[string]*postgres.Columns{}
	for _, topic := range cfg.Topics {
		t, err := postgres.LoadColumns(ctx, q, cfg.Table(topic), cfg.Mode == ModeInsert)
		if err != nil {
			return nil, err
		}
		if len(t.PrimaryKey()) == 0 && cfg.Mode == ModeUpsert {
			return nil, fmt.Errorf("%w: SINK_MAPPING=columns with SINK_MODE=upsert needs a primary key on %s (topic %s)",
				ErrConfig, cfg.Table(topic).Sanitize(), topic)
		}
		out[topic] = t
	}
	return out, nil
}
