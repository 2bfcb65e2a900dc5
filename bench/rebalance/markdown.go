package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// page is the Markdown being written.
type page struct{ strings.Builder }

// w writes one line.
func (p *page) w(format string, args ...any) { fmt.Fprintf(p, format+"\n", args...) }

// markdown renders the report.
func (r *report) markdown() string {
	var p page
	r.head(&p)
	medians := r.eventTables(&p)
	r.baseline(&p)
	r.eventList(&p)
	r.summary(&p, medians)
	return p.String()
}

// protocols are the fleets' protocols, in the fleets' order.
func (r *report) protocols() []string {
	names := make([]string, len(r.fleets))
	for i, f := range r.fleets {
		names[i] = f.protocol
	}
	return names
}

// head is the title, the command and the settings.
func (r *report) head(p *page) {
	o := r.opts
	p.w("## Rebalance pause: classic vs consumer group protocol, %s", r.started.Format("2006-01-02 15:04 MST"))
	p.w("")
	p.w("Command (module root, after `scripts/services up && eval \"$(scripts/services env)\"`):")
	p.w("")
	p.w("    %s", testbed.Command("./bench/rebalance", os.Args[1:]))
	p.w("")
	p.w("- Machine: %s", r.machine)
	p.w("- Database: %s", r.postgres)
	p.w("- Broker: Kafka at %s (single node, same machine); %s", os.Getenv("KAFKA_BROKERS"), strings.Join(r.brokerCfg, ", "))
	p.w("- Code: %s", r.code)
	extra := "defaults (BATCH_LINGER 100ms; KAFKA_SESSION_TIMEOUT 45s under classic, unset under consumer)"
	if len(o.env) > 0 {
		extra = "defaults except " + strings.Join(o.env, " ") + " (KAFKA_SESSION_TIMEOUT only under classic)"
	}
	p.w("- Settings: per protocol a topic of %d partitions, its own group and upsert table, 2 workers (`SINK_MEMBER` <protocol>-1, -2), a 3rd joins and leaves; worker settings %s; producer %.0f records/s in total, alternating between the two topics (%.0f per partition per s), keys from %d, %d-byte JSON values; %d rounds, settle %s; sink_offsets polled every %s",
		o.partitions, extra, o.rate, o.rate/float64(2*o.partitions), producerKeys, dataset.ValueSize, o.rounds, o.settle, o.poll)
	p.w("- Warm-up: %s, then %s more until both groups were settled", o.warmup, sec(r.warmupExtra))
	p.w("- Order: each round starts with a quiet window (both groups settled, no event, 1 s + settle), then join and leave for classic, then for consumer (consumer first in even rounds). Before each event the harness waits until the group is Stable with the expected members sharing all partitions and every partition advanced within the last second. The other protocol's workers and the producer keep running during an event: their figures show what an event costs the bystanders on the same machine.")
	p.w("")
}

// eventTables are the join and leave tables; it returns the median pause
// per kind, in the fleets' order.
func (r *report) eventTables(p *page) map[string][]time.Duration {
	medians := map[string][]time.Duration{}
	for _, k := range []struct{ kind, title string }{
		{kindJoin, "join: a 3rd worker starts (scale-out)"},
		{kindLeave, "leave: the 3rd worker gets SIGTERM and exits (scale-in)"},
	} {
		p.w("### %s", k.title)
		p.w("")
		p.w("| protocol | events | pause, median | pause, max | partitions > 1 s, median | partitions > 1 s, max |")
		p.w("| --- | ---: | ---: | ---: | ---: | ---: |")
		var exits []string
		for i, n := range r.protocols() {
			s := r.collect(i, func(e event) bool { return e.protocol == n && e.kind == k.kind })
			p.w("%s", s.row(n))
			medians[k.kind] = append(medians[k.kind], median(s.pauses))
			if len(s.exits) > 0 {
				exits = append(exits, fmt.Sprintf("%s median %s, max %s", n, sec(median(s.exits)), sec(slices.Max(s.exits))))
			}
		}
		if len(exits) > 0 {
			p.w("")
			p.w("The leaving worker's exit after SIGTERM (its drain, offsets and leaving the group): %s.", strings.Join(exits, "; "))
		}
		p.w("")
	}
	return medians
}

