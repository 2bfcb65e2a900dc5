package sink

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeadLetterReturnsWhenContextEnds: the broker takes a dead-letter
// produce and never answers (kfake holds the request). When the context
// ends, as a revocation past its budget cancels it, deadLetter returns at
// once with the context's error instead of waiting for the client's
// request and delivery timeouts, so a revocation cannot outlive the
// rebalance timeout.
func TestDeadLetterReturnsWhenContextEnds(t *testing.T) {
	c, cfg, _ := wtSetup(t, 1)
	var held atomic.Int64
	wake := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		held.Add(1)
		c.SleepControl(func() { <-wake })
		return nil, nil, false
	})
	t.Cleanup(func() { close(wake) }) // before the cluster closes

	w, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(w.closeBase)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &kgo.Record{Topic: cfg.Topics[0], Partition: 0, Offset: 7, Key: []byte("k"), Value: []byte(`{"truncated":`)}
	returned := make(chan error, 1)
	go func() {
		returned <- w.deadLetter(ctx, []badRecord{{rec: rec, class: ClassDecode, reason: "value is not valid JSON"}})
	}()
	require.Eventually(t, func() bool { return held.Load() > 0 }, 10*time.Second, 10*time.Millisecond,
		"the dead-letter produce reaches the broker")
	select {
	case err := <-returned:
		t.Fatalf("deadLetter returned before any answer: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	cancel()
	select {
	case err := <-returned:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("deadLetter still waits for the unanswered produce 2 s after its context ended")
	}
}
