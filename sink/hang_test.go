package sink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// TestLockWaitPastDeadlineIsATimeout: another session (a zombie that lost
// the partition) holds the partition's offsets row lock, so the batch's
// attempts wait on it past SINK_TX_TIMEOUT. Each attempt is abandoned (its
// connection destroyed, its backend gone from the server) and retried,
// counted as a timeout, never as a data error; the partition reports
// not-ready meanwhile; nothing is dead-lettered; and once the lock is
// released the batch is written once.
func TestLockWaitPastDeadlineIsATimeout(t *testing.T) {
	t.Parallel()
	c, cfg, db := wtSetup(t, 1)
	topic := cfg.Topics[0]
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), `DELETE FROM sink_offsets WHERE consumer_group = $1`, cfg.Group)
	})
	w, err := newWorker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	w.cfg.TxTimeout = 300 * time.Millisecond // below the valid minimum: a short test
	w.cl, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(w.cl.Close)
	require.NoError(t, w.openDB(t.Context()))
	t.Cleanup(w.pool.Close)
	w.pool.SetAssigned(t.Context(), 1)

	zombie, err := db.Begin(t.Context())
	require.NoError(t, err)
	defer zombie.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	_, err = cfg.Postgres().Offsets().Lock(t.Context(), zombie, topic, 0)
	require.NoError(t, err, "the zombie locks the offsets row")

	p := newPartition(w, topic, 0)
	b := batch.New(cfg.Batch)
	for i := range 10 {
		b.Add(&kgo.Record{Topic: topic, Partition: 0, Offset: int64(i), Key: fmt.Appendf(nil, "k%d", i),
			Value: fmt.Appendf(nil, `{"i":%d}`, i), Timestamp: time.Now()}, time.Now())
	}
	flushed := make(chan bool, 1)
	go func() { flushed <- p.flush(b) }()

	retries := func(class string) float64 { return counterValue(t, w.metrics.Retries.WithLabelValues(class)) }
	require.Eventually(t, func() bool { return retries(retryTimeout) >= 3 }, 20*time.Second, 10*time.Millisecond,
		"the lock wait outlives the deadline, attempt after attempt")
	assert.True(t, w.health.IsBackingOff(p.key()), "not ready while retrying")
	require.NoError(t, zombie.Commit(t.Context()), "the zombie lets go")
	select {
	case ok := <-flushed:
		require.True(t, ok, "the batch is written once the lock is free")
	case <-time.After(30 * time.Second):
		p.cancel()
		t.Fatal("the batch was not written after the lock was released")
	}

	assert.False(t, w.health.IsBackingOff(p.key()), "ready again")
	assert.Zero(t, retries(postgres.Transient.String()), "every retry was a timeout")
	assert.GreaterOrEqual(t, counterValue(t, w.metrics.Abandoned), 3.0, "each timed-out attempt's connection abandoned")
	assert.Zero(t, counterValue(t, w.metrics.Records.WithLabelValues(topic, "dead_lettered")), "nothing dead-lettered")
	assert.EqualValues(t, 10, wtNextOffset(t, db, cfg, 0))
	var rows int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM "+cfg.Table(topic).Sanitize()).Scan(&rows))
	assert.Equal(t, 10, rows, "one row per record")
	assert.Eventually(t, func() bool {
		var n int
		err := db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
			ApplicationName(cfg.Group, cfg.Member)).Scan(&n)
		return err == nil && n <= 1
	}, 10*time.Second, 20*time.Millisecond, "the abandoned sessions left the server: one connection for one partition")
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
