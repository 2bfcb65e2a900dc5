package pool

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simDB is a simulated database with a known knee: up to knee transactions
// run side by side at full speed; beyond it they share the knee's capacity
// and contention costs overhead more per knee's worth of transactions, so
// throughput peaks at the knee and falls after it as the bench suite's
// sweep shows for the real one (2, 4, 8 times the knee: 0.93, 0.81, 0.64 of
// the peak, overhead 0.08). Latencies are log-normal around the model (noise
// is sigma; 0.4 matches the spread seen on the bench machine).
type simDB struct {
	knee      float64
	perRecord time.Duration
	overhead  float64
	noise     float64
	load      func(at time.Duration) float64 // other work, in transactions
}

func (d simDB) latency(rng *rand.Rand, at time.Duration, records int, inFlight int) time.Duration {
	n := float64(inFlight)
	if d.load != nil {
		n += d.load(at)
	}
	slow := max(1, n/d.knee) * (1 + d.overhead*max(0, n/d.knee-1))
	return time.Duration(float64(records) * float64(d.perRecord) * slow * math.Exp(d.noise*rng.NormFloat64()))
}

// simRun is one simulated drain: workers of partitions partitions each,
// always backlogged with batches of batch records.
type simRun struct {
	db         simDB
	workers    int
	partitions int // per worker
	batch      int
	fixed      int // > 0: a fixed limit per worker instead of Adaptive
	length     time.Duration
	seed       uint64
}

// simResult is what a simRun measured.
type simResult struct {
	records  []int64 // committed per second of simulated time
	limits   [][]int // per worker, its limit at each second
	changes  int     // limit changes after the first 10 s, all workers
	maxLimit int
	minLimit int
	trace    []string // worker 0's limit changes
}

func (s simRun) run() simResult {
	rng := rand.New(rand.NewPCG(s.seed, 42))
	start := time.Unix(0, 0)
	type worker struct {
		a       *Adaptive
		inUse   int
		waiting []int // partitions, FIFO
	}
	type tx struct {
		w, p int
		end  time.Duration
		took time.Duration
	}
	ws := make([]*worker, s.workers)
	for i := range ws {
		ws[i] = &worker{a: NewAdaptive(s.partitions)}
	}
	limit := func(w *worker) int {
		if s.fixed > 0 {
			return min(s.fixed, s.partitions)
		}
		return w.a.Limit()
	}
	var (
		now     time.Duration
		running []tx
		res     = simResult{records: make([]int64, int(s.length/time.Second)+1), limits: make([][]int, s.workers), minLimit: math.MaxInt}
	)
	inFlight := func() int { return len(running) }
	begin := func(w, p int) {
		took := s.db.latency(rng, now, s.batch, inFlight()+1)
		running = append(running, tx{w: w, p: p, end: now + took, took: took})
		ws[w].inUse++
	}
	admit := func(w int) {
		for len(ws[w].waiting) > 0 && ws[w].inUse < limit(ws[w]) {
			p := ws[w].waiting[0]
			ws[w].waiting = ws[w].waiting[1:]
			begin(w, p)
		}
	}
	for w := range ws {
		for p := range s.partitions {
			ws[w].waiting = append(ws[w].waiting, p)
		}
		admit(w)
	}
	second := time.Duration(0)
	for now < s.length {
		next := 0
		for i := range running {
			if running[i].end < running[next].end {
				next = i
			}
		}
		t := running[next]
		running = append(running[:next], running[next+1:]...)
		for ; second <= t.end && second < s.length; second += time.Second {
			for w := range ws {
				res.limits[w] = append(res.limits[w], limit(ws[w]))
			}
		}
		now = t.end
		if now >= s.length {
			break
		}
		res.records[int(now/time.Second)] += int64(s.batch)
		w := ws[t.w]
		w.inUse--
		w.waiting = append(w.waiting, t.p) // backlogged: its next batch is ready at once
		if s.fixed == 0 && w.a.Observe(start.Add(now), s.batch, t.took, len(w.waiting)-1) {
			if now > 10*time.Second {
				res.changes++
			}
			if t.w == 0 {
				res.trace = append(res.trace, fmt.Sprintf("%.2fs %d %s %.2f", now.Seconds(), w.a.Limit(), w.a.Reason(), w.a.Ratio()))
			}
		}
		for i := range ws {
			l := limit(ws[i])
			res.maxLimit, res.minLimit = max(res.maxLimit, l), min(res.minLimit, l)
			admit(i)
		}
	}
	return res
}

// rate is the committed records per second over [from, to) seconds.
func (r simResult) rate(from, to int) float64 {
	var n int64
	for _, x := range r.records[from:to] {
		n += x
	}
	return float64(n) / float64(to-from)
}

