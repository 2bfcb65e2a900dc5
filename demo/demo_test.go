package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The demo test runs the whole demo at a small size: kfake in-process, a
// temporary PostgreSQL from the installed binaries (else embedded-postgres)
// and real worker processes built from ./cmd/sinkworker. If no PostgreSQL
// can be started the test fails; it never skips.

var workerBinary string // built by TestMain

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sinkworker-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workerBinary = filepath.Join(dir, "sinkworker")
	build := exec.Command("go", "build", "-o", workerBinary, "./cmd/sinkworker")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: build the worker: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// TestRun runs the demo embedded (kfake, a temporary PostgreSQL) and, so
// that the table can be checked after the run by this test itself, against
// the real services of `scripts/services up`, where the demo leaves its
// topic and table in place.
func TestRun(t *testing.T) {
	tests := []struct {
		name                       string
		events, workers, parts, nb int
		kill                       bool
		real                       bool // the real broker and database, checked against the test's own model
	}{
		{name: "kill and restart a worker", events: 5000, workers: 2, parts: 4, nb: 0, kill: true},
		{name: "bad records are dead-lettered", events: 3000, workers: 2, parts: 3, nb: 5, kill: false},
		{name: "real services, kill and bad records", events: 5000, workers: 2, parts: 4, nb: 5, kill: true, real: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Events, opts.Workers, opts.Partitions, opts.Bad, opts.NoKill = tc.events, tc.workers, tc.parts, tc.nb, !tc.kill
			// Only the allow-list of the test's environment: an exported
			// SINK_MODE must not change what the demo's workers do.
			opts.WorkerBinary, opts.WorkerEnv = workerBinary, testenv.ProcessEnv()
			if tc.real {
				opts.DatabaseURL = testenv.DatabaseURL(t)
				brokers := os.Getenv("KAFKA_BROKERS")
				require.NotEmpty(t, brokers, "KAFKA_BROKERS: %s", testenv.Hint)
				opts.Brokers = strings.Split(brokers, ",")
			}
			var out bytes.Buffer
			opts.Out = &out
			res, err := Run(t.Context(), opts)
			t.Log("\n" + out.String())
			require.NoError(t, err)
			if tc.real {
				cleanUp(t, opts, res)
				checkAgainstLog(t, opts, res, tc.nb)
			}

			assert.True(t, res.Passed, "problems: %q", res.Problems)
			assert.Empty(t, res.Problems)
			assert.Equal(t, int64(tc.events+tc.nb), res.Records)
			assert.Equal(t, res.Records, res.Sunk, "sum(next_offset) accounts for every record")
			assert.Equal(t, res.Model, res.Rows, "table rows == model rows")
			assert.Positive(t, res.Rows)
			assert.Zero(t, res.Mismatch)
			assert.LessOrEqual(t, res.PeakConns, tc.parts, "peak connections <= partitions")
			assert.Positive(t, res.PeakConns)
			assert.Len(t, res.DeadLetters, tc.nb)
			for _, d := range res.DeadLetters {
				assert.NotEmpty(t, d.Kind, "dead letter at %d/%d is a bad record", d.Partition, d.Offset)
				assert.NotEmpty(t, d.Class)
				assert.NotEmpty(t, d.Message)
			}
			assert.Equal(t, tc.kill, res.Recovery != nil)
			assert.Contains(t, out.String(), "Result: PASS")
			assert.Contains(t, out.String(), "go run ./cmd/sinkworker")
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Options)
		wants []string
	}{
		{name: "defaults", edit: func(*Options) {}},
		{name: "zero sizes are errors", edit: func(o *Options) { *o = Options{WorkerBinary: "x"} },
			wants: []string{"-events", "-workers", "-partitions"}},
		{name: "all bad at once", edit: func(o *Options) {
			o.Events, o.Rate, o.Workers, o.Partitions, o.DeletePercent, o.Postgres, o.Format = -1, -1, 33, 65, 51, "docker", "xml"
		}, wants: []string{"-events", "-rate", "-workers", "-partitions", "-deletes", "-postgres", "-format"}},
		{name: "more bad than events", edit: func(o *Options) { o.Events, o.Bad = 3, 4 }, wants: []string{"-bad"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.WorkerBinary = "sinkworker"
			tc.edit(&o)
			err := o.fill()
			if len(tc.wants) == 0 {
				require.NoError(t, err)
				assert.Positive(t, o.Events)
				assert.NotNil(t, o.Out)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestStoryModel(t *testing.T) {
	s := newStory(20_000, 5, 7, jsonCodec{})
	last := map[string][]byte{}
	for range 20_000 {
		rec, err := s.next()
		require.NoError(t, err)
		if rec.value == nil {
			delete(last, string(rec.key))
			continue
		}
		require.True(t, json.Valid(rec.value), "%s", rec.value)
		last[string(rec.key)] = rec.value
	}
	assert.Equal(t, last, s.model, "the model is the last value per key, deleted keys absent")
	assert.Equal(t, 20_000, s.creates+s.changes+s.deletes)
	assert.InDelta(t, 5.0, 100*float64(s.deletes)/20_000, 2, "about 5%% deletes")
	for i := range len(jsonBadKinds) {
		kind, _, v, err := s.bad(i)
		require.NoError(t, err)
		assert.NotEmpty(t, kind)
		assert.NotEmpty(t, v)
	}
}

func TestToDLQRecord(t *testing.T) {
	d := toDLQRecord(&kgo.Record{Key: []byte("u-1"), Value: []byte("{"), Headers: []kgo.RecordHeader{
		{Key: "origin", Value: []byte("kept")},
		{Key: headerPartition, Value: []byte("3")},
		{Key: headerOffset, Value: []byte("12345")},
		{Key: headerClass, Value: []byte("decode")},
		{Key: headerMessage, Value: []byte("value is not valid JSON")},
	}})
	assert.Equal(t, DeadLetter{Partition: 3, Offset: 12345, Class: "decode", Message: "value is not valid JSON"}, d.dl)
	assert.Equal(t, []byte("u-1"), d.key)
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 200_005: "200,005", -1234567: "-1,234,567"} {
		assert.Equal(t, want, count(n))
	}
}

// cleanUp removes, after the test, what a demo run on the real services
// left in place: its topics, table and sink_offsets rows.
func cleanUp(t *testing.T, opts Options, res Result) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cl, err := kgo.NewClient(kgo.SeedBrokers(opts.Brokers...)); err == nil {
			_, _ = kadm.NewClient(cl).DeleteTopics(ctx, res.Topic, res.Topic+".dlq")
			cl.Close()
		}
		if conn, err := pgx.Connect(ctx, opts.DatabaseURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{res.Table}.Sanitize())
			_, _ = conn.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", res.Group)
			conn.Close(ctx)
		}
	})
}

