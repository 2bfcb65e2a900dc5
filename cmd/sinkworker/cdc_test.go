package main

import (
	"context"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
)

// cdcTables are the source tables of TestReplicateDatabase, in the order
// they are created, seeded and compared. marker is the test's clock: a
// change to it that reached the target follows every change before it.
var cdcTables = []string{"scalars", "times", "docs", "big", "marker"}

// cdcSchema creates the source tables in schema %[1]s. big.body is over
// 8 KB, so PostgreSQL stores it out of line (TOAST), and under REPLICA
// IDENTITY DEFAULT an update that leaves it alone does not log it.
const cdcSchema = `
CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.scalars (id bigint PRIMARY KEY, si smallint, i integer, b bigint, n numeric(12,3),
  r real, d double precision, t text, v varchar(20), ok boolean);
CREATE TABLE %[1]s.times (id integer PRIMARY KEY, dt date, tm time, ts timestamp, tz timestamptz,
  u uuid, iv interval);
CREATE TABLE %[1]s.docs (id bigint PRIMARY KEY, j jsonb, raw bytea, ia integer[], ta text[], label varchar(40));
CREATE TABLE %[1]s.big (id integer PRIMARY KEY, title text, body text);
CREATE TABLE %[1]s.marker (id integer PRIMARY KEY, seq bigint);
INSERT INTO %[1]s.marker VALUES (1, 0);
INSERT INTO %[1]s.scalars VALUES
  (1, -32768, -2147483648, -9223372036854775808, -999999999.999, 3.4028235e38, 1.7976931348623157e308,
   'first', 'twenty chars exactly', true),
  (2, 32767, 2147483647, 9223372036854775807, 999999999.999, -1.17549435e-38, 2.2250738585072014e-308,
   '', '', false),
  (3, 0, 0, 0, 0, 0.1, 0.1, e'tab\there \\ "quoted" \u00e9\u4e2d\U0001F600', 'x', NULL),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO %[1]s.times VALUES
  (1, '1900-01-01', '00:00:00', '1969-12-31 23:59:59.999999', '1900-01-01 00:00:00+00',
   '00000000-0000-0000-0000-000000000000', '0'),
  (2, '2999-12-31', '23:59:59.999999', '1970-01-01 00:00:00', '2038-01-19 03:14:08.000001+00',
   'ffffffff-ffff-ffff-ffff-ffffffffffff', '-1 days +02:00:00'),
  (3, '2024-02-29', '12:34:56.789012', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+05:30',
   gen_random_uuid(), '1 year 2 mons 3 days 04:05:06.789'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO %[1]s.docs VALUES
  (1, '{"a": [1, "x", null, true, 1.5e300], "b": {"c": "é\"\\"}}', '\x00ff', '{}', '{}', ''),
  (2, '[]', '', '{-2147483648,2147483647}', '{"a b","c,d","q\"t",NULL,""}', 'forty'),
  (3, 'null', NULL, '{NULL,1}', '{NULL}', NULL),
  (4, NULL, NULL, NULL, NULL, NULL);
`