// settled is the first second from which the fleet's total limit stays
// within max(1, want/2) of want for 5 s.
func (r simResult) settled(want int) time.Duration {
	run := 0
	for s := range r.limits[0] {
		if math.Abs(float64(total(r, s)-want)) <= max(1, float64(want)/2) {
			if run++; run == 5 {
				return time.Duration(s-4) * time.Second
			}
			continue
		}
		run = 0
	}
	return time.Duration(len(r.limits[0])) * time.Second
}

// meanTotal is the fleet's mean total limit over [from, to) seconds.
func (r simResult) meanTotal(from, to int) float64 {
	var sum float64
	for _, ls := range r.limits {
		for _, l := range ls[from:to] {
			sum += float64(l)
		}
	}
	return sum / float64(to-from)
}

// TestAdaptiveMatchesTheBestFixedLimit: on simulated databases with knees
// from 1 to 32 transactions and noisy latencies, shared by 1, 2 and 4
// workers, the adaptive limit drains within 5% of the best fixed limit (the
// same for every worker, 1 to the partitions; the mean of three seeds) with
// one or two workers, settling within 15 s near the best fixed limit's
// total, and within 12% with four; it stays within [1, partitions].
func TestAdaptiveMatchesTheBestFixedLimit(t *testing.T) {
	const length = 60 * time.Second
	for _, knee := range []float64{1, 2, 4, 8, 32} {
		for _, workers := range []int{1, 2, 4} {
			for _, partitions := range []int{4, 16, 64} {
				per := max(1, partitions/workers)
				t.Run(fmt.Sprintf("knee %g, %d workers, %d partitions", knee, workers, partitions), func(t *testing.T) {
					db := simDB{knee: knee, perRecord: 10 * time.Microsecond, overhead: 0.08, noise: 0.4}
					// Three seeds: the mean of their rates, for auto and for each
					// fixed limit.
					end := int(length / time.Second)
					rate := func(fixed int) (float64, simResult) {
						var sum float64
						var last simResult
						for seed := range uint64(3) {
							last = simRun{db: db, workers: workers, partitions: per, batch: 5000, length: length, seed: seed + 1, fixed: fixed}.run()
							sum += last.rate(10, end)
						}
						return sum / 3, last
					}
					got, auto := rate(0)
					best, bestAt := 0.0, 0
					for fixed := 1; fixed <= per; fixed++ {
						if r, _ := rate(fixed); r > best {
							best, bestAt = r, fixed
						}
					}
					t.Logf("%s: auto %.0f records/s (mean total limit %.1f, %d changes in 50 s, settled at %v), best fixed %.0f at %d per worker: %.3f",
						t.Name(), got, auto.meanTotal(10, 60), auto.changes, auto.settled(bestAt*workers), best, bestAt, got/best)
					// One or two workers: within 5% of the best fixed limit. Four
					// workers sharing the database overshoot its knee together a
					// little (each one's base includes the others' queue, and each
					// tries one more connection now and then): within 12%.
					goal := 0.95
					if workers > 2 {
						goal = 0.88
					}
					assert.GreaterOrEqual(t, got/best, goal, "auto against the best fixed limit")
					assert.GreaterOrEqual(t, auto.minLimit, 1)
					assert.LessOrEqual(t, auto.maxLimit, per, "never above the assigned partitions")
					if workers <= 2 {
						assert.LessOrEqual(t, auto.settled(bestAt*workers), 15*time.Second, "settled near the best fixed limit's total")
					}
				})
			}
		}
	}
}

// TestAdaptiveLoadStep: another load on the database (as much as the
// database's knee) from 60 s to 120 s brings the fleet's limit down, and
// it climbs back when that load ends.
func TestAdaptiveLoadStep(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			db := simDB{knee: 8, perRecord: 10 * time.Microsecond, overhead: 0.08, noise: 0.4,
				load: func(at time.Duration) float64 {
					if at >= 60*time.Second && at < 120*time.Second {
						return 8
					}
					return 0
				}}
			r := simRun{db: db, workers: workers, partitions: 64 / workers, batch: 5000, length: 180 * time.Second, seed: 7}.run()
			before, during, after := r.meanTotal(20, 60), r.meanTotal(70, 120), r.meanTotal(140, 180)
			t.Logf("fleet's mean total limit: %.1f before, %.1f under the other load, %.1f after", before, during, after)
			assert.Less(t, during, 0.75*before, "the limit comes down under the other load")
			assert.Greater(t, after, 0.85*before, "and goes back up when it ends")
			// How long it takes to come down and to go back up.
			down, up := -1, -1
			for s := 60; s < 120 && down < 0; s++ {
				if total(r, s) <= int(math.Ceil((before+during)/2)) {
					down = s - 60
				}
			}
			for s := 120; s < 180 && up < 0; s++ {
				if total(r, s) >= int((before+during)/2) {
					up = s - 120
				}
			}
			t.Logf("halfway down after %d s, halfway back up after %d s", down, up)
			assert.True(t, down >= 0 && down <= 5, "comes down within 5 s")
			assert.True(t, up >= 0 && up <= 35, "goes back up within 35 s")
		})
	}
}

