package pool

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The integration tests use the real PostgreSQL (testenv.DatabaseURL);
// without it they fail, never skip.

// appName returns an application_name no other test (or test run) uses, so
// pg_stat_activity can be filtered down to one test's pool.
func appName() string {
	return "sinkworker/pooltest/" + testenv.Suffix()
}

// newPool opens a Pool on the real database, closed when the test ends.
func newPool(t *testing.T, name string, cfg Config) *Pool {
	t.Helper()
	require.NoError(t, cfg.Validate(), "test config must be valid")
	p, err := New(t.Context(), testenv.DatabaseURL(t), name, cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// serverConns counts the server backends whose application_name is name,
// seen from a connection outside the pool under test.
func serverConns(t *testing.T, name string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&n))
	return n
}

// openConns makes the pool hold n connections at once, acquired
// concurrently, then releases them all so they sit idle in the pool.
func openConns(t *testing.T, p *Pool, n int) {
	t.Helper()
	p.SetAssigned(t.Context(), n) // else the trimming goroutine may close them before the check below
	conns := make([]*pgxpool.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], errs[i] = p.Acquire(t.Context()) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "acquire connection %d", i)
	}
	for _, c := range conns {
		c.Release()
	}
	// The trimming goroutine holds the idle connections for a moment on each tick.
	require.Eventually(t, func() bool { return p.Stat().TotalConns() == int32(n) && p.Stat().IdleConns() == int32(n) },
		10*trimEvery, trimEvery/4, "%d connections open and idle before SetAssigned", n)
}

func TestSize(t *testing.T) {
	tests := []struct {
		name               string
		assigned, maxConns int
		want               int
	}{
		{name: "nothing assigned keeps one for start-up work", assigned: 0, maxConns: 16, want: 1},
		{name: "negative assigned is treated as none", assigned: -3, maxConns: 16, want: 1},
		{name: "one partition", assigned: 1, maxConns: 16, want: 1},
		{name: "one connection per partition below the cap", assigned: 7, maxConns: 16, want: 7},
		{name: "exactly the cap", assigned: 16, maxConns: 16, want: 16},
		{name: "caps at MaxConns", assigned: 50, maxConns: 16, want: 16},
		{name: "cap of one", assigned: 50, maxConns: 1, want: 1},
		{name: "cap of one with nothing assigned", assigned: 0, maxConns: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Size(tt.assigned, tt.maxConns))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "default", cfg: Config{MaxConns: 16}},
		{name: "smallest", cfg: Config{MaxConns: 1}},
		{name: "zero value", cfg: Config{}, wantErr: true},
		{name: "negative", cfg: Config{MaxConns: -2}, wantErr: true},
		{name: "auto", cfg: Config{MaxConns: Auto}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !tt.wantErr {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "POOL_MAX_CONNS", "the error names the variable")
		})
	}
}

