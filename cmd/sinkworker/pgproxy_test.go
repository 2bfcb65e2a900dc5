package main

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// pgProxy is a TCP proxy between a worker and the real PostgreSQL that can
// freeze connections the way a dead middlebox, a paused VM behind a proxy
// or a stale route does: a frozen connection forwards nothing either way
// and closes nothing, yet keeps reading (so TCP acknowledges, and keepalive
// sees a live peer). Connections opened after a freeze pass normally.
//
// It reads the client's side of the PostgreSQL protocol (plain text only:
// the DSN it hands out says sslmode=disable) to tell sessions from cancel
// requests and to find COMMITs.
type pgProxy struct {
	t      *testing.T
	ln     net.Listener
	target string // host:port of PostgreSQL
	dsn    string // dbURL with the proxy's address

	mu      sync.Mutex
	conns   map[*proxyConn]bool  // every connection, until the test ends
	commits []commitFreeze       // armed COMMIT freezes, first one first
	hits    map[commitFreeze]int // COMMIT freezes that happened
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// commitFreeze says what a frozen COMMIT leaves the server with.
type commitFreeze int

const (
	// commitReplyLost forwards the COMMIT, then freezes: the server
	// commits, the worker never hears of it.
	commitReplyLost commitFreeze = iota
	// commitRequestLost freezes before the COMMIT: the server's
	// transaction stays open, idle, holding its locks.
	commitRequestLost
)

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	client, server net.Conn
	frozen         atomic.Bool
	cancel         atomic.Bool // a cancel request, not a session
	clientGone     atomic.Bool // the client closed its side
}

// newPGProxy listens on a free local port in front of the database of
// dbURL (a postgres:// URL) until the test ends, then closes every
// connection, frozen ones included.
func newPGProxy(t *testing.T, dbURL string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err, "DATABASE_URL must be a postgres:// URL for the proxy")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pgProxy{t: t, ln: ln, target: u.Host, conns: map[*proxyConn]bool{}, hits: map[commitFreeze]int{}}
	q := u.Query()
	q.Set("sslmode", "disable") // the proxy reads the protocol
	u.Host, u.RawQuery = ln.Addr().String(), q.Encode()
	p.dsn = u.String()
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *pgProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &proxyConn{client: client, server: server}
		p.mu.Lock()
		if p.closed.Load() {
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Go(func() { p.clientToServer(c) })
		p.wg.Go(func() { p.serverToClient(c) })
	}
}

func (p *pgProxy) close() {
	p.closed.Store(true)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// freezeAll freezes every connection open now.
func (p *pgProxy) freezeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.frozen.Store(true)
	}
}

// freezeCommits arms one freeze per mode: the next COMMIT a session sends
// freezes its connection as modes[0] says, the one after as modes[1], and
// so on.
func (p *pgProxy) freezeCommits(modes ...commitFreeze) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commits = append(p.commits, modes...)
}

// commitsFrozen is how many COMMITs were frozen in mode.
func (p *pgProxy) commitsFrozen(mode commitFreeze) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[mode]
}

// sessions is the number of sessions whose client has not closed its side:
// the connections the worker holds, frozen or not.
func (p *pgProxy) sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if !c.cancel.Load() && !c.clientGone.Load() {
			n++
		}
	}
	return n
}

// takeCommitFreeze pops the next armed COMMIT freeze, if any.
func (p *pgProxy) takeCommitFreeze() (commitFreeze, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.commits) == 0 {
		return 0, false
	}
	mode := p.commits[0]
	p.commits = p.commits[1:]
	p.hits[mode]++
	return mode, true
}

// clientToServer forwards the client's messages one whole message at a
// time, so that a freeze falls between messages.
func (p *pgProxy) clientToServer(c *proxyConn) {
	defer func() {
		c.clientGone.Store(true)
		if !c.frozen.Load() {
			c.server.Close()
		}
	}()
	var (
		buf     []byte
		chunk   = make([]byte, 64<<10)
		startup = true // untyped messages until the StartupMessage
	)
	for {
		n, err := c.client.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			msg, ok := nextMessage(buf, startup)
			if !ok {
				break
			}
			buf = buf[len(msg):]
			if startup {
				switch code := be32(msg[4:8]); code {
				case 80877102: // CancelRequest
					c.cancel.Store(true)
				case 80877103, 80877104: // SSLRequest, GSSENCRequest: the StartupMessage follows
				default:
					startup = false
				}
			} else if isCommit(msg) {
				if mode, ok := p.takeCommitFreeze(); ok {
					if mode == commitReplyLost {
						c.forward(c.server, msg)
					}
					c.frozen.Store(true) // the message below goes nowhere
				}
			}
			c.forward(c.server, msg)
		}
		buf = append([]byte(nil), buf...) // let the consumed bytes go
		if err != nil {
			return
		}
	}
}

// serverToClient forwards the server's bytes as they come.
func (p *pgProxy) serverToClient(c *proxyConn) {
	defer func() {
		if !c.frozen.Load() {
			c.client.Close()
		}
	}()
	chunk := make([]byte, 64<<10)
	for {
		n, err := c.server.Read(chunk)
		c.forward(c.client, chunk[:n])
		if err != nil {
			return
		}
	}
}

// forward writes b to dst unless the connection is frozen; write errors
// end nothing here: the reading side notices a closed peer.
func (c *proxyConn) forward(dst net.Conn, b []byte) {
	if len(b) > 0 && !c.frozen.Load() {
		_, _ = dst.Write(b)
	}
}

// nextMessage is the first complete protocol message of buf: an untyped
// one (length, then body) during start-up, else a typed one (one type
// byte, length, body).
func nextMessage(buf []byte, startup bool) ([]byte, bool) {
	head := 5
	if startup {
		head = 4
	}
	if len(buf) < head {
		return nil, false
	}
	size := head - 4 + int(be32(buf[head-4:head]))
	if len(buf) < size {
		return nil, false
	}
	return buf[:size], true
}

// be32 is a big-endian uint32, as the protocol writes lengths and codes.
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// isCommit reports whether msg is a simple-protocol query whose last
// statement is "commit" (pgx's Tx.Commit sends it alone, the writer after
// its offsets advance).
func isCommit(msg []byte) bool {
	if msg[0] != 'Q' {
		return false
	}
	q := bytes.TrimRight(bytes.TrimSpace(bytes.TrimRight(msg[5:], "\x00")), ";")
	if i := bytes.LastIndexByte(q, ';'); i >= 0 {
		q = q[i+1:]
	}
	return bytes.EqualFold(bytes.TrimSpace(q), []byte("commit"))
}
