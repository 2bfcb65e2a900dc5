package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Shortened for CI: both at the smallest valid value (longer than the
// 30 s dead-letter delivery timeout). The defaults are 60s and 60s.
const (
	hangTxTimeout     = 31 * time.Second
	hangTxIdleTimeout = 31 * time.Second
	hangPartitions    = 4
)

// TestHungConnectionsAreAbandoned runs the worker (insert mode, 4
// partitions) through a TCP proxy that freezes connections without closing
// them, while records keep arriving:
//   - every_open_connection: all connections open at the freeze, busy or
//     idle, stop answering; new ones work;
//   - during_commit: one session's COMMIT reaches the server and its reply
//     is lost (committed, the worker cannot know), another's COMMIT is lost
//     (the server's transaction stays open, holding the offsets row lock,
//     until SINK_TX_IDLE_TIMEOUT ends it).
//
// Each attempt that outlives SINK_TX_TIMEOUT is abandoned: its connection
// destroyed, the batch retried on a new one. The worker must catch up with
// exactly one row per record and nothing dead-lettered, report not-ready
// while it retries, count the abandoned connections and timeout retries,
// and never hold more sessions than partitions. A partition must flow
// again within SINK_TX_IDLE_TIMEOUT + 30 s of the freeze (the issue's
// goal); the test logs how long it took.
func TestHungConnectionsAreAbandoned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		seed   uint64
		freeze func(t *testing.T, p *pgProxy)
	}{
		{"every_open_connection", 7, func(t *testing.T, p *pgProxy) {
			p.freezeAll()
			require.Positive(t, p.sessions(), "sessions frozen")
		}},
		{"during_commit", 8, func(t *testing.T, p *pgProxy) {
			p.freezeCommits(commitReplyLost, commitRequestLost)
			require.Eventually(t, func() bool {
				return p.commitsFrozen(commitReplyLost) == 1 && p.commitsFrozen(commitRequestLost) == 1
			}, 20*time.Second, 5*time.Millisecond, "both COMMITs frozen")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hungConnections(t, tc.seed, tc.freeze)
		})
	}
}

