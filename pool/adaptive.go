package pool

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Adaptive decides the concurrency limit of POOL_MAX_CONNS=auto: how many of
// a worker's partitions may hold a connection and write at once. It is pure
// (time is passed in) and not safe for concurrent use; Slots serialises it.
//
// The signal is the latency of a batch transaction against the lowest latency
// seen lately for batches of the same size (the base): TCP Vegas's
// delay-based window (Brakmo and Peterson, "TCP Vegas: End to End Congestion
// Avoidance on a Global Internet", 1995), as adaptive concurrency limiters
// apply it to services (Netflix concurrency-limits, VegasLimit and
// Gradient2Limit). While the database has idle capacity, one more writer
// leaves each transaction's latency as it was and adds throughput; past the
// database's knee it only queues, and latency grows with the limit while
// throughput does not. So:
//
//   - Transactions are grouped in rounds of at least max(limit, 3)
//     transactions and 50 ms, counting only transactions that began after
//     the limit last changed. Each round's median latency per batch-size
//     bucket (powers of two of records) moves an exponential average kept
//     for that bucket at the current limit. The base of a bucket is the
//     lowest average among the limits measured in the last BaseWindow; the
//     ratio is the current limit's averages over the bases, weighted by
//     count. Averages, not single rounds: the lowest of many noisy rounds
//     would make a base too low and every ratio too high.
//   - Slow start: from 1, the limit doubles after every second round while
//     the ratio is at most IncreaseAt and partitions wait for a slot, until
//     the ratio exceeds IncreaseAt. Two rounds, because a limit's average
//     becomes a base for the others only after two.
//   - Then a gradient, as Gradient2Limit: the limit moves halfway towards
//     limit × Target / ratio, so it grows while latency is under Target times
//     the base and shrinks while it is over; it grows only after a round in
//     which partitions waited for a slot (a limit nobody waits for is not
//     what holds throughput back). The limit in use is that estimate
//     rounded, raised when the estimate is 1 above it and lowered when 0.6
//     below, so that noise does not flip it every round; a limit a decrease
//     left is not tried again for Cooldown. Without the cooldown, workers
//     sharing a database at its knee each keep trying one more connection
//     (alone, latency is still under Target), and their tries add up.
//   - Every ProbeEvery of the wall clock, while partitions wait, one round
//     runs at half the limit (BBR's ProbeRTT): its medians refresh the base,
//     so a base learnt under a load that has ended, or lost from the window
//     while the limit stayed high, is measured again. Workers probe at the
//     same moments, so that together they measure a database with less
//     queued, not each one the others' queue.
//
// Workers that share a database adapt on their own and converge together:
// they see the same latency ratio, so their limits move in step, and the sum
// settles where the database's latency is IncreaseAt to DecreaseAt times its
// unloaded latency. Another load on the database raises the ratio and brings
// the limits down; when it ends the ratio falls and they climb back.
//
// The limit stays within [1, cap], cap being the worker's assigned
// partitions (SetCap).
type Adaptive struct {
	limit     int
	estimate  float64 // the limit before rounding
	cap       int
	slowStart bool
	reason    string
	ratio     float64
	rounds    int
	atLimit   int // rounds since the limit last changed

	round      round
	changed    time.Time                     // when the limit last changed: older transactions ran under another
	levels     map[int]map[int]*levelLatency // by batch-size bucket, then by limit
	lastProbe  time.Time
	tooHigh    map[int]time.Time // limits a decrease left, and until when not to go back to them
	probing    bool
	beforeProb int // the limit to go back to after a probe round
}

// levelLatency is the exponential average of round medians of one bucket
// at one limit, and when it was last moved.
type levelLatency struct {
	avg    float64
	at     time.Time
	rounds int
}

