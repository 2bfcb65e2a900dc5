package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// producerKeys is the rebalance producer's key space: keys repeat, as
// upserts expect, and spread over every partition.
const producerKeys = 20_000

// Event kinds.
const (
	kindJoin  = "join"  // a third worker starts
	kindLeave = "leave" // the third worker gets SIGTERM
	kindQuiet = "quiet" // nothing happens: the baseline
)

// event is one membership change (or a quiet window) and what it did.
type event struct {
	round    int
	protocol string        // "" for a quiet window, which measures both fleets
	kind     string        // kindJoin, kindLeave or kindQuiet
	at       time.Duration // recorder time of the start (process start, SIGTERM)
	waited   time.Duration // wait before it until the group was settled
	group    string        // the group at the end of the window, as the broker describes it
	exit     time.Duration // leave: SIGTERM to the process's exit
	windows  []window      // per fleet, filled in by finish
}

// span is the event's window: from a second before it to -rebalance-settle after.
func (e event) span(settle time.Duration) (from, to time.Duration) {
	return e.at - time.Second, e.at + settle
}

// quiet is the baseline window of a round: both fleets settled, then
// 1 s + settle without any event, measured like an event at its second
// second.
func (h *rebalancer) quiet(ctx context.Context, round int) error {
	var waited time.Duration
	for _, f := range h.fleets {
		w, err := h.settled(ctx, f, 2, time.Minute)
		if err != nil {
			return err
		}
		waited += w
	}
	e := event{round: round, kind: kindQuiet, at: h.rec.now() + time.Second, waited: waited}
	if err := h.hold(ctx, time.Second+h.o.settle); err != nil {
		return err
	}
	h.record(e)
	return nil
}

// join starts f's third worker once f is settled with two, and waits
// settle.
func (h *rebalancer) join(ctx context.Context, f *fleet, round int) error {
	waited, err := h.settled(ctx, f, 2, time.Minute)
	if err != nil {
		return err
	}
	e := event{round: round, protocol: f.protocol, kind: kindJoin, at: h.rec.now(), waited: waited}
	if f.third, err = f.start(f.member(3, round)); err != nil {
		return err
	}
	if err := h.hold(ctx, h.o.settle); err != nil {
		return err
	}
	e.group = h.describe(ctx, f)
	h.record(e)
	return nil
}

