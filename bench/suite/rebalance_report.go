package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
)

// rebalanceResult is what the rebalance scenario measured, also after a
// failure.
type rebalanceResult struct {
	o         rebalanceOptions
	env       []string // -env
	brokerCfg []string
	protocols []string // per fleet, in the order of events' windows

	events      []event
	progs       []progress    // per fleet, the whole run's advances; nil if polling never started
	warmupExtra time.Duration // wait after the warm-up until both groups settled
	roundsStart time.Duration // recorder time of the first round
	baseExits   []int

	produced        int
	produceErr      string
	produceTook     time.Duration
	polls, pollErrs int
	pollErr         string
	slowestPoll     time.Duration
	trace           string
	logLines        []string // every worker's log lines, prefixed with its member name
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
func (r *rebalanceResult) collect(i int, match func(event) bool) stat {
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
	c := ""
	if s.censored > 0 {
		c = fmt.Sprintf(" (%d ran to the end of the run: at least)", s.censored)
	}
	return fmt.Sprintf("| %s | %d | **%s** | %s%s | %.1f | %d |", label, s.n, sec(median(s.pauses)),
		sec(slices.Max(s.pauses)), c, medianInt(s.slow), slices.Max(s.slow))
}

// ratio is "a/b" of two medians, "n/a" when b is 0.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a.Seconds()/b.Seconds())
}

// markdown writes the rebalance section with w.
func (r *rebalanceResult) markdown(w func(string, ...any)) {
	o := r.o
	w("### 7. Rebalance: the pause a member joining or leaving causes, classic vs consumer group protocol")
	w("")
	extra := "defaults (BATCH_LINGER 100ms; KAFKA_SESSION_TIMEOUT 45s under classic, unset under consumer)"
	if len(r.env) > 0 {
		extra = "defaults except " + strings.Join(r.env, " ") + " (KAFKA_SESSION_TIMEOUT only under classic)"
	}
	w("Per protocol a topic of %d partitions, its own group and table, 2 workers (`SINK_MEMBER` <protocol>-1, -2), a 3rd joins and leaves; worker settings %s; producer %.0f records/s in total, alternating between the two topics (%.0f per partition per s), keys from %d, %d-byte JSON values; %d rounds, settle %s; sink_offsets polled every %s. Broker: %s. Warm-up: %s, then %s more until both groups were settled.",
		o.parts, extra, o.rate, o.rate/float64(2*o.parts), producerKeys, dataset.ValueSize, o.rounds, o.settle, o.poll,
		strings.Join(r.brokerCfg, ", "), o.warmup, sec(r.warmupExtra))
	w("")
	w("Each round starts with a quiet window (both groups settled, no event, 1 s + settle), then join and leave for classic, then for consumer (consumer first in even rounds). Before each event the harness waits until the group is Stable with the expected members sharing all partitions and every partition advanced within the last second. The other protocol's workers and the producer keep running during an event: their figures show what an event costs the bystanders on the same machine.")
	w("")
	medians := map[string][]time.Duration{}
	for _, k := range []struct{ kind, title string }{
		{kindJoin, "Join: a 3rd worker starts (scale-out)"},
		{kindLeave, "Leave: the 3rd worker gets SIGTERM and exits (scale-in)"},
	} {
		w("%s:", k.title)
		w("")
		w("| protocol | events | pause, median | pause, max | partitions > 1 s, median | partitions > 1 s, max |")
		w("| --- | ---: | ---: | ---: | ---: | ---: |")
		var exits []string
		for i, n := range r.protocols {
			s := r.collect(i, func(e event) bool { return e.protocol == n && e.kind == k.kind })
			w("%s", s.row(n))
			medians[k.kind] = append(medians[k.kind], median(s.pauses))
			if len(s.exits) > 0 {
				exits = append(exits, fmt.Sprintf("%s median %s, max %s", n, sec(median(s.exits)), sec(slices.Max(s.exits))))
			}
		}
		if len(exits) > 0 {
			w("")
			w("The leaving worker's exit after SIGTERM (its drain, offsets and leaving the group): %s.", strings.Join(exits, "; "))
		}
		w("")
	}
	r.baseline(w)
	r.eventList(w)
	if len(medians[kindJoin]) == 2 && len(medians[kindLeave]) == 2 {
		for _, k := range []struct{ kind, label string }{{kindJoin, "Scale-out (join)"}, {kindLeave, "Scale-in (leave)"}} {
			m := medians[k.kind]
			w("- **%s pause: %s median %s, %s %s; ratio %s/%s %s**", k.label, r.protocols[0], sec(m[0]), r.protocols[1], sec(m[1]),
				r.protocols[0], r.protocols[1], ratio(m[0], m[1]))
		}
	}
	firstErr := func(s string) string {
		if s == "" {
			return ""
		}
		return " (first: " + firstLine(s) + ")"
	}
	w("- Producer: %d records handed over in %s (%.0f/s)%s", r.produced, sec(r.produceTook),
		float64(r.produced)/max(r.produceTook.Seconds(), 1e-9), firstErr(r.produceErr))
	w("- Polls of sink_offsets: %d rounds of both groups, longest interval between two %s, %d failed%s", r.polls,
		sec(r.slowestPoll), r.pollErrs, firstErr(r.pollErr))
	if len(r.baseExits) > 0 {
		w("- Base workers after SIGTERM at the end: exit statuses %v", r.baseExits)
	}
	w("- Worker logs at LOG_LEVEL=warn: %d lines%s", len(r.logLines), proc.FirstLines(r.logLines, 8))
	if r.trace != "" {
		w("- Every observation (elapsed ms, protocol, next_offset per partition): %s", r.trace)
	}
	w("")
	w("How the pause is computed: a partition advances at a poll that reads a larger next_offset than the poll before. For an event at time t (the third worker's process start, or the SIGTERM), the window is [t - 1 s, t + settle]; a partition's pause is the longest time between two consecutive advances among the gaps that overlap the window (a gap that crosses an edge counts whole, so a pause still running when the window closes is measured to its end). The event's pause is the largest over the partitions; \"partitions > 1 s\" counts those whose pause exceeded 1 s (the partitions that stopped). The baseline is the same statistic over the quiet windows. Times carry up to one poll interval of error; the producer keeps every partition supplied, so a gap means the partition was not committing, not that it had nothing to do.")
	w("")
}