// The tuning of Adaptive. Target is the latency ratio the limits settle at:
// little of the latency is queueing, and a little queue keeps the database
// busy between one transaction's round trips. IncreaseAt ends slow start.
const (
	IncreaseAt      = 1.1
	Target          = 1.2
	BaseWindow      = 5 * time.Minute
	ProbeEvery      = 10 * time.Second
	minRoundSamples = 3
	minRound        = 50 * time.Millisecond
	maxRound        = 2 * time.Second // a round ends after this with any sample
	smoothing       = 0.2             // weight of a round's median in its limit's average
	baseRounds      = 2               // rounds another limit's average needs before it can be the base
	step            = 0.7             // how far towards limit × Target / ratio a round moves the estimate
	hysteresis      = 0.6             // how far below the limit in use the estimate must fall to lower it (raising it takes 1)
	Cooldown        = 5 * time.Second // how long a limit a decrease left is not tried again
)

// Reasons an Adaptive limit changes, or not, after a round.
const (
	ReasonStart     = "start"
	ReasonSlowStart = "slow_start" // doubled: latency as unloaded
	ReasonIncrease  = "increase"   // partitions waited, latency under Target
	ReasonHold      = "hold"       // the estimate moved less than the hysteresis
	ReasonIdle      = "idle"       // latency under Target, but nobody waited for a slot
	ReasonDecrease  = "decrease"   // latency over Target
	ReasonProbe     = "probe"      // a round at half the limit, measuring the base
	ReasonCap       = "cap"        // the assignment shrank below the limit
)

type round struct {
	started   time.Time
	n         int
	waited    bool
	perBucket map[int][]float64 // seconds per transaction
}

// NewAdaptive returns a limit of 1 in slow start, for a worker assigned cap
// partitions.
func NewAdaptive(cap int) *Adaptive {
	return &Adaptive{limit: 1, estimate: 1, cap: max(1, cap), slowStart: true, reason: ReasonStart, ratio: 1,
		levels: map[int]map[int]*levelLatency{}, tooHigh: map[int]time.Time{}}
}

// Limit is the current limit.
func (a *Adaptive) Limit() int { return a.limit }

// Reason says why the limit is what it is: one of the Reason constants.
func (a *Adaptive) Reason() string { return a.reason }

// Ratio is the last round's latency over the base (1 before the first).
func (a *Adaptive) Ratio() float64 { return a.ratio }

// Rounds is the number of rounds decided so far.
func (a *Adaptive) Rounds() int { return a.rounds }

// SetCap bounds the limit by the worker's assigned partitions (at least 1).
func (a *Adaptive) SetCap(n int) {
	a.cap = max(1, n)
	if a.limit > a.cap {
		a.limit, a.reason = a.cap, ReasonCap
	}
	a.estimate = min(a.estimate, float64(a.cap))
	if a.probing && a.beforeProb > a.cap {
		a.beforeProb = a.cap
	}
}

// Observe records a committed batch transaction of records records that
// took took (from holding a connection to the commit) and finished at now;
// waiting is the number of partitions waiting for a slot then. It reports
// whether the limit changed.
func (a *Adaptive) Observe(now time.Time, records int, took time.Duration, waiting int) bool {
	if records <= 0 || took <= 0 {
		return false
	}
	if now.Add(-took).Before(a.changed) {
		return false // began under another limit
	}
	r := &a.round
	if r.n == 0 {
		r.started = now.Add(-took)
		r.perBucket = map[int][]float64{}
	}
	b := bits.Len(uint(records))
	r.perBucket[b] = append(r.perBucket[b], took.Seconds())
	r.n++
	r.waited = r.waited || waiting > 0
	elapsed := now.Sub(r.started)
	if !(r.n >= max(a.limit, minRoundSamples) && elapsed >= minRound) && !(elapsed >= maxRound) {
		return false
	}
	before := a.limit
	a.rounds++
	a.atLimit++
	a.endRound(now)
	a.round = round{}
	if a.limit != before {
		a.changed, a.atLimit = now, 0
		return true
	}
	return false
}

