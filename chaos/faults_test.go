package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// event is one thing that happened to the system under test.
type event struct {
	at, end time.Time // end: when a service restart finished (zero otherwise)
	kind    string    // kill, restart, join, leave, zombie, resume, crash, db-restart, broker-restart
	worker  string
	note    string
}

// membership reports whether the event changes the group's membership.
func (e event) membership() bool {
	switch e.kind {
	case "kill", "restart", "join", "leave", "zombie", "resume", "crash":
		return true
	}
	return false
}

func (e event) describe(tl *timeline) string {
	s := fmt.Sprintf("%6.1fs %s", tl.rel(e.at), e.kind)
	if e.worker != "" {
		s += " " + e.worker
	}
	if !e.end.IsZero() {
		s += fmt.Sprintf(" (%.1fs)", e.end.Sub(e.at).Seconds())
	}
	if e.note != "" {
		s += " [" + e.note + "]"
	}
	return s
}

// timeline records events, in order.
type timeline struct {
	mu  sync.Mutex
	t0  time.Time
	evs []event
}

func newTimeline() *timeline { return &timeline{t0: time.Now()} }

// start marks the beginning of the fault phase: times are relative to it.
func (tl *timeline) start() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.t0 = time.Now()
}

func (tl *timeline) add(e event) {
	if e.at.IsZero() {
		e.at = time.Now()
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.evs = append(tl.evs, e)
}

func (tl *timeline) rel(t time.Time) float64 {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return t.Sub(tl.t0).Seconds()
}

func (tl *timeline) events() []event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := slices.Clone(tl.evs)
	slices.SortStableFunc(out, func(a, b event) int { return a.at.Compare(b.at) })
	return out
}

func (tl *timeline) counts() map[string]int {
	c := map[string]int{}
	for _, e := range tl.events() {
		c[e.kind]++
	}
	return c
}

func (tl *timeline) String() string {
	var b strings.Builder
	for _, e := range tl.events() {
		b.WriteString(e.describe(tl))
		b.WriteByte('\n')
	}
	return b.String()
}

// step is one planned membership fault.
type step struct {
	at    time.Duration // since the fault phase began
	kind  string        // kill, join, leave, zombie
	pick  uint64        // chooses the target among the ready workers
	pause time.Duration // kill: delay before the restart; zombie: how long it stays frozen
}

// infraStep is one planned service restart.
type infraStep struct {
	at   time.Duration
	kind string // db-restart, broker-restart
}

// plan draws the whole fault schedule from rng: the membership faults in an
// order that keeps 1 to 4 workers (starting from 2), spread over the fault
// phase with random gaps, and the service restarts at random times.
func plan(sz size, rng *rand.Rand) ([]step, []infraStep) {
	left := map[string]int{"kill": sz.kills, "join": sz.joins, "leave": sz.leaves, "zombie": sz.zombies}
	kinds := []string{"kill", "join", "leave", "zombie"}
	n := 2 // workers meant to run
	var steps []step
	for left["kill"]+left["join"]+left["leave"]+left["zombie"] > 0 {
		valid := func(k string) bool {
			switch k {
			case "join":
				return n < maxWorkers
			case "leave", "zombie":
				return n >= 2 // someone stays to take over
			}
			return true
		}
		total := 0
		for _, k := range kinds {
			if valid(k) {
				total += left[k]
			}
		}
		var kind string
		if total == 0 { // only blocked kinds remain: one extra step unblocks them
			kind = "join"
			if n >= maxWorkers {
				kind = "leave"
			}
		} else {
			x := rng.IntN(total)
			for _, k := range kinds {
				if valid(k) {
					if x < left[k] {
						kind = k
						break
					}
					x -= left[k]
				}
			}
			left[kind]--
		}
		switch kind {
		case "join":
			n++
		case "leave":
			n--
		}
		s := step{kind: kind, pick: rng.Uint64()}
		switch kind {
		case "kill":
			s.pause = time.Duration(200+rng.IntN(2800)) * time.Millisecond
		case "zombie":
			s.pause = sz.freeze + time.Duration(rng.IntN(3000))*time.Millisecond
		}
		steps = append(steps, s)
	}
	spread(steps, sz, rng)
	return steps, planInfra(sz, rng)
}

