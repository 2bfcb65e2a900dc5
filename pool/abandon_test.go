package pool

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestAbandonDestroysAtOnce abandons a connection whose transaction's
// statement outlived its deadline while waiting for a lock another session
// holds (as a partition's attempt past SINK_TX_TIMEOUT): the pool stops
// counting it at once, along with the idle connections, the server session
// ends, and the next Acquire gets a new, working connection. A plain
// Release would leave it to pgxpool's background destroy, counted until
// that finishes, and would keep the idle ones.
func TestAbandonDestroysAtOnce(t *testing.T) {
	t.Parallel()
	name := appName()
	p := newPool(t, name, Config{MaxConns: 4})
	openConns(t, p, 3)
	holder, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	defer holder.Close(context.Background())
	const key = 0x61626e64 // "abnd"
	_, err = holder.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, key)
	require.NoError(t, err)

	c, err := p.Acquire(t.Context())
	require.NoError(t, err)
	tx, err := c.Begin(t.Context())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	require.Error(t, err, "the lock wait outlives its deadline")
	require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)

	begun := time.Now()
	p.Abandon(c)
	assert.Less(t, time.Since(begun), 2*closeTimeout, "Abandon is bounded")
	assert.Zero(t, p.Stat().TotalConns(), "neither the abandoned connection nor the idle ones are counted")
	assert.Eventually(t, func() bool { return serverConns(t, name) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the server ended the abandoned session and the idle ones")

	again, err := p.Acquire(t.Context())
	require.NoError(t, err)
	defer again.Release()
	assert.NoError(t, again.Ping(t.Context()), "a new connection after the abandoned one")
}
