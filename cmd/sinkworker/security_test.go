package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// The security tests run the binary against the broker's SASL_SSL listener
// and PostgreSQL with TLS, as `scripts/services up` sets them up; `scripts/
// services env` prints the listener, its user and the test CA's files.

// secSetup is the security tests' part of `scripts/services env`.
type secSetup struct {
	brokers, ca, clientCert, clientKey, user, password string
}

func securitySetup(t *testing.T) secSetup {
	t.Helper()
	s := secSetup{
		brokers: os.Getenv("KAFKA_SASL_BROKERS"), ca: os.Getenv("SINKWORKER_TEST_CA"),
		clientCert: os.Getenv("SINKWORKER_TEST_CLIENT_CERT"), clientKey: os.Getenv("SINKWORKER_TEST_CLIENT_KEY"),
		user: os.Getenv("SINKWORKER_TEST_SASL_USERNAME"), password: os.Getenv("SINKWORKER_TEST_SASL_PASSWORD"),
	}
	for name, v := range map[string]string{
		"KAFKA_SASL_BROKERS": s.brokers, "SINKWORKER_TEST_CA": s.ca, "SINKWORKER_TEST_CLIENT_CERT": s.clientCert,
		"SINKWORKER_TEST_CLIENT_KEY": s.clientKey, "SINKWORKER_TEST_SASL_USERNAME": s.user,
		"SINKWORKER_TEST_SASL_PASSWORD": s.password,
	} {
		if v == "" {
			t.Fatalf("%s is not set: the security tests need the SASL_SSL listener and the test CA; %s", name, testenv.Hint)
		}
	}
	return s
}

// kafkaEnv is the worker's settings to consume through the SASL_SSL
// listener with mechanism and password, trusting the test CA.
func (s secSetup) kafkaEnv(mechanism, password string) map[string]string {
	return map[string]string{
		"KAFKA_BROKERS": s.brokers, "KAFKA_SASL_MECHANISM": mechanism, "KAFKA_SASL_USERNAME": s.user,
		"KAFKA_SASL_PASSWORD": password, "KAFKA_TLS_ENABLED": "true", "KAFKA_TLS_CA_FILE": s.ca,
	}
}

// merge returns the union of the maps, later ones winning.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// dsn is the test database's URL with user, password and query parameters
// replaced.
func dsn(t *testing.T, user, password string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// exitRun runs the binary with the base environment plus env until it
// exits, at most limit, and returns its exit status and output. It fails
// the test when the binary exits 0 or runs past limit (a retry loop).
func exitRun(t *testing.T, env map[string]string, limit time.Duration) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = workerEnv("sec", env)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "still running after %s (a silent retry loop?); output:\n%s", limit, out)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "want a failed start; output:\n%s", out)
	t.Logf("exit status %d after %s", exit.ExitCode(), time.Since(start).Round(time.Millisecond))
	return exit.ExitCode(), string(out)
}

// failure is the error the binary logged when it gave up (the "err" of
// its "start-up failed" or "stopped on error" JSON line), else all of out.
func failure(out string) string {
	for _, line := range strings.Split(out, "\n") {
		var l struct{ Msg, Err string }
		if json.Unmarshal([]byte(line), &l) == nil && (l.Msg == "start-up failed" || l.Msg == "stopped on error") {
			return l.Err
		}
	}
	return out
}

// exitRunUntil is exitRun, run again (at most 3 runs in all) only when ok
// rejects an outcome that shows a service missing (serviceUnavailable:
// someone stopped the broker or the database meanwhile). Any other
// unexpected outcome is returned at once for the test to fail on: a defect
// that shows one run in three must not pass. Each run first waits until no
// destructive test or scripts/services command holds the services lock.
func exitRunUntil(t *testing.T, env map[string]string, limit time.Duration, ok func(code int, out string) bool) (int, string) {
	t.Helper()
	var (
		code int
		out  string
	)
	for range 3 {
		testenv.WaitServicesIdle(t)
		brokerUp(t)
		if code, out = exitRun(t, env, limit); ok(code, out) || !serviceUnavailable(out) {
			break
		}
		t.Logf("a service was unavailable, running again; output:\n%s", out)
		time.Sleep(2 * time.Second)
	}
	return code, out
}

