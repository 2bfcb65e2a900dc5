package pool

import (
	"math"
	"math/bits"
	"time"
)

// Adaptive decides the concurrency limit of POOL_MAX_CONNS=auto: how many of
// a worker's partitions may hold a connection and write at once. It is pure
// (time is passed in) and not safe for concurrent use; slots serialises it.
//
// The signal is the latency of a batch transaction against the latency of
// batches of the same size at a lower limit (the base): TCP Vegas's
// delay-based window (Brakmo and Peterson, "TCP Vegas: End to End Congestion
// Avoidance on a Global Internet", 1995), as adaptive concurrency limiters
// apply it to services (Netflix concurrency-limits, VegasLimit and
// Gradient2Limit). While the database has idle capacity, one more writer
// leaves each transaction's latency as it was and adds throughput; past the
// database's knee it only queues, and latency grows with the limit while
// throughput does not. So:
//
//   - Each limit keeps, per batch-size bucket (powers of two of records),
//     exponentially weighted means of log latency over its last Window and
//     BaseTransactions transactions, counting only transactions that began
//     after the limit last changed; a limit the limit comes back to starts
//     its short mean afresh (its last visit measured another moment). Their
//     standard errors use the variance pooled over all limits: a few
//     transactions say little of their own spread. The base is the lowest
//     long mean plus its standard error (the lowest of many noisy means is
//     lower than what it estimates), among the limits measured within
//     BaseWindow; the ratio is exp(short mean - base). Latencies of a shared
//     database are noisy (a checkpoint, the worker's own CPU): a decision
//     needs the ratio half a standard error past its threshold, else the
//     limit holds.
//   - Decisions come in rounds of at least max(limit, 3) transactions and
//     minRound; a worker counting its group's transactions (decideFleet)
//     ends its rounds on the wall clock's epochs, when the other members
//     end theirs. Slow start: from 1, the limit doubles while the ratio is
//     clearly at most IncreaseAt and partitions wait for a slot, until it is
//     clearly over.
//   - Then, for a worker alone in its group (SetShare 1), the elasticity
//     rule of decideAlone: the limit climbs by a quarter while throughput
//     still grows with it, measured as the latency's elasticity to the
//     limit. A database's throughput against its writers is usually
//     soft-kneed (Gunther's Universal Scalability Law), and a latency
//     target stops short of its peak.
//   - For workers that share the database with others of their group and
//     see the group's transactions in flight (Observe's fleet, counted in
//     pg_stat_activity), the same elasticity against that concurrency, which
//     every one of them sees alike (decideFleet); each takes its share of
//     it (SetShare), so that workers whose limits drifted apart meet again.
//   - Without that count, a gradient on the latency ratio, which every
//     worker sees alike too (an elasticity each measures against its own
//     limit would let the worker with the highest limit climb while the
//     others give way), as Gradient2Limit: when the ratio is clearly under
//     Target and partitions wait (a limit nobody waits for is not what holds
//     throughput back), or clearly over Target, the limit moves Step of the
//     way to limit × Target / ratio. The limit in use is that estimate,
//     raised when it is 1 above and lowered when 0.6 below; a limit a
//     decrease left is not tried again for Cooldown × min(4, limit)/limit
//     (one connection is most of a small limit). A decrease is not made
//     while the current limit's throughput, limit / latency, is clearly
//     above the lower limit's, both measured lately: from 1 to 2
//     connections latency may grow by a fifth and throughput by half.
//     Without the cooldown,
//     workers sharing a database at its knee each keep trying one more
//     connection (alone, its latency is still near Target), and their tries
//     add up.
//   - Every ProbeEvery of the wall clock, while partitions wait, one round
//     runs at half the limit (BBR's ProbeRTT), so that a lower limit's
//     latency, the base, is measured again. Workers probe at the same
//     moments, so that together they measure a database with less queued,
//     not each one the others' queue.
//
// Workers that share a database adapt on their own and converge together:
// they see the same latency ratio, so their limits move in step. Another
// load on the database raises the ratio and brings the limits down (alone,
// through the elasticity, or a ratio over RatioMax); when it ends the ratio
// falls and they climb back.
//
// The limit stays within [1, cap], cap being the worker's assigned
// partitions (SetCap).
type Adaptive struct {
	limit       int
	estimate    float64 // the limit before rounding
	cap         int
	slowStart   bool
	reason      string
	ratio       float64
	rounds      int
	sinceChange int // transactions counted since the limit last changed

	round      round
	changed    time.Time                   // when the limit last changed: older transactions ran under another
	levels     map[int]map[int]*logLatency // by batch-size bucket, then by limit
	fleets     map[int]map[int]*logLatency // by batch-size bucket, then by the group's transactions in flight (SetShare)
	lastProbe  time.Time
	probing    bool
	beforeProb int               // the limit to go back to after a probe round
	tooHigh    map[int]time.Time // limits a decrease left, and until when not to go back to them
	noise      float64           // variance of a log latency about its limit's mean, pooled over the limits
	share      float64           // the worker's share of its group's partitions, 0 unknown: see SetShare
}