func TestNewSetsApplicationName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		app  func(base string) string // the name given to New
		want func(base string) string // what pg_stat_activity shows
	}{
		{
			name: "short name as given",
			app:  func(base string) string { return base },
			want: func(base string) string { return base },
		},
		{
			name: "server truncates at 63 bytes",
			app:  func(base string) string { return base + "/" + strings.Repeat("m", 80) },
			want: func(base string) string { return (base + "/" + strings.Repeat("m", 80))[:63] },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := appName()
			p := newPool(t, tt.app(base), Config{MaxConns: 2})
			conn, err := p.Acquire(t.Context())
			require.NoError(t, err)
			defer conn.Release()

			var got string
			require.NoError(t, conn.QueryRow(t.Context(),
				`SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&got))
			assert.Equal(t, tt.want(base), got)
		})
	}
}

func TestNewDialsNothing(t *testing.T) {
	t.Parallel()
	name := appName()
	p := newPool(t, name, Config{MaxConns: 4})
	assert.Zero(t, p.Stat().TotalConns(), "New opens no connection")
	assert.Equal(t, 1, p.Limit(), "nothing assigned yet: one connection for start-up work")
	assert.Zero(t, serverConns(t, name), "the server sees no connection")
}

func TestSetAssignedTrimsIdleConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxConns  Conns
		open      int // connections open (and idle) before SetAssigned
		assigned  int
		wantTotal int
		wantLimit int
	}{
		{name: "nothing assigned closes every connection", maxConns: 4, open: 4, assigned: 0, wantTotal: 0, wantLimit: 1},
		{name: "one assigned keeps one", maxConns: 4, open: 4, assigned: 1, wantTotal: 1, wantLimit: 1},
		{name: "fewer assigned keeps that many", maxConns: 4, open: 4, assigned: 2, wantTotal: 2, wantLimit: 2},
		{name: "as many assigned as open keeps all", maxConns: 4, open: 4, assigned: 4, wantTotal: 4, wantLimit: 4},
		{name: "more assigned than the cap keeps the cap", maxConns: 4, open: 4, assigned: 10, wantTotal: 4, wantLimit: 4},
		{name: "more assigned than open opens nothing", maxConns: 6, open: 2, assigned: 5, wantTotal: 2, wantLimit: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := appName()
			p := newPool(t, name, Config{MaxConns: tt.maxConns})
			openConns(t, p, tt.open)

			p.SetAssigned(t.Context(), tt.assigned)

			// A tick of the trimming goroutine holding the idle connections
			// just then makes SetAssigned's own trim find none: the next
			// tick trims.
			assert.Eventually(t, func() bool { return p.Stat().TotalConns() == int32(tt.wantTotal) },
				10*trimEvery, trimEvery/4, "TotalConns after SetAssigned: want %d", tt.wantTotal)
			assert.Equal(t, tt.wantLimit, p.Limit(), "Limit after SetAssigned")
			assert.Equal(t, Size(tt.assigned, int(tt.maxConns)), p.Limit(), "Limit follows Size")
			// Closing a connection ends its backend asynchronously.
			assert.Eventually(t, func() bool { return serverConns(t, name) == tt.wantTotal },
				10*time.Second, 50*time.Millisecond, "server-side connections of this pool")

			// The pool still works after trimming.
			c, err := p.Acquire(t.Context())
			require.NoError(t, err)
			assert.NoError(t, c.Ping(t.Context()))
			c.Release()
		})
	}
}

func TestSetAssignedLeavesBusyConnections(t *testing.T) {
	t.Parallel()
	name := appName()
	p := newPool(t, name, Config{MaxConns: 3})
	openConns(t, p, 3)
	busy, err := p.Acquire(t.Context())
	require.NoError(t, err)

	p.SetAssigned(t.Context(), 0)

	assert.Eventually(t, func() bool { return p.Stat().TotalConns() == 1 },
		10*trimEvery, trimEvery/4, "only the acquired connection remains")
	assert.NoError(t, busy.Ping(t.Context()), "a connection in use is not closed under its user")
	busy.Release()

	// Back in the pool after the trim, it is above the limit: closed too.
	assert.Eventually(t, func() bool { return p.Stat().TotalConns() == 0 },
		10*trimEvery, trimEvery/4, "a connection released after SetAssigned(0) is closed")
	assert.Eventually(t, func() bool { return serverConns(t, name) == 0 },
		10*time.Second, 50*time.Millisecond, "server-side connections of this pool")
}

// TestLateConnectionsAreTrimmed returns connections to a pool that has
// already shrunk, the way a dial or a ping that outlived its cancelled
// Acquire does, and sees the excess closed while the pool stays usable.
func TestLateConnectionsAreTrimmed(t *testing.T) {
	t.Parallel()
	name := appName()
	p := newPool(t, name, Config{MaxConns: 6})
	p.SetAssigned(t.Context(), 2)
	conns := make([]*pgxpool.Conn, 5)
	for i := range conns {
		var err error
		conns[i], err = p.Acquire(t.Context())
		require.NoError(t, err)
	}
	for _, c := range conns {
		c.Release()
	}

	assert.Eventually(t, func() bool { return p.Stat().TotalConns() == 2 },
		10*trimEvery, trimEvery/4, "idle connections beyond the 2 assigned are closed")
	assert.Eventually(t, func() bool { return serverConns(t, name) == 2 },
		10*time.Second, 50*time.Millisecond, "server-side connections of this pool")
	time.Sleep(3 * trimEvery)
	assert.EqualValues(t, 2, p.Stat().TotalConns(), "connections within the limit are kept")

	c, err := p.Acquire(t.Context())
	require.NoError(t, err)
	assert.NoError(t, c.Ping(t.Context()))
	c.Release()
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context(), testenv.DatabaseURL(t), appName(), Config{MaxConns: 1})
	require.NoError(t, err)
	p.Close()
	assert.NotPanics(t, p.Close, "Close is idempotent")
}

func TestPoolNeverExceedsMaxConns(t *testing.T) {
	t.Parallel()
	p := newPool(t, appName(), Config{MaxConns: 2})
	openConns(t, p, 2)
	a, err := p.Acquire(t.Context())
	require.NoError(t, err)
	defer a.Release()
	b, err := p.Acquire(t.Context())
	require.NoError(t, err)
	defer b.Release()

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	c, err := p.Acquire(ctx)
	if err == nil {
		c.Release()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded, "a third connection waits for one to be released")
	assert.EqualValues(t, 2, p.Stat().TotalConns())
}

func TestNewErrorHidesPassword(t *testing.T) {
	const secret = "s3cr3t-Pa55w0rd"
	tests := []struct {
		name string
		dsn  string
	}{
		{name: "url with bad port", dsn: "postgres://sink:" + secret + "@127.0.0.1:notaport/sinkworker"},
		{name: "url with bad sslmode", dsn: "postgres://sink:" + secret + "@127.0.0.1:5432/sinkworker?sslmode=sometimes"},
		{name: "url with bad escape", dsn: "postgres://sink:" + secret + "%zz@127.0.0.1/sinkworker"},
		{name: "keyword value with bad port", dsn: "host=127.0.0.1 port=notaport user=sink password=" + secret},
		{name: "keyword value unterminated quote", dsn: "host=127.0.0.1 user=sink password='" + secret},
		{name: "unknown scheme", dsn: "mysql://sink:" + secret + "@127.0.0.1/sinkworker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(t.Context(), tt.dsn, "sinkworker/pooltest/bad", Config{MaxConns: 1})
			if p != nil {
				p.Close()
			}
			require.Error(t, err, "an invalid DSN is rejected")
			assert.NotContains(t, err.Error(), secret, "the password never reaches the error")
			assert.NotContains(t, err.Error(), tt.dsn, "the DSN never reaches the error")
			assert.Contains(t, err.Error(), "DATABASE_URL", "the error names the variable")
		})
	}
}

// TestCancelledLockWaitLeavesTheServer cancels a query that waits for a
// lock another session holds, as a partition's lock of its offsets row is
// cancelled when the partition is lost while a zombie holds the row. The
// backend must stop waiting at once, not when the lock is finally granted:
// it is a connection of this worker for as long as it waits. (pgx's default
// closes the socket at once and sends the cancel request in the background,
// so the query returned while the server still waited.)
func TestCancelledLockWaitLeavesTheServer(t *testing.T) {
	t.Parallel()
	name := appName()
	p := newPool(t, name, Config{MaxConns: 1})
	holder, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	defer holder.Close(context.Background())
	const key = 0x706f6f6c // "pool"
	_, err = holder.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, key)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	waited := make(chan error, 1)
	go func() {
		_, err := p.Exec(ctx, `SELECT pg_advisory_lock($1)`, key)
		waited <- err
	}()
	waiting := func() int {
		var n int
		require.NoError(t, holder.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock'`, name).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return waiting() == 1 }, 10*time.Second, 20*time.Millisecond,
		"the pool's query waits for the lock")
	cancel()
	require.Error(t, <-waited)
	// No waiting: the partition that cancelled is told it stopped only once
	// the server let go, so the worker never reports fewer partitions than
	// it holds backends.
	assert.Zero(t, waiting(), "the cancelled query stopped waiting on the server before it returned, while the lock is still held")
	_, err = p.Exec(t.Context(), `SELECT 1`)
	assert.NoError(t, err, "the connection survives the cancel")
}

