package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// testLayout puts even records in partition 0 and odd ones in 1.
func testLayout(d *dataset.Dataset) *dataset.Layout {
	l := &dataset.Layout{Topic: "t", Parts: 2, TsMs: make([]int64, d.N), Part: make([]int32, d.N), Off: make([]int64, d.N)}
	l.ByPart = [][]int32{{}, {}}
	for i := range int32(d.N) {
		p := i % 2
		l.Part[i], l.Off[i], l.TsMs[i] = p, int64(len(l.ByPart[p])), 1_700_000_000_000+int64(i)
		l.ByPart[p] = append(l.ByPart[p], i)
	}
	return l
}

func TestLimitBatches(t *testing.T) {
	d := dataset.New(1000, 50)
	l := testLayout(d)

	perPart, rows := limitBatches(d, l, 200, true)
	require.Len(t, perPart, 2)
	assert.Equal(t, d.N, rows, "insert mode keeps every record")
	for p, bs := range perPart {
		require.Len(t, bs, 3, "500 records of partition %d in batches of 200", p)
		assert.Len(t, bs[2].keys, 100)
		assert.Equal(t, []int64{0, 1}, bs[0].offsets[:2])
		assert.Equal(t, int32(p), bs[0].part)
		assert.Equal(t, string(d.Key(int32(p))), bs[0].keys[0])
		assert.True(t, bs[0].timestamps[0].Equal(time.UnixMilli(l.TsMs[p])))
	}

	perPart, rows = limitBatches(d, l, 200, false)
	total := 0
	for _, bs := range perPart {
		for _, b := range bs {
			require.Len(t, b.values, len(b.keys))
			seen := map[string]bool{}
			for _, k := range b.keys {
				assert.False(t, seen[k], "key %s twice in an upsert batch", k)
				seen[k] = true
			}
			total += len(b.keys)
		}
	}
	assert.Equal(t, total, rows)
	assert.Less(t, rows, d.N, "upsert mode de-duplicates")
}

func TestLimitShare(t *testing.T) {
	b := func(p int32, off int64) limitBatch { return limitBatch{part: p, offsets: []int64{off}} }
	perPart := [][]limitBatch{{b(0, 1), b(0, 2)}, {b(1, 1)}, {b(2, 1), b(2, 2), b(2, 3)}}
	for _, tc := range []struct {
		name  string
		conns int
		want  [][]limitBatch
	}{
		{"one connection takes partitions in turn", 1, [][]limitBatch{{b(0, 1), b(1, 1), b(2, 1), b(0, 2), b(2, 2), b(2, 3)}}},
		{"p %% conns", 2, [][]limitBatch{{b(0, 1), b(2, 1), b(0, 2), b(2, 2), b(2, 3)}, {b(1, 1)}}},
		{"one per partition keeps each in order", 3, perPart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, limitShare(perPart, tc.conns))
		})
	}
}

func TestLimitOptions(t *testing.T) {
	o := limitOptions{batch: 5000, connsArg: "1,2,4,8,16"}
	require.NoError(t, o.validate())
	assert.Equal(t, []int{1}, o.at(1))
	assert.Equal(t, []int{1, 2, 4}, o.at(4))
	assert.Equal(t, []int{1, 2, 4, 6}, o.at(6), "P itself is measured")
	assert.Equal(t, []int{1, 2, 4, 8, 16, 64}, o.at(64))

	err := (&limitOptions{batch: 0, connsArg: "1,x"}).validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-limit-batch")
	assert.Contains(t, err.Error(), "-limit-conns")
}

func TestLimitSQL(t *testing.T) {
	q := newLimitSQL("topic", "tbl", false)
	assert.Contains(t, q.unnest, `INSERT INTO "tbl"`)
	assert.Contains(t, q.unnest, "ON CONFLICT (key) DO UPDATE")
	assert.Contains(t, q.merge, `MERGE INTO "tbl"`)
	assert.Contains(t, q.fromStage, "FROM limit_stage")
	assert.Contains(t, newLimitSQL("topic", "tbl", true).unnest, "DO NOTHING", "insert mode: the writer's insert statement")
}

func TestLimitReport(t *testing.T) {
	l := &limitResult{records: 1000, batch: 5000, runs: []limitRun{
		{mode: "insert", method: limitCopy, parts: 4, conns: 1, time: time.Second},
		{mode: "insert", method: limitUnnest, parts: 4, conns: 1, time: 2 * time.Second},
		{mode: "insert", method: limitCopy, parts: 4, conns: 2, time: 4 * time.Second},
		{mode: "insert", method: limitUnnest, parts: 4, conns: 2, time: 500 * time.Millisecond},
		{mode: "upsert", method: limitMerge, parts: 4, conns: 1, time: time.Second, rows: 10},
	}}
	top, ok := l.best("insert", 4, 0)
	require.True(t, ok)
	assert.Equal(t, limitUnnest, top.method)
	assert.Equal(t, 2, top.conns)
	top, ok = l.best("insert", 4, 1)
	require.True(t, ok)
	assert.Equal(t, limitCopy, top.method)
	_, ok = l.best("upsert", 16, 0)
	assert.False(t, ok)

	var b strings.Builder
	l.markdown(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...) + "\n") }, []int{4})
	md := b.String()
	assert.Contains(t, md, "| copy | 1 | **1000** |")
	assert.Contains(t, md, "| unnest | 1 | 500 |")
	assert.Contains(t, md, "| unnest | 2 | **2000** |")
	assert.Contains(t, md, "best **2000** records/s, unnest at 2 connections")
	assert.Equal(t, []string{
		"**limit, insert** (records/s): 4 partitions 2000 (unnest, 2 connections)",
		"**limit, upsert** (records/s): 4 partitions 1000 (merge, 1 connections)",
	}, l.summary([]int{4}))
	assert.Len(t, l.csv(), 5)
	assert.Equal(t, "limit-upsert-merge", l.csv()[4][0])
}
