package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTopicsRegex: KAFKA_TOPICS_REGEX sinks every topic whose whole name
// matches, a topic created while the worker runs included, each into the
// table SINK_TABLE_FORMAT names from Debezium's <prefix>.<schema>.<table>
// topic names; a topic that only contains a match, and the dead-letter
// topics the pattern also matches, are never consumed.
func TestTopicsRegex(t *testing.T) {
	t.Parallel()
	pool := db(t)
	prefix := strings.ToLower(uniq("rx"))
	group := ownGroup(t, pool)
	create := func(name string) {
		t.Helper()
		resp, err := admin(t).CreateTopic(t.Context(), 2, 1, nil, name)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		cleanTopic(t, name)
	}
	users, orders, outside := prefix+".public.users", prefix+".public.orders", "x"+prefix+".public.users"
	create(users)
	create(outside)
	for _, tb := range []string{"users", "orders", "dlq"} {
		dropTable(t, pool, prefix+"_"+tb)
	}
	produce(t, users, []rec{{key: "u1", value: []byte(`{"n":1}`)}, {key: "u2", value: []byte(`{"n":2}`)}, {key: "bad", value: []byte(`{`)}})
	produce(t, outside, []rec{{key: "o", value: []byte(`{"n":0}`)}})

	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS_REGEX": regexp.QuoteMeta(prefix) + `\.public\..*`, "KAFKA_GROUP": group,
		"SINK_TABLE_FORMAT": prefix + "_${source.table}",
	})
	count := func(table string) int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			return -1 // not created yet
		}
		return n
	}
	require.Eventually(t, func() bool { return count(prefix+"_users") == 2 }, 30*time.Second, 100*time.Millisecond,
		"users sinks into %s_users", prefix)

	create(orders)
	produce(t, orders, []rec{{key: "o1", value: []byte(`{"total":5}`)}})
	start := time.Now()
	require.Eventually(t, func() bool { return count(prefix+"_orders") == 1 }, 60*time.Second, 200*time.Millisecond,
		"a topic created while the worker runs is picked up")
	t.Logf("a new matching topic was sunk %s after it was created", time.Since(start).Round(100*time.Millisecond))
	waitApplied(t, pool, group, users, 30*time.Second)

	assert.EqualValues(t, 1, dlqCount(t, users+".dlq"), "the bad record is dead-lettered")
	time.Sleep(2 * time.Second) // a consumed dead-letter topic would have made a table by now
	assert.Equal(t, -1, count(prefix+"_dlq"), "the dead-letter topic matches the pattern but is never consumed")
	var outsideRows int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM sink_offsets WHERE consumer_group = $1 AND topic = $2`,
		group, outside).Scan(&outsideRows))
	assert.Zero(t, outsideRows, "a topic whose name only contains a match is not consumed")
	w.stop()
}