// leave sends SIGTERM to f's third worker once f is settled with three,
// waits settle and checks that the worker exited 0.
func (h *rebalancer) leave(ctx context.Context, f *fleet, round int) error {
	waited, err := h.settled(ctx, f, 3, time.Minute)
	if err != nil {
		return err
	}
	p := f.third
	f.third = nil // exiting is what it should do now
	e := event{round: round, protocol: f.protocol, kind: kindLeave, at: h.rec.now(), waited: waited}
	type stopped struct {
		exit proc.Exit
		took time.Duration
	}
	ch := make(chan stopped, 1) // the goroutine ends within Stop's grace even if nobody receives
	go func() {
		start := time.Now()
		x := p.Stop(time.Minute)
		ch <- stopped{x, time.Since(start)}
	}()
	if err := h.hold(ctx, h.o.settle); err != nil {
		return err
	}
	var st stopped
	select {
	case st = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	if st.exit.Killed || st.exit.Code != 0 {
		return fmt.Errorf("%s worker %s exited with status %d after SIGTERM (killed: %v), want 0\n%s",
			f.protocol, f.member(3, round), st.exit.Code, st.exit.Killed, p.Tail(30))
	}
	e.exit = st.took
	e.group = h.describe(ctx, f)
	h.record(e)
	return nil
}

// describe is f's group for the report, or why it could not be read.
func (h *rebalancer) describe(ctx context.Context, f *fleet) string {
	a, err := f.describe(ctx, h.b.s.adm)
	if err != nil {
		return "describe failed: " + err.Error()
	}
	return a.String()
}

// record keeps e and logs what the observations so far say of it (finish
// measures again, when the gaps running past the window have closed).
func (h *rebalancer) record(e event) {
	h.res.events = append(h.res.events, e)
	from, to := e.span(h.o.settle)
	var parts []string
	for _, f := range h.fleets {
		w := h.rec.progress(f.index).measure(from, to)
		switch {
		case e.protocol == "":
			parts = append(parts, fmt.Sprintf("%s %s", f.protocol, w.brief()))
		case f.protocol == e.protocol:
			parts = append([]string{fmt.Sprintf("%s %s: pause %s", f.protocol, e.kind, w.brief())}, parts...)
		default:
			parts = append(parts, fmt.Sprintf("%s meanwhile %s", f.protocol, w.brief()))
		}
	}
	line := fmt.Sprintf("    round %d/%d  %s", e.round, h.o.rounds, strings.Join(parts, "; "))
	if e.exit > 0 {
		line += fmt.Sprintf("; exited 0 %s after SIGTERM", e.exit.Round(time.Millisecond))
	}
	if e.group != "" {
		line += "; group " + e.group
	}
	logf("%s", line)
}

// brief is e.g. "3.45 s (p7, 4 > 1 s)".
func (w window) brief() string {
	s := fmt.Sprintf("%.2f s (p%d, %d > 1 s)", w.pause.Seconds(), w.worst, w.slow)
	if w.censored {
		s = ">= " + s
	}
	return s
}

// recorder polls sink_offsets for every fleet's group and keeps what it
// read. Start run in a goroutine; cancelling its ctx stops it. Its methods
// are safe for concurrent use.
type recorder struct {
	db     sinkdb.DB // the harness's pool: it reconnects after a PostgreSQL restart
	start  time.Time // the zero of every time in the series
	every  time.Duration
	fleets []*fleet

	mu      sync.Mutex
	series  []series // per fleet, in the order of fleets
	polls   int
	errs    int
	lastErr string
	slowest time.Duration // longest time between two consecutive polls
}

// run polls until ctx is done.
func (r *recorder) run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	var prev time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			if !prev.IsZero() {
				r.slowest = max(r.slowest, now.Sub(prev))
			}
			r.polls++
			r.mu.Unlock()
			prev = now
		}
		for i, f := range r.fleets {
			at := time.Since(r.start)
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			next, err := sinkdb.Next(qctx, r.db, f.group, f.topic, f.parts)
			cancel()
			r.mu.Lock()
			if err != nil {
				r.errs++
				r.lastErr = err.Error()
			} else {
				r.series[i].at = append(r.series[i].at, at)
				r.series[i].next = append(r.series[i].next, next)
			}
			r.mu.Unlock()
		}
	}
}

// snapshot is what fleet i's series holds now.
func (r *recorder) snapshot(i int) series {
	r.mu.Lock()
	defer r.mu.Unlock()
	return series{at: r.series[i].at, next: r.series[i].next}
}

// progress is fleet i's advances so far.
func (r *recorder) progress(i int) progress {
	return newProgress(r.snapshot(i), r.fleets[i].parts)
}

// now is the time since the recorder's zero.
func (r *recorder) now() time.Duration { return time.Since(r.start) }

// stats are the poll counts and errors, for the report.
func (r *recorder) stats() (polls, errs int, lastErr string, slowest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.polls, r.errs, r.lastErr, r.slowest
}

// writeCSV saves every observation: elapsed_ms, protocol, then next_offset
// per partition.
func (r *recorder) writeCSV(path string) error {
	var b strings.Builder
	b.WriteString("elapsed_ms,protocol")
	for p := range r.fleets[0].parts {
		fmt.Fprintf(&b, ",p%d", p)
	}
	b.WriteString("\n")
	for i, fl := range r.fleets {
		s := r.snapshot(i)
		for j, at := range s.at {
			fmt.Fprintf(&b, "%d,%s", at.Milliseconds(), fl.protocol)
			for _, n := range s.next[j] {
				fmt.Fprintf(&b, ",%d", n)
			}
			b.WriteString("\n")
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
