package sink

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// realBrokers is KAFKA_BROKERS, the real broker `scripts/services up`
// starts; without it the test fails, never skips.
func realBrokers(t *testing.T) []string {
	t.Helper()
	b := os.Getenv("KAFKA_BROKERS")
	require.NotEmpty(t, b, "KAFKA_BROKERS must be set: %s", testenv.Hint)
	return strings.Split(b, ",")
}

// realConfig is a valid Config for a new one-partition topic on the real
// broker, with the test's own table, offsets table and group, all removed
// after the test.
func realConfig(t *testing.T) (Config, *pgxpool.Pool) {
	t.Helper()
	brokers := realBrokers(t)
	topic, offsets := wtName("rp"), wtName("rp_offsets")
	cfg := testConfig(t, ModeUpsert, offsets, map[string]string{topic: wtName("rp_t")}, topic)
	cfg.Brokers, cfg.Group, cfg.HTTPAddr, cfg.SessionTimeout = brokers, wtName("g"), "127.0.0.1:0", 6*time.Second
	adm := testenv.Admin(t, brokers)
	resp, err := adm.CreateTopic(t.Context(), 1, 1, nil, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	db, err := pgxpool.New(t.Context(), cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = adm.DeleteTopics(ctx, topic, cfg.DLQTopicFor(topic))
		_, _ = db.Exec(ctx, "DROP TABLE IF EXISTS "+cfg.Table(topic).Sanitize()+", "+cfg.offsetsTable().Sanitize())
		db.Close()
	})
	return cfg, db
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// holdPartition joins cfg's group with a plain consumer that owns the
// topic's only partition, so a worker started next joins without it (the
// balancer is sticky). The returned release leaves the group: the
// partition is then assigned to the worker, which reads its start offsets
// at that moment.
func holdPartition(t *testing.T, cfg Config) (release func()) {
	t.Helper()
	held := make(chan struct{})
	var once sync.Once
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(cfg.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.SessionTimeout(cfg.SessionTimeout), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			if len(a[cfg.Topics[0]]) > 0 {
				once.Do(func() { close(held) })
			}
		}))
	require.NoError(t, err)
	go func() {
		for !cl.PollFetches(context.Background()).IsClientClosed() {
		}
	}()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		cl.Close()
		t.Fatal("the holder did not get the partition")
	}
	closed := false
	release = func() {
		if !closed {
			closed = true
			cl.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestStartOffsetsFatalStopsTheWorker: the offsets table disappears between
// start-up and the worker's first assignment (another member holds the
// partition until then). Reading the start offsets fails with a
// fatal SQLSTATE (42P01), which stops the worker with the error instead of
// retrying forever.
func TestStartOffsetsFatalStopsTheWorker(t *testing.T) {
	cfg, db := realConfig(t)
	release := holdPartition(t, cfg)
	w, err := New(t.Context(), cfg, quietLog())
	require.NoError(t, err)
	t.Cleanup(w.Close)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- w.Run(ctx) }()
	_, err = db.Exec(t.Context(), "DROP TABLE "+cfg.offsetsTable().Sanitize())
	require.NoError(t, err)
	release()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Equal(t, postgres.Fatal, postgres.Classify(err), "%v", err)
		assert.Contains(t, err.Error(), "read start offsets")
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatal("Run kept retrying the start offsets for 60 s after a fatal error")
	}
}

// dbGate is a TCP proxy to the database that can refuse connections: a
// database outage for one test, without stopping the shared PostgreSQL.
type dbGate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

// newDBGate proxies to the host of dsn and returns the gate and dsn
// pointing at it.
func newDBGate(t *testing.T, dsn string) (*dbGate, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &dbGate{ln: ln, target: u.Host}
	t.Cleanup(func() { ln.Close(); g.setDown(true) })
	go g.serve()
	u.Host = ln.Addr().String()
	return g, u.String()
}

func (g *dbGate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.down {
			g.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", g.target)
		if err != nil {
			g.mu.Unlock()
			c.Close()
			continue
		}
		g.conns = append(g.conns, c, up)
		g.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// setDown refuses (and cuts) connections while on.
func (g *dbGate) setDown(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = on
	if on {
		for _, c := range g.conns {
			c.Close()
		}
		g.conns = nil
	}
}

// TestNotReadyWhileStartOffsetsUnreadable: the database goes away between
// start-up and the worker's first assignment (another member holds the
// partition until then). /readyz answers not ready, naming the
// start offsets, while they are retried, and ready once the database is
// back.
func TestNotReadyWhileStartOffsetsUnreadable(t *testing.T) {
	cfg, _ := realConfig(t)
	gate, dsn := newDBGate(t, cfg.DatabaseURL)
	cfg.DatabaseURL = dsn
	release := holdPartition(t, cfg)
	w, err := New(t.Context(), cfg, quietLog())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	gate.setDown(true)
	release()
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + w.Addr().String() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "start offsets cannot be read")
	}, 30*time.Second, 100*time.Millisecond, "not ready while the start offsets cannot be read")
	gate.setDown(false)
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusOK }, 30*time.Second, 100*time.Millisecond,
		"ready once the database is back")
	cancel()
	require.NoError(t, <-done)
}