// The tuning of Adaptive. Target is the latency ratio the limits of
// workers sharing a database settle near: some queueing, which keeps the
// database busy between one transaction's round trips and, on a soft knee,
// still adds throughput: on the simulated bench machine, whose throughput
// peaks at 5 writers, 1.2 held 2; a hard knee's ratio reaches 1.5 at half
// as many writers again as the knee, within 4% of its throughput.
// IncreaseAt ends slow start. The simulated databases of adaptive_test.go
// chose them.
const (
	IncreaseAt       = 1.1
	Target           = 1.5
	Window           = 32  // transactions a limit's mean covers
	BaseTransactions = 256 // transactions a limit's mean as a base covers
	BaseWindow       = 5 * time.Minute
	ProbeEvery       = 10 * time.Second
	Cooldown         = 5 * time.Second // how long a limit a decrease left is not tried again
	Step             = 0.7             // how far towards limit × Target / ratio a decision moves the estimate
	minRoundSamples  = 3
	minRound         = 50 * time.Millisecond
	epoch            = 250 * time.Millisecond // shared rounds end on these ticks of the wall clock
	maxRound         = 2 * time.Second        // a round ends after this with any sample
	minSamples       = 8                      // transactions a limit needs before its mean counts
	priorNoise       = 0.3                    // the standard deviation of log latency assumed before any is measured
	noiseWindow      = 256                    // transactions the pooled variance covers
	hysteresis       = 0.6                    // how far below the limit in use the estimate must fall to lower it (raising it takes 1)
	worth            = 0.1                    // the throughput a limit must clearly add over a lower one to keep it against the latency ratio
	ElasticityLow    = 0.5                    // elasticity rules: the limit rises while the latency's elasticity to the concurrency is clearly under this
	ElasticityHigh   = 0.9                    // and falls when it is clearly over this
	RatioMax         = 3.0                    // nor above a latency ratio of this (another load on the database)
)

// Reasons an Adaptive limit changes, or not, after a round.
const (
	ReasonStart     = "start"
	ReasonSlowStart = "slow_start" // doubled: latency as unloaded
	ReasonIncrease  = "increase"   // partitions waited, latency clearly under Target
	ReasonHold      = "hold"       // latency near Target, or not yet clear
	ReasonIdle      = "idle"       // latency low, but nobody waited for a slot
	ReasonDecrease  = "decrease"   // latency clearly over Target
	ReasonProbe     = "probe"      // a round at half the limit, measuring the base
	ReasonCap       = "cap"        // the assignment shrank below the limit
)

// logLatency is two exponentially weighted means of the log of latencies
// in seconds: over about Window transactions (what the limit does now) and
// over about BaseTransactions (what it does, as a base: the lowest of many
// noisy means is lower than the latency it estimates, less so the longer
// they are).
type logLatency struct {
	n, long       float64 // transactions counted, at most Window and BaseTransactions
	mean, longAvg float64
	at            time.Time
	// The group's transactions in flight as the database saw them
	// (SetShare), over the same transactions: the mean over the short
	// and the long window; fn counts the transactions that had a sample.
	fn, fleet, fleetLong float64
}

// addFleet counts a sample of the group's transactions in flight, taken in
// the transaction add just counted.
func (l *logLatency) addFleet(x float64, restart bool) {
	if l.fn == 0 || restart {
		l.fleet = x
	}
	if l.fn == 0 {
		l.fleetLong = x
	}
	l.fn = min(l.fn+1, BaseTransactions)
	l.fleet += (x - l.fleet) / min(l.fn, Window)
	l.fleetLong += (x - l.fleetLong) / l.fn
}