func total(r simResult, s int) int {
	n := 0
	for _, ls := range r.limits {
		n += ls[s]
	}
	return n
}

func TestAdaptiveRules(t *testing.T) {
	at := time.Unix(0, 0)
	run := func(a *Adaptive, took time.Duration, waiting int) { // one round, minRound long
		n := max(a.Limit(), minRoundSamples)
		for range n {
			at = at.Add(minRound / time.Duration(n-1))
			a.Observe(at, 1000, took, waiting)
		}
	}
	upTo := func(a *Adaptive, limit int) { // constant latency, partitions waiting
		for range 20 {
			if a.Limit() >= limit {
				return
			}
			run(a, 10*time.Millisecond, 1)
		}
	}
	t.Run("slow start doubles while latency stays", func(t *testing.T) {
		a := NewAdaptive(64)
		seen := []int{a.Limit()}
		for range 12 {
			run(a, 10*time.Millisecond, 1)
			if l := a.Limit(); l != seen[len(seen)-1] {
				seen = append(seen, l)
				assert.Equal(t, ReasonSlowStart, a.Reason())
			}
		}
		assert.Equal(t, []int{1, 2, 4, 8, 16, 32, 64}, seen, "each change a doubling, once a limit has %d transactions", minSamples)
	})
	t.Run("nobody waiting: no increase", func(t *testing.T) {
		a := NewAdaptive(64)
		for range 4 {
			run(a, 10*time.Millisecond, 0)
		}
		assert.Equal(t, 1, a.Limit())
		assert.Equal(t, ReasonIdle, a.Reason())
	})
	t.Run("capped by the assignment", func(t *testing.T) {
		a := NewAdaptive(3)
		upTo(a, 3)
		assert.Equal(t, 3, a.Limit())
		a.SetCap(1)
		assert.Equal(t, 1, a.Limit())
		assert.Equal(t, ReasonCap, a.Reason())
		a.SetCap(0)
		assert.Equal(t, 1, a.Limit(), "never below 1")
	})
	t.Run("latency doubles: down, and not back for a while", func(t *testing.T) {
		a := NewAdaptive(64)
		upTo(a, 8)
		require.Equal(t, 8, a.Limit())
		for range 4 {
			if run(a, 20*time.Millisecond, 1); a.Reason() == ReasonDecrease {
				break
			}
		}
		assert.Equal(t, ReasonDecrease, a.Reason())
		assert.Greater(t, a.Ratio(), Target)
		assert.Less(t, a.Limit(), 8)
		assert.False(t, a.slowStart, "slow start is over")
		for range 10 { // latency as unloaded again: up, but not to 8 within Cooldown
			run(a, 10*time.Millisecond, 1)
			assert.Less(t, a.Limit(), 8, "8 was too high less than %v ago", Cooldown)
		}
		at = at.Add(Cooldown)
		for range 10 {
			run(a, 10*time.Millisecond, 1)
		}
		assert.GreaterOrEqual(t, a.Limit(), 8, "after Cooldown, 8 is tried again")
	})
	t.Run("at the target it holds", func(t *testing.T) {
		a := NewAdaptive(64)
		upTo(a, 4)
		require.Equal(t, 4, a.Limit())
		for range 6 {
			run(a, 12*time.Millisecond, 1) // settles at a ratio of Target: the estimate stays
		}
		assert.Equal(t, ReasonHold, a.Reason())
		assert.Equal(t, 4, a.Limit())
	})
	t.Run("a probe round at half the limit, then back", func(t *testing.T) {
		a := NewAdaptive(8)
		upTo(a, 8)
		require.Equal(t, 8, a.Limit())
		at = at.Add(ProbeEvery)
		run(a, 10*time.Millisecond, 1)
		assert.Equal(t, ReasonProbe, a.Reason())
		assert.Equal(t, 4, a.Limit())
		run(a, 10*time.Millisecond, 1)
		assert.Equal(t, ReasonProbe, a.Reason())
		assert.Equal(t, 8, a.Limit(), "back where it was")
	})
}
