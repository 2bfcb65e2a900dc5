package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// Helpers of the behaviour tests (behaviour_*_test.go): each of those tests
// one promise of the README end to end, with the built binary, the real
// broker and the real PostgreSQL.

// ownTopic is newTopic whose dead-letter topic, which the worker creates
// (<topic>.dlq), is deleted after the test too.
func ownTopic(t *testing.T, partitions int32) string {
	t.Helper()
	topic := newTopic(t, partitions)
	adm := admin(t)
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic+".dlq") })
	return topic
}

// ownGroup is a new consumer group whose sink_offsets rows and Kafka
// group are deleted after the test.
func ownGroup(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	group := uniq("g")
	adm := admin(t)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, `DELETE FROM sink_offsets WHERE consumer_group = $1`, group)
		_, _ = adm.DeleteGroups(ctx, group)
	})
	return group
}

// series is the sum of the worker's /metrics series name whose label has
// value (every series when label is ""), -1 when the family is missing.
func (w *worker) series(t *testing.T, name, label, value string) float64 {
	t.Helper()
	return sum(w.scrape(t), name, label, value)
}

// waitExit waits at most limit for the worker to exit by itself and
// returns its exit status.
func (w *worker) waitExit(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(limit):
		t.Fatalf("worker %s still running after %s; log:\n%s", w.member, limit, testenv.Tail(w.logs, 30))
	}
	var exit *exec.ExitError
	if errors.As(w.err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, w.err, "worker %s", w.member)
	return 0
}

// launch starts argv (the binary, or a wrapper that execs it) with
// workerEnv and returns at once, without waiting for the HTTP listener:
// w.addr is set by the caller when it needs it.
func launch(t *testing.T, member string, env map[string]string, argv ...string) *worker {
	t.Helper()
	w := &worker{t: t, member: member, exited: make(chan struct{})}
	w.logs = filepath.Join(t.TempDir(), member+".log")
	f, err := os.Create(w.logs)
	require.NoError(t, err)
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Env = workerEnv(member, env)
	w.cmd.Stdout, w.cmd.Stderr = f, f
	require.NoError(t, w.cmd.Start())
	go func() {
		w.err = w.cmd.Wait()
		f.Close()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			t.Logf("--- log of %s (last lines) ---\n%s", member, testenv.Tail(w.logs, 40))
		}
	})
	return w
}

// listening waits until the worker's log says where it serves HTTP.
func (w *worker) listening(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.addr = testenv.LogField(w.logs, "http listening", "addr")
		return w.addr != ""
	}, 30*time.Second, 20*time.Millisecond, "worker %s never listened:\n%s", w.member, testenv.Tail(w.logs, 30))
}

// freePort is a TCP address on host that nothing listens on (a moment
// ago), for a process that must be started before its peer.
func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// dbURLVia is DATABASE_URL with its host and port replaced by addr.
func dbURLVia(t *testing.T, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.Host = addr
	return u.String()
}

// cutProxy forwards TCP connections from its listener to target until cut:
// then it closes every upstream connection and black-holes the clients
// (their sockets stay open, nothing answers), so a database behind it
// becomes unreachable the way a dead network makes it, without stopping
// the shared PostgreSQL.
type cutProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	cut       bool
	upstreams []net.Conn
	clients   []net.Conn
	// stalled counts client activity the cut swallowed: bytes sent on a
	// forwarded connection after the cut, or a connection opened after it.
	stalled atomic.Int64
}

// newCutProxy listens on addr ("127.0.0.1:0" for any port) and forwards
// to target until the test ends or cut.
func newCutProxy(t *testing.T, addr, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	wg.Go(func() { p.serve(&wg) })
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range append(p.clients, p.upstreams...) {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.clients = append(p.clients, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			p.stalled.Add(1)
			continue // held open, never answered
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.upstreams = append(p.upstreams, u)
		p.mu.Unlock()
		wg.Go(func() { p.pipe(u, c, true) })
		wg.Go(func() { p.pipe(c, u, false) })
	}
}

// pipe copies src to dst. After the cut the client side is never closed
// by the proxy (the black hole): only the copy goroutine ends.
func (p *cutProxy) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if cut && fromClient {
				p.stalled.Add(1)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			p.mu.Lock()
			if !p.cut {
				dst.Close()
			}
			p.mu.Unlock()
			return
		}
	}
}

// cutOff makes the target unreachable: upstream connections are closed
// (the server ends their sessions and releases their locks) and the
// clients get no answer, now or on new connections.
func (p *cutProxy) cutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, u := range p.upstreams {
		u.Close()
	}
}