// TestAutoLimit: under POOL_MAX_CONNS=auto, no more partitions write at
// once than are assigned, the limit grows from 1 while the database keeps
// up, and a smaller assignment brings limit and open connections down.
func TestAutoLimit(t *testing.T) {
	name := appName()
	p := newPool(t, name, Config{MaxConns: Auto})
	const partitions = 4
	p.SetAssigned(t.Context(), partitions)
	require.Equal(t, 1, p.Limit(), "slow start from one")

	var (
		mu            sync.Mutex
		writing, peak int
		wg            sync.WaitGroup
	)
	for range partitions {
		wg.Go(func() {
			for range 40 {
				slot, err := p.Slot(t.Context())
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				writing++
				peak = max(peak, writing)
				mu.Unlock()
				conn, err := p.Acquire(t.Context())
				if !assert.NoError(t, err) {
					slot.Release()
					return
				}
				start := time.Now()
				_, err = conn.Exec(t.Context(), "SELECT pg_sleep(0.005)")
				took := time.Since(start)
				conn.Release()
				mu.Lock()
				writing--
				mu.Unlock()
				assert.NoError(t, err)
				slot.Done(1000, took, 0)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak, partitions)
	assert.Greater(t, peak, 1, "sleeping transactions leave the database idle: the limit grows")
	limit, _, waiting, ok := p.Adaptive()
	require.True(t, ok)
	assert.Zero(t, waiting)
	assert.GreaterOrEqual(t, limit, 1)
	assert.LessOrEqual(t, limit, partitions)

	p.SetAssigned(t.Context(), 1)
	assert.Equal(t, 1, p.Limit())
	assert.Eventually(t, func() bool { return serverConns(t, name) <= 1 }, 5*time.Second, 50*time.Millisecond,
		"connections follow the limit down")
}
