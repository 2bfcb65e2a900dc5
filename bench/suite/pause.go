package main

import (
	"slices"
	"time"
)

// slowGap is the threshold of "partitions > 1 s": a partition whose pause
// exceeds it counts as stopped by the event (the normal gap between two
// commits of a partition is ~100-300 ms at the default BATCH_LINGER).
const slowGap = time.Second

// series is one group's progress as the harness saw it: poll i was sent at
// at[i] (time since the run's start) and read next[i], the group's
// next_offset per partition. It only grows, so a copy of its slice headers
// taken under the recorder's lock may be read while polling goes on.
type series struct {
	at   []time.Duration
	next [][]int64
}

// progress is a series turned into what the pause needs: per partition the
// times at which its next_offset was seen to grow (an advance: the poll
// read a larger value than the poll before it), and the times of the first
// and last polls, which bound what is known.
type progress struct {
	adv         [][]time.Duration
	first, last time.Duration
}

// newProgress finds the advances of each of parts partitions in s.
func newProgress(s series, parts int) progress {
	p := progress{adv: make([][]time.Duration, parts)}
	if len(s.at) == 0 {
		return p
	}
	p.first, p.last = s.at[0], s.at[len(s.at)-1]
	for i := 1; i < len(s.at); i++ {
		for part := range parts {
			if s.next[i][part] > s.next[i-1][part] {
				p.adv[part] = append(p.adv[part], s.at[i])
			}
		}
	}
	return p
}

// gap is one partition's pause in a window.
type gap struct {
	d time.Duration
	// censored: the gap runs into the first or last poll, so the real gap
	// is at least d.
	censored bool
}

// partitionPause is the longest time between two consecutive advances of
// a partition (adv, ascending) among the gaps that overlap the window
// [from, to]. A gap that straddles an edge of the window counts whole: a
// pause that began before the event, or has not ended when the window
// closes, is measured from its last advance to its next one, so a window
// cannot cut a pause short. Before the first advance the first poll stands
// in, after the last advance the last poll (the gap is then censored).
func partitionPause(adv []time.Duration, first, last, from, to time.Duration) gap {
	var g gap
	prev, prevReal := first, false
	consider := func(end time.Duration, endReal bool) {
		if prev < to && end > from && end-prev > g.d {
			g = gap{d: end - prev, censored: !prevReal || !endReal}
		}
	}
	for _, a := range adv {
		if a <= from { // the gap before a lies wholly before the window
			prev, prevReal = a, true
			continue
		}
		consider(a, true)
		if a >= to {
			return g
		}
		prev, prevReal = a, true
	}
	consider(last, false)
	return g
}

// window is what an event (or a quiet stretch) did to one group.
type window struct {
	pause    time.Duration // the longest partition pause
	censored bool          // that longest pause runs into the end of the observations
	worst    int           // the partition that paused longest
	slow     int           // partitions whose pause exceeds slowGap
}

// measure computes the pause of every partition in [from, to] and sums
// them up for the window.
func (p progress) measure(from, to time.Duration) window {
	var w window
	for part, adv := range p.adv {
		g := partitionPause(adv, p.first, p.last, from, to)
		if g.d > w.pause {
			w.pause, w.censored, w.worst = g.d, g.censored, part
		}
		if g.d > slowGap {
			w.slow++
		}
	}
	return w
}

// gapsWithin are all gaps between consecutive advances of any partition
// that lie wholly inside [from, to]: the normal rhythm of commits.
func (p progress) gapsWithin(from, to time.Duration) []time.Duration {
	var out []time.Duration
	for _, adv := range p.adv {
		for i := 1; i < len(adv); i++ {
			if adv[i-1] >= from && adv[i] <= to {
				out = append(out, adv[i]-adv[i-1])
			}
		}
	}
	return out
}

// median of ds (the mean of the middle two for an even count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianInt is median for counts.
func medianInt(xs []int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}
