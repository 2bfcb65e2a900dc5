package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
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

func TestRun(t *testing.T) {
	tests := []struct {
		name                       string
		events, workers, parts, nb int
		kill                       bool
	}{
		{name: "kill and restart a worker", events: 5000, workers: 2, parts: 4, nb: 0, kill: true},
		{name: "bad records are dead-lettered", events: 3000, workers: 2, parts: 3, nb: 5, kill: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Events, opts.Workers, opts.Partitions, opts.Bad, opts.NoKill = tc.events, tc.workers, tc.parts, tc.nb, !tc.kill
			opts.WorkerBinary, opts.WorkerEnv = workerBinary, os.Environ()
			var out bytes.Buffer
			opts.Out = &out
			res, err := Run(t.Context(), opts)
			t.Log("\n" + out.String())
			require.NoError(t, err)

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
			o.Events, o.Rate, o.Workers, o.Partitions, o.DeletePercent, o.Postgres = -1, -1, 33, 65, 51, "docker"
		}, wants: []string{"-events", "-rate", "-workers", "-partitions", "-deletes", "-postgres"}},
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
	s := newStory(20_000, 5, 7)
	last := map[string][]byte{}
	for range 20_000 {
		k, v := s.next()
		if v == nil {
			delete(last, k)
			continue
		}
		require.True(t, json.Valid(v), "%s", v)
		last[k] = v
	}
	assert.Equal(t, last, s.model, "the model is the last value per key, deleted keys absent")
	assert.Equal(t, 20_000, s.creates+s.changes+s.deletes)
	assert.InDelta(t, 5.0, 100*float64(s.deletes)/20_000, 2, "about 5%% deletes")
	for i := range len(badKinds) {
		kind, _, v := s.bad(i)
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
