package dataset

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	d := New(100_000, 20_000)
	assert.Equal(t, 100_000, d.N)
	assert.Equal(t, 19_846, d.DistinctKeys, "the fixed seed draws the same keys every run")
	assert.Equal(t, "user-15387", string(d.Key(0)))
	assert.Equal(t, `{"user_id":15387,"event":"points-changed","points":6164,"ts":"2026-01-02T03:04:05.678Z","pad":"ab"}`,
		string(d.Value(0, 1767323045678)))
	for _, i := range []int32{0, 1, 99_999} {
		assert.InDelta(t, ValueSize, len(d.Value(i, 1767323045678)), 5, "record %d", i)
	}
}

func TestLayoutIndex(t *testing.T) {
	for _, tc := range []struct {
		name    string
		part    []int32
		off     []int64
		ends    map[int32]int64
		wantErr string
		byPart  [][]int32
	}{
		{name: "each offset once", part: []int32{1, 0, 1}, off: []int64{1, 0, 0},
			ends: map[int32]int64{0: 1, 1: 2}, byPart: [][]int32{{1}, {2, 0}}},
		{name: "end offsets count more", part: []int32{0, 0, 0}, off: []int64{0, 1, 2},
			ends: map[int32]int64{0: 4, 1: 0}, wantErr: "end offsets add up to 4, produced 3"},
		{name: "an offset twice", part: []int32{0, 0, 1}, off: []int64{0, 0, 0},
			ends: map[int32]int64{0: 2, 1: 1}, wantErr: "record 1 acknowledged at 0/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Layout{Topic: "t", Parts: 2, Part: tc.part, Off: tc.off}
			err := l.index(len(tc.part), tc.ends)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.byPart, l.ByPart)
		})
	}
}

func TestExpected(t *testing.T) {
	d := &Dataset{N: 4, keyIdx: []int32{7, 8, 7, 7}, points: make([]int32, 4)}
	l := &Layout{Parts: 2, Part: []int32{0, 1, 0, 0}, Off: []int64{0, 0, 1, 2}}
	require.NoError(t, l.index(d.N, map[int32]int64{0: 3, 1: 1}))
	rows, sum := l.Expected(d, false)
	assert.Equal(t, 2, rows, "one row per distinct key")
	assert.Equal(t, int64(2+0), sum, "key 7 at its highest offset 2, key 8 at 0")
	rows, sum = l.Expected(d, true)
	assert.Equal(t, 4, rows, "insert mode: one row per record")
	assert.Equal(t, int64(0+1+2+0), sum, "every offset of both partitions")
}