// baseline is the table of windows without an event of the group's own,
// and the normal time between two commits.
func (r *rebalanceResult) baseline(w func(string, ...any)) {
	w("Baseline, the same statistic without an event of the group's own:")
	w("")
	w("| protocol, window | windows | longest gap, median | longest gap, max | partitions > 1 s, median | partitions > 1 s, max |")
	w("| --- | ---: | ---: | ---: | ---: | ---: |")
	var gapLine []string
	for i, n := range r.protocols {
		w("%s", r.collect(i, func(e event) bool { return e.kind == kindQuiet }).row(n+", quiet window"))
		var gaps []time.Duration
		for _, e := range r.events {
			if e.kind == kindQuiet && r.progs != nil {
				from, to := e.span(r.o.settle)
				gaps = append(gaps, r.progs[i].gapsWithin(from, to)...)
			}
		}
		if len(gaps) > 0 {
			slices.Sort(gaps)
			gapLine = append(gapLine, fmt.Sprintf("%s median %s, p99 %s (%d gaps)", n, sec(median(gaps)),
				sec(gaps[min(len(gaps)-1, len(gaps)*99/100)]), len(gaps)))
		}
	}
	for i, n := range r.protocols {
		w("%s", r.collect(i, func(e event) bool { return e.protocol != "" && e.protocol != n }).row(n+", during the other protocol's events"))
	}
	w("")
	if len(gapLine) > 0 {
		w("Normal time between two commits of a partition in the quiet windows: %s.", strings.Join(gapLine, "; "))
		w("")
	}
}

// eventList is one row per join and leave.
func (r *rebalanceResult) eventList(w func(string, ...any)) {
	w("| round | event | at | pause | worst partition | partitions > 1 s | bystander's longest gap | waited to settle before | group at the window's end |")
	w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, e := range r.events {
		if e.kind == kindQuiet || len(e.windows) != 2 {
			continue
		}
		own := slices.Index(r.protocols, e.protocol)
		ow, by := e.windows[own], e.windows[1-own]
		pause := sec(ow.pause)
		if ow.censored {
			pause = ">= " + pause
		}
		w("| %d | %s %s | %.1f s | %s | p%d | %d | %s | %s | %s |", e.round, e.protocol, e.kind, (e.at - r.roundsStart).Seconds(),
			pause, ow.worst, ow.slow, sec(by.pause), sec(e.waited), e.group)
	}
	w("")
}
