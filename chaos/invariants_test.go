package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// i4Sampler samples invariant I4 every ~100 ms: each worker's connections
// (pg_stat_activity by application_name) never exceed its assigned
// partitions, read from /metrics before and after the query, and the
// fleet's never exceed the partition count. A closed backend lingers for a
// moment, so an excess is a violation only if a re-sample 250 ms later
// still shows it; the others are counted (unconfirmed). The fleet bound is
// checked per member: the connections of a frozen (or just resumed)
// process are its own excess, and the rest of the fleet must still fit the
// partition count. A worker that does not answer /metrics within 300 ms is
// counted as unanswered for that sample. A sample while the database is
// down is skipped (and counted).
type i4Sampler struct {
	r *run

	mu          sync.Mutex
	samples     int
	skipped     int            // the database did not answer
	unconfirmed int            // excesses gone 250 ms later (a lingering backend)
	unanswered  map[string]int // per worker: samples whose /metrics did not answer in time
	peakFleet   int
	violations  []*span // a worker above its assignment, or the fleet without zombies above the partitions
	zombieHeld  []*span // the fleet above the partitions only through a frozen or just resumed process's connections
	open        map[string]*span
}

// span is one violation, from the first confirmed sample to the last.
type span struct {
	who         string
	first, last time.Time
	n           int    // confirmed samples
	msg, why    string // the first sample's message; why it may be excused
}

func (s *span) String(tl *timeline) string {
	out := fmt.Sprintf("%.1fs-%.1fs (%d samples): %s", tl.rel(s.first), tl.rel(s.last), s.n, s.msg)
	if s.why != "" {
		out += " (" + s.why + ")"
	}
	return out
}

// zombieGrace is how long after SIGCONT a resumed zombie's connections may
// still count against the fleet: it must first notice that it lost its
// partitions and close them. The per-worker bound has no such grace.
const zombieGrace = 2 * time.Second

