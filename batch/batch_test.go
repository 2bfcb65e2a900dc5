package batch

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// t0 is the fixed clock every test starts from; time only moves when a test
// adds a duration to it.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// rec builds a record with the given key, value and offset. A nil value makes
// a tombstone.
func rec(key, value []byte, offset int64) *kgo.Record {
	return &kgo.Record{Key: key, Value: value, Offset: offset}
}

// sized builds a record whose key is keyLen bytes and whose value is valLen
// bytes, so that Size(r) == keyLen+valLen.
func sized(keyLen, valLen int, offset int64) *kgo.Record {
	return rec([]byte(strings.Repeat("k", keyLen)), []byte(strings.Repeat("v", valLen)), offset)
}

// newBatch returns an empty batch for a policy that must be valid.
func newBatch(t *testing.T, p Policy) *Batch {
	t.Helper()
	require.NoError(t, p.Validate(), "test policy must be valid")
	b := New(p)
	require.Zero(t, b.Len())
	require.Zero(t, b.Bytes())
	return b
}

// offsets returns the offsets of recs, in order.
func offsets(recs []*kgo.Record) []int64 {
	out := make([]int64, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Offset)
	}
	return out
}

func TestPolicyValidate(t *testing.T) {
	envVars := []string{"BATCH_MAX_RECORDS", "BATCH_MAX_BYTES", "BATCH_LINGER"}
	tests := []struct {
		name    string
		policy  Policy
		wantBad []string // env vars the error must name; empty means valid
	}{
		{
			name:   "defaults",
			policy: Policy{MaxRecords: 5000, MaxBytes: 4 << 20, Linger: 100 * time.Millisecond},
		},
		{
			name:   "smallest valid",
			policy: Policy{MaxRecords: 1, MaxBytes: 1, Linger: 0},
		},
		{
			name:    "zero value",
			policy:  Policy{},
			wantBad: []string{"BATCH_MAX_RECORDS", "BATCH_MAX_BYTES"},
		},
		{
			name:    "max records zero",
			policy:  Policy{MaxRecords: 0, MaxBytes: 1, Linger: time.Millisecond},
			wantBad: []string{"BATCH_MAX_RECORDS"},
		},
		{
			name:    "max bytes negative",
			policy:  Policy{MaxRecords: 1, MaxBytes: -1, Linger: time.Millisecond},
			wantBad: []string{"BATCH_MAX_BYTES"},
		},
		{
			name:    "linger negative",
			policy:  Policy{MaxRecords: 1, MaxBytes: 1, Linger: -time.Nanosecond},
			wantBad: []string{"BATCH_LINGER"},
		},
		{
			name:    "records and linger bad",
			policy:  Policy{MaxRecords: -5, MaxBytes: 1024, Linger: -time.Second},
			wantBad: []string{"BATCH_MAX_RECORDS", "BATCH_LINGER"},
		},
		{
			name:    "all bad",
			policy:  Policy{MaxRecords: 0, MaxBytes: 0, Linger: -time.Millisecond},
			wantBad: []string{"BATCH_MAX_RECORDS", "BATCH_MAX_BYTES", "BATCH_LINGER"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if len(tt.wantBad) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			// One error that names each bad field exactly once and no
			// valid field at all.
			for _, env := range envVars {
				want := 0
				if slices.Contains(tt.wantBad, env) {
					want = 1
				}
				assert.Equal(t, want, strings.Count(err.Error(), env), "mentions of %s in %q", env, err)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		r    *kgo.Record
		want int
	}{
		{name: "key and value", r: rec([]byte("abc"), []byte("hello"), 0), want: 8},
		{name: "nil key", r: rec(nil, []byte("hello"), 0), want: 5},
		{name: "tombstone counts key only", r: rec([]byte("abc"), nil, 0), want: 3},
		{name: "empty", r: rec(nil, nil, 0), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Size(tt.r))
		})
	}
}

func TestBatchFullByRecords(t *testing.T) {
	tests := []struct {
		name       string
		maxRecords int
	}{
		{name: "one", maxRecords: 1},
		{name: "three", maxRecords: 3},
		{name: "ten", maxRecords: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bytes and linger are far away so only the record count matters.
			b := newBatch(t, Policy{MaxRecords: tt.maxRecords, MaxBytes: 1 << 30, Linger: time.Hour})
			for i := range tt.maxRecords - 1 {
				full := b.Add(sized(1, 1, int64(i)), t0)
				assert.False(t, full, "record %d of %d", i+1, tt.maxRecords)
				assert.False(t, b.Full())
				assert.False(t, b.Due(t0))
			}
			full := b.Add(sized(1, 1, int64(tt.maxRecords-1)), t0)
			assert.True(t, full, "full exactly at MaxRecords")
			assert.True(t, b.Full())
			assert.True(t, b.Due(t0), "a full batch is due before its linger")
			assert.Equal(t, tt.maxRecords, b.Len())
		})
	}
}

