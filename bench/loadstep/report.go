package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// report is the head of a run's results and where they go.
type report struct {
	o       options
	started time.Time // UTC
	total   time.Duration

	machine, postgres, code string
	distinctKeys            int
	produced                time.Duration
	checked                 int // rows found as the records imply
}

func (r *report) describe(ctx context.Context, s *services, root string) error {
	r.machine = testbed.Machine()
	var err error
	r.postgres, err = testbed.Postgres(ctx, s.db, "shared_buffers", "synchronous_commit", "fsync", "max_connections")
	if err != nil {
		return err
	}
	commit, changed := testbed.Code(ctx, root)
	r.code = "commit " + commit
	if n := len(changed); n > 8 {
		changed = append(changed[:8], fmt.Sprintf("%d more", n-8))
	}
	if len(changed) > 0 {
		r.code += " with uncommitted changes outside bench/ (" + strings.Join(changed, ", ") + ")"
	}
	return nil
}

// write prints the report and writes <out>/<date>-<name>.md and .csv.
func (r *report) write(tl *timeline) error {
	base := r.started.Format("2006-01-02") + "-" + r.o.name
	md := r.markdown(tl, base)
	fmt.Print(md)
	if err := os.MkdirAll(r.o.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.o.out, base+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.o.out, base+".csv"), []byte(r.csv(tl)), 0o644); err != nil {
		return err
	}
	logf("wrote %s.md and .csv in %s", base, r.o.out)
	return nil
}

func (r *report) markdown(tl *timeline, base string) string {
	o := r.o
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Load step: POOL_MAX_CONNS=auto when another database load starts and ends, %d worker(s), %s", o.workers, r.started.Format("2006-01-02 15:04 MST"))
	w("")
	w("Command (module root, after `%s`):", servicesHint)
	w("")
	w("    %s", testbed.Command("./bench/loadstep", os.Args[1:]))
	w("")
	w("- Machine: %s", r.machine)
	w("- Database: %s", r.postgres)
	w("- Broker: Kafka at %s (single node, same machine); every process below shares the same CPUs", strings.Join(strings.Split(os.Getenv("KAFKA_BROKERS"), ","), ", "))
	w("- Code: %s", r.code)
	w("- Data: %d records (the suite's: keys drawn uniformly with a fixed seed from %d, %d distinct; values ~%d-byte JSON) to one fresh topic of %d partitions, produced in %.1f s",
		o.records, o.keys, r.distinctKeys, dataset.ValueSize, o.parts, r.produced.Seconds())
	env := "defaults otherwise"
	if len(o.env) > 0 {
		env = "defaults except " + strings.Join(o.env, " ")
	}
	w("- Sink: %d worker process(es), POOL_MAX_CONNS=auto, %s, into a fresh table; checked at the end (%d rows as the records imply)",
		o.workers, map[bool]string{true: "insert mode", false: "upsert"}[o.insert], r.checked)
	w("  (%s); each worker's /metrics scraped and sink_offsets polled every %s", env, sampleEvery)
	w("- Other load: %d connections, each a tight loop of one-statement transactions upserting %d consecutive keys (wrapping) of its own logged table of %d rows (`INSERT .. SELECT generate_series .. ON CONFLICT (k) DO UPDATE`, ~100-byte rows), from T1 = first commit + %s to T2 = T1 + %s; scratch tables dropped after",
		o.loadConns, o.loadRows, o.loadTable, o.t1, o.loadFor)
	w("- Time: %.0f s in all; worker start to first commit %.1f s, to every record applied %.1f s; first partition drained %.1f s after the first commit",
		r.total.Seconds(), tl.t0.Sub(tl.start).Seconds(), tl.end.Sub(tl.start).Seconds(), tl.firstDone.Sub(tl.t0).Seconds())
	w("- Files: %s.csv (every sample: per worker limit, in use, ratio, waiting, written, rounds by reason so far; applied; other load's transactions)", base)
	w("")
	phases := tl.phases(o)
	r.phaseTable(w, tl, phases)
	r.reactionSection(w, tl, phases)
	r.timelineTable(w, tl)
	return b.String()
}

func (r *report) phaseTable(w func(string, ...any), tl *timeline, phases []phase) {
	o := r.o
	w("### Phases")
	w("")
	w("before = [first commit + %s (slow start left out), T1), during = [T1, T2), after = [T2, first partition drained) (fewer partitions with work change what the limit is asked for; when one drained before T2, to the end). Fleet limit: the sum of the workers' `sinkworker_pool_connections{state=\"max_allowed\"}`, over the samples where every worker answered and none was in a probe round (one round at half the limit every 10 s); records/s from sink_offsets (records applied, including those de-duplicated in a batch), written/s from `sinkworker_records_total{outcome=\"written\"}`; decisions are the rounds counted by `sinkworker_pool_limit_rounds_total{reason}` in the phase, all workers.", o.warmup)
	w("")
	w("| phase | span | samples (probe, missing) | fleet limit mean | range | per worker mean | latency ratio | waiting | sink records/s | written/s | other load tx/s | decisions |")
	w("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, ph := range phases {
		if ph.samples == 0 {
			w("| %s | %s | 0 | | | | | | | | | |", ph.name, r.span(tl, ph))
			continue
		}
		per := make([]string, len(ph.perWorker))
		for i, x := range ph.perWorker {
			per[i] = fmt.Sprintf("%.2f", x)
		}
		w("| %s | %s | %d (%d, %d) | **%.2f** | %.0f-%.0f | %s | %.2f | %.1f | **%.0f** | %.0f | **%.0f** | %s |",
			ph.name, r.span(tl, ph), ph.samples, ph.probes, ph.missing, ph.limit.mean, ph.limit.min, ph.limit.max,
			strings.Join(per, " / "), ph.ratio, ph.waiting, ph.records, ph.written, ph.loadTx, decisions(ph.rounds))
	}
	w("")
}

