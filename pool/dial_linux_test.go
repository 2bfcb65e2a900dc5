package pool

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestConnectionsNoticeADeadPeer reads the socket options of a pool
// connection: keepalive probes after 15 s of silence, every 5 s, 3 of
// them, and TCP_USER_TIMEOUT 30 s, so a server that stops acknowledging is
// noticed in about 30 s. Go's defaults (15 s, 15 s, 9 probes, no user
// timeout) take 150 s for silence and the kernel's retransmission limit
// (some 15 minutes) for unacknowledged data.
func TestConnectionsNoticeADeadPeer(t *testing.T) {
	t.Parallel()
	p := newPool(t, appName(), Config{MaxConns: 1})
	c, err := p.Acquire(t.Context())
	require.NoError(t, err)
	defer c.Release()
	tcp, ok := c.Conn().PgConn().Conn().(*net.TCPConn)
	require.True(t, ok, "DATABASE_URL must reach PostgreSQL over TCP for this test, got %T", c.Conn().PgConn().Conn())
	raw, err := tcp.SyscallConn()
	require.NoError(t, err)
	get := func(level, opt int) int {
		var (
			v    int
			gerr error
		)
		require.NoError(t, raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }))
		require.NoError(t, gerr)
		return v
	}
	assert.Equal(t, 1, get(unix.SOL_SOCKET, unix.SO_KEEPALIVE), "SO_KEEPALIVE")
	assert.Equal(t, 15, get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE), "TCP_KEEPIDLE, seconds")
	assert.Equal(t, 5, get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL), "TCP_KEEPINTVL, seconds")
	assert.Equal(t, 3, get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT), "TCP_KEEPCNT")
	assert.Equal(t, 30_000, get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT), "TCP_USER_TIMEOUT, milliseconds")
}