func TestBatchFullByBytes(t *testing.T) {
	tests := []struct {
		name      string
		maxBytes  int
		adds      []*kgo.Record
		wantFull  []bool // Add's result for each record
		wantBytes int
	}{
		{
			name:      "key and value both count",
			maxBytes:  10,
			adds:      []*kgo.Record{sized(2, 3, 0), sized(3, 2, 1)},
			wantFull:  []bool{false, true},
			wantBytes: 10,
		},
		{
			name:      "below limit",
			maxBytes:  10,
			adds:      []*kgo.Record{sized(2, 3, 0), sized(2, 2, 1)},
			wantFull:  []bool{false, false},
			wantBytes: 9,
		},
		{
			name:      "key only counts toward limit",
			maxBytes:  4,
			adds:      []*kgo.Record{sized(4, 0, 0)},
			wantFull:  []bool{true},
			wantBytes: 4,
		},
		{
			name:      "tombstone counts its key",
			maxBytes:  5,
			adds:      []*kgo.Record{sized(2, 1, 0), rec([]byte("kk"), nil, 1)},
			wantFull:  []bool{false, true},
			wantBytes: 5,
		},
		{
			name:      "single oversized record is a full batch of one",
			maxBytes:  10,
			adds:      []*kgo.Record{sized(5, 50, 0)},
			wantFull:  []bool{true},
			wantBytes: 55,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Len(t, tt.wantFull, len(tt.adds))
			b := newBatch(t, Policy{MaxRecords: 1000, MaxBytes: tt.maxBytes, Linger: time.Hour})
			for i, r := range tt.adds {
				assert.Equal(t, tt.wantFull[i], b.Add(r, t0), "Add #%d", i)
			}
			assert.Equal(t, tt.wantBytes, b.Bytes())
			assert.Equal(t, len(tt.adds), b.Len())
			last := tt.wantFull[len(tt.wantFull)-1]
			assert.Equal(t, last, b.Full())
			assert.Equal(t, last, b.Due(t0))
		})
	}
}

func TestBatchFits(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int
		have     []*kgo.Record // already in the batch
		next     *kgo.Record
		want     bool
	}{
		{name: "empty batch takes small record", maxBytes: 10, next: sized(1, 1, 0), want: true},
		{name: "empty batch takes oversized record", maxBytes: 10, next: sized(10, 100, 0), want: true},
		{name: "fits with room to spare", maxBytes: 10, have: []*kgo.Record{sized(2, 2, 0)}, next: sized(2, 2, 1), want: true},
		{name: "fits exactly at MaxBytes", maxBytes: 10, have: []*kgo.Record{sized(2, 3, 0)}, next: sized(2, 3, 1), want: true},
		{name: "one byte over MaxBytes", maxBytes: 10, have: []*kgo.Record{sized(2, 3, 0)}, next: sized(3, 3, 1), want: false},
		{name: "key alone pushes it over", maxBytes: 10, have: []*kgo.Record{sized(0, 9, 0)}, next: rec([]byte("kk"), nil, 1), want: false},
		{name: "empty record fits a full-by-bytes batch", maxBytes: 10, have: []*kgo.Record{sized(5, 5, 0)}, next: rec(nil, nil, 1), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatch(t, Policy{MaxRecords: 1000, MaxBytes: tt.maxBytes, Linger: time.Hour})
			for _, r := range tt.have {
				b.Add(r, t0)
			}
			before := b.Bytes()
			assert.Equal(t, tt.want, b.Fits(tt.next))
			assert.Equal(t, before, b.Bytes(), "Fits must not change the batch")
			assert.Equal(t, len(tt.have), b.Len(), "Fits must not change the batch")
		})
	}
}

func TestBatchLinger(t *testing.T) {
	const linger = 100 * time.Millisecond
	tests := []struct {
		name string
		at   time.Duration // offset from the first record's arrival
		want bool
	}{
		{name: "at first record", at: 0, want: false},
		{name: "just before deadline", at: linger - time.Nanosecond, want: false},
		{name: "at deadline", at: linger, want: true},
		{name: "after deadline", at: linger + time.Second, want: true},
		{name: "clock behind first record", at: -time.Second, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatch(t, Policy{MaxRecords: 1000, MaxBytes: 1 << 20, Linger: linger})
			require.False(t, b.Add(sized(1, 1, 0), t0))
			assert.Equal(t, tt.want, b.Due(t0.Add(tt.at)))
			assert.False(t, b.Full(), "lingering never makes a batch full")
		})
	}
}

