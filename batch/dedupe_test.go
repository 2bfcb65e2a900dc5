package batch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// in is one input record of a Dedupe table case. A nil val is a tombstone.
type in struct {
	key []byte
	val []byte
	off int64
}

func v(s string) []byte { return []byte(s) }

// records turns table input into records, in the given order.
func records(t *testing.T, ins []in) []*kgo.Record {
	t.Helper()
	out := make([]*kgo.Record, 0, len(ins))
	for _, x := range ins {
		out = append(out, rec(x.key, x.val, x.off))
	}
	return out
}

// snapshot is a deep copy of the parts of records Dedupe must leave alone.
type snapshot struct {
	ptrs []*kgo.Record
	recs []in
}

func takeSnapshot(t *testing.T, recs []*kgo.Record) snapshot {
	t.Helper()
	s := snapshot{ptrs: append([]*kgo.Record(nil), recs...)}
	for _, r := range recs {
		s.recs = append(s.recs, in{key: bytes.Clone(r.Key), val: bytes.Clone(r.Value), off: r.Offset})
	}
	return s
}

// assertUnchanged checks that recs still hold the same pointers, keys,
// values (including nil-ness) and offsets as when s was taken.
func assertUnchanged(t *testing.T, s snapshot, recs []*kgo.Record) {
	t.Helper()
	require.Len(t, recs, len(s.ptrs), "input slice length changed")
	for i, r := range recs {
		assert.Same(t, s.ptrs[i], r, "input[%d] replaced", i)
		assert.Equal(t, s.recs[i].key, r.Key, "input[%d] key", i)
		assert.Equal(t, s.recs[i].val, r.Value, "input[%d] value", i)
		assert.Equal(t, s.recs[i].val == nil, r.Value == nil, "input[%d] tombstone-ness", i)
		assert.Equal(t, s.recs[i].off, r.Offset, "input[%d] offset", i)
	}
}

// assertFromInput checks that every output record is one of the input
// records (by pointer), never a copy.
func assertFromInput(t *testing.T, input, output []*kgo.Record) {
	t.Helper()
	byPtr := make(map[*kgo.Record]bool, len(input))
	for _, r := range input {
		byPtr[r] = true
	}
	for _, r := range output {
		assert.True(t, byPtr[r], "output record at offset %d is not an input record", r.Offset)
	}
}