// spread sets the steps' times: random gaps, scaled so the first step comes
// 3 s into the fault phase and the last freeze+5 s before its end.
func spread(steps []step, sz size, rng *rand.Rand) {
	span := sz.faults - sz.freeze - 8*time.Second
	var acc float64
	gaps := make([]float64, len(steps))
	for i := range gaps {
		gaps[i] = 0.3 + 1.4*rng.Float64()
		acc += gaps[i]
	}
	var at float64
	for i := range steps {
		at += gaps[i]
		steps[i].at = 3*time.Second + time.Duration(at/acc*float64(span))
	}
}

// planInfra draws the service restarts' times, uniformly over the fault
// phase but early enough that a broker restart (~15 s) ends inside it.
func planInfra(sz size, rng *rand.Rand) []infraStep {
	var infra []infraStep
	window := sz.faults - 25*time.Second // a broker restart takes ~15 s
	for range sz.dbRestarts {
		infra = append(infra, infraStep{at: 2*time.Second + time.Duration(rng.Float64()*float64(window)), kind: "db-restart"})
	}
	for range sz.brokerRestarts {
		infra = append(infra, infraStep{at: 2*time.Second + time.Duration(rng.Float64()*float64(window)), kind: "broker-restart"})
	}
	slices.SortFunc(infra, func(a, b infraStep) int { return int(a.at - b.at) })
	return infra
}

// injectFaults runs the schedule: membership faults and service restarts in
// two goroutines, so they overlap. It returns when every fault is over (the
// last zombie resumed, the last killed worker restarted, the services up).
func (r *run) injectFaults(steps []step, infra []infraStep) {
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Go(func() {
		for _, s := range infra {
			time.Sleep(time.Until(t0.Add(s.at)))
			r.restartService(s.kind)
		}
	})
	wg.Go(func() {
		var after sync.WaitGroup // restarts and thaws that run on their own
		var shift time.Duration  // time spent waiting for a target delays the rest
		for _, s := range steps {
			time.Sleep(time.Until(t0.Add(s.at + shift)))
			start := time.Now()
			r.membershipFault(s, &after)
			shift += time.Since(start)
		}
		after.Wait()
	})
	wg.Wait()
}