// readAll reads every record of topic, from the start to its end offsets
// now, in offset order per partition.
func readAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	want, start := map[int32]int64{}, map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition], start[o.Partition] = o.Offset, kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	require.NoError(t, err)
	defer rd.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	got := map[int32]int64{}
	for done := false; !done; {
		fs := rd.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading %s", topic)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); got[r.Partition] = r.Offset + 1 })
		done = true
		for p, end := range want {
			done = done && got[p] >= end
		}
	}
	return out
}

// checkAgainstLog compares the demo's table with a model the test builds
// from the topic itself, independent of the demo's own checker: per key,
// the value of its last record in offset order that was not dead-lettered
// (a tombstone deletes the key). The dead-letter topic must name exactly
// bad source records.
func checkAgainstLog(t *testing.T, opts Options, res Result, bad int) {
	t.Helper()
	type coord struct {
		p int32
		o int64
	}
	dead := map[coord]bool{}
	for _, d := range readAll(t, opts.Brokers, res.Topic+".dlq") {
		dl := toDLQRecord(d).dl
		dead[coord{dl.Partition, dl.Offset}] = true
	}
	assert.Len(t, dead, bad, "source records in the dead-letter topic")
	log := readAll(t, opts.Brokers, res.Topic)
	assert.Len(t, log, opts.Events+bad, "records in the topic")
	model := map[string]string{}
	for _, r := range log {
		switch {
		case dead[coord{r.Partition, r.Offset}]:
		case r.Value == nil:
			delete(model, string(r.Key))
		default:
			model[string(r.Key)] = string(r.Value)
		}
	}
	conn, err := pgx.Connect(t.Context(), opts.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	keys, values := make([]string, 0, len(model)), make([]string, 0, len(model))
	for k, v := range model {
		keys, values = append(keys, k), append(values, v)
	}
	table := pgx.Identifier{res.Table}.Sanitize()
	var rows, wrong int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&rows))
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM unnest($1::text[], $2::text[]) AS m(k, v)
LEFT JOIN `+table+` t ON t.key = m.k WHERE t.key IS NULL OR t.value <> m.v::jsonb`, keys, values).Scan(&wrong))
	assert.Equal(t, len(model), rows, "rows in the table vs keys alive in the model built from the topic")
	assert.Zero(t, wrong, "keys of the model missing from the table or with another value")
	t.Logf("independent check: %d records in the topic, %d dead-lettered, %d keys in the model and %d rows", len(log), len(dead), len(model), rows)
}
