package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOutbox runs the whole example at a small size against the real
// pipeline (scripts/services and scripts/cdc): 2,000 committed signups, 10%
// of attempts rolled back, a worker SIGKILL and a Kafka Connect restart
// while events flow. users, points and the committed signups must be the
// same number and reconcile must say equal: no rolled-back event escaped,
// none was lost, none landed twice.
func TestOutbox(t *testing.T) {
	env := Env{
		KafkaBrokers: os.Getenv("KAFKA_BROKERS"), TargetURL: os.Getenv("DATABASE_URL"),
		SourceURL: os.Getenv("SOURCE_DATABASE_URL"), KafkaConnectURL: os.Getenv("KAFKA_CONNECT_URL"),
	}
	for name, v := range map[string]string{"KAFKA_BROKERS": env.KafkaBrokers, "DATABASE_URL": env.TargetURL,
		"SOURCE_DATABASE_URL": env.SourceURL, "KAFKA_CONNECT_URL": env.KafkaConnectURL} {
		if v == "" {
			t.Fatalf("%s is not set: eval \"$(scripts/services env)\" && eval \"$(scripts/cdc env)\" (scripts/cdc up starts the pipeline)", name)
		}
	}
	c := Config{
		Env: env, Users: 2000, RollbackPct: 10, Clients: 4,
		// ~6 s of signups: the kill and the restart land while events flow.
		Rate: 400, Partitions: 3, KillWorker: true, RestartConnect: true, DrainTimeout: 2 * time.Minute,
	}
	require.NoError(t, c.Validate())
	var out, log bytes.Buffer
	r, err := Run(t.Context(), c, &out, &log)
	t.Logf("progress:\n%s\nreport:\n%s", log.String(), out.String())
	require.NoError(t, err)

	attempts := int64(len(plan(c.Users, c.RollbackPct)))
	assert.Equal(t, c.Users, r.Committed, "committed signups")
	assert.Equal(t, attempts-c.Users, r.RolledBack, "rolled-back signups")
	assert.Greater(t, r.RolledBack, int64(100), "about 10% of ~2,200 attempts roll back")
	assert.Equal(t, r.Committed, r.Users, "users rows")
	assert.Equal(t, r.Committed, r.Points, "points rows: never one more")
	assert.GreaterOrEqual(t, r.TopicRecords, r.Committed, "every committed event is in the topic")
	assert.Equal(t, 1, r.WorkerKills)
	assert.Equal(t, 1, r.ConnectRestarts)
	assert.Equal(t, 0, r.ReconcileExit, "sinkworker reconcile exit status")
	require.NotNil(t, r.Reconcile)
	assert.True(t, r.Reconcile.Equal)
	assert.Zero(t, r.Reconcile.MissingCount)
	assert.Zero(t, r.Reconcile.ExtraCount)
	assert.Equal(t, c.Users, r.Reconcile.SourceRows)
	assert.Equal(t, c.Users, r.Reconcile.TargetRows)
	assert.True(t, r.Agree())
	assert.Contains(t, out.String(), "users == points == 2000 committed signups")
}

// TestPlan: the plan commits exactly the asked number, rolls back about the
// asked share, is the same every time, and ends on a commit.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users int64
		pct   float64
	}{{"none", 1000, 0}, {"ten", 100000, 10}, {"half", 10000, 50}} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(tc.users, tc.pct)
			var rb int64
			for _, r := range p {
				if r {
					rb++
				}
			}
			assert.Equal(t, tc.users, int64(len(p))-rb)
			assert.InDelta(t, tc.pct, 100*float64(rb)/float64(len(p)), 1.5)
			assert.False(t, p[len(p)-1], "the last attempt commits")
			assert.Equal(t, p, plan(tc.users, tc.pct))
		})
	}
}

// TestConnectorConfig: the run's names and the source replace connector.json's.
func TestConnectorConfig(t *testing.T) {
	c := Config{Env: Env{SourceURL: "postgres://u:pw@db.example:6543/app"}, Run: "obx", Partitions: 5}
	b, err := connectorConfig(c, c.names())
	require.NoError(t, err)
	s := string(b)
	for _, want := range []string{`"database.hostname":"db.example"`, `"database.port":"6543"`, `"database.dbname":"app"`,
		`"slot.name":"obx"`, `"publication.name":"obx"`, `"table.include.list":"public\\.outbox_obx"`,
		`"transforms.outbox.route.topic.replacement":"obx.outbox.event.${routedByValue}"`,
		`"topic.creation.default.partitions":"5"`, `"transforms.outbox.type":"io.debezium.transforms.outbox.EventRouter"`} {
		assert.True(t, strings.Contains(s, want), "config lacks %s", want)
	}
}
