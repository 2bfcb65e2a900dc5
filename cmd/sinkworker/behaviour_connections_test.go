package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConnectionsAtTheEdges: the connection bound
// max(1, min(assigned, POOL_MAX_CONNS)), and none without an assignment,
// at its edges, counted in pg_stat_activity by application_name while
// records flow.
func TestConnectionsAtTheEdges(t *testing.T) {
	t.Parallel()
	t.Run("more workers than partitions: the idle one holds no connection", func(t *testing.T) {
		t.Parallel()
		pool := db(t)
		topic, table, group := ownTopic(t, 2), uniq("t"), ownGroup(t, pool)
		dropTable(t, pool, table)
		env := map[string]string{
			"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
			"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "50",
		}
		workers := []*worker{startWorker(t, "w1", env), startWorker(t, "w2", env), startWorker(t, "w3", env)}
		assignment := func() (a []int, total int) {
			for _, w := range workers {
				n, err := w.assigned()
				if err != nil {
					return nil, -1
				}
				a, total = append(a, n), total+n
			}
			return a, total
		}
		require.Eventually(t, func() bool { // one partition each for two of them
			a, total := assignment()
			return total == 2 && max(a[0], a[1], a[2]) == 1
		}, time.Minute, 50*time.Millisecond)

		// Records flow for about 3 s while the test samples.
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
		require.NoError(t, err)
		defer cl.Close()
		produced := make(chan struct{})
		var produceErr error
		go func() {
			defer close(produced)
			for i, r := range workload(6000, 1000, 0, 4) {
				if produceErr = cl.ProduceSync(t.Context(), &kgo.Record{Key: []byte(r.key), Value: r.value}).FirstErr(); produceErr != nil {
					return
				}
				if i%300 == 299 {
					time.Sleep(150 * time.Millisecond)
				}
			}
		}()
		var idleSamples, violations int
		var peak [3]int
		for sampling := true; sampling; {
			select {
			case <-produced:
				sampling = false
			case <-time.After(20 * time.Millisecond):
			}
			before, _ := assignment()
			conns := make([]int, len(workers))
			for i, w := range workers {
				n, err := connections(t.Context(), pool, group, w.member)
				require.NoError(t, err)
				conns[i] = n
				peak[i] = max(peak[i], n)
			}
			after, _ := assignment()
			if len(before) != len(workers) || fmt.Sprint(before) != fmt.Sprint(after) {
				continue // a rebalance between the reads
			}
			for i, n := range conns {
				if before[i] == 0 {
					idleSamples++
				}
				if n > before[i] {
					if violations++; violations <= 3 {
						t.Logf("%s: %d connections with %d partitions", workers[i].member, n, before[i])
					}
				}
			}
		}
		require.NoError(t, produceErr)
		t.Logf("%d samples of an idle worker, %d violations, peak connections per worker %v", idleSamples, violations, peak)
		assert.Greater(t, idleSamples, 20, "an idle worker was sampled")
		assert.Zero(t, violations, "a worker held more connections than partitions")
		waitApplied(t, pool, group, topic, time.Minute)
		for _, w := range workers {
			w.stop()
		}
	})

	t.Run("POOL_MAX_CONNS below the assignment caps the worker", func(t *testing.T) {
		t.Parallel()
		pool := db(t)
		topic, table, group := ownTopic(t, 6), uniq("t"), ownGroup(t, pool)
		dropTable(t, pool, table)
		produce(t, topic, workload(30_000, 3000, 0, 6))
		w := startWorker(t, "w1", map[string]string{
			"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert",
			"SINK_TABLE_MAP": topic + "=" + table, "BATCH_MAX_RECORDS": "50", "POOL_MAX_CONNS": "2",
		})
		var samples, peak int
		end := endOffsets(t, topic)
		for {
			n, err := connections(t.Context(), pool, group, w.member)
			require.NoError(t, err)
			samples, peak = samples+1, max(peak, n)
			applied, err := appliedOffsets(t.Context(), pool, group, topic)
			require.NoError(t, err)
			if applied == end {
				break
			}
			require.Less(t, samples, 10_000, "the worker never caught up")
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%d samples, peak %d connections", samples, peak)
		assert.Equal(t, 6.0, w.series(t, "sinkworker_assigned_partitions", "", ""))
		assert.Equal(t, 2.0, w.series(t, "sinkworker_pool_connections", "state", "max_allowed"))
		assert.Equal(t, 2, peak, "six partitions share POOL_MAX_CONNS=2 connections, and use both")
		w.stop()
	})
}