func TestBatchDeadline(t *testing.T) {
	const linger = 100 * time.Millisecond
	p := Policy{MaxRecords: 1000, MaxBytes: 1 << 20, Linger: linger}

	t.Run("empty batch has no deadline", func(t *testing.T) {
		b := newBatch(t, p)
		d, ok := b.Deadline()
		assert.False(t, ok)
		assert.True(t, d.IsZero())
		assert.False(t, b.Due(t0.Add(24*time.Hour)), "an empty batch is never due")
	})

	t.Run("measured from first record", func(t *testing.T) {
		b := newBatch(t, p)
		b.Add(sized(1, 1, 0), t0)
		b.Add(sized(1, 1, 1), t0.Add(50*time.Millisecond))
		b.Add(sized(1, 1, 2), t0.Add(90*time.Millisecond))
		d, ok := b.Deadline()
		require.True(t, ok)
		assert.Equal(t, t0.Add(linger), d, "later records must not push the deadline back")
		assert.True(t, b.Due(t0.Add(linger)))
	})

	t.Run("reset after take", func(t *testing.T) {
		b := newBatch(t, p)
		b.Add(sized(1, 1, 0), t0)
		require.True(t, b.Due(t0.Add(linger)))
		b.Take()

		d, ok := b.Deadline()
		assert.False(t, ok, "no deadline right after Take")
		assert.True(t, d.IsZero())
		assert.False(t, b.Due(t0.Add(time.Hour)), "empty after Take, never due")

		second := t0.Add(time.Second)
		b.Add(sized(1, 1, 1), second)
		d, ok = b.Deadline()
		require.True(t, ok)
		assert.Equal(t, second.Add(linger), d, "new window starts at the first Add after Take")
		assert.False(t, b.Due(second.Add(linger-time.Nanosecond)))
		assert.True(t, b.Due(second.Add(linger)))
	})
}

func TestBatchZeroLinger(t *testing.T) {
	tests := []struct {
		name string
		adds int
		now  time.Time
		want bool
	}{
		{name: "empty is not due", adds: 0, now: t0, want: false},
		{name: "one record due at once", adds: 1, now: t0, want: true},
		{name: "several records due at once", adds: 3, now: t0, want: true},
		{name: "due later too", adds: 1, now: t0.Add(time.Minute), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatch(t, Policy{MaxRecords: 1000, MaxBytes: 1 << 20, Linger: 0})
			for i := range tt.adds {
				assert.False(t, b.Add(sized(1, 1, int64(i)), t0), "zero linger does not make Add report full")
			}
			assert.Equal(t, tt.want, b.Due(tt.now))
			d, ok := b.Deadline()
			assert.Equal(t, tt.adds > 0, ok)
			if ok {
				assert.Equal(t, t0, d)
			}
		})
	}
}

func TestBatchTake(t *testing.T) {
	p := Policy{MaxRecords: 3, MaxBytes: 1 << 20, Linger: time.Minute}

	t.Run("returns records in order and empties", func(t *testing.T) {
		b := newBatch(t, p)
		in := []*kgo.Record{sized(1, 2, 10), sized(3, 4, 11), sized(5, 6, 12)}
		for i, r := range in {
			b.Add(r, t0.Add(time.Duration(i)*time.Millisecond))
		}
		require.True(t, b.Full())

		got := b.Take()
		require.Len(t, got, len(in))
		for i := range in {
			assert.Same(t, in[i], got[i], "record %d", i)
		}
		assert.Zero(t, b.Len())
		assert.Zero(t, b.Bytes())
		assert.False(t, b.Full())
		assert.False(t, b.Due(t0.Add(time.Hour)))
	})

	t.Run("take on empty batch", func(t *testing.T) {
		b := newBatch(t, p)
		assert.Empty(t, b.Take())
		assert.Zero(t, b.Len())
		assert.Zero(t, b.Bytes())
	})

	t.Run("taken slice is not reused by later adds", func(t *testing.T) {
		b := newBatch(t, p)
		b.Add(sized(1, 1, 0), t0)
		b.Add(sized(1, 1, 1), t0)
		got := b.Take()
		require.Equal(t, []int64{0, 1}, offsets(got))

		b.Add(sized(1, 1, 2), t0)
		b.Add(sized(1, 1, 3), t0)
		assert.Equal(t, []int64{0, 1}, offsets(got), "caller's slice must not change")
		assert.Equal(t, []int64{2, 3}, offsets(b.Take()))
	})

	t.Run("next batch starts fresh", func(t *testing.T) {
		b := newBatch(t, p)
		for i := range 3 {
			b.Add(sized(2, 2, int64(i)), t0)
		}
		require.True(t, b.Full())
		require.Equal(t, 12, b.Bytes())
		b.Take()

		later := t0.Add(10 * time.Minute)
		assert.False(t, b.Add(sized(2, 3, 3), later), "one record is not full after Take")
		assert.Equal(t, 1, b.Len())
		assert.Equal(t, 5, b.Bytes())
		assert.False(t, b.Due(later), "new linger window, not the old one")
		assert.False(t, b.Due(later.Add(time.Minute-time.Nanosecond)))
		assert.True(t, b.Due(later.Add(time.Minute)))
	})

	t.Run("full by bytes resets after take", func(t *testing.T) {
		b := newBatch(t, Policy{MaxRecords: 1000, MaxBytes: 10, Linger: time.Minute})
		require.True(t, b.Add(sized(5, 20, 0), t0), "oversized record fills the batch")
		require.False(t, b.Fits(sized(5, 20, 1)))
		got := b.Take()
		assert.Len(t, got, 1)
		assert.Zero(t, b.Bytes())
		assert.True(t, b.Fits(sized(5, 20, 1)), "empty batch takes any record again")
		assert.False(t, b.Full())
	})
}
