package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
)

// largeBytes is the size of each oversized value and key: over the default
// SINK_MAX_RECORD_BYTES (4 MiB), under the source topic's 8 MB limit, and
// over the default 1 MiB limit of a topic and of franz-go's producer.
const largeBytes = 5 << 20

// TestDeadLetterLargeRecords: a topic that allows 8 MB records carries three
// 5 MiB values and one 5 MiB key among normal records, and three invalid
// JSON values of 400 KB under one key. The worker fetches them with its
// 256 KiB per-partition fetch size, every normal record lands, and the
// others are dead-lettered (too_large, decode):
//   - "created": the worker creates the dead-letter topic with a limit of
//     at least the source topic's, and every letter keeps key and value;
//   - "existing 1 MiB": the dead-letter topic exists with max.message.bytes
//     1 MiB; the too_large letters arrive without their values (and
//     without the huge key), with headers giving the dropped sizes, and the
//     partitions move on. The 400 KB letters fit the topic one by one
//     though not together, and keep their values.
func TestDeadLetterLargeRecords(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dlqLimit int // max.message.bytes of a pre-created dead-letter topic; 0: the worker creates it
	}{
		{"created", 0},
		{"existing 1 MiB", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) { runLargeDeadLetters(t, tc.dlqLimit) })
	}
}

func runLargeDeadLetters(t *testing.T, dlqLimit int) {
	const normal, partitions, sourceLimit = 300, 2, 8 << 20
	pool := db(t)
	topic, table, group := uniq("e2e"), uniq("t"), uniq("g")
	dlqTopic := topic + ".dlq"
	adm := admin(t)
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic, dlqTopic) })
	dropTable(t, pool, table)
	createTopicWithLimit(t, topic, partitions, sourceLimit)
	if dlqLimit > 0 {
		createTopicWithLimit(t, dlqTopic, partitions, dlqLimit)
	}

	// Normal records k-0..k-299 with the bad ones in between.
	var recs []*kgo.Record
	for i := range normal {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k-%d", i), Value: fmt.Appendf(nil, `{"i":%d}`, i)})
		switch i {
		case 75, 150, 225:
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "big-%d", i), Value: incompressibleJSON(t, largeBytes)})
		case 280:
			recs = append(recs, &kgo.Record{Key: incompressibleKey(t, largeBytes), Value: []byte(`{"huge":"key"}`)})
		case 100:
			for range 3 { // one key: one partition, consecutive offsets, one batch of letters
				v := incompressibleJSON(t, 400_000)
				recs = append(recs, &kgo.Record{Key: []byte("mid"), Value: v[:len(v)-1]}) // invalid JSON
			}
		}
	}
	// No compression: the source batches really are over 1 MB, as the
	// broker measures them.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(sourceLimit))
	require.NoError(t, err)
	res := cl.ProduceSync(t.Context(), recs...)
	cl.Close()
	require.NoError(t, res.FirstErr())
	bad := map[coord]*kgo.Record{}
	for _, r := range res {
		if len(r.Record.Key)+len(r.Record.Value) > 100_000 {
			bad[coord{r.Record.Partition, r.Record.Offset}] = r.Record
		}
	}
	require.Len(t, bad, 7)

	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
	})
	want := endOffsets(t, topic)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := appliedOffsets(t.Context(), pool, group, topic)
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions stuck: applied offsets %d of %d after 2 min, %d dead letters", got, want, dlqCount(t, dlqTopic))
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.stop()

	var rows int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+
		" WHERE key LIKE 'k-%'").Scan(&rows))
	assert.Equal(t, normal, rows, "every normal record landed")
	if dlqLimit == 0 {
		configs, err := adm.DescribeTopicConfigs(t.Context(), dlqTopic)
		require.NoError(t, err)
		c, err := configs.On(dlqTopic, nil)
		require.NoError(t, err)
		for _, kv := range c.Configs {
			if kv.Key == "max.message.bytes" {
				require.NotNil(t, kv.Value)
				limit, err := strconv.Atoi(*kv.Value)
				require.NoError(t, err)
				assert.GreaterOrEqual(t, limit, sourceLimit, "the created dead-letter topic takes what the source topic takes")
			}
		}
	}

	dead := map[coord]*kgo.Record{}
	for _, d := range readTopic(t, dlqTopic) {
		p, _ := header(d, dlq.HeaderPartition)
		o, _ := header(d, dlq.HeaderOffset)
		pi, err1 := strconv.ParseInt(p, 10, 32)
		oi, err2 := strconv.ParseInt(o, 10, 64)
		require.NoError(t, err1)
		require.NoError(t, err2)
		dead[coord{int32(pi), oi}] = d // at least once: a repeat is the same letter
	}
	require.Len(t, dead, len(bad), "exactly the bad records are dead-lettered")
	for c, src := range bad {
		d := dead[c]
		require.NotNil(t, d, "record %v dead-lettered", c)
		class, _ := header(d, dlq.HeaderClass)
		valueDropped, vOK := header(d, dlq.HeaderValueDropped)
		keyDropped, kOK := header(d, dlq.HeaderKeyDropped)
		if string(src.Key) == "mid" || dlqLimit == 0 {
			wantClass := decode.ClassTooLarge
			if string(src.Key) == "mid" {
				wantClass = decode.ClassDecode
			}
			assert.Equal(t, wantClass, class, "record %v", c)
			assert.True(t, sameBytes(src.Value, d.Value), "record %v: the value is kept", c)
			assert.True(t, sameBytes(src.Key, d.Key), "record %v: the key is kept", c)
			assert.False(t, vOK || kOK, "record %v: nothing dropped", c)
			continue
		}
		assert.Equal(t, decode.ClassTooLarge, class, "record %v", c)
		assert.Empty(t, d.Value, "record %v: the value is dropped", c)
		assert.NotNil(t, d.Value, "record %v: an empty value, not null: no tool may read it as a tombstone", c)
		assert.True(t, vOK, "record %v: %s header", c, dlq.HeaderValueDropped)
		assert.Equal(t, strconv.Itoa(len(src.Value)), valueDropped, "record %v: the value's original size", c)
		if len(src.Key) > largeBytes/2 {
			assert.Empty(t, d.Key, "record %v: the huge key is dropped too", c)
			assert.Equal(t, strconv.Itoa(len(src.Key)), keyDropped, "record %v: the key's original size", c)
		} else {
			assert.True(t, bytes.Equal(src.Key, d.Key), "record %v: a small key is kept", c)
			assert.False(t, kOK, "record %v: no %s header", c, dlq.HeaderKeyDropped)
		}
	}
}

// createTopicWithLimit creates topic with max.message.bytes = limit.
func createTopicWithLimit(t *testing.T, topic string, partitions int32, limit int) {
	t.Helper()
	v := strconv.Itoa(limit)
	resp, err := admin(t).CreateTopic(t.Context(), partitions, 1, map[string]*string{"max.message.bytes": &v}, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// incompressibleJSON is a JSON object of n bytes whose content compression
// cannot shrink, so that no codec brings it under a size limit.
func incompressibleJSON(t *testing.T, n int) []byte {
	t.Helper()
	const frame = len(`{"pad":""}`)
	return []byte(`{"pad":"` + string(incompressibleKey(t, n-frame)) + `"}`)
}

// incompressibleKey is n bytes of random hex digits.
func incompressibleKey(t *testing.T, n int) []byte {
	t.Helper()
	raw := make([]byte, (n+1)/2)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	return []byte(hex.EncodeToString(raw)[:n])
}
