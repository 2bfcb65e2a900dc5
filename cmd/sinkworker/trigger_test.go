package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// A table whose trigger refuses rows, as users' tables have: a refusal of
// some records is theirs (dead-lettered), a refusal of every record is the
// trigger's (the partitions halt, nothing is dead-lettered).

// triggerTable creates the insert-mode table of topic with a BEFORE INSERT
// trigger that raises (SQLSTATE P0001) for every row whose value's n
// satisfies cond, a SQL condition over n.
func triggerTable(t *testing.T, pool *pgxpool.Pool, topic, cond string) string {
	t.Helper()
	table := postgres.TableName(topic)
	dropTable(t, pool, table)
	id := pgx.Identifier{table}.Sanitize()
	fn := pgx.Identifier{table + "_reject"}.Sanitize()
	for _, s := range []string{
		`CREATE TABLE ` + id + ` (kafka_topic text NOT NULL, kafka_partition int NOT NULL, kafka_offset bigint NOT NULL,
			key text, value jsonb, kafka_timestamp timestamptz, PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset))`,
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n int := (NEW.value->>'n')::int;
BEGIN
	IF ` + cond + ` THEN
		RAISE EXCEPTION 'order % refused', n;
	END IF;
	RETURN NEW;
END $$`,
		`CREATE TRIGGER refuse BEFORE INSERT ON ` + id + ` FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
	} {
		_, err := pool.Exec(t.Context(), s)
		require.NoError(t, err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(t.Context(), `DROP FUNCTION IF EXISTS `+fn+` CASCADE`) })
	return table
}

func numbered(n int) []rec {
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{key: fmt.Sprintf("order-%d", i), value: fmt.Appendf(nil, `{"n": %d}`, i)}
	}
	return out
}

func TestTriggerRejectionsAreDeadLettered(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic := newTopic(t, 2)
	table := triggerTable(t, pool, topic, `n % 1000 = 7`)
	produce(t, topic, numbered(6000))

	group := uniq("g")
	w := startWorker(t, uniq("w"), map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MODE": "insert"})
	waitApplied(t, pool, group, topic, 2*time.Minute) // both partitions move past the refused records

	var rows int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&rows))
	assert.Equal(t, 5994, rows, "every record but the six refused lands")
	dead := readTopic(t, topic+".dlq")
	require.Len(t, dead, 6)
	for _, r := range dead {
		class, _ := header(r, dlq.HeaderClass)
		assert.Equal(t, decode.ClassRejected, class)
		msg, _ := header(r, dlq.HeaderMessage)
		assert.Contains(t, msg, "P0001")
		assert.Contains(t, string(r.Value), `7}`, "only records whose n ends in 007 are refused")
	}
	assert.Equal(t, http.StatusOK, readyz(t, w))
	logs, err := os.ReadFile(w.logs)
	require.NoError(t, err)
	assert.NotContains(t, string(logs), "refused", "the trigger's message may quote the row: never in a log line")
}

func TestBrokenTriggerHaltsWithoutDeadLetters(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic := newTopic(t, 2)
	table := triggerTable(t, pool, topic, `true`)
	produce(t, topic, numbered(3000))

	w := startWorker(t, uniq("w"), map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": uniq("g"), "SINK_MODE": "insert"})
	require.Eventually(t, func() bool {
		logs, _ := os.ReadFile(w.logs)
		return strings.Count(string(logs), "systemic database rejection") == 2
	}, 2*time.Minute, 200*time.Millisecond, "both partitions halt")

	assert.Equal(t, http.StatusServiceUnavailable, readyz(t, w), "a halted partition is not ready")
	assert.EqualValues(t, 2, sum(w.scrape(t), "sinkworker_halted_partitions", "", ""))
	var rows, advanced int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&rows))
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*) FROM sink_offsets WHERE topic = $1 AND next_offset > 0`, topic).Scan(&advanced))
	assert.Zero(t, rows)
	assert.Zero(t, advanced, "no offset moves past a record that was neither applied nor dead-lettered")
	assert.Empty(t, readTopic(t, topic+".dlq"), "a broken trigger does not drain the topic into the dead-letter topic")
	logs, err := os.ReadFile(w.logs)
	require.NoError(t, err)
	assert.Contains(t, string(logs), "P0001")
	assert.NotContains(t, string(logs), "refused", "the trigger's message may quote the row: never in a log line")
}

// readyz is the worker's /readyz status code.
func readyz(t *testing.T, w *worker) int {
	t.Helper()
	resp, err := http.Get("http://" + w.addr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}
