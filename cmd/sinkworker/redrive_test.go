package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedrive: records rejected by a CHECK constraint are dead-lettered;
// once the constraint is dropped, `sinkworker redrive` lands them, skips a
// key that has newer data since, reports the record that fails again, and
// a second run lands nothing twice.
func TestRedrive(t *testing.T) {
	pool := db(t)
	topic, table, group := newTopic(t, 2), uniq("t"), uniq("g")
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

	env := map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table}
	w := startWorker(t, "w1", env)
	waitApplied(t, pool, group, topic, time.Minute)
	// In the same batch the good record would simply supersede the bad one.
	produce(t, topic, []rec{{key: "k5", value: val(50)}})
	waitApplied(t, pool, group, topic, time.Minute)
	w.stop()
	require.EqualValues(t, 12, dlqCount(t, topic+".dlq"))

	_, err = pool.Exec(t.Context(), `ALTER TABLE `+ident+` DROP CONSTRAINT n_not_negative`)
	require.NoError(t, err)

	redrive := func() (string, int) {
		cmd := exec.Command(binary, "redrive")
		cmd.Env = append(os.Environ(), "SINK_MEMBER=redrive", "KAFKA_TOPICS="+topic, "KAFKA_GROUP="+group,
			"SINK_TABLE_MAP="+topic+"="+table)
		out, err := cmd.Output()
		var exit *exec.ExitError
		if err != nil {
			require.ErrorAs(t, err, &exit)
			return string(out), exit.ExitCode()
		}
		return string(out), 0
	}
	out, code := redrive()
	assert.Equal(t, 1, code, "one record failed again")
	assert.Contains(t, out, "read 12, landed 10, skipped 1 (already there or newer), failed again 1")
	assert.Contains(t, out, "failed again, decode: 1")

	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+ident+` WHERE key LIKE 'bad-%' AND value->>'n' = '-1'`).Scan(&n))
	assert.Equal(t, 10, n, "the fixed records landed")
	var k5 string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT value->>'n' FROM `+ident+` WHERE key = 'k5'`).Scan(&k5))
	assert.Equal(t, "50", k5, "redrive never overwrites newer data")

	out, code = redrive()
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "read 12, landed 0, skipped 11 (already there or newer), failed again 1", "a second run lands nothing twice")
}