// span is a phase's bounds in seconds since the first commit.
func (r *report) span(tl *timeline, ph phase) string {
	return fmt.Sprintf("%.1f-%.1f s", ph.from.Sub(tl.t0).Seconds(), ph.to.Sub(tl.t0).Seconds())
}

func decisions(rounds map[string]float64) string {
	var out []string
	for _, reason := range slices.Sorted(maps.Keys(rounds)) {
		out = append(out, fmt.Sprintf("%s %.0f", reason, rounds[reason]))
	}
	return strings.Join(out, ", ")
}

func (r *report) reactionSection(w func(string, ...any), tl *timeline, phases []phase) {
	before, during := phases[0], phases[1]
	w("### Reaction")
	w("")
	mark := (before.limit.mean + during.limit.mean) / 2
	down := during.limit.mean < before.limit.mean
	dir := map[bool]string{true: "at or below", false: "at or above"}
	w("Halfway mark: (before mean %.2f + during mean %.2f) / 2 = **%.2f**. Times are from T1 or T2 to the first sample (every %s, so within that) where the fleet limit is past the mark, and to the first from which it stays past it for %s, leaving out samples inside a probe round.",
		before.limit.mean, during.limit.mean, mark, sampleEvery, settleFor)
	w("")
	if before.limit.n == 0 || during.limit.n == 0 || math.Abs(before.limit.mean-during.limit.mean) < 0.5 {
		w("- The fleet limit did not move by half a connection between before and during: no step to time.")
	} else {
		step := func(name string, from time.Time, toward bool, back string) {
			first, settled, firstOK, settledOK := tl.reaction(from, mark, toward)
			line := fmt.Sprintf("- %s to the fleet limit first %s%s %.2f: ", name, back, dir[toward], mark)
			if !firstOK {
				w("%snever before the end", line)
				return
			}
			line += fmt.Sprintf("**%.2f s**; to staying there for %s: ", first.Seconds(), settleFor)
			if settledOK {
				line += fmt.Sprintf("**%.2f s**", settled.Seconds())
			} else {
				line += "never before the end"
			}
			w("%s", line)
		}
		step("T1", tl.t1, down, "")
		step("T2", tl.t2, !down, "back ")
	}
	w("- Other load: %d transactions in %.1f s from T1 to its last transaction's end = **%.1f tx/s** (%.1f per connection), %d rows each",
		tl.loadTx, tl.loadSpan.Seconds(), rate(float64(tl.loadTx), tl.loadSpan), rate(float64(tl.loadTx), tl.loadSpan)/float64(r.o.loadConns), r.o.loadRows)
	if tl.aloneTx > 0 {
		w("- Other load alone after the drain (reference, no sink): %d transactions in %.1f s = **%.1f tx/s**",
			tl.aloneTx, tl.aloneSpan.Seconds(), rate(float64(tl.aloneTx), tl.aloneSpan))
	}
	w("")
}

func (r *report) timelineTable(w func(string, ...any), tl *timeline) {
	w("### Timeline, per second since the first commit")
	w("")
	w("Limits and ratio: means over the second's samples (p: a probe round was under way in one); records/s and tx/s from the second's last sample to the previous second's.")
	w("")
	w("| s | phase | fleet limit | per worker | ratio | waiting | sink records/s | other tx/s |")
	w("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |")
	for _, row := range tl.seconds(r.o) {
		per := make([]string, len(row.perWorker))
		for i, x := range row.perWorker {
			per[i] = fmt.Sprintf("%.1f", x)
		}
		probe := ""
		if row.probe {
			probe = " p"
		}
		w("| %d | %s | %.1f%s | %s | %.2f | %.1f | %.0f | %.0f |", row.n, row.phase, row.limit, probe,
			strings.Join(per, " / "), row.ratio, row.waiting, row.records, row.loadTx)
	}
	w("")
}

// csv is every sample, one row each, times in seconds since the first
// commit.
func (r *report) csv(tl *timeline) string {
	var b strings.Builder
	b.WriteString("t_s,phase,fleet_limit,probing,complete,applied,other_tx")
	for i := range r.o.workers {
		fmt.Fprintf(&b, ",w%[1]d_limit,w%[1]d_in_use,w%[1]d_ratio,w%[1]d_waiting,w%[1]d_written,w%[1]d_rounds", i)
	}
	b.WriteString("\n")
	for _, s := range tl.samples {
		fmt.Fprintf(&b, "%.3f,%s,%.0f,%t,%t,%d,%d", s.at.Sub(tl.t0).Seconds(), tl.phaseAt(s.at, r.o.warmup), s.total(),
			s.probing(), s.complete(), s.committed, s.loadTx)
		for _, ws := range s.workers {
			var rounds []string
			for _, reason := range slices.Sorted(maps.Keys(ws.rounds)) {
				rounds = append(rounds, fmt.Sprintf("%s=%.0f", reason, ws.rounds[reason]))
			}
			fmt.Fprintf(&b, ",%.0f,%.0f,%.4f,%.0f,%.0f,%s", ws.limit, ws.inUse, ws.ratio, ws.waiting, ws.written, strings.Join(rounds, " "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