// serviceUnavailable reports whether a run's output shows the broker or the
// database not answering, rather than a message about the settings tested.
func serviceUnavailable(out string) bool {
	for _, sign := range []string{"connection refused", "connection reset by peer", "broken pipe",
		"kafka brokers not reachable yet", "the database system is starting up", "the database system is shutting down"} {
		if strings.Contains(out, sign) {
			return true
		}
	}
	return false
}

// writeOtherCA writes a CA certificate the services never used.
func writeOtherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "not the test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "other-ca.crt")
	require.NoError(t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return f
}

// The chaos suite restarts the broker and PostgreSQL while these tests
// run: the helpers below wait out such a restart (up to servicesWait)
// instead of failing on it.
const servicesWait = 2 * time.Minute

// retry calls f until it succeeds, for at most servicesWait, and fails the
// test with f's last error.
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(servicesWait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			require.NoError(t, err, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// brokerUp waits until both listeners answer (the SASL_SSL one by TCP).
func brokerUp(t *testing.T) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	retry(t, "the broker answers", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := cl.Ping(ctx); err != nil {
			return err
		}
		if sasl := os.Getenv("KAFKA_SASL_BROKERS"); sasl != "" {
			c, err := net.DialTimeout("tcp", sasl, 5*time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
}

// secTopic creates a topic (named name, else a new name) once the broker
// answers, deleted after the test.
func secTopic(t *testing.T, partitions int32, name string) string {
	t.Helper()
	if name == "" {
		name = uniq("sec")
	}
	brokerUp(t)
	adm := admin(t)
	retry(t, "create topic "+name, func() error {
		resp, err := adm.CreateTopic(t.Context(), partitions, 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil // an earlier try went through
		}
		return err
	})
	cleanTopic(t, name)
	return name
}

// secStart is startWorker once the broker answers.
func secStart(t *testing.T, member string, env map[string]string) *worker {
	t.Helper()
	brokerUp(t)
	return startWorker(t, member, env)
}

// tableRows is key -> value::text of an upsert-shaped table.
func tableRows(t *testing.T, pool *pgxpool.Pool, table pgx.Identifier) map[string]string {
	t.Helper()
	var got map[string]string
	retry(t, "read "+table.Sanitize(), func() error {
		rows, err := pool.Query(t.Context(), "SELECT key, value::text FROM "+table.Sanitize())
		if err != nil {
			return err
		}
		got = map[string]string{}
		var k, v string
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { got[k] = v; return nil })
		return err
	})
	return got
}

// assertRows checks an upsert-shaped table holds exactly model (values
// compared as jsonb).
func assertRows(t *testing.T, pool *pgxpool.Pool, table pgx.Identifier, model map[string]string) {
	t.Helper()
	got := tableRows(t, pool, table)
	require.Len(t, got, len(model), "rows of %s: %v", table.Sanitize(), got)
	for k, v := range model {
		g, ok := got[k]
		if !assert.True(t, ok, "key %q missing from %s", k, table.Sanitize()) {
			continue
		}
		var gj, vj any
		require.NoError(t, json.Unmarshal([]byte(g), &gj))
		require.NoError(t, json.Unmarshal([]byte(v), &vj))
		assert.Equal(t, vj, gj, "key %q: got %s, want %s", k, g, v)
	}
}

// waitOffsets waits until the offsets table holds, for group and topic,
// next offsets that add up to the topic's end offsets.
func waitOffsets(t *testing.T, pool *pgxpool.Pool, offsets pgx.Identifier, group, topic string, timeout time.Duration) {
	t.Helper()
	adm := admin(t)
	var want, got int64 = -1, -1
	require.Eventually(t, func() bool {
		if want < 0 { // the end offsets do not move: the test produced before
			ends, err := adm.ListEndOffsets(t.Context(), topic)
			if err != nil || ends.Error() != nil {
				return false
			}
			want = 0
			ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
		}
		err := pool.QueryRow(t.Context(), `SELECT coalesce(sum(next_offset), 0) FROM `+offsets.Sanitize()+`
WHERE consumer_group = $1 AND topic = $2`, group, topic).Scan(&got)
		return err == nil && got == want
	}, timeout, 200*time.Millisecond, "%s never reached the end offsets of %s (%d of %d)", offsets.Sanitize(), topic, got, want)
}

// offsetRows counts the offsets rows of group.
func offsetRows(t *testing.T, pool *pgxpool.Pool, offsets pgx.Identifier, group string) int {
	t.Helper()
	var n int
	retry(t, "count offsets rows", func() error {
		return pool.QueryRow(t.Context(), `SELECT count(*) FROM `+offsets.Sanitize()+
			` WHERE consumer_group = $1`, group).Scan(&n)
	})
	return n
}

// adminExec runs statements as the superuser.
func adminExec(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		retry(t, s, func() error {
			_, err := pool.Exec(t.Context(), s)
			return err
		})
	}
}

// ownSchema creates a schema (owned by owner unless it is empty), dropped
// with its contents after the test.
func ownSchema(t *testing.T, pool *pgxpool.Pool, name, owner string) pgx.Identifier {
	t.Helper()
	id := pgx.Identifier{name}
	stmt := "CREATE SCHEMA " + id.Sanitize()
	if owner != "" {
		stmt += " AUTHORIZATION " + pgx.Identifier{owner}.Sanitize()
	}
	adminExec(t, pool, stmt)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+id.Sanitize()+" CASCADE") })
	return id
}

