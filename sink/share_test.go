package sink

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupShare: a worker's share of its group's partitions is its
// assigned over every partition of the topics it consumes, 1 (alone:
// POOL_MAX_CONNS=auto's rule for a single writer) only when it holds them
// all; an unknown partition count means 0, unknown, never alone.
func TestGroupShare(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "a"), kfake.SeedTopics(2, "b"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	client := func(topics ...string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	both := client("a", "b")
	assert.Equal(t, 1.0, groupShare(t.Context(), both, 6), "every partition of a and b")
	assert.InDelta(t, 5.0/6, groupShare(t.Context(), both, 5), 1e-9, "one partition is another member's")
	assert.InDelta(t, 4.0/6, groupShare(t.Context(), both, 4), 1e-9, "all of a, none of b")
	assert.Zero(t, groupShare(t.Context(), both, 0), "nothing assigned")
	assert.Equal(t, 1.0, groupShare(t.Context(), client("a"), 4))
	assert.Zero(t, groupShare(t.Context(), client("a", "missing"), 4), "a topic whose partitions are unknown")
}