func (s *i4Sampler) loop(ctx context.Context) {
	for ctx.Err() == nil {
		first, ok := s.sample(ctx)
		if ok && len(first) > 0 {
			time.Sleep(250 * time.Millisecond)
			second, ok2 := s.sample(ctx)
			if ok2 {
				for who, msg := range second {
					if _, before := first[who]; before {
						s.record(who, msg)
					}
				}
				s.mu.Lock()
				for who := range first {
					if _, after := second[who]; !after {
						s.unconfirmed++
					}
				}
				s.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// record notes a confirmed excess: it extends the open span of who if the
// previous check saw it too, else opens a new one.
func (s *i4Sampler) record(who, msg string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := s.open[who]; sp != nil && now.Sub(sp.last) < 2*time.Second {
		sp.last = now
		sp.n++
		return
	}
	sp := &span{who: who, first: now, last: now, n: 1, msg: msg}
	if s.open == nil {
		s.open = map[string]*span{}
	}
	s.open[who] = sp
	if strings.HasPrefix(who, zombiePrefix) {
		sp.why = "the excess is the connections of " + strings.TrimPrefix(who, zombiePrefix)
		s.zombieHeld = append(s.zombieHeld, sp)
		return
	}
	s.violations = append(s.violations, sp)
}

// zombiePrefix keys a fleet excess that only frozen or just resumed
// processes cause, followed by their names.
const zombiePrefix = "zombie "

// sample checks once; problems are keyed by worker name, "fleet" for the
// sum. ok is false when the database did not answer.
func (s *i4Sampler) sample(ctx context.Context) (problems map[string]string, ok bool) {
	r := s.r
	ws := r.fleet.sampleable()
	before := map[*proc]int{}
	for _, p := range ws {
		if n, err := p.assigned(); err == nil {
			before[p] = n
		}
	}
	conns, err := r.connections(ctx)
	if err != nil {
		s.mu.Lock()
		s.skipped++
		s.mu.Unlock()
		return nil, false
	}
	problems = map[string]string{}
	fleet := 0
	for _, n := range conns {
		fleet += n
	}
	var unanswered []string
	for _, p := range ws {
		b, okb := before[p]
		a, err := p.assigned()
		if !okb || err != nil {
			unanswered = append(unanswered, p.String())
			continue
		}
		if c := conns[p.name]; c > max(a, b) {
			problems[p.String()] = fmt.Sprintf("%v holds %d connections, assigned %d..%d; %s", p, c, b, a, r.evidence(ctx, p))
		}
	}
	// Per member: a frozen process keeps what it held, the others must fit.
	zombies := r.fleet.frozenOrResumed(zombieGrace)
	rest := fleet
	var holders, held []string
	for _, name := range zombies {
		if c := conns[name]; c > 0 {
			rest -= c
			holders, held = append(holders, name), append(held, fmt.Sprintf("%s (%d)", name, c))
		}
	}
	switch {
	case rest > partitions:
		problems["fleet"] = fmt.Sprintf("fleet holds %d connections > %d partitions without the frozen or resumed %v (%v)",
			rest, partitions, zombies, conns)
	case fleet > partitions:
		problems[zombiePrefix+strings.Join(holders, ", ")] = fmt.Sprintf("fleet holds %d connections > %d partitions, %d of them the frozen or resumed %s's (%v)",
			fleet, partitions, fleet-rest, strings.Join(held, ", "), conns)
	}
	s.mu.Lock()
	s.samples++
	s.peakFleet = max(s.peakFleet, fleet)
	if s.unanswered == nil {
		s.unanswered = map[string]int{}
	}
	for _, name := range unanswered {
		s.unanswered[name]++
	}
	s.mu.Unlock()
	return problems, true
}

// connections counts the group's connections per member.
func (r *run) connections(ctx context.Context) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	prefix := "sinkworker/" + r.group + "/"
	rows, err := r.pool.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
WHERE starts_with(application_name, $1) GROUP BY 1`, prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var (
		name string
		n    int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[strings.TrimPrefix(name, prefix)] = n
		return nil
	})
	return out, err
}

// evidence describes a worker's connections as its pool and the server see
// them, for a violation's report.
func (r *run) evidence(ctx context.Context, p *proc) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out := fmt.Sprintf("its pool: in_use %s, idle %s, max_allowed %s; backends:",
		metric(p, `sinkworker_pool_connections{state="in_use"}`), metric(p, `sinkworker_pool_connections{state="idle"}`),
		metric(p, `sinkworker_pool_connections{state="max_allowed"}`))
	rows, err := r.pool.Query(ctx, `SELECT coalesce(state, '?'), backend_start, coalesce(state_change, backend_start), left(query, 40) FROM pg_stat_activity
WHERE application_name = $1 ORDER BY backend_start`, "sinkworker/"+r.group+"/"+p.name)
	if err != nil {
		return out + " " + err.Error()
	}
	var (
		state, query     string
		started, changed time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&state, &started, &changed, &query}, func() error {
		out += fmt.Sprintf(" [%s since %.1fs, started %.1fs, %q]", state, r.tl.rel(changed), r.tl.rel(started), query)
		return nil
	})
	if err != nil {
		out += " " + err.Error()
	}
	return out
}

func (s *i4Sampler) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples (%d skipped: database down), peak fleet connections %d of %d partitions, %d violations, "+
		"%d excesses unconfirmed 250 ms later, worker samples unanswered within 300 ms: %v",
		s.samples, s.skipped, s.peakFleet, partitions, len(s.violations), s.unconfirmed, s.unanswered)
	for _, v := range first(s.violations, 20) {
		b.WriteString("\n  VIOLATION " + v.String(s.r.tl))
	}
	if len(s.zombieHeld) > 0 {
		fmt.Fprintf(&b, "\n  %d times the fleet was above %d while a zombie was frozen or had just resumed (a stopped process keeps its connections):",
			len(s.zombieHeld), partitions)
		for _, v := range first(s.zombieHeld, 10) {
			b.WriteString("\n    " + v.String(s.r.tl))
		}
	}
	return b.String()
}

func first[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// progressSampler reads sink_offsets every 100 ms and notes when each
// partition's next_offset moved (the time the change was first seen).
type progressSampler struct {
	r    *run
	mu   sync.Mutex
	obs  []commitObs
	last map[int32]int64
}

type commitObs struct {
	p    int32
	next int64
	at   time.Time
}

func (s *progressSampler) loop(ctx context.Context) {
	s.last = map[int32]int64{}
	for ctx.Err() == nil {
		next, err := s.r.dbOffsets()
		now := time.Now()
		if err == nil {
			s.mu.Lock()
			for p, n := range next {
				if old, ok := s.last[p]; !ok || n != old {
					s.obs = append(s.obs, commitObs{p: p, next: n, at: now})
					s.last[p] = n
				}
			}
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *progressSampler) observations() []commitObs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.obs)
}

// pause is a stretch during which a partition had a record waiting (its
// next record was produced) and its next_offset did not move.
type pause struct {
	p        int32
	from, to time.Time
	cause    int   // index in evs of the membership change nearest its start, -1 if none
	during   []int // indexes in evs of the service restarts overlapping it
	evs      []event
	rel      func(time.Time) float64
}

func (p pause) length() time.Duration { return p.to.Sub(p.from) }

// rebalance reports whether the pause is a clean rebalance pause: a
// membership change caused it and no service restart overlapped it.
func (p pause) rebalance() bool { return p.cause >= 0 && len(p.during) == 0 }

// key identifies the incident: pauses with the same cause and restarts are
// one incident seen on several partitions.
func (p pause) key() string { return fmt.Sprint(p.cause, p.during) }

func (p pause) String() string {
	s := fmt.Sprintf("%5.1fs on p%-2d from %.1fs to %.1fs", p.length().Seconds(), p.p, p.rel(p.from), p.rel(p.to))
	if p.cause >= 0 {
		e := p.evs[p.cause]
		s += fmt.Sprintf(", cause %s %s at %.1fs", e.kind, e.worker, p.rel(e.at))
	} else {
		s += ", no membership change near it"
	}
	for _, i := range p.during {
		s += fmt.Sprintf(", during %s at %.1fs", p.evs[i].kind, p.rel(p.evs[i].at))
	}
	return s
}

type pauseList []pause

// causeWindow is how long before a pause a membership change may have caused
// it: a joining worker takes a few seconds to start and join before the
// group rebalances and the moved partitions' last commits happen.
const causeWindow = 10 * time.Second

// pauses computes, per partition, every stretch between two observed moves
// of next_offset during which its next record already existed. Each is
// attributed to the membership change (kill, restart, join, leave, zombie,
// resume, crash) nearest to its start, within causeWindow before it and up
// to its end, and to the service restarts (plus 5 s of the sink's backoff)
// overlapping it. Largest first.
func pauses(obs []commitObs, log *topicLog, tl *timeline) pauseList {
	evs := tl.events()
	byPart := map[int32][]commitObs{}
	for _, o := range obs {
		byPart[o.p] = append(byPart[o.p], o)
	}
	var out pauseList
	for p, os := range byPart {
		recs := log.parts[p]
		for i := 1; i < len(os); i++ {
			a, b := os[i-1], os[i]
			if a.next >= int64(len(recs)) {
				continue
			}
			from := a.at
			if ts := recs[a.next].ts; ts.After(from) {
				from = ts
			}
			if !b.at.After(from) {
				continue
			}
			ps := pause{p: p, from: from, to: b.at, cause: -1, evs: evs, rel: tl.rel}
			best := time.Duration(-1)
			for j, e := range evs {
				switch {
				case e.membership() && !e.at.After(b.at) && e.at.After(from.Add(-causeWindow)):
					if d := e.at.Sub(from).Abs(); best < 0 || d < best {
						ps.cause, best = j, d
					}
				case (e.kind == "db-restart" || e.kind == "broker-restart") &&
					e.at.Before(b.at) && e.end.Add(5*time.Second).After(from):
					ps.during = append(ps.during, j)
				}
			}
			out = append(out, ps)
		}
	}
	slices.SortFunc(out, func(a, b pause) int { return int(b.length() - a.length()) })
	return out
}

// longest is the length of the longest pause keep accepts.
func (l pauseList) longest(keep func(pause) bool) string {
	for _, p := range l {
		if keep(p) {
			return p.length().Round(100 * time.Millisecond).String()
		}
	}
	return "none"
}

func anyPause(pause) bool { return true }

// membershipCaused: a membership change is its nearest cause, whatever else
// happened meanwhile.
func membershipCaused(p pause) bool { return p.cause >= 0 }

// top lists the n largest incidents of at least a second, all causes and
// clean rebalances only: the longest pause of each, and how many pauses
// (partitions) it had.
func (l pauseList) top(n int) string {
	var b strings.Builder
	list := func(title string, keep func(pause) bool) {
		b.WriteString("  " + title + ":\n")
		seen := map[string]int{}
		var order []pause
		for _, p := range l {
			if !keep(p) || p.length() < time.Second {
				continue
			}
			if _, ok := seen[p.key()]; !ok {
				order = append(order, p)
			}
			seen[p.key()]++
		}
		for _, p := range first(order, n) {
			fmt.Fprintf(&b, "    %s (%d pauses with this cause)\n", p, seen[p.key()])
		}
	}
	list("any cause", anyPause)
	list("clean rebalance (a membership change, no service restart overlapping)", pause.rebalance)
	return b.String()
}
