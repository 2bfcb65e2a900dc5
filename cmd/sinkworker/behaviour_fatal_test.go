package main

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink"
)

// TestFatalErrorAtRunTime: a running worker whose table is dropped, or whose
// role loses INSERT on it, stops with exit status 1 and the database's
// message (SQLSTATE class 42), instead of retrying forever or sending the
// records to the dead-letter topic; its offsets stay where they were. The
// worker runs as a least-privilege role, as the README's Security section
// sets one up.
func TestFatalErrorAtRunTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sqlstate, want string
		stmt                 func(table pgx.Identifier, role string) string
	}{
		{"table dropped", "42P01", "does not exist",
			func(table pgx.Identifier, _ string) string { return "DROP TABLE " + table.Sanitize() }},
		{"INSERT revoked", "42501", "permission denied",
			func(table pgx.Identifier, role string) string {
				return "REVOKE INSERT ON " + table.Sanitize() + " FROM " + pgx.Identifier{role}.Sanitize()
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			schema := ownSchema(t, pool, uniq("fatal"), "")
			role, password := uniq("fatal_role"), "pw-"+uniq("f")
			ownRole(t, pool, role, password)
			topic, group := ownTopic(t, 1), ownGroup(t, pool)
			table, offsets := pgx.Identifier{schema[0], "events"}, pgx.Identifier{schema[0], "offsets"}
			cfg := sink.Config{Topics: []string{topic}, TableMap: map[string]string{topic: schema[0] + ".events"},
				Mode: sink.ModeUpsert, Mapping: sink.MappingJSONB, OffsetsTable: schema[0] + ".offsets"}
			require.NoError(t, sink.EnsureTables(t.Context(), pool, cfg))
			roleID := pgx.Identifier{role}.Sanitize()
			adminExec(t, pool,
				"GRANT USAGE ON SCHEMA "+schema.Sanitize()+" TO "+roleID,
				"GRANT SELECT, INSERT, UPDATE, DELETE ON "+table.Sanitize()+", "+offsets.Sanitize()+" TO "+roleID)

			w := startWorker(t, "w1", map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + schema[0] + ".events",
				"SINK_OFFSETS_TABLE": schema[0] + ".offsets", "DATABASE_URL": dsn(t, role, password, nil),
			})
			const n = 20
			produce(t, topic, workload(n, 1000, 0, 1))
			waitOffsets(t, pool, offsets, group, topic, time.Minute)

			adminExec(t, pool, tc.stmt(table, role))
			produce(t, topic, workload(n, 1000, 0, 2))
			code := w.waitExit(t, time.Minute)
			assert.Equal(t, 1, code, "exit status")
			msg := testenv.LogField(w.logs, "stopped on error", "err")
			t.Logf("stopped on error: %s", msg)
			assert.Contains(t, msg, tc.sqlstate)
			assert.Contains(t, msg, tc.want)
			assert.NotContains(t, testenv.Tail(w.logs, 100), "transient error", "not retried as an outage")
			assert.Zero(t, dlqCount(t, topic+".dlq"), "nothing dead-lettered")
			var next int64
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT next_offset FROM `+offsets.Sanitize()+
				` WHERE consumer_group = $1`, group).Scan(&next))
			assert.Equal(t, int64(n), next, "the offset did not move past the records not written")
		})
	}
}
