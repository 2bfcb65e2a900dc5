package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// report collects the run's facts and figures and renders the Markdown.
type report struct {
	opts    options
	started time.Time
	root    string // the module root
	dir     string // worker binary, logs, progress.csv

	machine, postgres, code string
	brokerCfg               []string

	fleets      []*fleet
	events      []event
	progs       []progress    // per fleet, the whole run's advances; nil if polling never started
	warmupExtra time.Duration // wait after -warmup until both groups settled
	roundsStart time.Duration // recorder time of the first round
	baseExits   []int

	produced, produceFailed int64
	produceErr              string
	produceTook             time.Duration
	polls, pollErrs         int
	pollErr                 string
	slowestPoll             time.Duration
	trace                   string
	logLines                []string // every worker's log lines, prefixed with its member name

	failure string
}

// describe finds the module root and notes the machine, database, broker
// and code under test.
func (r *report) describe(ctx context.Context, s *services) error {
	var err error
	if r.root, err = testbed.ModuleRoot(ctx); err != nil {
		return err
	}
	r.machine = testbed.Machine()
	if r.postgres, err = testbed.Postgres(ctx, s.db, "shared_buffers", "synchronous_commit", "fsync"); err != nil {
		return err
	}
	r.brokerCfg = s.brokerSettings(ctx, "group.consumer.heartbeat.interval.ms", "group.consumer.session.timeout.ms",
		"group.consumer.assignors", "group.initial.rebalance.delay.ms")
	commit, changed := testbed.Code(ctx, r.root)
	r.code = "commit " + commit
	if len(changed) > 0 {
		r.code += " with uncommitted changes to " + strings.Join(changed, ", ")
	}
	return nil
}

// finish measures every event on the whole series (gaps that ran past a
// window have closed by now) and gathers the counters and logs.
func (r *report) finish(h *harness) {
	if h.rec != nil {
		r.progs = make([]progress, len(h.fleets))
		for i := range h.fleets {
			r.progs[i] = h.rec.progress(i)
		}
		for i := range r.events {
			from, to := r.events[i].span(r.opts.settle)
			r.events[i].windows = nil
			for _, p := range r.progs {
				r.events[i].windows = append(r.events[i].windows, p.measure(from, to))
			}
		}
		r.polls, r.pollErrs, r.pollErr, r.slowestPoll = h.rec.stats()
		r.trace = filepath.Join(r.dir, "progress.csv")
		if err := h.rec.writeCSV(r.trace); err != nil {
			logf("could not write %s: %v", r.trace, err)
			r.trace = ""
		}
	}
	if h.prod != nil {
		r.produced, r.produceFailed, r.produceTook = h.prod.acked.Load(), h.prod.failed.Load(), h.prod.took
		if e := h.prod.firstErr.Load(); e != nil {
			r.produceErr = (*e).Error()
		}
	}
	for _, f := range h.fleets {
		for _, p := range f.procs {
			member := strings.TrimSuffix(filepath.Base(p.Log), ".log")
			for _, l := range p.Lines() {
				r.logLines = append(r.logLines, member+": "+l)
			}
		}
	}
}

// stat is one row of a table: the same statistic over several windows.
type stat struct {
	n        int
	pauses   []time.Duration
	slow     []int
	censored int
	exits    []time.Duration
}

// collect gathers fleet i's windows of the events match selects.
func (r *report) collect(i int, match func(event) bool) stat {
	var s stat
	for _, e := range r.events {
		if !match(e) || len(e.windows) <= i {
			continue
		}
		w := e.windows[i]
		s.n++
		s.pauses = append(s.pauses, w.pause)
		s.slow = append(s.slow, w.slow)
		if w.censored {
			s.censored++
		}
		if e.exit > 0 {
			s.exits = append(s.exits, e.exit)
		}
	}
	return s
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// row renders a stat: events, median and max pause, partitions over 1 s.
func (s stat) row(label string) string {
	if s.n == 0 {
		return fmt.Sprintf("| %s | 0 | | | | |", label)
	}
	maxSlow := slices.Max(s.slow)
	c := ""
	if s.censored > 0 {
		c = fmt.Sprintf(" (%d ran to the end of the run: at least)", s.censored)
	}
	return fmt.Sprintf("| %s | %d | **%s** | %s%s | %.1f | %d |", label, s.n, sec(median(s.pauses)),
		sec(slices.Max(s.pauses)), c, medianInt(s.slow), maxSlow)
}

// ratio is "a/b" of two medians, "n/a" when b is 0.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a.Seconds()/b.Seconds())
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + strings.SplitN(s, "\n", 2)[0] + ")"
}

// write prints the report and saves it at -out, by default
// bench/results/<date>-rebalance.md under the module root.
func (r *report) write() error {
	md := r.markdown()
	fmt.Println()
	fmt.Print(md)
	path := r.opts.out
	if path == "" {
		path = filepath.Join(r.root, "bench", "results", r.started.Format("2006-01-02")+"-rebalance.md")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	logf("report written to %s", path)
	return nil
}
