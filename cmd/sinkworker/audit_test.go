package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/audit"
)

// auditRows runs `sinkworker audit -json` for the topic and group.
func auditRows(t *testing.T, topic, group, table string) (rows map[int32]audit.Row, consistent bool, code int) {
	t.Helper()
	cmd := exec.Command(binary, "audit", "-json")
	cmd.Env = testenv.ProcessEnv(map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "DATABASE_URL": dbURL,
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table})
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "audit: %s", out)
		code = exit.ExitCode()
	}
	var doc struct {
		Consistent bool        `json:"consistent"`
		Partitions []audit.Row `json:"partitions"`
	}
	require.NoError(t, json.Unmarshal(out, &doc), "audit output: %s", out)
	rows = map[int32]audit.Row{}
	for _, r := range doc.Partitions {
		rows[r.Partition] = r
	}
	return rows, doc.Consistent, code
}

// TestAudit: consistent after a drain; then records deleted from the log
// before they were sunk (what retention does) and a database offset beyond
// the log end (a recreated topic) are flagged, with exit status 1.
func TestAudit(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 3), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	produce(t, topic, workload(3_000, 300, 0, 5))
	w := startWorker(t, "w1", map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table})
	waitApplied(t, pool, group, topic, time.Minute)
	w.stop()

	rows, consistent, code := auditRows(t, topic, group, table)
	require.Len(t, rows, 3)
	assert.True(t, consistent)
	assert.Equal(t, 0, code)
	for p, r := range rows {
		assert.Equal(t, r.LogEnd, r.DBNextOffset, "partition %d fully sunk", p)
		assert.Equal(t, r.DBNextOffset, r.KafkaCommitted, "partition %d: Kafka's copy caught up", p)
		assert.Zero(t, r.Lag)
		assert.Empty(t, r.Problem)
	}

	// Partition 0: records the sink never saw are deleted from the log.
	produce(t, topic, workload(3_000, 300, 0, 6))
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	end0, _ := ends.Lookup(topic, 0)
	require.Greater(t, end0.Offset, rows[0].DBNextOffset)
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topic, Partition: 0, At: end0.Offset})
	resp, err := admin(t).DeleteRecords(t.Context(), del)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	// Partition 1: the database claims more than the log holds.
	_, err = pool.Exec(t.Context(), `UPDATE sink_offsets SET next_offset = next_offset + 1000000
WHERE consumer_group = $1 AND topic = $2 AND partition = 1`, group, topic)
	require.NoError(t, err)

	rows, consistent, code = auditRows(t, topic, group, table)
	assert.False(t, consistent)
	assert.Equal(t, 1, code)
	assert.Contains(t, rows[0].Problem, "below the log start")
	assert.Contains(t, rows[1].Problem, "beyond the log end")
	assert.Empty(t, rows[2].Problem, "partition 2 is only behind, which is not a problem")
	assert.Positive(t, rows[2].Lag)
}
