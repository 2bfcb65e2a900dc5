package batch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBad = errors.New("bad item")

// fakeStatement applies items [lo, hi) unless one of them is bad, like a
// statement under a SAVEPOINT: all or nothing.
type fakeStatement struct {
	bad     map[int]bool
	applied map[int]int
	outage  int // fail with a non-rejection on this call (1-based), 0 never
	calls   int
}

func (f *fakeStatement) apply(lo, hi int) error {
	f.calls++
	if f.calls == f.outage {
		return errors.New("connection reset")
	}
	for i := lo; i < hi; i++ {
		if f.bad[i] {
			return fmt.Errorf("item %d: %w", i, errBad)
		}
	}
	for i := lo; i < hi; i++ {
		f.applied[i]++
	}
	return nil
}

func rejected(err error) bool { return errors.Is(err, errBad) }

func TestBisect(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		bad  []int
		// maxStatements bounds the cost: about 2k*log2(n/k) + 2k.
		maxStatements int
	}{
		{"one of two", 2, []int{1}, 2},
		{"single item", 1, []int{0}, 0},
		{"first of 1000", 1000, []int{0}, 20},
		{"last of 1000", 1000, []int{999}, 20},
		{"one in 5000", 5000, []int{2500}, 26},
		{"two far apart in 5000", 5000, []int{10, 4000}, 48},
		{"two adjacent in 5000", 5000, []int{100, 101}, 48},
		{"ten in 5000", 5000, []int{1, 7, 500, 501, 999, 2000, 3333, 4096, 4500, 4999}, 220},
		{"all of 8", 8, []int{0, 1, 2, 3, 4, 5, 6, 7}, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStatement{bad: map[int]bool{}, applied: map[int]int{}}
			for _, i := range tc.bad {
				f.bad[i] = true
			}
			got, statements, err := Bisect(tc.n, errBad, f.apply, rejected)
			require.NoError(t, err)
			var idx []int
			for _, r := range got {
				idx = append(idx, r.Index)
				assert.ErrorIs(t, r.Err, errBad, "each rejection carries its own error")
			}
			assert.Equal(t, tc.bad, idx, "exactly the bad items, in order")
			for i := range tc.n {
				want := 1
				if f.bad[i] {
					want = 0
				}
				assert.Equal(t, want, f.applied[i], "item %d applied once if good, never if bad", i)
			}
			assert.Equal(t, f.calls, statements)
			assert.LessOrEqual(t, statements, tc.maxStatements)
			t.Logf("n=%d k=%d: %d sub-statements", tc.n, len(tc.bad), statements)
		})
	}
}

// TestBisectCost checks the O(k log n) bound over random placements.
func TestBisectCost(t *testing.T) {
	seed := uint64(7)
	rng := rand.New(rand.NewPCG(seed, seed))
	for _, n := range []int{100, 1000, 5000} {
		for _, k := range []int{1, 2, 5, 20} {
			f := &fakeStatement{bad: map[int]bool{}, applied: map[int]int{}}
			for len(f.bad) < k {
				f.bad[rng.IntN(n)] = true
			}
			got, statements, err := Bisect(n, errBad, f.apply, rejected)
			require.NoError(t, err)
			require.Len(t, got, k)
			bound := 2*k*int(math.Ceil(math.Log2(float64(n)/float64(k)))) + 2*k
			assert.LessOrEqual(t, statements, bound, "seed %d n=%d k=%d", seed, n, k)
		}
	}
}

func TestBisectAbortsOnOutage(t *testing.T) {
	f := &fakeStatement{bad: map[int]bool{3: true}, applied: map[int]int{}, outage: 2}
	got, _, err := Bisect(16, errBad, f.apply, rejected)
	require.Error(t, err)
	assert.False(t, rejected(err), "the outage comes back, not a rejection")
	assert.Nil(t, got)
}

func TestBisectEmpty(t *testing.T) {
	got, statements, err := Bisect(0, errBad, func(int, int) error { t.Fatal("no statement for nothing"); return nil }, rejected)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Zero(t, statements)
}