// endRound folds the round into the bases and decides the limit.
func (a *Adaptive) endRound(now time.Time) {
	r := &a.round
	var sum, weight float64
	for b, samples := range r.perBucket {
		avg, base := a.remember(now, b, median(samples))
		sum += float64(len(samples)) * avg / base
		weight += float64(len(samples))
	}
	a.ratio = sum / weight

	if a.probing {
		a.probing = false
		a.limit, a.reason = min(a.beforeProb, a.cap), ReasonProbe
		a.estimate = float64(a.limit)
		a.lastProbe = now
		return
	}
	a.decide(now, r.waited)
	if a.lastProbe.IsZero() {
		a.lastProbe = now
	}
	// On the wall clock's ProbeEvery boundaries, so that the workers sharing
	// a database probe together: one worker alone at half its limit would
	// still measure the others' queue.
	if r.waited && a.limit > 1 && !now.Truncate(ProbeEvery).Equal(a.lastProbe.Truncate(ProbeEvery)) {
		a.probing, a.beforeProb = true, a.limit
		a.limit, a.reason = max(1, a.limit/2), ReasonProbe // the estimate stays
	}
}

// decide moves the limit after a round with ratio a.ratio; waited says
// whether partitions waited for a slot during it.
func (a *Adaptive) decide(now time.Time, waited bool) {
	capped := float64(a.cap)
	if a.slowStart {
		if a.ratio <= IncreaseAt {
			switch {
			case a.atLimit < baseRounds: // a base for the next limit to be measured against
				a.reason = ReasonSlowStart
			case !waited:
				a.reason = ReasonIdle
			case a.limit >= a.cap:
				a.reason = ReasonCap
			default:
				a.limit, a.reason = min(a.cap, 2*a.limit), ReasonSlowStart
				a.estimate = float64(a.limit)
			}
			return
		}
		a.slowStart = false
	}
	next := a.estimate * Target / a.ratio
	if next > a.estimate && !waited {
		a.reason = ReasonIdle
		return
	}
	a.estimate = min(capped, max(1, a.estimate+step*(next-a.estimate)))
	switch {
	case a.estimate >= float64(a.limit)+1 && now.Before(a.tooHigh[a.limit+1]):
		a.estimate, a.reason = float64(a.limit)+hysteresis, ReasonHold // found too high lately
	case a.estimate >= float64(a.limit)+1:
		a.limit, a.reason = min(a.cap, int(math.Round(a.estimate))), ReasonIncrease
	case a.estimate <= float64(a.limit)-hysteresis:
		a.tooHigh[a.limit] = now.Add(Cooldown)
		a.limit, a.reason = max(1, int(math.Round(a.estimate))), ReasonDecrease
	case a.limit >= a.cap && next > a.estimate:
		a.reason = ReasonCap
	default:
		a.reason = ReasonHold
	}
}

// remember moves bucket b's average at the current limit by a round's
// median, and returns that average and the bucket's base: the lowest
// average among the limits measured within BaseWindow.
func (a *Adaptive) remember(now time.Time, b int, med float64) (avg, base float64) {
	byLimit := a.levels[b]
	if byLimit == nil {
		byLimit = map[int]*levelLatency{}
		a.levels[b] = byLimit
	}
	l := byLimit[a.limit]
	switch {
	case l == nil:
		l = &levelLatency{avg: med}
		byLimit[a.limit] = l
	case now.Sub(l.at) > BaseWindow:
		l.avg, l.rounds = med, 0 // too old to average with
	default:
		l.avg += smoothing * (med - l.avg)
	}
	l.at = now
	l.rounds++
	base = l.avg
	for limit, other := range byLimit {
		if now.Sub(other.at) > BaseWindow {
			delete(byLimit, limit)
			continue
		}
		if other.rounds >= baseRounds {
			base = min(base, other.avg)
		}
	}
	return l.avg, base
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
