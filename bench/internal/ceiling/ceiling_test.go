package ceiling

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

func TestBatches(t *testing.T) {
	d := dataset.New(1000, 50)
	l := &dataset.Layout{Parts: 2, TsMs: make([]int64, d.N), Part: make([]int32, d.N), Off: make([]int64, d.N)}
	l.ByPart = [][]int32{{}, {}}
	for i := range int32(d.N) { // even records to partition 0, odd to 1
		p := i % 2
		l.Part[i], l.Off[i] = p, int64(len(l.ByPart[p]))
		l.ByPart[p] = append(l.ByPart[p], i)
	}
	perPart, rows := Batches(d, l, 200, false)
	require.Len(t, perPart, 2)
	total := 0
	for p, bs := range perPart {
		require.Len(t, bs, 3, "500 records of partition %d in batches of 200", p)
		assert.Equal(t, []int64{200, 400, 500}, []int64{bs[0].next, bs[1].next, bs[2].next})
		for _, b := range bs {
			assert.Equal(t, int32(p), b.part)
			assert.LessOrEqual(t, len(b.keys), 50, "de-duplicated: at most one row per key")
			seen := map[string]bool{}
			for _, k := range b.keys {
				assert.False(t, seen[*k], "key %s twice in a batch", *k)
				seen[*k] = true
			}
			total += len(b.keys)
		}
	}
	assert.Equal(t, total, rows)

	perPart, rows = Batches(d, l, 200, true)
	assert.Equal(t, d.N, rows, "insert mode keeps every record")
	assert.Len(t, perPart[1][2].keys, 100)
}

func TestShare(t *testing.T) {
	b := func(p int32, next int64) Batch { return Batch{part: p, next: next} }
	perPart := [][]Batch{{b(0, 1), b(0, 2)}, {b(1, 1)}, {b(2, 1), b(2, 2), b(2, 3)}}
	for _, tc := range []struct {
		name  string
		conns int
		want  [][]Batch
	}{
		{"one connection takes partitions in turn", 1,
			[][]Batch{{b(0, 1), b(1, 1), b(2, 1), b(0, 2), b(2, 2), b(2, 3)}}},
		{"p %% conns", 2, [][]Batch{{b(0, 1), b(2, 1), b(0, 2), b(2, 2), b(2, 3)}, {b(1, 1)}}},
		{"one per partition keeps each in order", 3, perPart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, share(perPart, tc.conns))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Tx: Writer}.validate()
	require.Error(t, err)
	for _, field := range []string{"Table", "Conns", "Group and Topic", "Topic is empty"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.NoError(t, Config{Table: "t", Conns: 1, Topic: "x"}.validate())
}