// cdcInsert inserts the rows with ids $1..$2 of each table (%[1]s is the
// schema), random values of every column type, some of them NULL.
var cdcInsert = map[string]string{
	"scalars": `INSERT INTO %[1]s.scalars (id, si, i, b, n, r, d, t, v, ok)
SELECT g, (random()*65534 - 32767)::int::smallint, (random()*4294967294 - 2147483647)::bigint::int,
  ((random()*1.8e18)::bigint + g) * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END),
  round((random()*1.998e9 - 0.999e9)::numeric, 3), (random()*1000 - 500)::real, random()*1e6 - 5e5,
  CASE g % 50 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE md5(g::text) || e' é "q" \\ \n' END,
  left(md5(random()::text), (g % 20)::int + 1),
  CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false END
FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT DO NOTHING`,
	"times": `INSERT INTO %[1]s.times (id, dt, tm, ts, tz, u, iv)
SELECT g, date '2000-01-01' + (random()*36500 - 18250)::int, time '00:00' + random() * interval '23 hours',
  timestamp '1950-01-01' + random() * interval '100 years', timestamptz '1950-01-01 00:00+00' + random() * interval '100 years',
  gen_random_uuid(),
  CASE WHEN g % 25 = 0 THEN NULL ELSE make_interval(years => (g % 3)::int, months => (g % 12)::int,
    days => (g % 40)::int - 20, hours => (g % 30)::int, mins => (g % 60)::int, secs => (g % 600) / 10.0 + 0.000001) END
FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT DO NOTHING`,
	"docs": `INSERT INTO %[1]s.docs (id, j, raw, ia, ta, label)
SELECT g, jsonb_build_object('k', g, 'f', random(), 'arr', jsonb_build_array(1, 'x', null, true), 'n', jsonb_build_object('s', e'é"\\')),
  CASE g % 30 WHEN 0 THEN NULL WHEN 1 THEN ''::bytea ELSE decode(md5(g::text), 'hex') || '\x00ff'::bytea END,
  CASE g % 20 WHEN 0 THEN NULL WHEN 1 THEN '{}' ELSE ARRAY[g::int, -g::int, (random()*1000)::int] END,
  CASE g % 20 WHEN 0 THEN NULL WHEN 1 THEN '{}' WHEN 2 THEN ARRAY[NULL, 'x'] ELSE ARRAY['a b', 'c,d', 'q"t', md5(random()::text)] END,
  'doc ' || g
FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT DO NOTHING`,
	"big": `INSERT INTO %[1]s.big (id, title, body)
SELECT g, 'title ' || g, (SELECT string_agg(md5(g::text || '-' || x || random()::text), '') FROM generate_series(1, 400) x)
FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT DO NOTHING`,
}

// cdcUpdate changes the rows of each table that %[2]s selects (its
// condition on id). bigTitle changes only big's title: its TOASTed body is
// then not in the change event.
var cdcUpdate = map[string]string{
	"scalars":  `UPDATE %[1]s.scalars SET t = md5(random()::text), n = round((random()*1e6)::numeric, 3), ok = NOT ok, r = r + 0.5 WHERE %[2]s`,
	"times":    `UPDATE %[1]s.times SET tz = tz + interval '1 hour 0.000001 sec', iv = iv + interval '1 mon', u = gen_random_uuid() WHERE %[2]s`,
	"docs":     `UPDATE %[1]s.docs SET j = j || jsonb_build_object('u', random()), ia = array_append(ia, 7), ta = array_prepend('new', ta) WHERE %[2]s`,
	"big":      `UPDATE %[1]s.big SET body = (SELECT string_agg(md5(id::text || x || random()::text), '') FROM generate_series(1, 300) x) WHERE %[2]s`,
	"bigTitle": `UPDATE %[1]s.big SET title = title || '+' WHERE %[2]s`,
}

// cdcSize is the rows seeded per table (big: a tenth of it) and how long
// the target may take to catch up: CDC_SIZE=full for a larger run than
// CI's.
func cdcSize(t *testing.T) (int64, time.Duration) {
	switch os.Getenv("CDC_SIZE") {
	case "", "ci":
		return 2000, 2 * time.Minute
	case "full":
		return 50000, 10 * time.Minute
	default:
		t.Fatalf("CDC_SIZE must be ci or full, not %q", os.Getenv("CDC_SIZE"))
		return 0, 0
	}
}

// cdcRun is one replication pipeline: a source schema, its Debezium
// connector and topics, the target tables and the worker's settings.
type cdcRun struct {
	t         *testing.T
	name      string // source schema, connector, topic prefix, slot, publication, target table prefix
	sourceURL string
	src, dst  *pgxpool.Pool
	group     string
	env       map[string]string
	marker    int64
	nextID    map[string]*atomic.Int64 // the next id to insert per table
}

func (r *cdcRun) topic(table string) string  { return r.name + "." + r.name + "." + table }
func (r *cdcRun) target(table string) string { return r.name + "_" + table }

func (r *cdcRun) topics() []string {
	out := make([]string, len(cdcTables))
	for i, tb := range cdcTables {
		out[i] = r.topic(tb)
	}
	return out
}

// exec runs a statement template on the source with schema filled in.
func (r *cdcRun) exec(ctx context.Context, tmpl, where string, args ...any) error {
	_, err := r.src.Exec(ctx, r.sql(tmpl, where), args...)
	return err
}

// sql is a statement template with the schema (%[1]s) and the condition
// (%[2]s) filled in.
func (r *cdcRun) sql(tmpl, where string) string {
	return strings.NewReplacer("%[1]s", r.name, "%[2]s", where).Replace(tmpl)
}

