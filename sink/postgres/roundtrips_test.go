package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// tripConn counts round trips: the server ends its answer to each query,
// or to each pipeline of statements (at its Sync), with ReadyForQuery, and
// the client waits for it before it sends the next. The messages are
// parsed from the bytes read: a type byte and a length that counts itself.
type tripConn struct {
	net.Conn
	trips *atomic.Int64

	mu   sync.Mutex
	pend []byte // the start of a message whose rest is still to come
}

func (c *tripConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pend = append(c.pend, b[:n]...)
	for len(c.pend) >= 5 {
		size := 1 + int(binary.BigEndian.Uint32(c.pend[1:5]))
		if len(c.pend) < size {
			break
		}
		if c.pend[0] == 'Z' {
			c.trips.Add(1)
		}
		c.pend = c.pend[size:]
	}
	return n, err
}

// tripConnect opens a connection whose round trips are counted.
func tripConnect(t *testing.T) (*pgx.Conn, *atomic.Int64) {
	t.Helper()
	cc, err := pgx.ParseConfig(testenv.DatabaseURL(t))
	require.NoError(t, err)
	cc.TLSConfig, cc.Fallbacks = nil, nil // the messages must be readable on the wire
	trips := new(atomic.Int64)
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &tripConn{Conn: c, trips: trips}, nil
	}
	conn, err := pgx.ConnectConfig(t.Context(), cc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, trips
}

// TestCleanBatchRoundTrips: a batch nothing is wrong with costs three round
// trips, BEGIN with the offsets row lock, SAVEPOINT with the statements
// (or COPY), the offsets advance with COMMIT, in every mode and path
// (pgx.Tx's BEGIN and COMMIT of their own made it five). Across a network
// each one is a partition's latency.
func TestCleanBatchRoundTrips(t *testing.T) {
	db := testPool(t)
	for _, tc := range []struct {
		name string
		mode decode.Mode
		n    int
	}{
		{"upsert", decode.ModeUpsert, 50},
		{"insert statement", decode.ModeInsert, copyMinRows - 1},
		{"insert copy", decode.ModeInsert, 2 * copyMinRows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWriterFixture(t, db, tc.mode, true)
			conn, trips := tripConnect(t)
			w := newWriter(f.cfg, f.topic, 0, nil)
			batch := func(first int) []*kgo.Record {
				recs := make([]*kgo.Record, tc.n)
				for i := range recs {
					off := int64(first + i)
					recs[i] = &kgo.Record{Topic: f.topic, Offset: off, Timestamp: time.UnixMilli(off).UTC(),
						Key: fmt.Appendf(nil, "k%d", off), Value: fmt.Appendf(nil, `{"n":%d}`, off)}
				}
				return recs
			}
			_, err := w.Write(t.Context(), conn, batch(0), noDeadLetters(t)) // prepares the statements once
			require.NoError(t, err)
			trips.Store(0)
			res, err := w.Write(t.Context(), conn, batch(tc.n), noDeadLetters(t))
			require.NoError(t, err)
			require.Equal(t, tc.n, res.Written)
			assert.EqualValues(t, 3, trips.Load(), "round trips of a clean batch")
			next, ok := f.nextOffset(t, 0)
			require.True(t, ok)
			assert.EqualValues(t, 2*tc.n, next)
		})
	}
}