func (r *run) restartService(kind string) {
	args := []string{"pg-restart", "immediate"}
	if kind == "broker-restart" {
		args = []string{"kafka-restart"}
	}
	before := r.transientRetries()
	start := time.Now()
	out, err := r.svc.Command(args...).CombinedOutput()
	e := event{at: start, end: time.Now(), kind: kind}
	if err != nil {
		e.note = "FAILED"
		r.t.Errorf("scripts/services %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if kind == "db-restart" && err == nil {
		seen := r.sawOutage(before, 10*time.Second)
		e.note = "workers saw it: " + seen
		if seen == "" {
			e.note = "no worker retried or reported not-ready"
		}
		r.mu.Lock()
		r.dbRestarts = append(r.dbRestarts, faultCheck{from: start, to: e.end, observed: seen != ""})
		r.mu.Unlock()
	}
	r.tl.add(e)
}

// target picks a ready worker with s.pick, waiting up to 20 s for one; min
// is how many must be ready for the step to make sense.
func (r *run) target(s step, minReady int) *proc {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := r.fleet.ready()
		if len(ready) >= minReady {
			return ready[s.pick%uint64(len(ready))]
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *run) membershipFault(s step, after *sync.WaitGroup) {
	f := r.fleet
	switch s.kind {
	case "join":
		if p := f.join(); p != nil {
			r.tl.add(event{kind: "join", worker: p.String()})
		}
	case "kill":
		p := r.killTarget(s)
		if p == nil {
			r.tl.add(event{kind: "skipped", note: "kill: no running worker"})
			return
		}
		r.tl.add(event{kind: "kill", worker: p.String()})
		f.kill(p)
		after.Go(func() {
			time.Sleep(s.pause)
			if q := f.start(p.name); q != nil {
				r.tl.add(event{kind: "restart", worker: q.String()})
			}
		})
	case "leave":
		p := r.target(s, 2)
		if p == nil {
			r.tl.add(event{kind: "skipped", note: "leave: fewer than 2 ready workers"})
			return
		}
		r.tl.add(event{kind: "leave", worker: p.String()})
		f.leave(p)
	case "zombie":
		p, n := r.zombieTarget(s)
		if p == nil {
			r.tl.add(event{kind: "skipped", note: "zombie: fewer than 2 ready workers"})
			return
		}
		r.tl.add(event{kind: "zombie", worker: p.String(), note: fmt.Sprintf("holds %d partitions, frozen %.1fs", n, s.pause.Seconds())})
		frozenAt := time.Now()
		f.freeze(p)
		after.Go(func() {
			time.Sleep(s.pause - time.Second)
			frozen := r.backends()
			time.Sleep(time.Second)
			f.thaw(p)
			before := metric(p, `sinkworker_records_total{outcome="already_applied"`)
			time.Sleep(2500 * time.Millisecond)
			after := metric(p, `sinkworker_records_total{outcome="already_applied"`)
			lost := testenv.LogField(p.logPath, "partitions lost", "level") != ""
			b, errB := strconv.ParseFloat(before, 64)
			a, errA := strconv.ParseFloat(after, 64)
			fenced := n > 0 && (lost || (errA == nil && errB == nil && a > b))
			if n > 0 {
				r.mu.Lock()
				r.zombies = append(r.zombies, faultCheck{from: frozenAt, to: time.Now(), observed: fenced})
				r.mu.Unlock()
			}
			r.tl.add(event{at: p.resumedAt(), kind: "resume", worker: p.String(), note: fmt.Sprintf(
				"backends 1s before: %s; 2.5s after: logged %q %v, already_applied records %v -> %v; fenced %v", frozen,
				"partitions lost", lost, before, after, fenced)})
		})
	}
}

// killTarget picks, like target, among the running workers, listening or
// still starting (a worker dies in its start-up too); it waits up to 20 s.
func (r *run) killTarget(s step) *proc {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ps := r.fleet.killable(); len(ps) > 0 {
			return ps[s.pick%uint64(len(ps))]
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// zombieTarget picks, like target, a ready worker that holds partitions
// (a zombie must think it owns something), when there are at least two ready
// workers; it waits up to 20 s for one, then takes any.
func (r *run) zombieTarget(s step) (*proc, int) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := r.fleet.ready()
		var holding []*proc
		var held []int
		for _, p := range ready {
			if n, err := p.assigned(); err == nil && n > 0 {
				holding, held = append(holding, p), append(held, n)
			}
		}
		if len(ready) >= 2 && len(holding) > 0 {
			i := s.pick % uint64(len(holding))
			return holding[i], held[i]
		}
		if time.Now().After(deadline) {
			if p := r.target(s, 2); p != nil {
				n, _ := p.assigned()
				return p, n
			}
			return nil, 0
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backends summarises the group's backends by member, state and wait event
// type: during a freeze it shows whether the zombie holds transactions open
// (idle in transaction) and whether the new owners wait for its row locks.
func (r *run) backends() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	prefix := "sinkworker/" + r.group + "/"
	rows, err := r.pool.Query(ctx, `SELECT substr(application_name, length($1) + 1), coalesce(state, '?'),
	coalesce(wait_event_type, '-'), count(*) FROM pg_stat_activity
WHERE starts_with(application_name, $1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, prefix)
	if err != nil {
		return err.Error()
	}
	var (
		out                 []string
		member, state, wait string
		n                   int
	)
	_, err = pgx.ForEachRow(rows, []any{&member, &state, &wait, &n}, func() error {
		out = append(out, fmt.Sprintf("%s %d %s/%s", member, n, state, wait))
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return strings.Join(out, ", ")
}
