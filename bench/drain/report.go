package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// report collects the run's facts and figures and renders the summary.
type report struct {
	opts    options
	names   names
	started time.Time
	root    string // the module root

	machine, postgres, code string

	distinctKeys   int
	produceTime    time.Duration
	drainTime      time.Duration // worker start -> every offset committed
	firstCommit    time.Duration // worker start -> first committed offset seen
	firstCommitted int64         // records committed at that first sight
	shutdownTime   time.Duration
	exitCode       int
	workerCPU      time.Duration
	workerMaxRSS   int64
	peakConns      int
	longestStall   time.Duration // longest time between two polls that saw progress, after the first commit
	trace          string        // progress.csv
	workerCheck    string
	logIssues      []string
	workerLog      string

	ceilingRows  int
	ceilingTime  time.Duration // upsert only
	fullTime     time.Duration // the writer's whole transaction
	ceilingCheck string
	fullCheck    string

	failure string
}

// describeMachine finds the module root and notes the machine, database
// and code under test.
func (r *report) describeMachine(ctx context.Context, s *services) error {
	var err error
	if r.root, err = testbed.ModuleRoot(ctx); err != nil {
		return err
	}
	r.machine = testbed.Machine()
	if r.postgres, err = testbed.Postgres(ctx, s.db, "shared_buffers", "synchronous_commit", "fsync"); err != nil {
		return err
	}
	commit, changed := testbed.Code(ctx, r.root)
	r.code = "commit " + commit
	if len(changed) > 0 {
		r.code += " with uncommitted changes to " + strings.Join(changed, ", ")
	}
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// markdown renders the summary.
func (r *report) markdown() string {
	o, n := r.opts, int64(r.opts.records)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

	w("## Drain: sinkworker against the database ceiling, %s", r.started.Format("2006-01-02 15:04 MST"))
	w("")
	w("Command (module root, after `scripts/services up && eval \"$(scripts/services env)\"`):")
	w("")
	w("    %s", testbed.Command("./bench/drain", os.Args[1:]))
	w("")
	w("- Machine: %s", r.machine)
	w("- Database: %s", r.postgres)
	w("- Broker: Kafka at %s (single node, same machine)", strings.Join(strings.Fields(os.Getenv("KAFKA_BROKERS")), ","))
	w("- Code: %s", r.code)
	extra := "defaults"
	if len(o.env) > 0 {
		extra = "defaults except " + strings.Join(o.env, " ")
	}
	w("- Settings: %d partitions; %d records, keys drawn uniformly from %d (%d distinct), values %d-byte JSON, no tombstones; worker settings %s (upsert, jsonb); ceiling batches of %d records per partition",
		o.partitions, o.records, o.keys, r.distinctKeys, dataset.ValueSize, extra, o.batch)
	w("")
	w("| figure | time | records/s |")
	w("| --- | ---: | ---: |")
	if r.produceTime > 0 {
		w("| pre-produce (not compared) | %s | %.0f |", sec(r.produceTime), rate(n, r.produceTime))
	}
	if r.drainTime > 0 {
		steady := r.drainTime - r.firstCommit
		w("| **sink drain**: worker start to every offset in sink_offsets | %s | **%.0f** |", sec(r.drainTime), rate(n, r.drainTime))
		w("| sink, first commit seen to the end (excludes start-up) | %s | %.0f |", sec(steady), rate(n-r.firstCommitted, steady))
		w("| start-up: worker start to first commit seen | %s | |", sec(r.firstCommit))
	}
	if r.ceilingTime > 0 {
		w("| **ceiling**: upsert only, %d connections, 1 tx per batch (%d rows after de-duplication) | %s | **%.0f** (%.0f rows/s) |",
			o.partitions, r.ceilingRows, sec(r.ceilingTime), rate(n, r.ceilingTime), rate(int64(r.ceilingRows), r.ceilingTime))
		w("| ceiling with the writer's whole tx (lock offsets row, upsert, advance) | %s | %.0f (%.0f rows/s) |",
			sec(r.fullTime), rate(n, r.fullTime), rate(int64(r.ceilingRows), r.fullTime))
	}
	w("")
	if r.drainTime > 0 && r.ceilingTime > 0 {
		steady := rate(n-r.firstCommitted, r.drainTime-r.firstCommit)
		ceil := rate(n, r.ceilingTime)
		w("- **Ratio sink / ceiling: %.2f** (%.0f / %.0f records/s); excluding start-up %.2f; against the whole-transaction ceiling %.2f",
			rate(n, r.drainTime)/ceil, rate(n, r.drainTime), ceil, steady/ceil, rate(n, r.drainTime)/rate(n, r.fullTime))
	}
	if r.drainTime > 0 {
		w("- Peak DB connections of the worker (pg_stat_activity, sampled every %s): **%d**", pollInterval, r.peakConns)
		w("- Worker: exit status %d %s after SIGTERM; %s CPU; max RSS %.0f MiB", r.exitCode, sec(r.shutdownTime),
			sec(r.workerCPU), float64(r.workerMaxRSS)/(1<<20))
		w("- Longest time without progress after the first commit: %s (per-partition progress every %s: %s)",
			sec(r.longestStall), pollInterval, r.trace)
		w("- Worker log at LOG_LEVEL=warn: %d lines%s", len(r.logIssues), proc.FirstLines(r.logIssues, 5))
	}
	if r.workerCheck != "" {
		w("- Checks: worker table %s; ceiling tables hold the same rows as the worker's (values, partitions, offsets, timestamps)", r.workerCheck)
	}
	if r.failure != "" {
		w("- **FAILED**: %s", strings.SplitN(r.failure, "\n", 2)[0])
	}
	w("")
	w("Times come from polling sink_offsets every %s, so they carry up to that much error. The ceiling writes the same rows (same keys, values, partitions, offsets, timestamps) with the writer's unnest statement, from memory, one goroutine and connection per partition, one transaction per batch, after a CHECKPOINT (the worker run starts after one too).", pollInterval)
	return b.String()
}

// write prints the summary and saves it as bench/results/<date>-drain.md.
func (r *report) write() {
	md := r.markdown()
	fmt.Println()
	fmt.Print(md)
	dir := filepath.Join(r.root, "bench", "results")
	path := filepath.Join(dir, r.started.Format("2006-01-02")+"-drain.md")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(path, []byte(md), 0o644)
		if err == nil {
			logf("summary written to %s", path)
			return
		}
	}
	logf("could not write %s", path)
}
