package dlq

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// TestSendReturnsWhenContextEnds: the broker takes a dead-letter produce
// and never answers (kfake holds the request). When the context ends, as a
// revocation past its budget cancels it, Send returns at once with the
// context's error instead of waiting for the client's request and delivery
// timeouts, so a revocation cannot outlive the rebalance timeout.
func TestSendReturnsWhenContextEnds(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "orders.dlq"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	var held atomic.Int64
	wake := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		held.Add(1)
		c.SleepControl(func() { <-wake })
		return nil, nil, false
	})
	t.Cleanup(func() { close(wake) }) // before the cluster closes

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordDeliveryTimeout(DeliveryTimeout), kgo.ProducerBatchMaxBytes(BatchMaxBytes))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	var counted atomic.Int64
	p := NewProducer(cl, "", slog.New(slog.NewTextHandler(io.Discard, nil)), func(string, string) { counted.Add(1) })

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &kgo.Record{Topic: "orders", Partition: 0, Offset: 7, Key: []byte("k"), Value: []byte(`{"truncated":`)}
	returned := make(chan error, 1)
	go func() {
		returned <- p.Send(ctx, []decode.Rejection{{Record: rec, Class: decode.ClassDecode, Reason: "value is not valid JSON"}})
	}()
	require.Eventually(t, func() bool { return held.Load() > 0 }, 10*time.Second, 10*time.Millisecond,
		"the dead-letter produce reaches the broker")
	select {
	case err := <-returned:
		t.Fatalf("Send returned before any answer: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	cancel()
	select {
	case err := <-returned:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("Send still waits for the unanswered produce 2 s after its context ended")
	}
	assert.Zero(t, counted.Load(), "an unacknowledged letter is not counted")
}

// TestTopicFor: DLQ_TOPIC when set, else "<topic>.dlq".
func TestTopicFor(t *testing.T) {
	assert.Equal(t, "orders.dlq", TopicFor("", "orders"))
	assert.Equal(t, "all.dlq", TopicFor("all.dlq", "orders"))
}
