package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const milli = time.Millisecond

// msList turns milliseconds into durations.
func msList(xs ...int) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = time.Duration(x) * milli
	}
	return out
}

func TestPartitionPause(t *testing.T) {
	for _, tc := range []struct {
		name         string
		adv          []time.Duration
		first, last  time.Duration
		from, to     time.Duration
		want         time.Duration
		wantCensored bool
	}{
		{"steady progress", msList(0, 100, 200, 300, 400, 500, 600), 0, 600 * milli, 100 * milli, 500 * milli, 100 * milli, false},
		{"pause inside the window", msList(0, 100, 200, 2200, 2300), 0, 2300 * milli, 100 * milli, 2250 * milli, 2000 * milli, false},
		{"pause straddles the window's end: counted whole", msList(0, 100, 200, 5200), 0, 5200 * milli, 0, 1000 * milli, 5000 * milli, false},
		{"pause straddles the window's start: counted whole", msList(0, 3000, 3100), 0, 3100 * milli, 2000 * milli, 4000 * milli, 3000 * milli, false},
		{"gaps wholly before the window are ignored", msList(0, 4000, 4100, 4200, 4300), 0, 4300 * milli, 4050 * milli, 4300 * milli, 100 * milli, false},
		{"gaps wholly after the window are ignored", msList(0, 100, 200, 5000), 0, 5000 * milli, 0, 150 * milli, 100 * milli, false},
		{"no advance since: runs to the last poll, censored", msList(0, 100), 0, 3000 * milli, 500 * milli, 1000 * milli, 2900 * milli, true},
		{"no advance at all: first to last poll, censored", nil, 50 * milli, 3000 * milli, 500 * milli, 1000 * milli, 2950 * milli, true},
		{"before the first advance: from the first poll, censored", msList(2000, 2100), 0, 2100 * milli, 500 * milli, 1000 * milli, 2000 * milli, true},
		{"an advance exactly at the window's start", msList(0, 1000, 1100, 1200), 0, 1200 * milli, 1000 * milli, 1200 * milli, 100 * milli, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := partitionPause(tc.adv, tc.first, tc.last, tc.from, tc.to)
			assert.Equal(t, tc.want, g.d)
			assert.Equal(t, tc.wantCensored, g.censored)
		})
	}
}

func TestNewProgressAndMeasure(t *testing.T) {
	// Two partitions polled every 100 milli for 3 s: partition 0 advances at
	// every poll, partition 1 stops at 1.0 s and resumes at 2.5 s.
	var s series
	var n0, n1 int64
	for i := range 31 {
		at := time.Duration(i) * 100 * milli
		n0 += 10
		if at <= time.Second || at >= 2500*milli {
			n1 += 10
		}
		s.at = append(s.at, at)
		s.next = append(s.next, []int64{n0, n1})
	}
	p := newProgress(s, 2)
	require.Len(t, p.adv, 2)
	assert.Len(t, p.adv[0], 30) // the first poll has nothing to compare with
	assert.Equal(t, time.Duration(0), p.first)
	assert.Equal(t, 3*time.Second, p.last)

	w := p.measure(500*milli, 2*time.Second)
	assert.Equal(t, window{pause: 1500 * milli, worst: 1, slow: 1}, w)

	quiet := p.measure(200*milli, 900*milli)
	assert.Equal(t, window{pause: 100 * milli}, quiet)

	gaps := p.gapsWithin(0, 900*milli)
	assert.Len(t, gaps, 16) // partition 0: 100..900 milli, 8 gaps; partition 1 the same
	assert.Equal(t, 100*milli, median(gaps))
}

func TestNewProgressEmpty(t *testing.T) {
	p := newProgress(series{}, 3)
	assert.Equal(t, window{}, p.measure(0, time.Second))
}

func TestMedian(t *testing.T) {
	assert.Equal(t, time.Duration(0), median(nil))
	assert.Equal(t, 2*milli, median(msList(3, 1, 2)))
	assert.Equal(t, 2500*time.Microsecond, median(msList(4, 1, 2, 3)))
	assert.InDelta(t, 1.5, medianInt([]int{2, 1}), 0)
	assert.InDelta(t, 4.0, medianInt([]int{4, 0, 12}), 0)
}

func TestSteady(t *testing.T) {
	p := progress{adv: [][]time.Duration{msList(100, 4900), msList(100, 3000), nil}}
	ok, idle := steady(p, 5*time.Second)
	assert.False(t, ok)
	assert.Equal(t, []int{1, 2}, idle)
	ok, idle = steady(progress{adv: [][]time.Duration{msList(4500)}}, 5*time.Second)
	assert.True(t, ok)
	assert.Empty(t, idle)
}

func TestAssignmentComplete(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    assignment
		want bool
	}{
		{"three share twelve", assignment{"Stable", map[string]int{"a": 4, "b": 4, "c": 4}}, true},
		{"not stable yet", assignment{"Reconciling", map[string]int{"a": 4, "b": 4, "c": 4}}, false},
		{"a member without partitions", assignment{"Stable", map[string]int{"a": 6, "b": 6, "c": 0}}, false},
		{"two members, three wanted", assignment{"Stable", map[string]int{"a": 6, "b": 6}}, false},
		{"partitions missing", assignment{"Stable", map[string]int{"a": 4, "b": 4, "c": 3}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.a.complete(3, 12))
		})
	}
	assert.Equal(t, "Stable a:4 b:8", assignment{"Stable", map[string]int{"b": 8, "a": 4}}.String())
}