// ownRole creates a LOGIN role with password, dropped (with its grants)
// after the test.
func ownRole(t *testing.T, pool *pgxpool.Pool, name, password string) {
	t.Helper()
	id := pgx.Identifier{name}.Sanitize()
	adminExec(t, pool, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", id, password))
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, "DROP OWNED BY "+id)
		_, _ = pool.Exec(ctx, "DROP ROLE IF EXISTS "+id)
	})
}

// TestSecurityKafkaSASL: the worker consumes through the SASL_SSL listener
// with each mechanism, trusting the test CA (one case also presenting a
// client certificate), and every record lands.
func TestSecurityKafkaSASL(t *testing.T) {
	t.Parallel()
	s := securitySetup(t)
	for _, tc := range []struct {
		name, mechanism string
		clientCert      bool
		policy          string // dlq also creates the dead-letter topic through the listener
	}{
		{"SCRAM-SHA-256", "SCRAM-SHA-256", false, "stop"},
		{"SCRAM-SHA-512 with a client certificate", "SCRAM-SHA-512", true, "dlq"},
		{"PLAIN", "PLAIN", false, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := secTopic(t, 2, ""), uniq("sec"), uniq("g")
			dropTable(t, pool, table)
			recs := workload(300, 40, 10, uint64(len(tc.name)))
			produce(t, topic, recs)
			env := merge(s.kafkaEnv(tc.mechanism, s.password), map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
				"ERROR_POLICY": tc.policy,
			})
			if tc.clientCert {
				env["KAFKA_TLS_CERT_FILE"], env["KAFKA_TLS_KEY_FILE"] = s.clientCert, s.clientKey
			}
			w := secStart(t, uniq("sasl"), env)
			waitOffsets(t, pool, pgx.Identifier{"sink_offsets"}, group, topic, 3*time.Minute)
			w.stop()
			assertRows(t, pool, pgx.Identifier{table}, upsertModel(recs))
		})
	}
}