func hungConnections(t *testing.T, seed uint64, freeze func(*testing.T, *pgProxy)) {
	pool := db(t)
	topic, table, group := newTopic(t, hangPartitions), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DELETE FROM sink_offsets WHERE consumer_group = $1`, group)
	})
	proxy := newPGProxy(t, dbURL)
	recs := workload(40_000, 5_000, 0, seed)
	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
		"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "500",
		"DATABASE_URL":         proxy.dsn,
		"SINK_TX_TIMEOUT":      hangTxTimeout.String(),
		"SINK_TX_IDLE_TIMEOUT": hangTxIdleTimeout.String(),
	})
	produce(t, topic, recs[:10_000])
	waitProgress(t, pool, group, topic, 10_000)

	ctx, stopWatching := context.WithCancel(t.Context())
	watch := watchHang(ctx, w, pool, proxy, group, topic)
	// Records keep arriving, before, during and after the freeze.
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		const slices = 30
		rest := recs[10_000:]
		for i := range slices {
			produce(t, topic, rest[i*len(rest)/slices:(i+1)*len(rest)/slices])
			time.Sleep(300 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	frozenAt := time.Now()
	freeze(t, proxy)
	watch.frozen.Store(true)
	<-flowing

	waitApplied(t, pool, group, topic, hangTxIdleTimeout+2*time.Minute)
	caughtUp := time.Since(frozenAt)
	require.Eventually(t, func() bool { return w.readyz() == http.StatusOK }, 30*time.Second, 100*time.Millisecond,
		"/readyz is ready again once caught up")
	fams := w.scrape(t)
	stopWatching()
	<-watch.done
	w.stop()

	stall := watch.longestStall()
	t.Logf("freeze -> partitions flowing again: longest stall %s; all %d records applied %s after the freeze; "+
		"peak sessions %d; abandoned connections %v; timeout retries %v",
		stall.Round(100*time.Millisecond), len(recs), caughtUp.Round(100*time.Millisecond), watch.peak.Load(),
		sum(fams, "sinkworker_db_connections_abandoned_total", "", ""),
		sum(fams, "sinkworker_retries_total", "class", "timeout"))
	assert.LessOrEqual(t, stall, hangTxIdleTimeout+30*time.Second, "a stuck partition flows again within SINK_TX_IDLE_TIMEOUT + 30 s")
	assertInsertTable(t, pool, table, topic, recs)
	assert.Zero(t, dlqCount(t, topic+".dlq"), "a hang dead-letters nothing")
	assert.LessOrEqual(t, sum(fams, "sinkworker_dead_letters_total", "", ""), 0.0, "no dead letter counted (-1: no series at all)")
	assert.GreaterOrEqual(t, sum(fams, "sinkworker_db_connections_abandoned_total", "", ""), 1.0,
		"the frozen connections were abandoned")
	assert.GreaterOrEqual(t, sum(fams, "sinkworker_retries_total", "class", "timeout"), 1.0,
		"the retries are counted as timeouts")
	assert.True(t, watch.notReady.Load(), "/readyz reported not-ready while the partitions retried")
	assert.Empty(t, watch.violations(), "sessions beyond the partition count")
	if proxy.commitsFrozen(commitReplyLost) > 0 {
		assert.GreaterOrEqual(t, sum(fams, "sinkworker_records_total", "outcome", "already_applied"), 1.0,
			"the retry of the batch whose COMMIT reply was lost found it committed, and wrote nothing twice")
	}
}

// hangWatch samples a worker behind a proxy: its sessions (I4), its
// readiness after the freeze, and how long each partition's next_offset
// stood still.
type hangWatch struct {
	frozen   atomic.Bool
	notReady atomic.Bool
	peak     atomic.Int64
	done     chan struct{}

	mu     sync.Mutex
	excess []string
	stall  time.Duration // longest time a partition's next_offset stood still, then moved
}

func watchHang(ctx context.Context, w *worker, pool *pgxpool.Pool, proxy *pgProxy, group, topic string) *hangWatch {
	h := &hangWatch{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		last := map[int32]int64{}
		since := map[int32]time.Time{}
		for ctx.Err() == nil {
			if n := proxy.sessions(); n > hangPartitions {
				// A session the worker just closed may not have been read
				// as closed yet: only an excess that persists counts.
				time.Sleep(250 * time.Millisecond)
				if n := proxy.sessions(); n > hangPartitions {
					h.mu.Lock()
					h.excess = append(h.excess, fmt.Sprintf("%d sessions > %d partitions", n, hangPartitions))
					h.mu.Unlock()
				}
			} else if int64(n) > h.peak.Load() {
				h.peak.Store(int64(n))
			}
			if h.frozen.Load() && w.readyz() == http.StatusServiceUnavailable {
				h.notReady.Store(true)
			}
			now := time.Now()
			for part, next := range partitionOffsets(ctx, pool, group, topic) {
				if prev, ok := last[part]; !ok || next != prev {
					if ok {
						h.mu.Lock()
						h.stall = max(h.stall, now.Sub(since[part]))
						h.mu.Unlock()
					}
					last[part], since[part] = next, now
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return h
}

func (h *hangWatch) violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.excess
}

func (h *hangWatch) longestStall() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stall
}

// partitionOffsets is the group's next_offset per partition of topic
// (empty when the database does not answer).
func partitionOffsets(ctx context.Context, pool *pgxpool.Pool, group, topic string) map[int32]int64 {
	out := map[int32]int64{}
	rows, err := pool.Query(ctx, `SELECT partition, next_offset FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, group, topic)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var (
			part int32
			next int64
		)
		if rows.Scan(&part, &next) == nil {
			out[part] = next
		}
	}
	return out
}
