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
	pc := w.cfg.Pool
	pc.OnLimit = func(limit int, reason string, ratio float64) {
		w.metrics.PoolLimitRounds.WithLabelValues(reason).Inc()
		w.log.Debug("adaptive connection limit", "limit", limit, "reason", reason, "latency_ratio", ratio)
	}
	p, err := pool.New(ctx, w.cfg.DatabaseURL, ApplicationName(w.cfg.Group, w.cfg.Member), pc)
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
	if err := checkSession(ctx, p); err != nil {
		return err
	}
	if _, _, _, auto := p.Adaptive(); auto {
		if err := postgres.CheckCountGroup(ctx, p, w.cfg.groupPrefix()); err != nil {
			w.log.Warn(MsgGroupUncounted, "err", postgres.Loggable(err))
		} else {
			w.countGroup = w.cfg.groupPrefix()
		}
	}
	p.SetAssigned(ctx, 0) // hold no connection until partitions are assigned
	return nil
}

// MsgGroupUncounted is the start-up warning of a worker under
// POOL_MAX_CONNS=auto whose group's transactions cannot be counted
// (postgres.CheckCountGroup's error in "err").
const MsgGroupUncounted = "POOL_MAX_CONNS=auto: the group's transactions cannot be counted in pg_stat_activity; " +
	"sharing the database with other members, the limit holds a latency target instead"

// writerConfig is the database side's configuration of topic's writers:
// under POOL_MAX_CONNS=auto each batch counts the group's transactions
// (postgres.Config.CountGroup), where the database can.
func (w *Worker) writerConfig(topic string) postgres.Config {
	c := w.cfg.forTopics(topic).Postgres()
	c.CountGroup = w.countGroup
	return c
}

// checkSession refuses a database session the batch transaction cannot
// run in: its offsets advance and COMMIT go as one simple query with the
// parameters interpolated by pgx, which needs standard_conforming_strings
// on (PostgreSQL's default since 9.1; off, every batch would fail).
func checkSession(ctx context.Context, p *pool.Pool) error {
	conn, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if v := conn.Conn().PgConn().ParameterStatus("standard_conforming_strings"); v != "on" {
		return fmt.Errorf("%w: DATABASE_URL: the database session has standard_conforming_strings=%s; sinkworker needs on "+
			"(the default; set by ALTER DATABASE/ROLE ... SET or options in the URL)", ErrConfig, v)
	}
	return nil
}
