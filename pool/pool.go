// Package pool provides sinkworker's bounded PostgreSQL connection pool: a
// pgxpool whose open connections follow the number of partitions the worker
// is assigned, never more than max(1, min(assigned, MaxConns)).
//
// pgxpool cannot be resized, but it opens connections lazily, so the bound
// holds by construction as long as each partition goroutine holds at most one
// connection at a time: the pool's MaxConns is the cap, and SetAssigned closes
// idle connections beyond the new size after a revocation. Connections can
// come back to the pool after that trim (a dial or a ping that outlived its
// cancelled Acquire, pgxpool's health check holding the idle ones for a
// moment), so the pool also closes idle excess every trimEvery: the bound is
// level-triggered, not only checked when the assignment changes. A
// connection its user gave up on (a round trip past its deadline) is
// destroyed with Abandon, which takes it out of the count at once and
// closes its socket without waiting on the peer. Build one with New,
// acquire through Pool.Acquire (the embedded *pgxpool.Pool), and Close it
// last.
//
// With MaxConns Auto (POOL_MAX_CONNS=auto, the default) a partition first takes a turn
// (Pool.Slot) under an adaptive limit within [1, assigned] that Adaptive
// decides from each batch's database time (Slot.Done); idle connections
// above the highest limit of the last keepIdle are closed.
package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures the pool.
type Config struct {
	// MaxConns caps the connections one worker opens, whatever its
	// assignment: Auto ("auto", the default) adapts the cap to what the
	// database gives back, within [1, assigned partitions] (see Adaptive);
	// a number (at least 1) fixes it.
	MaxConns Conns `env:"POOL_MAX_CONNS, default=auto"`
	// OnLimit, if set, is called after each round of the automatic limit
	// (see Adaptive), with the limit, the round's decision (a Reason
	// constant) and its latency ratio. Not from the environment.
	OnLimit func(limit int, reason string, ratio float64)
}

// Conns is a number of connections, or Auto.
type Conns int

// Auto is POOL_MAX_CONNS=auto.
const Auto Conns = -1