func TestDedupe(t *testing.T) {
	tests := []struct {
		name        string
		input       []in
		wantUpserts []int64 // offsets of the winning records
		wantDeletes []int64
	}{
		{
			name: "nil input",
		},
		{
			name:  "empty input",
			input: []in{},
		},
		{
			name:        "single upsert",
			input:       []in{{v("a"), v("1"), 0}},
			wantUpserts: []int64{0},
		},
		{
			name:        "single tombstone",
			input:       []in{{v("a"), nil, 0}},
			wantDeletes: []int64{0},
		},
		{
			name:        "distinct keys keep offset order",
			input:       []in{{v("a"), v("1"), 0}, {v("b"), v("2"), 1}, {v("c"), v("3"), 2}},
			wantUpserts: []int64{0, 1, 2},
		},
		{
			name: "repeated key highest offset wins",
			input: []in{
				{v("a"), v("1"), 10}, {v("a"), v("2"), 11}, {v("a"), v("3"), 12},
			},
			wantUpserts: []int64{12},
		},
		{
			name: "tombstone last deletes",
			input: []in{
				{v("a"), v("1"), 0}, {v("a"), v("2"), 1}, {v("a"), nil, 2},
			},
			wantDeletes: []int64{2},
		},
		{
			name:        "tombstone then value upserts",
			input:       []in{{v("a"), nil, 0}, {v("a"), v("1"), 1}},
			wantUpserts: []int64{1},
		},
		{
			name:        "value tombstone value upserts last value",
			input:       []in{{v("a"), v("1"), 0}, {v("a"), nil, 1}, {v("a"), v("2"), 2}},
			wantUpserts: []int64{2},
		},
		{
			name:        "tombstone value tombstone deletes",
			input:       []in{{v("a"), nil, 0}, {v("a"), v("1"), 1}, {v("a"), nil, 2}},
			wantDeletes: []int64{2},
		},
		{
			name:        "repeated tombstones keep the last",
			input:       []in{{v("a"), nil, 0}, {v("a"), nil, 1}},
			wantDeletes: []int64{1},
		},
		{
			name:        "empty non-nil value is an upsert, not a tombstone",
			input:       []in{{v("a"), nil, 0}, {v("a"), []byte{}, 1}},
			wantUpserts: []int64{1},
		},
		{
			// Observed and documented: Dedupe keys by string(r.Key), so a nil
			// key and an empty key are the same key and only the later wins.
			name:        "nil key then empty key are the same key",
			input:       []in{{nil, v("1"), 0}, {[]byte{}, v("2"), 1}},
			wantUpserts: []int64{1},
		},
		{
			name:        "empty key then nil key are the same key",
			input:       []in{{[]byte{}, v("1"), 0}, {nil, v("2"), 1}},
			wantUpserts: []int64{1},
		},
		{
			name:        "nil key tombstone deletes empty key",
			input:       []in{{[]byte{}, v("1"), 0}, {nil, nil, 1}},
			wantDeletes: []int64{1},
		},
		{
			name: "outputs ordered by winning offset",
			input: []in{
				{v("a"), v("1"), 0},
				{v("b"), v("1"), 1},
				{v("c"), nil, 2},
				{v("a"), nil, 3}, // a's winner: delete at 3
				{v("d"), v("1"), 4},
				{v("b"), v("2"), 5}, // b's winner: upsert at 5, after d
				{v("c"), nil, 6},    // c's winner: delete at 6, after a
				{v("e"), nil, 7},
				{v("d"), nil, 8}, // d's winner: delete at 8
			},
			wantUpserts: []int64{5},
			wantDeletes: []int64{3, 6, 7, 8},
		},
		{
			name: "offset gaps from compaction",
			input: []in{
				{v("a"), v("1"), 100}, {v("b"), v("1"), 250}, {v("a"), v("2"), 1000}, {v("b"), nil, 1001},
			},
			wantUpserts: []int64{1000},
			wantDeletes: []int64{1001},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var input []*kgo.Record
			if tt.input != nil {
				input = records(t, tt.input)
			}
			snap := takeSnapshot(t, input)

			upserts, deletes := Dedupe(input)

			assert.Equal(t, nonNil(tt.wantUpserts), offsets(upserts), "upserts")
			assert.Equal(t, nonNil(tt.wantDeletes), offsets(deletes), "deletes")
			for _, r := range upserts {
				assert.NotNil(t, r.Value, "upsert at offset %d is a tombstone", r.Offset)
			}
			for _, r := range deletes {
				assert.Nil(t, r.Value, "delete at offset %d has a value", r.Offset)
			}
			assertFromInput(t, input, upserts)
			assertFromInput(t, input, deletes)
			assertUnchanged(t, snap, input)
		})
	}
}

// nonNil turns a nil want into an empty one, to compare with offsets().
func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// TestDedupeDoesNotReorderInput guards the input slice in a case where the
// winners come out in a different order from the input's first occurrences.
func TestDedupeDoesNotReorderInput(t *testing.T) {
	input := records(t, []in{
		{v("b"), v("1"), 0}, {v("a"), v("1"), 1}, {v("b"), nil, 2}, {v("a"), v("2"), 3}, {v("c"), v("1"), 4},
	})
	snap := takeSnapshot(t, input)
	upserts, deletes := Dedupe(input)
	require.Equal(t, []int64{3, 4}, offsets(upserts))
	require.Equal(t, []int64{2}, offsets(deletes))
	assertUnchanged(t, snap, input)

	// The outputs are fresh slices: writing to them leaves the input alone.
	for i := range upserts {
		upserts[i] = nil
	}
	for i := range deletes {
		deletes[i] = nil
	}
	assertUnchanged(t, snap, input)
}

// TestDedupeModel compares Dedupe with a trivially correct model, a map from
// key to the last record seen, over random sequences drawn from a small key
// space with about 20% tombstones.
func TestDedupeModel(t *testing.T) {
	const (
		seed       = uint64(20250102)
		iterations = 500
		maxLen     = 60
	)
	// A small key space makes repeats likely. nil and "" are the same key.
	keys := [][]byte{nil, {}, v("a"), v("b"), v("c"), v("d"), v("e")}

	for iter := range iterations {
		rng := rand.New(rand.NewPCG(seed, uint64(iter)))
		input := randomRecords(rng, keys, rng.IntN(maxLen+1))
		snap := takeSnapshot(t, input)

		upserts, deletes := Dedupe(input)

		checkAgainstModel(t, input, upserts, deletes)
		assertUnchanged(t, snap, input)
		if t.Failed() {
			t.Fatalf("reproduce with seed=%d iter=%d (rand.NewPCG(%d, %d)); input:\n%s",
				seed, iter, seed, iter, describe(input))
		}
	}
}

