package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/sink/dlq"
)

// TestDeadLetterTopicCreation: at start-up the worker creates the missing
// dead-letter topic with the source topic's partition count; DLQ_TOPIC
// replaces <topic>.dlq for every source topic (created with the largest
// source's partition count), and a bad record of each source lands there,
// its headers naming its source.
func TestDeadLetterTopicCreation(t *testing.T) {
	t.Parallel()
	t.Run("<topic>.dlq with the source's partition count", func(t *testing.T) {
		t.Parallel()
		pool := db(t)
		topic, table, group := ownTopic(t, 3), uniq("t"), ownGroup(t, pool)
		dropTable(t, pool, table)
		w := startWorker(t, "w1", map[string]string{
			"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		})
		waitPartitions(t, topic+".dlq", 3)
		produce(t, topic, []rec{{key: "k", value: []byte("not JSON")}})
		waitApplied(t, pool, group, topic, 30*time.Second)
		w.stop()
		dead := readTopic(t, topic+".dlq")
		require.Len(t, dead, 1)
		source, _ := header(dead[0], dlq.HeaderTopic)
		assert.Equal(t, topic, source)
	})

	t.Run("DLQ_TOPIC overrides it for every source topic", func(t *testing.T) {
		t.Parallel()
		pool := db(t)
		small, large, group := ownTopic(t, 2), ownTopic(t, 5), ownGroup(t, pool)
		tableS, tableL, dlqTopic := uniq("t"), uniq("t"), uniq("dead")
		dropTable(t, pool, tableS)
		dropTable(t, pool, tableL)
		adm := admin(t)
		t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), dlqTopic) })
		w := startWorker(t, "w1", map[string]string{
			"KAFKA_TOPICS": small + "," + large, "KAFKA_GROUP": group,
			"SINK_TABLE_MAP": small + "=" + tableS + "," + large + "=" + tableL, "DLQ_TOPIC": dlqTopic,
		})
		waitPartitions(t, dlqTopic, 5) // the largest source topic's partition count
		for _, topic := range []string{small, large} {
			produce(t, topic, []rec{{key: "k", value: []byte("not JSON")}, {key: "k2", value: []byte(`{"ok":true}`)}})
		}
		waitApplied(t, pool, group, small, 30*time.Second)
		waitApplied(t, pool, group, large, 30*time.Second)
		w.stop()
		var sources []string
		for _, r := range readTopic(t, dlqTopic) {
			source, _ := header(r, dlq.HeaderTopic)
			sources = append(sources, source)
		}
		assert.ElementsMatch(t, []string{small, large}, sources, "one bad record of each source")
		assert.Equal(t, -1, partitionCount(t, small+".dlq"), "no <topic>.dlq with DLQ_TOPIC set")
		assert.Equal(t, -1, partitionCount(t, large+".dlq"), "no <topic>.dlq with DLQ_TOPIC set")
	})
}

// waitPartitions waits until the topic exists, which the worker's start-up
// created (the broker's metadata follows a creation within moments), and
// requires want partitions.
func waitPartitions(t *testing.T, topic string, want int) {
	t.Helper()
	n := -1
	require.Eventually(t, func() bool { n = partitionCount(t, topic); return n >= 0 }, 10*time.Second, 50*time.Millisecond,
		"%s was not created at start-up", topic)
	require.Equal(t, want, n, "partitions of %s", topic)
}

// partitionCount is the topic's number of partitions, -1 when it does not
// exist.
func partitionCount(t *testing.T, topic string) int {
	t.Helper()
	details, err := admin(t).ListTopics(t.Context(), topic)
	require.NoError(t, err)
	d, ok := details[topic]
	if !ok || d.Err != nil {
		return -1
	}
	return len(d.Partitions)
}