// EnvDecode reads "auto" or a number.
func (c *Conns) EnvDecode(v string) error {
	if strings.EqualFold(strings.TrimSpace(v), "auto") {
		*c = Auto
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 { // -1 must not pass for Auto
		return fmt.Errorf("not a number of connections or auto: %q", v)
	}
	*c = Conns(n)
	return nil
}

func (c Conns) String() string {
	if c == Auto {
		return "auto"
	}
	return strconv.Itoa(int(c))
}

// autoMaxConns is the pgxpool's own bound under Auto: never reached, as the
// slots hold writers to at most the assigned partitions.
const autoMaxConns = 4096

// Validate names every bad field at once, by its environment variable.
func (c Config) Validate() error {
	if c.MaxConns < 1 && c.MaxConns != Auto {
		return fmt.Errorf("POOL_MAX_CONNS: must be at least 1 or auto, got %d", c.MaxConns)
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

// trimEvery is how often the pool closes idle connections beyond its
// limit that came back after SetAssigned trimmed. Checking costs one lock of
// the pool's state; closing happens only when there is an excess.
const trimEvery = 100 * time.Millisecond

// closeTimeout bounds one trim's goodbyes to the server.
const closeTimeout = time.Second

// Pool is a pgxpool sized by Size. It is safe for concurrent use.
type Pool struct {
	*pgxpool.Pool
	maxConns int
	auto     *slots // POOL_MAX_CONNS=auto; nil for a fixed cap

	mu       sync.Mutex
	assigned int

	stop      chan struct{} // closed by Close: ends the trimming goroutine
	stopOnce  sync.Once
	trimmerWG sync.WaitGroup
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
	if cfg.MaxConns == Auto {
		pc.MaxConns = autoMaxConns
	}
	pc.MinConns = 0 // connections only for partitions actually writing
	pc.ConnConfig.RuntimeParams["application_name"] = applicationName
	// No ping on acquire. pgxpool pings a connection idle for over a second
	// in a goroutine that outlives a cancelled Acquire and then puts the
	// connection back idle: a partition stopped during that ping (a zombie
	// waking up to find its partitions lost) returned five connections to
	// a pool with nothing assigned, after the trim (full chaos run, seed
	// 1795599432623589832). A dead connection now fails at BEGIN instead,
	// which the partition retries like any database outage, on a new one.
	pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	// A cancelled query is cancelled on the server too. pgx's default only
	// closes the socket, and a backend waiting for a lock does not notice
	// its client is gone until the lock comes: a worker that lost its
	// partitions while waiting for a zombie's offsets row lock kept that
	// backend, past its assignment (full chaos run, KIP-848, seed
	// 1795603979986890262). The cancel request ends the wait at once; the
	// socket is closed anyway if the server has not answered within
	// closeTimeout.
	pc.ConnConfig.BuildContextWatcherHandler = cancelOnServer
	pc.ConnConfig.DialFunc = dialer(pc.ConnConfig.ConnectTimeout).DialContext
	pc.BeforeClose = cutBroken
	pp, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	p := &Pool{Pool: pp, maxConns: int(cfg.MaxConns), stop: make(chan struct{})}
	if cfg.MaxConns == Auto {
		p.maxConns, p.auto = autoMaxConns, newSlots(cfg.OnLimit)
	}
	p.trimmerWG.Go(p.keepTrimmed)
	return p, nil
}

// cancelOnServer is the pool's context watcher: a cancelled context sends
// PostgreSQL a cancel request, and closes the socket after closeTimeout.
func cancelOnServer(c *pgconn.PgConn) ctxwatch.Handler {
	return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: closeTimeout}
}

// cutBroken closes at once the socket of a connection pgx already gave up
// on (a round trip interrupted: pgx then says goodbye and drains the socket
// in the background for up to 15 s, which a peer that never answers makes
// the full 15 s), so it leaves the pool now. A healthy connection being
// closed keeps its goodbye.
func cutBroken(c *pgx.Conn) {
	if c.IsClosed() {
		_ = c.PgConn().Conn().Close()
	}
}

// Abandon destroys c, a connection its user gave up on because a round
// trip outlived its deadline, in place of c.Release: the pool stops
// counting it at once, and its socket is closed without a goodbye, which a
// peer that stopped answering would hold up. Idle connections are closed
// too, as they probably share the broken path; a partition that picked
// one up would otherwise wait out its deadline a second time. The server
// ends the abandoned session when it notices (a cancelled statement, the
// socket's close, or idle_in_transaction_session_timeout); until then it
// may hold locks, which is why retrying in a new transaction is safe only
// where those locks fence the retry. Abandon takes at most about
// closeTimeout.
func (p *Pool) Abandon(c *pgxpool.Conn) {
	conn := c.Hijack()
	_ = conn.PgConn().Conn().Close()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx) // pgx's own state; the socket is gone already
	p.trim(ctx, 0)
}

// Close stops the trimming and closes every connection. It may be called
// more than once.
func (p *Pool) Close() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.trimmerWG.Wait()
	p.Pool.Close()
}

// keepTrimmed closes idle connections beyond min(assigned, MaxConns) every
// trimEvery until Close: whatever returned a connection after the last
// SetAssigned, the excess lives at most one tick.
func (p *Pool) keepTrimmed() {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.trim(context.Background(), p.idleLimit())
		}
	}
}

// Limit is the number of connections the pool may hold now.
func (p *Pool) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Size(p.assigned, p.capLocked())
}

// capLocked is MaxConns, or under Auto the adaptive limit.
func (p *Pool) capLocked() int {
	if p.auto != nil {
		limit, _, _ := p.auto.state()
		return limit
	}
	return p.maxConns
}

