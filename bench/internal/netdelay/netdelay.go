// Package netdelay is a TCP proxy that adds a fixed one-way latency to every
// byte in both directions: the database across a simulated network, for the
// bench. A request and its response cost 2*oneWay more than they would
// directly, while a stream of writes is pipelined: each chunk is released
// oneWay after it was read, so n chunks in flight cost one delay, not n.
//
//	p, err := netdelay.Start(ctx, "127.0.0.1:0", "127.0.0.1:5432", time.Millisecond)
//	defer p.Close()
//	// connect to p.Addr() instead of the target
//
// Each direction holds at most MaxQueued bytes read but not yet written;
// beyond that it stops reading, so TCP's own flow control slows the sender.
// Connection setup (accept, dial) is not delayed: the first bytes are.
package netdelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

const (
	// chunkSize is the most one read takes from a connection.
	chunkSize = 32 << 10
	// MaxQueued bounds the bytes one direction of one connection holds
	// between reading and writing: 512 chunks of at most 32 KiB, 16 MiB.
	// At 16 MiB per oneWay the proxy carries 3.2 GB/s at 5 ms, far above
	// what the bench sends, so the bound costs no throughput.
	MaxQueued = 512 * chunkSize
)

// bufs recycles chunk buffers between reader and writer.
var bufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Proxy forwards connections from its listener to one target with a delay.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	dialer net.Dialer

	ctx    context.Context // ends dials when the proxy closes
	cancel context.CancelFunc
	stop   func() bool // releases the context.AfterFunc that closes on ctx's end

	mu     sync.Mutex
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup // accept loop and every link's goroutines
}

// Start listens on listen (host:port; port 0 picks a free one) and forwards
// every accepted connection to target, delaying each chunk by oneWay in
// each direction. The proxy runs until Close or until ctx ends.
func Start(ctx context.Context, listen, target string, oneWay time.Duration) (*Proxy, error) {
	if oneWay < 0 {
		return nil, fmt.Errorf("netdelay: oneWay %v is negative", oneWay)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("netdelay: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, oneWay: oneWay, conns: map[*link]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.stop = context.AfterFunc(ctx, func() { p.Close() })
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, aborts every open connection in both directions
// (queued bytes are dropped) and waits for the proxy's goroutines to end.
// It is idempotent and returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	open := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		open = append(open, l)
	}
	p.mu.Unlock()

	p.stop()
	p.cancel()
	p.ln.Close()
	for _, l := range open {
		l.abort()
	}
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; a transient accept error is not worth a bench run
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve dials the target for client c and pipes both ways until both
// directions end or either fails.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	t, err := p.dialer.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		c.Close() // the client sees the refusal as a closed connection
		return
	}
	l := &link{a: c, b: t, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.abort()
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()

	var dirs sync.WaitGroup
	dirs.Add(2)
	go func() { defer dirs.Done(); l.pipe(c, t, p.oneWay) }()
	go func() { defer dirs.Done(); l.pipe(t, c, p.oneWay) }()
	dirs.Wait()
	l.abort() // both halves ended: release both sockets

	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// link is one proxied connection: client a, target b.
type link struct {
	a, b net.Conn
	once sync.Once
	done chan struct{} // closed by abort
}

// abort closes both sockets, which ends every blocked read and write of
// the link, and tells its goroutines to drop what they hold.
func (l *link) abort() {
	l.once.Do(func() {
		close(l.done)
		l.a.Close()
		l.b.Close()
	})
}

// chunk is bytes read at a time, to be written at + oneWay.
type chunk struct {
	buf *[]byte
	n   int
	at  time.Time
}

// pipe copies src to dst, each chunk oneWay after it was read. Reading and
// writing run apart so chunks overlap in flight; the channel keeps their
// order and its capacity bounds the bytes held (MaxQueued). At src's EOF
// the queue drains and dst's write side is shut, so a half-close carries
// through; any other error aborts the link.
func (l *link) pipe(src, dst net.Conn, oneWay time.Duration) {
	q := make(chan chunk, MaxQueued/chunkSize)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		l.write(q, dst, oneWay)
	}()
	defer func() { <-wrote }()
	defer close(q)
	for {
		buf := bufs.Get().(*[]byte)
		n, err := src.Read(*buf)
		if n > 0 {
			select {
			case q <- chunk{buf: buf, n: n, at: time.Now()}:
			case <-l.done:
				return
			}
		} else {
			bufs.Put(buf)
		}
		if errors.Is(err, io.EOF) {
			return // the writer drains q, then shuts dst's write side
		}
		if err != nil {
			l.abort()
			return
		}
	}
}

// write releases q's chunks to dst in order, each at its at + oneWay.
func (l *link) write(q <-chan chunk, dst net.Conn, oneWay time.Duration) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for c := range q {
		if wait := time.Until(c.at.Add(oneWay)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.done:
				bufs.Put(c.buf)
				drop(q)
				return
			}
		}
		_, err := dst.Write((*c.buf)[:c.n])
		bufs.Put(c.buf)
		if err != nil {
			l.abort()
			drop(q)
			return
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// drop empties q until its reader closes it, so the reader never blocks.
func drop(q <-chan chunk) {
	for c := range q {
		bufs.Put(c.buf)
	}
}
