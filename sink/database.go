package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// openDB prepares the database side: the pool, then the tables, the
// role's privileges and in SINK_MAPPING=columns the tables' columns
// (postgres.Prepare). A table postgres.ErrNoPrimaryKey refuses is a bad
// setting (ErrConfig). The pool is kept for Close whatever fails after it
// connected.
func (w *Worker) openDB(ctx context.Context) error {
	p, err := pool.New(ctx, w.cfg.DatabaseURL, ApplicationName(w.cfg.Group, w.cfg.Member), w.cfg.Pool)
	if err != nil {
		return err
	}
	w.pool = p
	w.metrics.WatchPool(p)
	cols, err := postgres.Prepare(ctx, p, w.cfg.Postgres(), w.log)
	if errors.Is(err, postgres.ErrNoPrimaryKey) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return err
	}
	w.columns = cols
	p.SetAssigned(ctx, 0) // hold no connection until partitions are assigned
	return nil
}