// insert adds n rows with new ids to table.
func (r *cdcRun) insert(ctx context.Context, table string, n int64) error {
	hi := r.nextID[table].Add(n)
	return r.exec(ctx, cdcInsert[table], "", hi-n, hi-1)
}

// sync moves the marker on and waits until the worker applied it and every
// topic's end: then the target holds every change made before.
func (r *cdcRun) sync(timeout time.Duration) time.Duration {
	t := r.t
	t.Helper()
	start := time.Now()
	r.marker++
	require.NoError(t, r.exec(t.Context(), `UPDATE %[1]s.marker SET seq = $1 WHERE id = 1`, "", r.marker))
	target := pgx.Identifier{r.target("marker")}.Sanitize()
	require.Eventually(t, func() bool {
		var seq int64
		err := r.dst.QueryRow(t.Context(), "SELECT seq FROM "+target+" WHERE id = 1").Scan(&seq)
		return err == nil && seq == r.marker
	}, timeout, 200*time.Millisecond, "marker %d never reached the target table %s", r.marker, target)
	seen := time.Since(start)
	// Kafka orders records within a partition only: the marker's topic can
	// have its event before a table's topic has every earlier one (the
	// connector's producer sends to each partition on its own, and after a
	// kill it sends a backlog again). So the topics must also stop growing
	// for a while, and then be applied.
	for ends := r.ends(); ; {
		caughtUp(t, r.dst, r.group, r.topics(), timeout)
		time.Sleep(2 * time.Second)
		now := r.ends()
		if maps.Equal(now, ends) {
			break
		}
		require.Less(t, time.Since(start), timeout, "the topics never stopped growing: %v, then %v", ends, now)
		ends = now
	}
	t.Logf("marker %d in the target after %s, all topics applied and quiet after %s", r.marker, seen.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return time.Since(start)
}

// ends is the end offset of each of the run's topics.
func (r *cdcRun) ends() map[string]int64 {
	r.t.Helper()
	ends, err := admin(r.t).ListEndOffsets(r.t.Context(), r.topics()...)
	require.NoError(r.t, err)
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Topic] += o.Offset })
	return out
}

// reconcileAll compares each source table with its target table by
// `sinkworker reconcile` over the source's columns and requires them
// equal; it also requires the target columns to have the source's types.
func (r *cdcRun) reconcileAll(phase string) {
	t := r.t
	t.Helper()
	before := r.endOffsets()
	defer func() {
		assert.Equal(t, before, r.endOffsets(), "%s: the topics grew while reconciling: the connector still sent changes made before the marker", phase)
	}()
	for _, tb := range cdcTables {
		names, types := sourceColumns(t, r.src, r.name+"."+tb)
		assert.Equal(t, types, targetTypes(t, r.dst, r.target(tb), names), "%s: column types of %s (%v) in the target", phase, tb, names)
		start := time.Now()
		code, out := reconcileTable(t, r.sourceURL, r.name+"."+tb, r.target(tb), names)
		assert.Equal(t, 0, code, "%s: sinkworker reconcile %s exit status; output:\n%s", phase, tb, out)
		t.Logf("%s: %s: %d source rows, %d target rows, reconcile %s: %s", phase, tb,
			countRows(t, r.src, r.name+"."+tb), countRows(t, r.dst, pgx.Identifier{r.target(tb)}.Sanitize()),
			time.Since(start).Round(time.Millisecond), lastLine(out))
	}
}