// TestCloseReleasesWithoutRun: Close frees what New opened when Run is
// never called (the HTTP port can be listened on again, the client and the
// pool are closed), and a second Close does nothing.
func TestCloseReleasesWithoutRun(t *testing.T) {
	cfg, _ := realConfig(t)
	w, err := New(t.Context(), cfg, quietLog())
	require.NoError(t, err)
	addr := w.Addr().String()

	w.Close()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the HTTP port is free after Close")
	require.NoError(t, ln.Close())
	assert.True(t, w.cl.PollFetches(t.Context()).IsClientClosed(), "the Kafka client is closed")
	_, err = w.pool.Acquire(t.Context())
	assert.Error(t, err, "the pool is closed")
	assert.NotPanics(t, w.Close, "a second Close is a no-op")
}

// TestSkipMarkersFencing: skipMarkers moves the stored offset past
// transaction markers only when every data record before them is applied,
// only forward, and never over an offset an operator moved below where the
// partition started.
func TestSkipMarkersFencing(t *testing.T) {
	cfg := testConfig(t, ModeUpsert, wtName("sm_offsets"), nil, wtName("sm"))
	cfg.Group = wtName("g")
	w, err := newWorker(cfg, quietLog())
	require.NoError(t, err)
	w.pool, err = pool.New(t.Context(), cfg.DatabaseURL, "skipmarkers-test", cfg.Pool)
	require.NoError(t, err)
	t.Cleanup(w.pool.Close)
	require.NoError(t, EnsureTables(t.Context(), w.pool, cfg))
	t.Cleanup(func() {
		_, _ = w.pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+cfg.offsetsTable().Sanitize())
	})

	const none = -1
	for _, tc := range []struct {
		name             string
		stored           int64 // none: no row
		start, last, end int64 // the position: start, last data record, end
		queued           bool
		want             int64
		markedForKafka   bool
	}{
		{name: "past the commit marker after the data", stored: 100, start: 0, last: 99, end: 101, want: 101, markedForKafka: true},
		{name: "past an aborted transaction and its marker", stored: 100, start: 0, last: 99, end: 160, want: 160, markedForKafka: true},
		{name: "only markers since the start, no row", stored: none, start: 50, last: none, end: 53, want: 53, markedForKafka: true},
		{name: "data before the markers not applied yet", stored: 90, start: 0, last: 99, end: 101, want: 90},
		{name: "never backwards: a new owner is ahead", stored: 150, start: 0, last: 99, end: 101, want: 150},
		{name: "an operator's reset below the start stays", stored: 10, start: 50, last: none, end: 53, want: 10},
		{name: "records still queued", stored: 100, start: 0, last: 99, end: 101, queued: true, want: 100},
		{name: "nothing but data since", stored: 100, start: 0, last: 99, end: 100, want: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := wtName("sm")
			p := newPartition(w, topic, 0)
			t.Cleanup(p.cancel)
			if tc.stored != none {
				_, err := w.pool.Exec(t.Context(), `INSERT INTO `+cfg.offsetsTable().Sanitize()+
					` (consumer_group, topic, partition, next_offset) VALUES ($1, $2, 0, $3)`, cfg.Group, topic, tc.stored)
				require.NoError(t, err)
			}
			p.pos = position{start: tc.start, lastData: tc.last, end: tc.end, logEnd: tc.end, moved: none}
			if tc.queued {
				p.queue = []*kgo.Record{{Topic: topic, Offset: tc.end}}
			}
			p.skipMarkers()

			var got int64 = none
			err := w.pool.QueryRow(t.Context(), `SELECT next_offset FROM `+cfg.offsetsTable().Sanitize()+
				` WHERE consumer_group = $1 AND topic = $2 AND partition = 0`, cfg.Group, topic).Scan(&got)
			if err != nil {
				require.ErrorIs(t, err, pgx.ErrNoRows)
			}
			assert.Equal(t, tc.want, got)
			marked := w.committer.take(map[string][]int32{topic: {0}})
			if tc.markedForKafka {
				assert.Equal(t, tc.want, marked[topic][0].Offset, "Kafka's copy follows")
			} else {
				assert.Empty(t, marked, "nothing to copy to Kafka")
			}
		})
	}
}
