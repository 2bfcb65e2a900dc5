package netdelay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// server listens on a free local port and runs handle for each connection
// until the test ends.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); handle(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo writes back what it reads and closes at the client's EOF.
func echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

// proxied starts a proxy to target and dials it.
func proxied(t *testing.T, target string, oneWay time.Duration) (*Proxy, *net.TCPConn) {
	t.Helper()
	p, err := Start(t.Context(), "127.0.0.1:0", target, oneWay)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return p, c.(*net.TCPConn)
}

func TestRoundTrip(t *testing.T) {
	const oneWay = 10 * time.Millisecond
	_, c := proxied(t, server(t, echo), oneWay)
	b := []byte{0}
	for i := range 5 {
		b[0] = byte(i)
		start := time.Now()
		_, err := c.Write(b)
		require.NoError(t, err)
		_, err = io.ReadFull(c, b)
		require.NoError(t, err)
		took := time.Since(start)
		assert.Equal(t, byte(i), b[0])
		assert.GreaterOrEqual(t, took, 2*oneWay, "round trip %d", i)
		assert.Less(t, took, 2*oneWay+500*time.Millisecond, "round trip %d", i)
	}
}

// TestPipelined checks chunks overlap in flight: many writes cost about
// one round trip in all, not one each, and arrive in order.
func TestPipelined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oneWay time.Duration
		writes int
		gap    time.Duration // between writes; apart, they reach the proxy as separate chunks
		within time.Duration // serial delays would cost at least writes*oneWay
	}{
		{name: "back to back", oneWay: 20 * time.Millisecond, writes: 1000, within: time.Second},
		{name: "paced", oneWay: 50 * time.Millisecond, writes: 100, gap: 2 * time.Millisecond, within: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := proxied(t, server(t, echo), tc.oneWay)
			var want bytes.Buffer
			for i := range tc.writes {
				fmt.Fprintf(&want, "%08d", i)
			}
			sent := want.Bytes()
			start := time.Now()
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < len(sent); i += 8 {
					if _, err := c.Write(sent[i : i+8]); err != nil {
						errc <- err
						return
					}
					if tc.gap > 0 {
						time.Sleep(tc.gap)
					}
				}
				errc <- nil
			}()
			got := make([]byte, len(sent))
			_, err := io.ReadFull(c, got)
			require.NoError(t, err)
			took := time.Since(start)
			require.NoError(t, <-errc)
			assert.Equal(t, sent, got, "bytes arrive in order")
			assert.GreaterOrEqual(t, took, 2*tc.oneWay)
			assert.Less(t, took, tc.within, "serial delays would take %v", time.Duration(tc.writes)*tc.oneWay)
			t.Logf("%d writes, oneWay %v: %v", tc.writes, tc.oneWay, took)
		})
	}
}

// TestLargeTransfer sends 64 MiB through an echo and back; the client's
// half-close must carry through the proxy for the echo to end.
func TestLargeTransfer(t *testing.T) {
	const size = 64 << 20
	_, c := proxied(t, server(t, echo), time.Millisecond)
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	assert.Equal(t, int64(size), n)
	assert.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)))
	took := time.Since(start)
	t.Logf("64 MiB each way in %v (%.0f MiB/s)", took, 64/took.Seconds())
}

// TestBackpressure checks a target that stops reading stops the sender:
// the proxy holds at most MaxQueued per direction, plus what the kernel's
// socket buffers take (up to tens of MiB on loopback).
func TestBackpressure(t *testing.T) {
	stalled := make(chan struct{})
	target := server(t, func(c net.Conn) { <-stalled; c.Close() })
	t.Cleanup(func() { close(stalled) }) // before server's cleanup, which waits for the handler
	_, c := proxied(t, target, time.Millisecond)
	block := make([]byte, 1<<20)
	const limit = 1 << 30
	written := 0
	for written < limit {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(time.Second)))
		n, err := c.Write(block)
		written += n
		if err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			break
		}
	}
	assert.Less(t, written, 160<<20, "a proxy without a bound reads on until the limit")
	t.Logf("sender stopped after %d MiB", written>>20)
}

func TestClose(t *testing.T) {
	p, c := proxied(t, server(t, echo), time.Millisecond)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)

	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "idempotent")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(b)
	require.Error(t, err)
	assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "Close ends the connection: %v", err)
	_, err = net.Dial("tcp", p.Addr())
	assert.Error(t, err, "no longer accepting")
}

func TestContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	p, err := Start(ctx, "127.0.0.1:0", server(t, echo), time.Millisecond)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	cancel()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err)
	assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "ctx's end closes the connection: %v", err)
}

// TestPostgres runs sequential queries through the proxy: each costs at
// least one round trip, 2 ms at oneWay 1 ms.
func TestPostgres(t *testing.T) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		t.Fatal("DATABASE_URL is unset: eval \"$(scripts/services env)\"")
	}
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	const oneWay = time.Millisecond
	p, err := Start(t.Context(), "127.0.0.1:0", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), oneWay)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	pn, err := strconv.Atoi(port)
	require.NoError(t, err)
	cfg.Host, cfg.Port, cfg.Fallbacks = host, uint16(pn), nil
	cfg.RuntimeParams["application_name"] = "bench-netdelay-test"

	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	const queries = 20
	start := time.Now()
	for range queries {
		var one int
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT 1").Scan(&one))
		require.Equal(t, 1, one)
	}
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, queries*2*oneWay)
	assert.Less(t, took, queries*2*oneWay+5*time.Second)
	t.Logf("%d sequential SELECT 1 at oneWay %v: %v", queries, oneWay, took)
}
