package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestRedrive: records rejected by a CHECK constraint are dead-lettered;
// once the constraint is dropped, `sinkworker redrive` lands them with
// their source record's timestamp, skips a key that has newer data since,
// reports the record that fails again, and a second run lands nothing
// twice.
func TestRedrive(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 2), uniq("t"), uniq("g")
	t.Cleanup(func() {
		_, _ = admin(t).DeleteTopics(context.Background(), topic+".dlq")
		_, _ = pool.Exec(context.Background(), `DELETE FROM sink_offsets WHERE consumer_group = $1`, group)
	})
	dropTable(t, pool, table)
	ident := pgx.Identifier{table}.Sanitize()
	_, err := pool.Exec(t.Context(), `CREATE TABLE `+ident+` (key text PRIMARY KEY, value jsonb NOT NULL,
kafka_partition int, kafka_offset bigint, kafka_timestamp timestamptz, updated_at timestamptz,
CONSTRAINT n_not_negative CHECK ((value->>'n')::int >= 0))`)
	require.NoError(t, err)

	var recs []rec
	val := func(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }
	for i := range 100 {
		recs = append(recs, rec{key: fmt.Sprintf("k%d", i), value: val(i)})
	}
	for i := range 10 {
		recs = append(recs, rec{key: fmt.Sprintf("bad-%d", i), value: val(-1)})
	}
	recs = append(recs,
		rec{key: "k5", value: val(-5)},             // rejected; a newer good record follows in a later batch
		rec{key: "broken", value: []byte(`{"n":`)}, // fails again after the fix
	)
	produce(t, topic, recs)
	// An hour old, so the dead-letter topic's own timestamp (the time of
	// dead-lettering) cannot pass for it.
	stamp := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	produceAt(t, topic, "stamped", val(-7), stamp)

	env := map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table}
	w := startWorker(t, "w1", env)
	waitApplied(t, pool, group, topic, time.Minute)
	// In the same batch the good record would simply supersede the bad one.
	produce(t, topic, []rec{{key: "k5", value: val(50)}})
	waitApplied(t, pool, group, topic, time.Minute)
	w.stop()
	require.EqualValues(t, 13, dlqCount(t, topic+".dlq"))

	_, err = pool.Exec(t.Context(), `ALTER TABLE `+ident+` DROP CONSTRAINT n_not_negative`)
	require.NoError(t, err)

	out, _, code := redriveCmd(t, env)
	assert.Equal(t, 1, code, "one record failed again")
	assert.Contains(t, out, "read 13, landed 11, skipped 1 (already there or newer), other topics 0, failed again 1")
	assert.Contains(t, out, "failed again, decode: 1")

	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+ident+` WHERE key LIKE 'bad-%' AND value->>'n' = '-1'`).Scan(&n))
	assert.Equal(t, 10, n, "the fixed records landed")
	var k5 string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT value->>'n' FROM `+ident+` WHERE key = 'k5'`).Scan(&k5))
	assert.Equal(t, "50", k5, "redrive never overwrites newer data")
	var ts time.Time
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT kafka_timestamp FROM `+ident+` WHERE key = 'stamped'`).Scan(&ts))
	assert.True(t, stamp.Equal(ts), "a redriven row keeps its source record's timestamp %v, not %v", stamp, ts)

	out, _, code = redriveCmd(t, env)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "read 13, landed 0, skipped 12 (already there or newer), other topics 0, failed again 1", "a second run lands nothing twice")
}

// produceAt produces one record with the given timestamp and waits for the ack.
func produceAt(t *testing.T, topic, key string, value []byte, ts time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Timestamp: ts}).FirstErr())
}

// redriveCmd runs `sinkworker redrive` with the services and settings, and
// returns its standard output, its log and its exit status. It fails the
// test if the command has not ended within a minute.
func redriveCmd(t *testing.T, settings map[string]string) (out, log string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "redrive")
	cmd.Env = testenv.ProcessEnv(map[string]string{
		"KAFKA_BROKERS": strings.Join(brokers, ","), "DATABASE_URL": dbURL, "SINK_MEMBER": "redrive",
	}, settings)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "redrive did not end within a minute; its output:\n%s\n%s", stdout.String(), stderr.String())
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		code = exit.ExitCode()
	}
	t.Logf("redrive exit %d:\n%s", code, stdout.String())
	return stdout.String(), stderr.String(), code
}