// TestSecurityKafkaRejects: a wrong password, an unknown user or an
// untrusted broker certificate ends start-up within a bounded time with
// exit status 1 and a message naming the mechanism and user (or the CA
// setting), never the password, and nothing is consumed.
func TestSecurityKafkaRejects(t *testing.T) {
	t.Parallel()
	s := securitySetup(t)
	otherCA := writeOtherCA(t)
	for _, tc := range []struct {
		name, mechanism, user, policy string
		ca                            string // "" means the test CA
		wrongPassword                 bool
		want                          []string
	}{
		{name: "SCRAM-SHA-256 wrong password, ERROR_POLICY=stop", mechanism: "SCRAM-SHA-256", policy: "stop",
			wrongPassword: true, want: []string{"SCRAM-SHA-256", "KAFKA_SASL_PASSWORD"}},
		{name: "SCRAM-SHA-512 wrong password", mechanism: "SCRAM-SHA-512", policy: "dlq",
			wrongPassword: true, want: []string{"SCRAM-SHA-512", "KAFKA_SASL_PASSWORD"}},
		{name: "PLAIN wrong password", mechanism: "PLAIN", policy: "stop",
			wrongPassword: true, want: []string{"PLAIN", "KAFKA_SASL_PASSWORD"}},
		{name: "unknown user", mechanism: "SCRAM-SHA-256", user: uniq("nobody"), policy: "stop",
			wrongPassword: true, want: []string{"SCRAM-SHA-256", "nobody_"}},
		{name: "untrusted broker certificate", mechanism: "SCRAM-SHA-512", policy: "stop", ca: otherCA,
			want: []string{"not trusted", "KAFKA_TLS_CA_FILE", "certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := secTopic(t, 1, ""), uniq("sec"), uniq("g")
			dropTable(t, pool, table)
			produce(t, topic, workload(20, 5, 0, 1))
			password := s.password
			if tc.wrongPassword {
				password = "Wrong-" + uniq("pw")
			}
			env := merge(s.kafkaEnv(tc.mechanism, password), map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
				"ERROR_POLICY": tc.policy,
			})
			if tc.user != "" {
				env["KAFKA_SASL_USERNAME"] = tc.user
			}
			if tc.ca != "" {
				env["KAFKA_TLS_CA_FILE"] = tc.ca
			}
			user := env["KAFKA_SASL_USERNAME"]
			code, out := exitRunUntil(t, env, 60*time.Second, func(code int, out string) bool {
				return code == 1 && strings.Contains(failure(out), tc.want[0])
			})
			assert.Equal(t, 1, code, "output:\n%s", out)
			msg := failure(out)
			t.Logf("start-up error: %s", msg)
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			if tc.ca == "" {
				assert.Contains(t, msg, fmt.Sprintf("user %q", user), "the message names the user")
			}
			if tc.wrongPassword {
				assert.NotContains(t, out, password, "the password never appears")
			}
			assert.NotContains(t, out, s.password, "the password never appears")
			assert.Zero(t, offsetRows(t, pool, pgx.Identifier{"sink_offsets"}, group), "nothing consumed")
		})
	}
}