// baseline is the table of windows without an event of the group's own,
// and the normal time between two commits.
func (r *report) baseline(p *page) {
	p.w("### Baseline: the same statistic without an event of the group's own")
	p.w("")
	p.w("| protocol, window | windows | longest gap, median | longest gap, max | partitions > 1 s, median | partitions > 1 s, max |")
	p.w("| --- | ---: | ---: | ---: | ---: | ---: |")
	var gapLine []string
	for i, n := range r.protocols() {
		p.w("%s", r.collect(i, func(e event) bool { return e.kind == kindQuiet }).row(n+", quiet window"))
		var gaps []time.Duration
		for _, e := range r.events {
			if e.kind == kindQuiet && r.progs != nil {
				from, to := e.span(r.opts.settle)
				gaps = append(gaps, r.progs[i].gapsWithin(from, to)...)
			}
		}
		if len(gaps) > 0 {
			slices.Sort(gaps)
			gapLine = append(gapLine, fmt.Sprintf("%s median %s, p99 %s (%d gaps)", n, sec(median(gaps)),
				sec(gaps[min(len(gaps)-1, len(gaps)*99/100)]), len(gaps)))
		}
	}
	for i, n := range r.protocols() {
		p.w("%s", r.collect(i, func(e event) bool { return e.protocol != "" && e.protocol != n }).row(n+", during the other protocol's events"))
	}
	p.w("")
	if len(gapLine) > 0 {
		p.w("Normal time between two commits of a partition in the quiet windows: %s.", strings.Join(gapLine, "; "))
		p.w("")
	}
}

// eventList is one row per join and leave.
func (r *report) eventList(p *page) {
	names := r.protocols()
	p.w("### Every event")
	p.w("")
	p.w("| round | event | at | pause | worst partition | partitions > 1 s | bystander's longest gap | waited to settle before | group at the window's end |")
	p.w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, e := range r.events {
		if e.kind == kindQuiet || len(e.windows) != 2 {
			continue
		}
		own := slices.Index(names, e.protocol)
		ow, by := e.windows[own], e.windows[1-own]
		pause := sec(ow.pause)
		if ow.censored {
			pause = ">= " + pause
		}
		p.w("| %d | %s %s | %.1f s | %s | p%d | %d | %s | %s | %s |", e.round, e.protocol, e.kind, (e.at - r.roundsStart).Seconds(),
			pause, ow.worst, ow.slow, sec(by.pause), sec(e.waited), e.group)
	}
	p.w("")
}

// summary is the headline ratios, the counters and how the pause is
// computed.
func (r *report) summary(p *page, medians map[string][]time.Duration) {
	names := r.protocols()
	if len(medians[kindJoin]) == 2 && len(medians[kindLeave]) == 2 {
		for _, k := range []struct{ kind, label string }{{kindJoin, "Scale-out (join)"}, {kindLeave, "Scale-in (leave)"}} {
			m := medians[k.kind]
			p.w("- **%s pause: %s median %s, %s %s; ratio %s/%s %s**", k.label, names[0], sec(m[0]), names[1], sec(m[1]),
				names[0], names[1], ratio(m[0], m[1]))
		}
	}
	p.w("- Producer: %d records acknowledged in %s (%.0f/s), %d failed%s", r.produced, sec(r.produceTook),
		float64(r.produced)/max(r.produceTook.Seconds(), 1e-9), r.produceFailed, firstErr(r.produceErr))
	p.w("- Polls of sink_offsets: %d rounds of both groups, longest interval between two %s, %d failed%s", r.polls,
		sec(r.slowestPoll), r.pollErrs, firstErr(r.pollErr))
	if len(r.baseExits) > 0 {
		p.w("- Base workers after SIGTERM at the end: exit statuses %v", r.baseExits)
	}
	p.w("- Worker logs at LOG_LEVEL=warn: %d lines%s (logs in %s)", len(r.logLines), proc.FirstLines(r.logLines, 8), r.dir)
	if r.trace != "" {
		p.w("- Every observation (elapsed ms, protocol, next_offset per partition): %s", r.trace)
	}
	if r.failure != "" {
		p.w("- **FAILED**: %s", strings.SplitN(r.failure, "\n", 2)[0])
	}
	p.w("")
	p.w("How the pause is computed: the harness reads both groups' sink_offsets rows every %s. A partition advances at a poll that reads a larger next_offset than the poll before. For an event at time t (the third worker's process start, or the SIGTERM), the window is [t - 1 s, t + settle]; a partition's pause is the longest time between two consecutive advances among the gaps that overlap the window (a gap that crosses an edge counts whole, so a pause still running when the window closes is measured to its end). The event's pause is the largest over the partitions; \"partitions > 1 s\" counts those whose pause exceeded 1 s (the partitions that stopped). The baseline is the same statistic over the quiet windows. Times carry up to one poll interval of error; the producer keeps every partition supplied (about %.0f records per partition per second), so a gap means the partition was not committing, not that it had nothing to do.",
		r.opts.poll, r.opts.rate/float64(2*r.opts.partitions))
}
