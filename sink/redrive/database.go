package redrive

import (
	"context"
	"log/slog"

	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// openDB opens the command's database side as the worker's start-up does
// (postgres.Prepare: tables created if missing, privileges checked, waiting
// while the database is unreachable, and in SINK_MAPPING=columns each
// topic's columns), over a pool of its own holding one connection.
func openDB(ctx context.Context, cfg Config, log *slog.Logger) (*pool.Pool, map[string]*postgres.Columns, error) {
	p, err := pool.New(ctx, cfg.DatabaseURL, cfg.ApplicationName, cfg.Pool)
	if err != nil {
		return nil, nil, err
	}
	cols, err := postgres.Prepare(ctx, p, cfg.Postgres, log)
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	p.SetAssigned(ctx, 1)
	return p, cols, nil
}
