// Package pool provides sinkworker's bounded PostgreSQL connection pool: a
// pgxpool whose open connections follow the number of partitions the worker
// is assigned, never more than max(1, min(assigned, MaxConns)).
//
// pgxpool cannot be resized, but it opens connections lazily, so the bound
// holds by construction as long as each partition goroutine holds at most one
// connection at a time: the pool's MaxConns is the cap, and SetAssigned closes
// idle connections beyond the new size after a revocation. Build one with New,
// acquire through Pool.Acquire (the embedded *pgxpool.Pool), and Close it last.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures the pool.
type Config struct {
	// MaxConns caps the connections one worker opens, whatever its
	// assignment. Default 16, at least 1.
	MaxConns int `env:"POOL_MAX_CONNS, default=16"`
}

// Validate names every bad field at once, by its environment variable.
func (c Config) Validate() error {
	if c.MaxConns < 1 {
		return fmt.Errorf("POOL_MAX_CONNS: must be at least 1, got %d", c.MaxConns)
	}
	return nil
}

// Size is the sizing rule: the number of connections a worker assigned
// `assigned` partitions may hold, max(1, min(assigned, maxConns)). One
// connection is allowed with no assignment so start-up work (creating tables,
// reading offsets) can run.
func Size(assigned, maxConns int) int {
	return max(1, min(assigned, maxConns))
}

// Pool is a pgxpool sized by Size. It is safe for concurrent use.
type Pool struct {
	*pgxpool.Pool
	maxConns int

	mu       sync.Mutex
	assigned int
}

// New opens a pool on the pgx connection string dsn (nothing is dialled
// until the first Acquire). applicationName is set on every connection so
// pg_stat_activity shows who holds it; PostgreSQL truncates it at 63 bytes.
// Errors never contain the DSN or its password.
func New(ctx context.Context, dsn, applicationName string, cfg Config) (*Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors are already redacted, but say nothing of the
		// string itself to be sure.
		return nil, errors.New("DATABASE_URL: not a valid pgx connection string")
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pc.MinConns = 0 // connections only for partitions actually writing
	pc.ConnConfig.RuntimeParams["application_name"] = applicationName
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &Pool{Pool: p, maxConns: cfg.MaxConns}, nil
}

// Limit is the number of connections the pool may hold now.
func (p *Pool) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Size(p.assigned, p.maxConns)
}

// SetAssigned records the worker's current number of assigned partitions
// and closes idle connections beyond min(assigned, MaxConns): a worker with
// nothing assigned keeps no connection open, so the fleet's connections
// never exceed the partition count however many replicas run. Call it after
// the goroutines of revoked partitions have stopped (so their connections
// are idle) and before the goroutines of newly assigned partitions start.
func (p *Pool) SetAssigned(ctx context.Context, assigned int) {
	p.mu.Lock()
	p.assigned = assigned
	limit := min(assigned, p.maxConns)
	p.mu.Unlock()
	p.trim(ctx, limit)
	// An Acquire cancelled while dialling (a partition stopped mid-wait)
	// still finishes its connection and leaves it idle: wait for those,
	// briefly, and trim again.
	for i := 0; i < 100 && p.Stat().ConstructingConns() > 0; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.trim(ctx, p.idleLimit())
}

// idleLimit is min(assigned, MaxConns): what the pool keeps when idle.
func (p *Pool) idleLimit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return min(p.assigned, p.maxConns)
}

// trim closes idle connections beyond limit.
func (p *Pool) trim(ctx context.Context, limit int) {
	excess := int(p.Stat().TotalConns()) - limit
	if excess <= 0 {
		return
	}
	for _, c := range p.AcquireAllIdle(ctx) {
		if excess > 0 {
			excess--
			_ = c.Hijack().Close(ctx) // gone from the pool; a failed goodbye changes nothing
			continue
		}
		c.Release()
	}
}