// endOffsets is each topic's end offset.
func (r *cdcRun) endOffsets() map[string]int64 {
	ends, err := admin(r.t).ListEndOffsets(r.t.Context(), r.topics()...)
	require.NoError(r.t, err)
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Topic] += o.Offset })
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// newCDCRun creates the source tables, seeded with n rows each (big: n/10),
// registers their Debezium connector (its snapshot reads the seed) and
// arranges for all of it, the topics, the target tables and the group's
// offsets to be removed after the test.
func newCDCRun(t *testing.T, n int64) *cdcRun {
	t.Helper()
	sourceURL, connectURL := cdcServices(t)
	lockCDC(t)
	r := &cdcRun{t: t, name: uniq("cdc"), sourceURL: sourceURL, dst: db(t), nextID: map[string]*atomic.Int64{}}
	src, err := pgxpool.New(t.Context(), sourceURL)
	require.NoError(t, err)
	t.Cleanup(src.Close)
	r.src = src
	r.group = ownGroup(t, r.dst)
	cleanPrefix(t, r.name)
	for _, tb := range cdcTables {
		dropTable(t, r.dst, r.target(tb))
	}
	t.Cleanup(func() { // after the connector is gone (cleanups run last first)
		_, err := src.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+r.name+" CASCADE")
		assert.NoError(t, err, "drop the source schema")
	})
	_, err = src.Exec(t.Context(), r.sql(cdcSchema, ""))
	require.NoError(t, err, "create the source tables")
	for _, tb := range cdcTables[:4] {
		r.nextID[tb] = &atomic.Int64{}
		r.nextID[tb].Store(10)
		rows := n
		if tb == "big" {
			rows = n / 10
		}
		require.NoError(t, r.insert(t.Context(), tb, rows), "seed %s", tb)
	}
	registerConnector(t, connectURL, r.name, debeziumSource(r.name, r.name))
	r.env = map[string]string{
		"KAFKA_GROUP":           r.group,
		"KAFKA_TOPICS_REGEX":    regexp.QuoteMeta(r.name) + `\.` + regexp.QuoteMeta(r.name) + `\..*`,
		"SINK_TABLE_FORMAT":     r.name + "_${source.table}",
		"SINK_ENVELOPE":         "debezium",
		"SINK_KEY_FORMAT":       "connect-json",
		"SINK_VALUE_FORMAT":     "connect-json",
		"SINK_MAPPING":          "columns",
		"SINK_SCHEMA_EVOLUTION": "add-columns",
		"SINK_TRUNCATE":         "true",
	}
	return r
}

