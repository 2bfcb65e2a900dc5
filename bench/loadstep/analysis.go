package main

import (
	"math"
	"time"
)

// phase is the figures of one span of a run: before, during or after the
// other load.
type phase struct {
	name     string
	from, to time.Time
	samples  int // samples in the span
	probes   int // of them inside a probe round, left out of limit, perWorker
	missing  int // of them without every worker's answer, left out too
	limit    stats
	// perWorker is each worker's mean limit.
	perWorker []float64
	ratio     float64 // the workers' mean latency ratio
	waiting   float64 // mean partitions waiting for a turn, all workers
	records   float64 // records applied per second (sink_offsets)
	written   float64 // rows written per second (sinkworker_records_total{outcome="written"})
	loadTx    float64 // the other load's transactions per second
	rounds    map[string]float64
}

// stats are the mean and range of a series.
type stats struct {
	n              int
	mean, min, max float64
}

func (s *stats) add(x float64) {
	if s.n == 0 {
		s.min, s.max = x, x
	}
	s.n++
	s.mean += (x - s.mean) / float64(s.n)
	s.min, s.max = math.Min(s.min, x), math.Max(s.max, x)
}

// in returns the samples taken in [from, to).
func (tl *timeline) in(from, to time.Time) []sample {
	var out []sample
	for _, s := range tl.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// phases splits the run: before is [first commit + warmup, T1), during
// [T1, T2), after [T2, the first partition drained) (a partition with
// nothing left to write changes what the limit is asked for; when it
// drained before T2, the after phase runs to the end).
func (tl *timeline) phases(o options) []phase {
	afterEnd := tl.end
	if tl.firstDone.After(tl.t2) {
		afterEnd = tl.firstDone
	}
	return []phase{
		tl.phase("before", tl.t0.Add(o.warmup), tl.t1, o.workers),
		tl.phase("during", tl.t1, tl.t2, o.workers),
		tl.phase("after", tl.t2, afterEnd, o.workers),
	}
}

func (tl *timeline) phase(name string, from, to time.Time, workers int) phase {
	ph := phase{name: name, from: from, to: to, perWorker: make([]float64, workers), rounds: map[string]float64{}}
	ss := tl.in(from, to)
	ph.samples = len(ss)
	var ratio, waiting stats
	per := make([]stats, workers)
	var first, last *sample
	for i := range ss {
		s := &ss[i]
		switch {
		case !s.complete():
			ph.missing++
			continue
		case s.probing():
			ph.probes++
		default:
			ph.limit.add(s.total())
			for w, ws := range s.workers {
				per[w].add(ws.limit)
			}
		}
		ratio.add(s.meanRatio())
		waiting.add(s.waiting())
		if first == nil {
			first = s
		}
		last = s
	}
	for w := range per {
		ph.perWorker[w] = per[w].mean
	}
	ph.ratio, ph.waiting = ratio.mean, waiting.mean
	if first == nil || last == first {
		return ph
	}
	dt := last.at.Sub(first.at)
	ph.records = rate(float64(last.committed-first.committed), dt)
	ph.written = rate(last.written()-first.written(), dt)
	ph.loadTx = rate(float64(last.loadTx-first.loadTx), dt)
	for w := range last.workers {
		for reason, n := range last.workers[w].rounds {
			if d := n - first.workers[w].rounds[reason]; d > 0 {
				ph.rounds[reason] += d
			}
		}
	}
	return ph
}

// settleFor is how long the fleet's limit must stay past the halfway mark
// to count as having settled there.
const settleFor = 5 * time.Second

// past reports whether s's fleet limit is on the far side of mark: at or
// below it when down, else at or above it.
func past(s sample, mark float64, down bool) bool {
	return (down && s.total() <= mark) || (!down && s.total() >= mark)
}

// reaction is how long the fleet's limit took to cross mark after a step at
// from: to the first complete sample outside a probe round at or after from
// that is past it (first), and to the first such sample from which every
// one stays past it for settleFor (settled).
func (tl *timeline) reaction(from time.Time, mark float64, down bool) (first, settled time.Duration, firstOK, settledOK bool) {
	var since time.Time // the start of the current run of samples past the mark
	for _, s := range tl.samples {
		if s.at.Before(from) || !s.complete() || s.probing() {
			continue
		}
		switch {
		case !past(s, mark, down):
			since = time.Time{}
			continue
		case !firstOK:
			first, firstOK = s.at.Sub(from), true
		}
		if since.IsZero() {
			since = s.at
		}
		if s.at.Sub(since) >= settleFor {
			return first, since.Sub(from), true, true
		}
	}
	return first, 0, firstOK, false
}

// second is one row of the per-second timeline: the samples taken in
// [t0 + n s, t0 + n+1 s).
type second struct {
	n         int
	phase     string
	limit     float64   // the fleet's mean limit over the second's samples
	perWorker []float64 // each worker's mean limit
	ratio     float64
	waiting   float64
	records   float64 // records applied per second, from the second's last sample to the one before it
	loadTx    float64 // the other load's transactions per second, likewise
	probe     bool    // a sample inside a probe round
}

// seconds is the per-second timeline from the first commit to the end.
func (tl *timeline) seconds(o options) []second {
	var out []second
	var prev *sample // the last sample of the row before: the first row's is the last before t0
	if before := tl.in(tl.start, tl.t0); len(before) > 0 {
		prev = &before[len(before)-1]
	}
	for n := 0; ; n++ {
		from := tl.t0.Add(time.Duration(n) * time.Second)
		if from.After(tl.end) {
			return out
		}
		ss := tl.in(from, from.Add(time.Second))
		if len(ss) == 0 {
			continue
		}
		row := second{n: n, phase: tl.phaseAt(from, o.warmup), perWorker: make([]float64, o.workers)}
		var count float64
		for _, s := range ss {
			row.probe = row.probe || s.probing()
			if !s.complete() {
				continue
			}
			count++
			row.limit += s.total()
			row.ratio += s.meanRatio()
			row.waiting += s.waiting()
			for w, ws := range s.workers {
				row.perWorker[w] += ws.limit
			}
		}
		if count > 0 {
			row.limit, row.ratio, row.waiting = row.limit/count, row.ratio/count, row.waiting/count
			for w := range row.perWorker {
				row.perWorker[w] /= count
			}
		}
		last := ss[len(ss)-1]
		if prev != nil {
			dt := last.at.Sub(prev.at)
			row.records = rate(float64(last.committed-prev.committed), dt)
			row.loadTx = rate(float64(last.loadTx-prev.loadTx), dt)
		}
		prev = &last
		out = append(out, row)
	}
}

// phaseAt names the phase a moment falls in; warmup is the start of the
// before phase that its figures leave out.
func (tl *timeline) phaseAt(at time.Time, warmup time.Duration) string {
	switch {
	case at.Before(tl.t0):
		return "start-up"
	case at.Before(tl.t0.Add(warmup)):
		return "warmup"
	case at.Before(tl.t1):
		return "before"
	case at.Before(tl.t2):
		return "during"
	default:
		return "after"
	}
}