// add counts x and returns its deviation from the mean before it. With
// restart, the short mean starts again from x: the limit has just come back
// to this level, and what it measured the last time (another load, other
// workers' limits) says little of now.
func (l *logLatency) add(now time.Time, x float64, restart bool) (dev float64, ok bool) {
	if l.n == 0 || now.Sub(l.at) > BaseWindow {
		*l = logLatency{n: 1, long: 1, mean: x, longAvg: x, at: now}
		return 0, false
	}
	dev = x - l.mean
	if restart {
		l.n, l.mean = 0, x
	}
	l.n, l.long = min(l.n+1, Window), min(l.long+1, BaseTransactions)
	l.mean += dev / l.n
	if restart {
		l.mean = x
	}
	l.longAvg += (x - l.longAvg) / l.long
	l.at = now
	return dev, true
}

type round struct {
	started time.Time
	n       int
	waited  bool
	buckets map[int]int // transactions by batch-size bucket
	bucket  int         // the most common, once the round ends
}

// NewAdaptive returns a limit of 1 in slow start, for a worker assigned cap
// partitions.
func NewAdaptive(cap int) *Adaptive {
	return &Adaptive{limit: 1, estimate: 1, cap: max(1, cap), slowStart: true, reason: ReasonStart, ratio: 1,
		levels: map[int]map[int]*logLatency{}, fleets: map[int]map[int]*logLatency{}, tooHigh: map[int]time.Time{}, noise: priorNoise * priorNoise}
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
	if max(1, n) != a.cap {
		// The group's assignment changed: the workers sharing the database
		// are others, and what each limit's latency was is of another
		// load. Forgotten, so that a worker that was alone (its base measured
		// on a quiet database) and one that joins it (its base measured with
		// the other writing) compare with bases of the same moment: kept, the
		// first would be held at 1 by a ratio the second never sees.
		clear(a.levels)
		clear(a.fleets)
	}
	a.cap = max(1, n)
	if a.limit > a.cap {
		a.limit, a.reason = a.cap, ReasonCap
	}
	a.estimate = min(a.estimate, float64(a.cap))
	if a.probing && a.beforeProb > a.cap {
		a.beforeProb = a.cap
	}
}

// SetShare gives the worker's share of its group's partitions: its
// assigned partitions over every partition of the topics it consumes; 0
// when unknown. At 1 the worker is alone in its group, and the limit climbs
// while throughput grows with it (decideAlone). Below 1, with Observe given
// the group's transactions in flight, the same rule runs on the group's
// concurrency and the worker takes its share of it (decideFleet); without
// that count (or the share), the limits keep the latency ratio near
// Target, a signal every worker sees alike.
func (a *Adaptive) SetShare(share float64) {
	if (share >= 1) != a.alone() {
		a.estimate = float64(a.limit)
	}
	a.share = share
}

// alone: the worker holds every partition of its group's topics.
func (a *Adaptive) alone() bool { return a.share >= 1 }

// Observe records a committed batch transaction of records records that
// took took (from holding a connection to the commit) and finished at now;
// waiting is the number of partitions waiting for a slot then, fleet the
// transactions of the worker's group open in the database as it began
// (itself included; 0 unknown). It reports whether the limit changed.
func (a *Adaptive) Observe(now time.Time, records int, took time.Duration, waiting, fleet int) bool {
	if records <= 0 || took <= 0 {
		return false
	}
	if now.Add(-took).Before(a.changed) {
		return false // began under another limit
	}
	b := bits.Len(uint(records))
	a.sinceChange++
	l := entry(a.levels, b, a.limit)
	if dev, ok := l.add(now, math.Log(took.Seconds()), a.sinceChange == 1); ok {
		a.noise += (dev*dev - a.noise) / noiseWindow
	}
	if fleet > 0 {
		l.addFleet(float64(fleet), a.sinceChange == 1)
		bin := entry(a.fleets, b, int(math.Round(4*math.Log2(float64(fleet))))) // a fifth apart
		bin.add(now, math.Log(took.Seconds()), false)
		bin.addFleet(float64(fleet), false)
	}
	r := &a.round
	if r.n == 0 {
		r.started = now.Add(-took)
		r.buckets = map[int]int{}
	}
	r.buckets[b]++
	r.n++
	r.waited = r.waited || waiting > 0
	elapsed := now.Sub(r.started)
	if !(r.n >= max(a.limit, minRoundSamples) && elapsed >= minRound) && !(elapsed >= maxRound) {
		return false
	}
	if a.share > 0 && a.share < 1 && fleet > 0 && !a.slowStart && elapsed < maxRound &&
		now.Truncate(epoch).Equal(r.started.Truncate(epoch)) {
		return false // shared: rounds end on the wall clock's epochs, every member's at once
	}
	before := a.limit
	a.rounds++
	a.endRound(now)
	a.round = round{}
	if a.limit != before {
		a.changed, a.sinceChange = now, 0
		return true
	}
	return false
}

