package reconcile

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The tests run against the real PostgreSQL (DATABASE_URL); each owns
// tables named rc_<suffix>_... and drops them after.

const rows = 20_000

// fill is a table of n rows of several types, keyed by id.
const fill = `CREATE TABLE %[1]s (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz,
	f double precision, flag boolean, tags text[], doc jsonb);
INSERT INTO %[1]s SELECT g, 'n' || g, g * 1.25, '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 minute',
	g / 3.0, g %% 2 = 0, ARRAY['a' || g, NULL], jsonb_build_object('g', g) FROM generate_series(1, %[2]d) g`

type env struct {
	url    string
	conn   *pgx.Conn
	prefix string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	u := testenv.DatabaseURL(t)
	testenv.WaitServicesIdle(t) // other packages' tests restart the database
	conn, err := pgx.Connect(t.Context(), u)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &env{url: u, conn: conn, prefix: "rc_" + testenv.Suffix()}
}

// exec runs SQL (several statements allowed) on conn.
func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	require.NoError(t, conn.PgConn().Exec(t.Context(), sql).Close(), sql)
}

// table creates a table of n rows named prefix_name and drops it after.
func (e *env) table(t *testing.T, name string, n int) string {
	t.Helper()
	return tableOn(t, e.conn, e.prefix+"_"+name, n)
}

func tableOn(t *testing.T, conn *pgx.Conn, name string, n int) string {
	t.Helper()
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+name)
	})
	exec(t, conn, fmt.Sprintf(fill, name, n))
	return name
}

func (e *env) cfg(src, tgt string, key ...string) Config {
	return Config{SourceURL: e.url, TargetURL: e.url, SourceTable: src, TargetTable: tgt, Key: key}
}

// both runs Compare and Naive, checks that they agree and returns Compare's
// result.
func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	r, err := Compare(t.Context(), cfg)
	require.NoError(t, err)
	n, err := Naive(t.Context(), cfg)
	require.NoError(t, err)
	for _, x := range []*Result{r, n} {
		x.Elapsed, x.Ranges, x.RowsFetched, x.Source, x.Target = 0, 0, 0, Traffic{}, Traffic{}
	}
	assert.Equal(t, n, r, "the range compare and the naive compare agree")
	return r
}

func keys(ks ...string) [][]string {
	out := [][]string{}
	for _, k := range ks {
		out = append(out, strings.Split(k, ","))
	}
	return out
}

func TestEqual(t *testing.T) {
	e := newEnv(t)
	src, tgt := e.table(t, "s", rows), e.table(t, "t", rows)
	r, err := Compare(t.Context(), e.cfg(src, tgt, "id"))
	require.NoError(t, err)
	assert.True(t, r.Equal)
	assert.Equal(t, int64(rows), r.SourceRows)
	assert.Equal(t, int64(rows), r.TargetRows)
	assert.Equal(t, 1, r.Ranges, "equal tables: one checksum a side")
	assert.Zero(t, r.RowsFetched)
	assert.Equal(t, []string{"name", "amount", "at", "f", "flag", "tags", "doc"}, r.Columns)
	assert.Equal(t, 3, r.Source.RoundTrips, "snapshot, columns, checksum")
	assert.Less(t, r.Source.Bytes, int64(5000))
	assert.Equal(t, r, run(t, e.cfg(src, tgt, "id")).withCost(r))
}

// withCost copies o's costs into r, for comparing results.
func (r *Result) withCost(o *Result) *Result {
	r.Elapsed, r.Ranges, r.RowsFetched, r.Source, r.Target = o.Elapsed, o.Ranges, o.RowsFetched, o.Source, o.Target
	return r
}

