package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestTopicsRegexCollision: under KAFKA_TOPICS_REGEX two matching topics
// that SINK_TABLE_FORMAT maps to one upsert table are a bad setting even
// when each is assigned to a different member: the member assigned the
// second topic checks its table against every topic its pattern matches on
// the brokers, not only the topics it was assigned, and stops (ErrConfig)
// naming both topics before writing a row of it. w1's pattern matches only
// the first topic, so the second can go only to w2 and the first stays on
// w1 (the balanced assignment): the collision exists only across members.
func TestTopicsRegexCollision(t *testing.T) {
	t.Parallel()
	pool := db(t)
	prefix := strings.ToLower(uniq("rxc"))
	group := ownGroup(t, pool)
	create := func(name string) {
		t.Helper()
		resp, err := admin(t).CreateTopic(t.Context(), 1, 1, nil, name)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		cleanTopic(t, name)
	}
	// Two schemas with a table of one name: ${source.table} is "events" for both.
	first, second, table := prefix+".s1.events", prefix+".s2.events", prefix+"_events"
	dropTable(t, pool, table)
	create(first)
	produce(t, first, []rec{{key: "k1", value: []byte(`{"from":"s1"}`)}})
	env := func(pattern string) map[string]string {
		return map[string]string{"KAFKA_TOPICS_REGEX": pattern, "KAFKA_GROUP": group, "SINK_TABLE_FORMAT": prefix + "_${source.table}"}
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	w1 := startWorker(t, "w1", env(regexp.QuoteMeta(first)))
	require.Eventually(t, func() bool { return count() == 1 }, 30*time.Second, 100*time.Millisecond, "w1 sinks the first topic")

	create(second)
	produce(t, second, []rec{{key: "k1", value: []byte(`{"from":"s2"}`)}})
	w2 := startWorker(t, "w2", env(regexp.QuoteMeta(prefix)+`\..*`))
	assert.Equal(t, 2, w2.waitExit(t, 60*time.Second), "w2 stops: a bad setting")
	msg := testenv.LogField(w2.logs, "stopped on error", "err")
	assert.Contains(t, msg, "invalid configuration", "a bad setting (ErrConfig)")
	for _, want := range []string{`"` + first + `"`, `"` + second + `"`, "both sink into table"} {
		assert.Contains(t, msg, want)
	}
	var from string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT value->>'from' FROM `+pgx.Identifier{table}.Sanitize()).Scan(&from))
	assert.Equal(t, "s1", from, "the second topic never overwrote the first one's row")
	var applied int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM sink_offsets WHERE consumer_group = $1 AND topic = $2`,
		group, second).Scan(&applied))
	assert.Zero(t, applied, "no batch of the second topic was committed")
	w1.stop()
}
