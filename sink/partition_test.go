package sink

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
)

// TestBufferShareBoundsHeldRecords: a partition pauses its fetching when the
// records it holds (queued, batched or being written) reach its share of
// SINK_BUFFER_MAX_BYTES, even far below two batches' worth; with nothing
// more to come its batch is written without waiting for BATCH_LINGER; and
// fetching resumes once the written records are released.
func TestBufferShareBoundsHeldRecords(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumeTopics("t")) // never dialled
	require.NoError(t, err)
	defer cl.Close()
	w := &Worker{cl: cl, log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{
		Batch: batch.Policy{MaxRecords: 5000, MaxBytes: 4 << 20, Linger: time.Hour},
	}}
	p := newPartition(w, "t", 3)
	paused := func() bool { return len(cl.PauseFetchPartitions(nil)["t"]) == 1 }

	value := make([]byte, 744) // heldSize 1000 with a 0-byte key
	recs := func(from, n int) []*kgo.Record {
		out := make([]*kgo.Record, n)
		for i := range out {
			out[i] = &kgo.Record{Topic: "t", Partition: 3, Offset: int64(from + i), Value: value}
		}
		return out
	}
	require.Equal(t, 1000, heldSize(recs(0, 1)[0]))

	const share = 50_000 // 50 records, far below two batches (10,000 records)
	p.offer(recs(0, 30), 100, share)
	assert.False(t, paused(), "30 KB held of a 50 KB share")
	p.offer(recs(30, 30), 100, share)
	assert.True(t, paused(), "60 KB held: over the share")

	b := batch.New(w.cfg.Batch)
	assert.True(t, p.fill(b), "paused with nothing queued: write now, not after an hour's linger")
	assert.Equal(t, 60, b.Len())
	assert.True(t, paused(), "records in the batch still count until written")

	written := b.Take()
	p.release(written[:20])
	assert.True(t, paused(), "40 KB still held, over half the share")
	p.release(written[20:])
	assert.False(t, paused(), "everything written: fetching resumes")
	assert.Zero(t, p.held)

	// Two batches' worth still pauses on its own when the share is large.
	p.offer(recs(60, 10_000), 100, 1<<40)
	assert.True(t, paused(), "two batches queued")
	assert.False(t, p.fill(b), "a full batch and more queued: not starved")
	assert.Equal(t, 5000, b.Len())
}

// TestLingerCountsFromArrival: BATCH_LINGER counts from when a batch's
// first record was handed to the partition, not from when the partition's
// goroutine took it from the queue: records that came while the previous
// batch was being written are due as soon as the write ends if they have
// waited the linger already. A batch of records from several hand-overs
// takes the oldest one's time.
func TestLingerCountsFromArrival(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumeTopics("t")) // never dialled
	require.NoError(t, err)
	defer cl.Close()
	const linger = 200 * time.Millisecond
	w := &Worker{cl: cl, log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{
		Batch: batch.Policy{MaxRecords: 4, MaxBytes: 4 << 20, Linger: linger},
	}}
	p := newPartition(w, "t", 0)
	recs := func(from, n int) []*kgo.Record {
		out := make([]*kgo.Record, n)
		for i := range out {
			out[i] = &kgo.Record{Topic: "t", Offset: int64(from + i), Value: []byte("{}")}
		}
		return out
	}
	first := time.Now()
	p.offer(recs(0, 3), 100, 1<<30)
	time.Sleep(linger + 50*time.Millisecond) // the previous batch's write
	second := time.Now()
	p.offer(recs(3, 3), 100, 1<<30)

	b := batch.New(w.cfg.Batch)
	p.fill(b)
	require.Equal(t, 4, b.Len(), "three of the first hand-over, one of the second")
	assert.True(t, b.Due(time.Now()), "its first record has waited the linger already")
	d, _ := b.Deadline()
	assert.WithinRange(t, d, first.Add(linger), second.Add(linger), "due a linger after the first hand-over")

	b.Take()
	p.fill(b)
	require.Equal(t, 2, b.Len(), "the rest of the second hand-over")
	d, _ = b.Deadline()
	assert.False(t, d.Before(second.Add(linger)), "the second batch counts from the second hand-over")
	assert.Empty(t, p.runs, "nothing queued, nothing remembered")
}
