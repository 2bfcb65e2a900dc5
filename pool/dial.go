package pool

import (
	"net"
	"time"
)

// TCP settings of every connection the pool dials, so that a server (or
// anything on the way) that stops acknowledging is noticed in about 30 s
// rather than the operating system's defaults (two hours of keepalive
// silence on Linux, and some 15 minutes of retransmissions for data never
// acknowledged). They cannot notice a peer that still acknowledges and
// never answers (a frozen proxy, a stopped server process): a deadline on
// the work itself covers that (SINK_TX_TIMEOUT in package sink).
const (
	// keepAliveIdle is how long a connection is silent before the first
	// probe; a probe unanswered keepAliveInterval later is sent again,
	// keepAliveCount times in all, then the connection is dropped.
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
	// userTimeout (TCP_USER_TIMEOUT, Linux only) drops a connection whose
	// sent data stays unacknowledged this long. A slow query is not such
	// data: the server's kernel acknowledges it at once.
	userTimeout = keepAliveIdle + keepAliveCount*keepAliveInterval
)

// dialer dials with the settings above; timeout is the DSN's
// connect_timeout (0: none, the caller's context bounds the dial).
func dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: setUserTimeout,
	}
}