func TestDifferences(t *testing.T) {
	e := newEnv(t)
	src, tgt := e.table(t, "s", rows), e.table(t, "t", rows)
	exec(t, e.conn, fmt.Sprintf(`DELETE FROM %[1]s WHERE id = 777;
INSERT INTO %[1]s (id, name) VALUES (20001, 'extra');
UPDATE %[1]s SET amount = amount + 0.01 WHERE id = 15000;
UPDATE %[2]s SET name = NULL WHERE id = 3;
UPDATE %[1]s SET name = '' WHERE id = 3;
UPDATE %[1]s SET tags = ARRAY['a9', 'NULL'] WHERE id = 9`, tgt, src))
	r := run(t, e.cfg(src, tgt, "id"))
	assert.False(t, r.Equal)
	assert.Equal(t, keys("777"), r.Missing)
	assert.Equal(t, keys("20001"), r.Extra)
	assert.Equal(t, keys("15000", "3", "9"), r.Different)
	assert.Equal(t, [3]int64{1, 1, 3}, [3]int64{r.MissingCount, r.ExtraCount, r.DifferentCount})

	c, err := Compare(t.Context(), e.cfg(src, tgt, "id"))
	require.NoError(t, err)
	assert.LessOrEqual(t, c.RowsFetched, int64(5*2*256), "only small ranges fetched: five differences, at most a leaf a side each")
	n, err := Naive(t.Context(), e.cfg(src, tgt, "id"))
	require.NoError(t, err)
	assert.Equal(t, int64(2*rows), n.RowsFetched)
	assert.Less(t, 10*(c.Source.Bytes+c.Target.Bytes), n.Source.Bytes+n.Target.Bytes, "far fewer bytes than naive")

	// Limit caps the lists, never the counts.
	cfg := e.cfg(src, tgt, "id")
	cfg.Limit = -1
	c, err = Compare(t.Context(), cfg)
	require.NoError(t, err)
	assert.Empty(t, c.Different)
	assert.Equal(t, int64(3), c.DifferentCount)
}

func TestKeys(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, def, fill, change, want string }{
		{"composite", "a int, b text, v int, PRIMARY KEY (a, b)",
			"SELECT g % 100, 'k' || g, g FROM generate_series(1, 20000) g",
			"UPDATE %s SET v = -1 WHERE a = 7 AND b = 'k707'", "7,k707"},
		{"text", "k text PRIMARY KEY, v int",
			"SELECT 'k' || g, g FROM generate_series(1, 20000) g",
			"UPDATE %s SET v = -1 WHERE k = 'k4242'", "k4242"},
		{"uuid", "k uuid PRIMARY KEY, v int",
			"SELECT md5(g::text)::uuid, g FROM generate_series(1, 20000) g",
			"DELETE FROM %s WHERE k = 'fe7ecc4d-e28b-2c83-c016-b5c6c2acd826'::uuid", "fe7ecc4d-e28b-2c83-c016-b5c6c2acd826"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, side := range []string{"s", "t"} {
				name := e.prefix + "_" + tc.name + "_" + side
				t.Cleanup(func() { _, _ = e.conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
				exec(t, e.conn, fmt.Sprintf("CREATE TABLE %s (%s); INSERT INTO %s %s", name, tc.def, name, tc.fill))
				names = append(names, name)
			}
			exec(t, e.conn, fmt.Sprintf(tc.change, names[1]))
			key := []string{"k"}
			if tc.name == "composite" {
				key = []string{"a", "b"}
			}
			r := run(t, e.cfg(names[0], names[1], key...))
			got := append(append(r.Missing, r.Extra...), r.Different...)
			assert.Equal(t, keys(tc.want), got)
		})
	}
}

