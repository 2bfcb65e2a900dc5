package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// TestWriterSilentTransactionIsEnded stalls a writer inside its batch
// transaction (its dead-letter produce never returns, as for a worker frozen
// or cut off from the database mid-batch) while it holds the partition's
// offsets row lock. With SINK_TX_IDLE_TIMEOUT the server ends that
// transaction, so the partition's new owner gets the lock and writes; the
// stalled writer's batch then fails as transient, and its retry is fenced.
// Without the setting the new owner waits until its deadline and the test
// fails.
func TestWriterSilentTransactionIsEnded(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			const partition = 2
			f := newWriterFixture(t, db, mode, true)
			f.cfg.TxIdleTimeout = time.Second // below the valid minimum: a short test
			stale := f.records(partition, []*kgo.Record{val(0, "a"), raw(1, "b", []byte("{not json")), val(2, "c")})

			stalled, resume, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var resumeOnce sync.Once
			wake := func() { resumeOnce.Do(func() { close(resume) }) }
			t.Cleanup(func() { wake(); <-done }) // before the tables are dropped
			var zombieErr error
			go func() {
				defer close(done)
				dlq := func(context.Context, []decode.Rejection) error {
					close(stalled)
					<-resume
					return nil // acknowledged, long after the server gave up
				}
				_, zombieErr = newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db, stale, dlq)
			}()
			<-stalled

			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			got, err := newWriter(f.cfg, f.topic, partition, nil).Write(ctx, f.db,
				f.records(partition, span(0, 4)), noDeadLetters(t))
			require.NoError(t, err, "the new owner gets the row lock while the stalled writer still waits")
			assert.Equal(t, Result{Written: 5, Applied: 5, NextOffset: 5}, got)

			wake()
			<-done
			require.Error(t, zombieErr, "the stalled writer's transaction was ended under it")
			assert.Equal(t, Transient, Classify(zombieErr), "retried, never dead-lettered: %v", zombieErr)
			next, ok := f.nextOffset(t, partition)
			require.True(t, ok)
			assert.EqualValues(t, 5, next, "the new owner's offsets stand")

			retry, err := newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db, stale, noDeadLetters(t))
			require.NoError(t, err)
			assert.Equal(t, Result{AlreadyApplied: 3, NextOffset: 5}, retry, "the retry is fenced")
		})
	}
}

func TestIdleSQL(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "SET LOCAL idle_in_transaction_session_timeout = 60000", idleSQL(time.Minute))
}