// TestSecurityPostgresVerifyFull: DATABASE_URL with sslmode=verify-full and
// the test CA works (the worker's connections are encrypted); another CA
// ends start-up at once with a clear message; an unreadable sslrootcert is
// a bad setting.
func TestSecurityPostgresVerifyFull(t *testing.T) {
	t.Parallel()
	s := securitySetup(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run("verify-full to "+host, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group, member := secTopic(t, 2, ""), uniq("sec"), uniq("g"), uniq("tls")
			dropTable(t, pool, table)
			recs := workload(200, 30, 0, 7)
			produce(t, topic, recs)
			u, err := url.Parse(dsn(t, "", "", map[string]string{"sslmode": "verify-full", "sslrootcert": s.ca}))
			require.NoError(t, err)
			u.Host = host + ":" + u.Port()
			w := secStart(t, member, map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
				"DATABASE_URL": u.String(), "ERROR_POLICY": "stop",
			})
			waitOffsets(t, pool, pgx.Identifier{"sink_offsets"}, group, topic, 3*time.Minute)
			var conns, plain int
			retry(t, "read pg_stat_ssl", func() error {
				return pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE NOT s.ssl)
FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1`,
					sink.ApplicationName(group, member)).Scan(&conns, &plain)
			})
			assert.Positive(t, conns, "the worker holds connections while assigned")
			assert.Zero(t, plain, "every connection of the worker is TLS")
			w.stop()
			assertRows(t, pool, pgx.Identifier{table}, upsertModel(recs))
		})
	}
	t.Run("another CA", func(t *testing.T) {
		t.Parallel()
		pool := db(t)
		topic, table := secTopic(t, 1, ""), uniq("sec")
		dropTable(t, pool, table)
		code, out := exitRunUntil(t, map[string]string{
			"KAFKA_TOPICS": topic, "SINK_TABLE_MAP": topic + "=" + table,
			"DATABASE_URL": dsn(t, "", "", map[string]string{"sslmode": "verify-full", "sslrootcert": writeOtherCA(t)}),
		}, 60*time.Second, func(code int, out string) bool { return code == 1 && strings.Contains(failure(out), "not trusted") })
		assert.Equal(t, 1, code, "output:\n%s", out)
		msg := failure(out)
		t.Logf("start-up error: %s", msg)
		assert.Contains(t, msg, "the server's TLS certificate is not trusted")
		assert.Contains(t, msg, "sslrootcert")
		assert.Contains(t, msg, "x509")
		assert.NotContains(t, out, "database not reachable yet", "not mistaken for an outage")
		var exists bool
		retry(t, "look the table up", func() error {
			return pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{table}.Sanitize()).Scan(&exists)
		})
		assert.False(t, exists, "nothing was done on the database")
	})
	t.Run("sslrootcert that cannot be read", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "no-such-ca.crt")
		code, out := exitRun(t, map[string]string{
			"KAFKA_TOPICS": "sec_never", "DATABASE_URL": dsn(t, "", "", map[string]string{"sslmode": "verify-full", "sslrootcert": missing}),
		}, 30*time.Second)
		assert.Equal(t, 2, code, "a bad setting; output:\n%s", out)
		assert.Contains(t, out, "DATABASE_URL: cannot read "+missing)
		assert.NotContains(t, out, "postgres:postgres", "the DSN is never echoed")
	})
}

// TestSecurityLeastPrivilegeRole: a role with USAGE on its schema and
// SELECT, INSERT, UPDATE, DELETE on its table and offsets table (no
// CREATE) runs the worker; without INSERT, start-up fails with 42501
// naming the role, the table and the privilege, before consuming.
func TestSecurityLeastPrivilegeRole(t *testing.T) {
	t.Parallel()
	pool := db(t)
	schema := ownSchema(t, pool, uniq("sec_lp"), "")
	role, password := uniq("sec_lp_role"), "pw-"+uniq("lp")
	ownRole(t, pool, role, password)
	topic := secTopic(t, 2, "")
	table, offsets := pgx.Identifier{schema[0], "events"}, pgx.Identifier{schema[0], "offsets"}
	cfg := sink.Config{Topics: []string{topic}, TableMap: map[string]string{topic: schema[0] + ".events"},
		Mode: sink.ModeUpsert, Mapping: sink.MappingJSONB, OffsetsTable: schema[0] + ".offsets"}
	retry(t, "the owner creates the tables once", func() error { return sink.EnsureTables(t.Context(), pool, cfg) })
	roleID := pgx.Identifier{role}.Sanitize()
	adminExec(t, pool,
		"GRANT USAGE ON SCHEMA "+schema.Sanitize()+" TO "+roleID,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON "+table.Sanitize()+", "+offsets.Sanitize()+" TO "+roleID)
	var canCreate bool
	retry(t, "check CREATE", func() error {
		return pool.QueryRow(t.Context(), `SELECT has_schema_privilege($1, $2, 'CREATE')`, role, schema[0]).Scan(&canCreate)
	})
	require.False(t, canCreate, "the role must not be able to create tables")

	recs := workload(400, 50, 10, 3)
	produce(t, topic, recs)
	env := map[string]string{
		"KAFKA_TOPICS": topic, "SINK_TABLE_MAP": topic + "=" + schema[0] + ".events",
		"SINK_OFFSETS_TABLE": schema[0] + ".offsets", "DATABASE_URL": dsn(t, role, password, nil),
		"ERROR_POLICY": "stop",
	}
	group := uniq("g")
	w := secStart(t, uniq("lp"), merge(env, map[string]string{"KAFKA_GROUP": group}))
	waitOffsets(t, pool, offsets, group, topic, 3*time.Minute)
	w.stop()
	model := upsertModel(recs)
	assertRows(t, pool, table, model)

	// Without INSERT on the table: a clear fatal error before consuming.
	adminExec(t, pool, "REVOKE INSERT ON "+table.Sanitize()+" FROM "+roleID)
	produce(t, topic, workload(50, 500, 0, 4))
	group2 := uniq("g")
	code, out := exitRunUntil(t, merge(env, map[string]string{"KAFKA_GROUP": group2}), 60*time.Second,
		func(code int, out string) bool { return code == 1 && strings.Contains(failure(out), "42501") })
	assert.Equal(t, 1, code, "output:\n%s", out)
	msg := failure(out)
	t.Logf("start-up error: %s", msg)
	assert.Contains(t, msg, "42501")
	assert.Contains(t, msg, fmt.Sprintf("role %q", role))
	assert.Contains(t, msg, "lacks INSERT on table "+table.Sanitize())
	assert.NotContains(t, out, password)
	assert.Zero(t, offsetRows(t, pool, offsets, group2), "nothing consumed")
	assertRows(t, pool, table, model)
}

// TestSecuritySecretsNeverLeak runs the binary with known secrets (the
// database password and the SASL password) through a configuration error,
// a failing database login, a failing Kafka login and a normal run whose
// /metrics, /healthz and /readyz are scraped (debug logging): no log line,
// error message or metrics label or value contains either secret.
func TestSecuritySecretsNeverLeak(t *testing.T) {
	t.Parallel()
	s := securitySetup(t)
	pool := db(t)
	role := uniq("sec_sw_role")
	dbSecret := "DbSecret" + strings.ReplaceAll(uniq("x"), "_", "")
	wrongDBSecret := "DbWrong" + strings.ReplaceAll(uniq("x"), "_", "")
	wrongKafkaSecret := "KafkaWrong" + strings.ReplaceAll(uniq("x"), "_", "")
	ownRole(t, pool, role, dbSecret)
	schema := ownSchema(t, pool, uniq("sec_sw"), role) // the role creates its tables there
	secrets := []string{dbSecret, wrongDBSecret, wrongKafkaSecret, s.password}
	noSecret := func(t *testing.T, what, text string) {
		t.Helper()
		for _, sec := range secrets {
			assert.NotContains(t, text, sec, "%s contains a secret", what)
			assert.NotContains(t, text, url.QueryEscape(sec), "%s contains a secret", what)
		}
	}
	topic := secTopic(t, 2, "")
	recs := workload(300, 40, 5, 11)
	produce(t, topic, recs)
	goodDB := dsn(t, role, dbSecret, map[string]string{"search_path": schema[0]})
	base := merge(s.kafkaEnv("SCRAM-SHA-512", s.password), map[string]string{
		"KAFKA_TOPICS": topic, "DATABASE_URL": goodDB, "LOG_LEVEL": "debug",
	})

	t.Run("configuration error", func(t *testing.T) {
		for _, env := range []map[string]string{
			merge(base, map[string]string{"SINK_MODE": "merge", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}),
			merge(base, map[string]string{"DATABASE_URL": "postgres://" + role + ":" + dbSecret + "@127.0.0.1:notaport/x"}),
			merge(base, map[string]string{"DATABASE_URL": "host=127.0.0.1 port=x user=" + role + " password=" + dbSecret}),
		} {
			code, out := exitRun(t, env, 30*time.Second)
			assert.Equal(t, 2, code, "output:\n%s", out)
			noSecret(t, "the configuration error", out)
		}
	})
	t.Run("database login fails", func(t *testing.T) {
		code, out := exitRunUntil(t, merge(base, map[string]string{
			"KAFKA_GROUP": uniq("g"), "DATABASE_URL": dsn(t, role, wrongDBSecret, nil),
		}), 60*time.Second, func(code int, out string) bool { return code == 1 && strings.Contains(failure(out), "28P01") })
		assert.Equal(t, 1, code, "output:\n%s", out)
		assert.Contains(t, failure(out), "password authentication failed")
		noSecret(t, "the database login error", out)
	})
	t.Run("kafka login fails", func(t *testing.T) {
		code, out := exitRunUntil(t, merge(base, map[string]string{
			"KAFKA_GROUP": uniq("g"), "KAFKA_SASL_PASSWORD": wrongKafkaSecret,
		}), 60*time.Second, func(code int, out string) bool { return code == 1 && strings.Contains(failure(out), "SASL") })
		assert.Equal(t, 1, code, "output:\n%s", out)
		assert.Contains(t, failure(out), "SASL_AUTHENTICATION_FAILED")
		noSecret(t, "the kafka login error", out)
	})
	t.Run("normal run", func(t *testing.T) {
		group := uniq("g")
		w := secStart(t, uniq("sw"), merge(base, map[string]string{
			"KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=events",
		}))
		waitOffsets(t, pool, pgx.Identifier{schema[0], "sink_offsets"}, group, topic, 3*time.Minute)
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + w.addr + path)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
			noSecret(t, path, string(body))
		}
		w.stop()
		logs, err := os.ReadFile(w.logs)
		require.NoError(t, err)
		assert.Contains(t, string(logs), `"level":"DEBUG"`, "debug logging was on")
		noSecret(t, "the log", string(logs))
		assertRows(t, pool, pgx.Identifier{schema[0], "events"}, upsertModel(recs))
	})
}

// TestSecurityHostileNames: topic names with dots, dashes and underscores,
// SINK_TABLE_MAP tables with quotes, semicolons, SQL keywords, unicode and
// a schema, JSON field names and keys with quotes, semicolons and unicode:
// every record lands in exactly the table named, no other table changes;
// names PostgreSQL cannot hold are rejected as bad settings.
func TestSecurityHostileNames(t *testing.T) {
	t.Parallel()
	pool := db(t)
	schema := ownSchema(t, pool, uniq("sec_hn"), "")
	other := ownSchema(t, pool, uniq("sec_hn2"), "")
	sentinel := pgx.Identifier{schema[0], "sentinel"}
	adminExec(t, pool, "CREATE TABLE "+sentinel.Sanitize()+" (id int)", "INSERT INTO "+sentinel.Sanitize()+" VALUES (1)")

	keys := []string{`O'Brien`, `"; DROP TABLE sentinel; --`, `Robert'); DROP TABLE students;--`, `ключ`, `🔑`,
		`select`, `a\b`, `$1`, `%s%d`, `NULL`, `' OR '1'='1`}
	var recs []rec
	for i, k := range keys {
		recs = append(recs, rec{key: k, value: fmt.Appendf(nil,
			`{"i":%d,"'; DROP TABLE sentinel; --":"x","ключ":"значение","we\"ird":"%s"}`, i, "q")})
	}
	recs = append(recs, rec{key: `"; DROP TABLE sentinel; --`}) // a tombstone for a hostile key
	model := upsertModel(recs)

	dotted := "sec.hostile-Topic_" + strings.TrimPrefix(uniq(""), "_")
	hostile := map[string]string{ // table as written in SINK_TABLE_MAP -> topic
		`we"ird`:                      secTopic(t, 1, ""),
		`x"; DROP TABLE sentinel; --`: secTopic(t, 1, ""),
		`select`:                      secTopic(t, 1, ""),
		`Ünïcødé_表`:                   secTopic(t, 1, ""),
		other[0] + `.Mixed Case`:      secTopic(t, 1, ""),
	}
	secTopic(t, 2, dotted)

	topics := []string{dotted}
	var tableMap []string
	for table, topic := range hostile {
		topics = append(topics, topic)
		tableMap = append(tableMap, topic+"="+table)
	}
	for _, topic := range topics {
		produce(t, topic, recs)
	}
	group := uniq("g")
	w := secStart(t, uniq("hn"), map[string]string{
		"KAFKA_TOPICS": strings.Join(topics, ","), "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": strings.Join(tableMap, ","),
		"DATABASE_URL":   dsn(t, "", "", map[string]string{"search_path": schema[0]}),
	})
	for _, topic := range topics {
		waitOffsets(t, pool, pgx.Identifier{schema[0], "sink_offsets"}, group, topic, 3*time.Minute)
	}
	w.stop()

	// Exactly the named tables exist, each with exactly the records.
	want := map[string][]string{
		schema[0]: {"sentinel", "sink_offsets", postgres.TableName(dotted), `we"ird`, `x"; DROP TABLE sentinel; --`, "select", "Ünïcødé_表"},
		other[0]:  {"Mixed Case"},
	}
	for s, tables := range want {
		var got []string
		retry(t, "list the tables of "+s, func() error {
			rows, err := pool.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = $1`, s)
			if err == nil {
				got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			return err
		})
		assert.ElementsMatch(t, tables, got, "tables in schema %s", s)
		for _, table := range tables {
			if table != "sentinel" && table != "sink_offsets" {
				assertRows(t, pool, pgx.Identifier{s, table}, model)
			}
		}
	}
	assert.True(t, strings.HasPrefix(postgres.TableName(dotted), "sec_hostile_topic_"), postgres.TableName(dotted))
	sentinelRows := func() (n int) {
		retry(t, "count the sentinel's rows", func() error {
			return pool.QueryRow(t.Context(), "SELECT count(*) FROM "+sentinel.Sanitize()).Scan(&n)
		})
		return n
	}
	assert.Equal(t, 1, sentinelRows(), "the sentinel table is untouched")

	t.Run("columns mapping with hostile column names", func(t *testing.T) {
		topic := secTopic(t, 1, "")
		table := pgx.Identifier{schema[0], `cols"; --`}
		adminExec(t, pool, `CREATE TABLE `+table.Sanitize()+` (key text PRIMARY KEY, "we""ird" text, "select" int, "ünï code" text, "a;b" jsonb)`)
		produce(t, topic, []rec{
			{key: `k'1`, value: []byte(`{"we\"ird":"q\"uote","select":7,"ünï code":"ü; DROP TABLE sentinel","a;b":{"x":1},"unknown'); DROP TABLE sentinel; --":"z"}`)},
			{key: `ключ`, value: []byte(`{"we\"ird":"--","select":8}`)},
		})
		group := uniq("g")
		w := secStart(t, uniq("hnc"), map[string]string{
			"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_MAPPING": "columns",
			"SINK_TABLE_MAP": topic + "=" + schema[0] + `.cols"; --`,
			"DATABASE_URL":   dsn(t, "", "", map[string]string{"search_path": schema[0]}),
		})
		waitOffsets(t, pool, pgx.Identifier{schema[0], "sink_offsets"}, group, topic, 3*time.Minute)
		w.stop()
		var got []string
		retry(t, "read "+table.Sanitize(), func() error {
			rows, err := pool.Query(t.Context(), `SELECT key, coalesce("we""ird", ''), coalesce("select", 0),
	coalesce("ünï code", ''), coalesce("a;b"::text, '') FROM `+table.Sanitize())
			if err != nil {
				return err
			}
			got = nil
			var k, weird, unicode, ab string
			var sel int
			_, err = pgx.ForEachRow(rows, []any{&k, &weird, &sel, &unicode, &ab}, func() error {
				got = append(got, fmt.Sprintf("%s|%s|%d|%s|%s", k, weird, sel, unicode, ab))
				return nil
			})
			return err
		})
		wantRows := []string{`k'1|q"uote|7|ü; DROP TABLE sentinel|{"x": 1}`, `ключ|--|8||`}
		slices.Sort(wantRows)
		slices.Sort(got)
		assert.Equal(t, wantRows, got)
		assert.Equal(t, 1, sentinelRows(), "the sentinel table is untouched")
	})

	t.Run("names PostgreSQL cannot hold are rejected", func(t *testing.T) {
		for _, table := range []string{"a.b.c", strings.Repeat("ü", 32), "s.", `.t`} {
			code, out := exitRun(t, map[string]string{
				"KAFKA_TOPICS": "sec_rejected", "SINK_TABLE_MAP": "sec_rejected=" + table,
			}, 30*time.Second)
			assert.Equal(t, 2, code, "table %q; output:\n%s", table, out)
			assert.Contains(t, out, "SINK_TABLE_MAP", "table %q", table)
		}
	})
}