// TestColumns: tables with different column sets, in a schema; the seed's
// users vs points by user_id compares key sets.
func TestColumns(t *testing.T) {
	e := newEnv(t)
	schema := e.prefix + "_app"
	t.Cleanup(func() { _, _ = e.conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	exec(t, e.conn, fmt.Sprintf(`CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.users (user_id bigint PRIMARY KEY, email text, created_at timestamptz DEFAULT now());
INSERT INTO %[1]s.users (user_id, email) SELECT g, 'u' || g FROM generate_series(1, 20000) g;
CREATE TABLE %[1]s.points (id bigserial PRIMARY KEY, user_id bigint NOT NULL, email text, points int DEFAULT 10);
CREATE INDEX ON %[1]s.points (user_id);
INSERT INTO %[1]s.points (user_id, email) SELECT g, 'u' || g FROM generate_series(1, 20000) g;
INSERT INTO %[1]s.points (user_id, email) VALUES (4711, 'u4711')`, schema))
	users, points := schema+".users", schema+".points"

	keysOnly := e.cfg(users, points, "user_id")
	keysOnly.KeysOnly = true
	r := run(t, keysOnly)
	assert.Empty(t, r.Columns)
	assert.Equal(t, int64(20000), r.SourceRows)
	assert.Equal(t, int64(20001), r.TargetRows)
	assert.Equal(t, keys("4711"), r.Extra, "the duplicate user_id is the extra row")
	assert.Empty(t, r.Different)

	noColumns := e.cfg(users, points, "user_id")
	noColumns.Columns = []string{}
	assert.Equal(t, r.Extra, run(t, noColumns).Extra)

	// By default the common columns (email): one change shows.
	exec(t, e.conn, fmt.Sprintf("UPDATE %s.points SET email = 'changed' WHERE user_id = 12", schema))
	r = run(t, e.cfg(users, points, "user_id"))
	assert.Equal(t, []string{"email"}, r.Columns)
	assert.Equal(t, keys("12"), r.Different)
	assert.Equal(t, keys("4711"), r.Extra)

	// A column one table lacks is a bad setting, named with its table.
	cols := e.cfg(users, points, "user_id")
	cols.Columns = []string{"email", "points", "nope"}
	_, err := Compare(t.Context(), cols)
	require.ErrorIs(t, err, ErrSettings)
	for _, want := range []string{`"points" is not in the source table`, `"nope" is not in the source`, `"nope" is not in the target`} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = Compare(t.Context(), e.cfg(schema+".nosuch", points, "user_id"))
	require.ErrorIs(t, err, ErrSettings)
	assert.Contains(t, err.Error(), "source table "+schema+".nosuch does not exist")
}

// TestTwoDatabases: the target in another database whose TimeZone and
// DateStyle differ; the snapshot settings make the values' texts agree.
func TestTwoDatabases(t *testing.T) {
	e := newEnv(t)
	dbName := e.prefix + "_db"
	exec(t, e.conn, "CREATE DATABASE "+dbName)
	t.Cleanup(func() { _, _ = e.conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)") })
	exec(t, e.conn, "ALTER DATABASE "+dbName+" SET TimeZone = 'Asia/Tokyo'; ALTER DATABASE "+dbName+" SET DateStyle = 'German'; ALTER DATABASE "+dbName+" SET extra_float_digits = -3")
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	u.Path = "/" + dbName
	other, err := pgx.Connect(t.Context(), u.String())
	require.NoError(t, err)
	t.Cleanup(func() { other.Close(context.Background()) })

	src := e.table(t, "s", rows)
	tgt := tableOn(t, other, "copy", rows)
	cfg := e.cfg(src, tgt, "id")
	cfg.TargetURL = u.String()
	assert.True(t, run(t, cfg).Equal)

	exec(t, other, "DELETE FROM copy WHERE id = 1; UPDATE copy SET f = f + 1e-12 WHERE id = 19999")
	r := run(t, cfg)
	assert.Equal(t, keys("1"), r.Missing)
	assert.Equal(t, keys("19999"), r.Different, "a float's last digits count")
}

// TestReadOnly: reconcile writes nothing and waits for no one: a session
// holding row locks and an uncommitted update does not block it.
func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	src, tgt := e.table(t, "s", rows), e.table(t, "t", rows)
	exec(t, e.conn, "UPDATE "+tgt+" SET name = 'x' WHERE id = 5")

	stats := func() string {
		var s string
		require.NoError(t, e.conn.QueryRow(t.Context(), `SELECT string_agg(concat_ws(':', relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd), ',' ORDER BY relname)
FROM pg_stat_user_tables WHERE relname IN ($1, $2)`, src, tgt).Scan(&s))
		return s
	}
	exec(t, e.conn, "SELECT pg_stat_force_next_flush(); SELECT pg_stat_clear_snapshot()")
	before := stats()

	locker, err := pgx.Connect(t.Context(), e.url)
	require.NoError(t, err)
	t.Cleanup(func() { locker.Close(context.Background()) })
	tx, err := locker.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(t.Context(), "SELECT * FROM "+src+" WHERE id < 100 FOR UPDATE")
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "UPDATE "+tgt+" SET name = 'y' WHERE id = 6")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := e.cfg(src, tgt, "id")
	r, err := Compare(ctx, cfg)
	require.NoError(t, err, "not blocked by another session's locks")
	assert.Equal(t, keys("5"), r.Different, "the uncommitted update is not seen")
	_, err = Naive(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(t.Context()))

	time.Sleep(100 * time.Millisecond)
	exec(t, e.conn, "SELECT pg_stat_clear_snapshot()")
	assert.Equal(t, before, stats(), "no row inserted, updated or deleted by reconcile")
}

// TestLockTimeout: behind another session's ACCESS EXCLUSIVE lock on the
// target (a TRUNCATE or ALTER TABLE in progress) reconcile waits at most
// LockTimeout, then fails with ErrLocked (a failure to run, not a bad
// setting) naming the side and the table; its own lock is gone with it,
// and once the lock is released it compares as usual.
func TestLockTimeout(t *testing.T) {
	e := newEnv(t)
	src, tgt := e.table(t, "s", 1000), e.table(t, "t", 1000)
	locker, err := pgx.Connect(t.Context(), e.url)
	require.NoError(t, err)
	t.Cleanup(func() { locker.Close(context.Background()) })
	tx, err := locker.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(t.Context(), "LOCK TABLE "+tgt+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := e.cfg(src, tgt, "id")
	cfg.LockTimeout = 500 * time.Millisecond
	for name, compare := range map[string]func(context.Context, Config) (*Result, error){"Compare": Compare, "Naive": Naive} {
		start := time.Now()
		_, err := compare(ctx, cfg)
		took := time.Since(start)
		require.ErrorIs(t, err, ErrLocked, name)
		assert.NotErrorIs(t, err, ErrSettings, "%s: a lock is not a bad setting (exit 3, not 2)", name)
		assert.ErrorContains(t, err, "target database")
		assert.ErrorContains(t, err, "the table "+tgt+" is locked by another session")
		assert.Less(t, took, 5*time.Second, "%s gives up after the lock timeout", name)
		t.Logf("%s: gave up after %s: %v", name, took.Round(time.Millisecond), err)
	}
	var waiting int
	require.NoError(t, e.conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'sinkworker reconcile' AND wait_event_type = 'Lock'`).Scan(&waiting))
	assert.Zero(t, waiting, "no reconcile session is left waiting for the lock")

	require.NoError(t, tx.Rollback(t.Context()))
	r, err := Compare(ctx, cfg)
	require.NoError(t, err)
	assert.True(t, r.Equal)

	c := Config{}
	c.defaults()
	assert.Equal(t, 10*time.Second, c.LockTimeout, "the default")
}

func TestValidate(t *testing.T) {
	err := Config{SourceURL: "postgres://u:sekret@[bad", Fanout: 1, LeafRows: -1, Limit: -2, Columns: []string{"a"}, KeysOnly: true,
		LockTimeout: 2 * time.Hour}.Validate()
	require.ErrorIs(t, err, ErrSettings)
	for _, want := range []string{"source database URL", "target database URL is required", "source table is required",
		"target table is required", "key is required", "exclude each other", "leaf rows", "fanout", "limit", "lock timeout"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "sekret")
	require.NoError(t, Config{SourceURL: "postgres://h/db", TargetURL: "postgres://h/db", SourceTable: "a", TargetTable: "b", Key: []string{"id"}}.Validate())
	err = Config{SourceURL: "postgres://h/db", TargetURL: "postgres://h/db", SourceTable: "a", TargetTable: "a", Key: []string{"id"}}.Validate()
	assert.ErrorContains(t, err, "same table")
}