// TestReplicateDatabase replicates four source tables through Debezium and
// sinkworker, covering PostgreSQL's common column types, TOAST, deletes and
// a truncate, and proves with `sinkworker reconcile` that every target table
// equals its source: after a snapshot and a round of changes, and again
// after changes made while the worker is SIGKILLed and Kafka Connect is
// restarted.
func TestReplicateDatabase(t *testing.T) {
	n, timeout := cdcSize(t)
	began := time.Now()
	r := newCDCRun(t, n)
	t.Logf("seeded %d rows per table (big: %d rows of 12.8 KB), connector running: %s", n, n/10, time.Since(began).Round(time.Millisecond))
	w := startWorker(t, "cdc-1", r.env)
	ctx := t.Context()

	// Phase one: the snapshot, then updates, deletes, inserts and a truncate.
	start := time.Now()
	for _, step := range []struct{ tmpl, where string }{
		{cdcUpdate["scalars"], "id % 10 = 0 OR id <= 4"},
		{cdcUpdate["times"], "id % 7 = 0 OR id <= 4"},
		{cdcUpdate["docs"], "id % 9 = 0"},
		{cdcUpdate["bigTitle"], "id % 3 = 0"}, // body unchanged: TOAST placeholder
		{cdcUpdate["big"], "id % 11 = 0"},
		{`DELETE FROM %[1]s.scalars WHERE %[2]s`, "id % 17 = 0"},
		{`DELETE FROM %[1]s.times WHERE %[2]s`, "id % 13 = 0"},
		{`DELETE FROM %[1]s.big WHERE %[2]s`, "id % 19 = 0"},
	} {
		require.NoError(t, r.exec(ctx, step.tmpl, step.where), "phase one: %s", step.tmpl)
	}
	for _, tb := range []string{"scalars", "times", "big"} {
		require.NoError(t, r.insert(ctx, tb, n/20+1), "phase one: insert into %s", tb)
	}
	// A truncate, then rows again (the old ids among them, with new
	// values): a truncate not applied leaves the other old rows behind.
	require.NoError(t, r.exec(ctx, `TRUNCATE %[1]s.docs`, ""))
	r.nextID["docs"].Store(1)
	require.NoError(t, r.insert(ctx, "docs", n/2))
	r.nextID["docs"].Store(n + 10)
	changed := time.Since(start)
	waited := r.sync(timeout)
	t.Logf("phase one: changes made in %s, caught up %s later; since the connector ran: %s",
		changed.Round(time.Millisecond), waited.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	r.reconcileAll("phase one")

	placeholders := 0
	for _, rec := range readTopic(t, r.topic("big")) {
		if strings.Contains(string(rec.Value), "__debezium_unavailable_value") {
			placeholders++
		}
	}
	require.Positive(t, placeholders, "no change event of big carries Debezium's TOAST placeholder: the unchanged-TOAST case was not exercised")
	t.Logf("phase one: %d change events of big without their TOASTed body", placeholders)

	// Phase two: changes keep coming while the worker is SIGKILLed and
	// started again, and Kafka Connect is restarted, then SIGKILLed and
	// started again.
	start = time.Now()
	churnCtx, stopChurn := context.WithCancel(ctx)
	churned := make(chan error, 1)
	var ops atomic.Int64
	go func() { churned <- r.churn(churnCtx, n, &ops) }()
	time.Sleep(3 * time.Second)
	w.kill()
	killedAt := ops.Load()
	w = startWorker(t, "cdc-2", r.env)
	time.Sleep(2 * time.Second)
	restart := time.Now()
	cdcScript(t, "connect-restart")
	cdcScript(t, "wait-running", r.name)
	restarted := time.Since(restart)
	time.Sleep(2 * time.Second)
	// And killed: its task resends what it sent since its last offset
	// commit (Debezium is at least once).
	restart = time.Now()
	cdcScript(t, "connect-kill")
	cdcScript(t, "connect-start")
	cdcScript(t, "wait-running", r.name)
	killed := time.Since(restart)
	time.Sleep(2 * time.Second)
	stopChurn()
	require.NoError(t, <-churned, "changing the source")
	waited = r.sync(timeout)
	t.Logf("phase two: %d changes (worker SIGKILLed after %d), Connect restarted in %s, killed and started in %s, caught up %s after the last change; phase %s",
		ops.Load(), killedAt, restarted.Round(time.Millisecond), killed.Round(time.Millisecond), waited.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
	r.reconcileAll("phase two")
	for _, tb := range cdcTables {
		t.Logf("phase two: %s: %d change events sent twice", tb, resent(t, r.topic(tb)))
	}

	for _, topic := range r.topics() {
		assert.Empty(t, deadLetters(t, topic), "dead letters of %s", topic)
	}
	w.stop()

	// The comparison can fail: one changed target row is found.
	target := pgx.Identifier{r.target("scalars")}.Sanitize()
	tag, err := r.dst.Exec(ctx, "UPDATE "+target+" SET t = coalesce(t, '') || 'tampered' WHERE id = (SELECT min(id) FROM "+target+")")
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "rows of %s changed", target)
	names, _ := sourceColumns(t, r.src, r.name+".scalars")
	code, out := reconcileTable(t, r.sourceURL, r.name+".scalars", r.target("scalars"), names)
	assert.Equal(t, 1, code, "reconcile after changing one target row; output:\n%s", out)
	assert.Contains(t, out, "0 missing (in the source only), 0 extra (in the target only), 1 different", "reconcile output")
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// churn changes random rows of the source tables until ctx ends, counting
// the statements in ops: inserts, updates (big's title alone among them),
// deletes, and now and then a transaction of several.
func (r *cdcRun) churn(ctx context.Context, n int64, ops *atomic.Int64) error {
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	tables := cdcTables[:4]
	for ctx.Err() == nil {
		tb := tables[rnd.IntN(len(tables))]
		id := 1 + rnd.Int64N(r.nextID[tb].Load())
		var err error
		switch k := rnd.IntN(10); {
		case k < 3:
			err = r.insert(ctx, tb, 1+rnd.Int64N(3))
		case k < 8:
			upd := cdcUpdate[tb]
			if tb == "big" && k < 6 {
				upd = cdcUpdate["bigTitle"]
			}
			err = r.exec(ctx, upd, "id = $1", id)
		case k < 9:
			err = r.exec(ctx, `DELETE FROM %[1]s.`+tb+` WHERE %[2]s`, "id = $1", id)
		default:
			err = pgx.BeginFunc(ctx, r.src, func(tx pgx.Tx) error {
				for _, tb := range tables {
					q := r.sql(cdcUpdate[tb], "id = $1")
					if _, err := tx.Exec(ctx, q, 1+rnd.Int64N(n)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			if ctx.Err() != nil { // stopped mid-statement
				return nil
			}
			return err
		}
		ops.Add(1)
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}