// Slot is a partition's turn to hold a connection and write, under
// POOL_MAX_CONNS=auto; a nil Slot (a fixed cap) does nothing.
type Slot struct{ s *slots }

// Slot waits, under POOL_MAX_CONNS=auto, until fewer partitions write than
// the adaptive limit allows, or ctx ends; with a fixed cap it returns at
// once (the pgxpool's own bound holds). Give the slot back with Done or
// Release.
func (p *Pool) Slot(ctx context.Context) (*Slot, error) {
	if p.auto == nil {
		return nil, nil
	}
	if err := p.auto.acquire(ctx); err != nil {
		return nil, err
	}
	return &Slot{s: p.auto}, nil
}

// Done gives the slot back after a transaction that committed records
// records in took, from holding a connection to the commit; fleet is the
// transactions of the worker's group open in the database as it began,
// itself included (0 unknown). The adaptive limit
// learns from it.
func (s *Slot) Done(records int, took time.Duration, fleet int) {
	if s != nil {
		s.s.release(records, took, fleet)
	}
}

// Release gives the slot back after an attempt that did not commit.
func (s *Slot) Release() {
	if s != nil {
		s.s.release(0, 0, 0)
	}
}

// Adaptive reports, under POOL_MAX_CONNS=auto, the adaptive limit, the
// last round's latency over the base, and the partitions waiting for a
// slot; ok is false with a fixed cap.
func (p *Pool) Adaptive() (limit int, ratio float64, waiting int, ok bool) {
	if p.auto == nil {
		return 0, 0, 0, false
	}
	limit, ratio, waiting = p.auto.state()
	return limit, ratio, waiting, true
}

// SetAssigned records the worker's current number of assigned partitions
// and closes idle connections beyond min(assigned, MaxConns): a worker with
// nothing assigned keeps no connection open, so the fleet's connections
// never exceed the partition count however many replicas run. Call it after
// the goroutines of revoked partitions have stopped (so their connections
// are idle) and before the goroutines of newly assigned partitions start.
// A connection still busy now (an Acquire cancelled while dialling finishes
// its connection and leaves it idle) is closed by the trimming goroutine
// when it comes back.
func (p *Pool) SetAssigned(ctx context.Context, assigned int) {
	if p.auto != nil {
		p.auto.setCap(assigned)
	}
	p.mu.Lock()
	p.assigned = assigned
	p.mu.Unlock()
	p.trim(ctx, p.idleLimit())
}

// SetShare gives, under POOL_MAX_CONNS=auto, the worker's share of its
// group's partitions (its assigned over every partition of the topics it
// consumes; 1 alone, 0 unknown): alone, the adaptive limit climbs while
// throughput grows with it; shared, it does the same against the group's
// concurrency (Slot.Done's fleet) and takes its share of that, or without
// that count holds the latency ratio every member sees near a target
// (Adaptive.SetShare). It does nothing with a fixed cap.
func (p *Pool) SetShare(share float64) {
	if p.auto != nil {
		p.auto.setShare(share)
	}
}

// idleLimit is what the pool keeps when idle: min(assigned, MaxConns), or
// under Auto min(assigned, the highest adaptive limit of the last 10 s).
func (p *Pool) idleLimit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.auto != nil {
		return min(p.assigned, p.auto.kept())
	}
	return min(p.assigned, p.maxConns)
}

// trim closes idle connections beyond limit. It holds every idle connection
// for a moment, so a partition acquiring just then may dial one more: the
// next tick closes that one.
func (p *Pool) trim(ctx context.Context, limit int) {
	excess := int(p.Stat().TotalConns()) - limit
	if excess <= 0 {
		return
	}
	// Closing says goodbye to the server, which can block on a dead
	// network: never hold up a rebalance or the next tick for long.
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	for _, c := range p.AcquireAllIdle(ctx) {
		if excess > 0 {
			excess--
			_ = c.Hijack().Close(ctx) // gone from the pool; a failed goodbye changes nothing
			continue
		}
		c.Release()
	}
}
