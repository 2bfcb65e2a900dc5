package sink

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAlone: a worker is alone in its group (POOL_MAX_CONNS=auto's rule for
// a single writer) only when it holds every partition of every topic it
// consumes; an unknown partition count means not alone.
func TestAlone(t *testing.T) {
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
	assert.True(t, alone(t.Context(), both, 6), "every partition of a and b")
	assert.False(t, alone(t.Context(), both, 5), "one partition is another member's")
	assert.False(t, alone(t.Context(), both, 4), "all of a, none of b")
	assert.False(t, alone(t.Context(), both, 0), "nothing assigned")
	assert.True(t, alone(t.Context(), client("a"), 4))
	assert.False(t, alone(t.Context(), client("a", "missing"), 4), "a topic whose partitions are unknown")
}