// entry is m's means for bucket and key (a limit, or a bin of the group's
// concurrency), made on first use.
func entry(m map[int]map[int]*logLatency, bucket, key int) *logLatency {
	byKey := m[bucket]
	if byKey == nil {
		byKey = map[int]*logLatency{}
		m[bucket] = byKey
	}
	l := byKey[key]
	if l == nil {
		l = &logLatency{}
		byKey[key] = l
	}
	return l
}

// endRound decides the limit after a round.
func (a *Adaptive) endRound(now time.Time) {
	r := &a.round
	bucket, most := 0, 0
	for b, n := range r.buckets {
		if n > most {
			bucket, most = b, n
		}
	}
	r.bucket = bucket
	d, se, baseLimit, ok := a.compare(now, bucket)
	if ok {
		a.ratio = math.Exp(d)
	}

	if a.probing {
		a.probing = false
		a.limit, a.reason = min(a.beforeProb, a.cap), ReasonProbe
		a.estimate = float64(a.limit)
		a.lastProbe = now
		return
	}
	if ok {
		a.decide(now, d, se, baseLimit, r.waited)
	} else {
		a.reason = ReasonHold
	}
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

// compare returns the log latency ratio of the current limit over the base
// in bucket b and its standard error; ok is false while the current limit
// has too few transactions.
func (a *Adaptive) compare(now time.Time, b int) (d, se float64, baseLimit int, ok bool) {
	cur := a.levels[b][a.limit]
	if cur == nil || cur.n < minSamples {
		return 0, 0, 0, false
	}
	base := cur.longAvg + a.se(cur.long)
	for limit, l := range a.levels[b] {
		if now.Sub(l.at) > BaseWindow {
			delete(a.levels[b], limit)
			continue
		}
		if l.long >= minSamples {
			base = min(base, l.longAvg+a.se(l.long))
		}
	}
	// The base limit: the highest limit whose latency is the base's within
	// its standard error (below a database's knee, more writers do not slow
	// each other).
	for limit, l := range a.levels[b] {
		if l.long >= minSamples && l.longAvg-a.se(l.long) <= base {
			baseLimit = max(baseLimit, limit)
		}
	}
	d = cur.mean - base
	return d, math.Hypot(a.se(cur.n), a.se(cur.long)), baseLimit, true
}

// se is the standard error of a mean of n transactions, with the pooled
// variance: a few transactions say little of their own spread.
func (a *Adaptive) se(n float64) float64 { return math.Sqrt(a.noise / n) }

// decide moves the limit after a round whose log latency ratio is d, with
// standard error se, over the latency of baseLimit; waited says whether
// partitions waited for a slot.
func (a *Adaptive) decide(now time.Time, d, se float64, baseLimit int, waited bool) {
	clearlyUnder := func(r float64) bool { return d+0.5*se < math.Log(r) }
	clearlyOver := func(r float64) bool { return d-0.5*se > math.Log(r) }
	if a.slowStart {
		switch {
		case clearlyOver(IncreaseAt):
			a.slowStart = false // on to the gradient
		case !clearlyUnder(IncreaseAt):
			a.reason = ReasonHold
			return
		case !waited:
			a.reason = ReasonIdle
			return
		case a.limit >= a.cap:
			a.reason = ReasonCap
			return
		default:
			a.limit, a.reason = min(a.cap, 2*a.limit), ReasonSlowStart
			a.estimate = float64(a.limit)
			return
		}
	}
	if a.alone() {
		a.decideAlone(now, d, se, baseLimit, waited)
		return
	}
	if a.share > 0 { // and below 1
		cur := a.levels[a.round.bucket][a.limit]
		if base, baseSE, baseFleet, ok := a.fleetBase(now, a.round.bucket); ok && cur.fn >= minSamples {
			a.decideFleet(now, cur.mean-base, math.Hypot(a.se(cur.n), baseSE), cur.fleet, baseFleet, waited)
			return
		}
	}
	switch {
	case clearlyOver(Target):
	case !clearlyUnder(Target):
		a.reason = ReasonHold
		return
	case !waited:
		a.reason = ReasonIdle
		return
	}
	next := a.estimate * Target / math.Exp(d)
	a.estimate = min(float64(a.cap), max(1, a.estimate+Step*(next-a.estimate)))
	up := min(a.cap, int(math.Round(a.estimate)))
	for l := a.limit + 1; l <= up; l++ {
		if now.Before(a.tooHigh[l]) {
			up = l - 1 // found too high lately
		}
	}
	switch {
	case a.estimate >= float64(a.limit)+1 && up <= a.limit:
		a.estimate, a.reason = float64(a.limit)+hysteresis, ReasonHold
	case a.estimate >= float64(a.limit)+1:
		a.limit, a.reason = up, ReasonIncrease
	case a.estimate <= float64(a.limit)-hysteresis && a.worthIt(now, int(math.Round(a.estimate))):
		a.estimate, a.reason = float64(a.limit), ReasonHold
	case a.estimate <= float64(a.limit)-hysteresis:
		// Longest where one connection is much of the limit.
		a.tooHigh[a.limit] = now.Add(Cooldown * time.Duration(min(4, a.limit)) / time.Duration(a.limit))
		a.limit, a.reason = max(1, int(math.Round(a.estimate))), ReasonDecrease
	case a.limit >= a.cap && next > a.estimate:
		a.reason = ReasonCap
	default:
		a.reason = ReasonHold
	}
}

// worthIt reports whether the current limit clearly gives more throughput
// than the lower limit down would, both measured lately: limit / latency
// against down / its latency. From 1 to 2 connections latency may grow by
// a fifth and throughput still by more than half.
func (a *Adaptive) worthIt(now time.Time, down int) bool {
	b := a.round.bucket
	cur, low := a.levels[b][a.limit], a.levels[b][max(1, down)]
	if cur == nil || low == nil || cur.n < minSamples || low.n < minSamples || now.Sub(low.at) > ProbeEvery {
		return false
	}
	gain := float64(a.limit) / float64(max(1, down)) * math.Exp(low.mean-cur.mean)
	return gain > 1+worth
}

// decideAlone moves the limit of a worker alone in its group after a
// round whose log latency ratio is d, with standard error se, over the
// latency of baseLimit; waited says whether partitions waited for a slot.
//
// The rule is the latency's elasticity to the limit from the base limit,
// e = log(latency ratio) / log(limit / base limit): 0 below the database's
// knee (more writers, the same latency: throughput grows in proportion), 1
// where throughput is flat (latency grows with the limit), above 1 where
// more writers lose throughput. A database's throughput against its
// concurrency is usually soft-kneed (Gunther's Universal Scalability Law):
// the second writer already slows each transaction yet adds throughput, so
// a fixed latency target stops short of the peak (at 1.2x, 2 writers where
// 5 drain a fifth faster); the elasticity rule climbs while e is clearly
// under ElasticityLow and comes down when it is clearly over
// ElasticityHigh, or when the ratio itself is clearly over RatioMax.
// Steps are a quarter of the limit (at least 1).
//
// Only alone: workers sharing a database see the same latency but not the
// same elasticity against their own limits, and a worker with a higher
// limit would keep climbing while the others give way; they measure it
// against the group's concurrency instead (decideFleet).
func (a *Adaptive) decideAlone(now time.Time, d, se float64, baseLimit int, waited bool) {
	span := math.Log(2) // at or below the base limit: another load slowed the database since
	if a.limit > baseLimit && baseLimit > 0 {
		span = math.Log(float64(a.limit) / float64(baseLimit))
	}
	e, eSE := d/span, se/span
	clearlyOver := d-0.5*se > math.Log(RatioMax)
	step := max(1, a.limit/4)
	switch {
	case e-0.5*eSE > ElasticityHigh || clearlyOver:
		a.tooHigh[a.limit] = now.Add(Cooldown * time.Duration(min(4, a.limit)) / time.Duration(a.limit))
		a.limit, a.reason = max(1, a.limit-step), ReasonDecrease
	case e+0.5*eSE >= ElasticityLow || d+0.5*se >= math.Log(RatioMax):
		a.reason = ReasonHold
	case !waited:
		a.reason = ReasonIdle
	case a.limit >= a.cap:
		a.reason = ReasonCap
	default:
		a.raise(now, min(a.cap, a.limit+step))
	}
	a.estimate = float64(a.limit)
}

// raise moves the limit up to up, short of a limit a decrease left within
// its cooldown; with no room, it holds.
func (a *Adaptive) raise(now time.Time, up int) {
	for l := a.limit + 1; l <= up; l++ {
		if now.Before(a.tooHigh[l]) {
			up = l - 1 // found too high lately
		}
	}
	if up <= a.limit {
		a.reason = ReasonHold
		return
	}
	a.limit, a.reason = up, ReasonIncrease
}

// decideFleet moves the limit of a worker sharing the database with others
// of its group, after a round whose log latency ratio is d, with standard
// error se, over the base latency of the group's concurrency (fleetBase);
// fleet is the group's transactions in flight the current limit has seen
// lately, baseFleet the highest concurrency at the base latency.
//
// The rule is decideAlone's, the elasticity e = log(ratio) / log(fleet /
// baseFleet), with the group's concurrency, which every member sees
// alike, in place of the worker's own limit. The steps take the worker's
// share of the group's partitions (SetShare) into account, so that workers
// whose limits drifted apart meet again:
//
//   - a connection or more below its share of the group's concurrency,
//     with partitions waiting, the limit rises by one whatever the
//     elasticity, which each worker estimates from its own transactions
//     and may estimate apart from the others (and a worker that kept more
//     connections than its share would keep them); half a connection
//     below, while the elasticity holds;
//   - up, to a quarter above its share (at least one more);
//   - down, to a quarter below its share, but at most by half (at least
//     one less): the worker with more connections gives up more, as TCP's
//     multiplicative decrease makes flows meet.
//
// A worker above its share does not step down towards it while the
// elasticity holds: it cannot tell the others are held back from their
// having nothing to write (a skewed topic), and in the second case it
// writes for the group.
func (a *Adaptive) decideFleet(now time.Time, d, se float64, fleet, baseFleet float64, waited bool) {
	span := math.Log(2)
	if fleet > 1.05*baseFleet {
		span = math.Log(fleet / baseFleet)
	}
	e, eSE := d/span, se/span
	a.ratio = math.Exp(d)
	clearlyOver := d-0.5*se > math.Log(RatioMax)
	unmeasured := !waited && a.limit >= a.cap && fleet > 2*baseFleet
	switch {
	case waited && a.limit < a.cap && float64(a.limit)+1 <= a.share*fleet && !clearlyOver:
		a.limit, a.reason = a.limit+1, ReasonIncrease
	case e-0.5*eSE > ElasticityHigh || clearlyOver || unmeasured && d-0.5*se > math.Log(Target):
		// The last: at its cap with nobody waiting, there are no probe
		// rounds, and between the base and the group's concurrency the
		// latency was not measured: the knee may be anywhere in between.
		a.tooHigh[a.limit] = now.Add(Cooldown * time.Duration(min(4, a.limit)) / time.Duration(a.limit))
		a.limit, a.reason = max(1, min(a.limit-1, max(int(math.Round(a.share*fleet*0.75)), a.limit/2))), ReasonDecrease
	case e+0.5*eSE >= ElasticityLow || d+0.5*se >= math.Log(RatioMax):
		if waited && a.limit < a.cap && float64(a.limit)+0.5 <= a.share*fleet {
			a.limit, a.reason = a.limit+1, ReasonIncrease // half a connection below its share
		} else {
			a.reason = ReasonHold
		}
	case !waited:
		a.reason = ReasonIdle
	case a.limit >= a.cap:
		a.reason = ReasonCap
	default:
		a.raise(now, min(a.cap, max(a.limit+1, int(math.Round(a.share*fleet*1.25)))))
	}
	a.estimate = float64(a.limit)
}

// fleetBase is the base log latency in bucket b over the group's
// concurrency (as compare's over the limits), its standard error, and the
// highest concurrency at it.
func (a *Adaptive) fleetBase(now time.Time, b int) (base, se, at float64, ok bool) {
	base = math.Inf(1)
	for n, l := range a.fleets[b] {
		if now.Sub(l.at) > BaseWindow {
			delete(a.fleets[b], n)
			continue
		}
		if l.long >= minSamples && l.longAvg+a.se(l.long) < base {
			base, se = l.longAvg+a.se(l.long), a.se(l.long)
		}
	}
	for _, l := range a.fleets[b] {
		if l.long >= minSamples && l.longAvg-a.se(l.long) <= base {
			at = max(at, l.fleetLong)
		}
	}
	return base, se, at, at > 0
}