// randomRecords returns n records in increasing offset order (with random
// gaps), keys drawn from keys and about 20% tombstones.
func randomRecords(rng *rand.Rand, keys [][]byte, n int) []*kgo.Record {
	out := make([]*kgo.Record, 0, n)
	off := rng.Int64N(1000)
	for i := range n {
		key := keys[rng.IntN(len(keys))]
		var val []byte
		switch p := rng.IntN(100); {
		case p < 20:
			val = nil // tombstone
		case p < 25:
			val = []byte{} // empty, but not a tombstone
		default:
			val = fmt.Appendf(nil, "v%d", i)
		}
		out = append(out, rec(key, val, off))
		off += 1 + rng.Int64N(3)
	}
	return out
}

// checkAgainstModel checks Dedupe's outputs against a map key -> last record.
func checkAgainstModel(t *testing.T, input, upserts, deletes []*kgo.Record) {
	t.Helper()
	model := make(map[string]*kgo.Record)
	for _, r := range input {
		model[string(r.Key)] = r
	}

	seen := make(map[string]string) // key -> "upsert" or "delete"
	check := func(kind string, out []*kgo.Record, wantTombstone bool) {
		t.Helper()
		for i, r := range out {
			k := string(r.Key)
			if prev, dup := seen[k]; dup {
				assert.Failf(t, "key output twice", "key %q in %s and %s", k, prev, kind)
			}
			seen[k] = kind
			assert.Same(t, model[k], r, "%s[%d]: key %q is not its last record", kind, i, k)
			assert.Equal(t, wantTombstone, r.Value == nil, "%s[%d]: key %q tombstone-ness", kind, i, k)
			if i > 0 {
				assert.Less(t, out[i-1].Offset, r.Offset, "%s not in offset order at %d", kind, i)
			}
		}
	}
	check("upserts", upserts, false)
	check("deletes", deletes, true)

	assert.Len(t, seen, len(model), "every key must come out exactly once")
	for k := range model {
		assert.Contains(t, seen, k, "key %q missing from outputs", k)
	}
}

// describe renders records for a failure message.
func describe(recs []*kgo.Record) string {
	var sb strings.Builder
	for _, r := range recs {
		switch {
		case r.Value == nil:
			fmt.Fprintf(&sb, "  off=%d key=%q tombstone\n", r.Offset, r.Key)
		default:
			fmt.Fprintf(&sb, "  off=%d key=%q value=%q\n", r.Offset, r.Key, r.Value)
		}
	}
	return sb.String()
}

func BenchmarkDedupe(b *testing.B) {
	const (
		n        = 5000
		distinct = 1000
	)
	rng := rand.New(rand.NewPCG(1, 2))
	input := make([]*kgo.Record, 0, n)
	for i := range n {
		var val []byte
		if rng.IntN(5) != 0 { // ~20% tombstones
			val = fmt.Appendf(nil, `{"n":%d}`, i)
		}
		key := fmt.Appendf(nil, "key-%04d", rng.IntN(distinct))
		input = append(input, rec(key, val, int64(i)))
	}

	b.ReportAllocs()
	for b.Loop() {
		Dedupe(input)
	}
}

// TestDedupeByModel: DedupeBy over records gives Dedupe's result, upserts
// then deletes in one slice, with one scratch map for every batch, left
// empty after each.
func TestDedupeByModel(t *testing.T) {
	keys := [][]byte{nil, v("a"), v("b"), v("c"), v("d"), v("e")}
	last := map[string]int{}
	for iter := range 300 {
		rng := rand.New(rand.NewPCG(20261202, uint64(iter)))
		input := randomRecords(rng, keys, rng.IntN(61))
		snap := takeSnapshot(t, input)

		out, n := DedupeBy(input, last,
			func(r **kgo.Record) string { return string((*r).Key) },
			func(r **kgo.Record) bool { return (*r).Value == nil })

		upserts, deletes := Dedupe(input)
		require.Equal(t, len(upserts), n, "iter %d: upserts", iter)
		same := func(want, got []*kgo.Record) bool { return slices.Equal(want, got) } // nil and empty alike
		assert.True(t, same(upserts, out[:n]), "iter %d: upserts first, in offset order", iter)
		assert.True(t, same(deletes, out[n:]), "iter %d: then deletes, in offset order", iter)
		assert.Empty(t, last, "iter %d: the scratch map keeps no key", iter)
		assertUnchanged(t, snap, input)
	}
}
