package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
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
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return errors.New("run from inside the sinkworker module (go env GOMOD is empty)")
	}
	r.root = filepath.Dir(gomod)

	model := firstField("/proc/cpuinfo", "model name")
	mem := firstField("/proc/meminfo", "MemTotal")
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	r.machine = fmt.Sprintf("%d CPUs (%s), %s memory, Linux %s, %s", runtime.NumCPU(), model, humanKB(mem),
		strings.TrimSpace(string(kernel)), runtime.Version())

	var ver, sb, sync, fsync string
	err = s.db.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('shared_buffers'),
	current_setting('synchronous_commit'), current_setting('fsync')`).Scan(&ver, &sb, &sync, &fsync)
	if err != nil {
		return fmt.Errorf("read PostgreSQL settings: %w", err)
	}
	r.postgres = fmt.Sprintf("PostgreSQL %s (shared_buffers %s, synchronous_commit %s, fsync %s), same machine", ver, sb, sync, fsync)

	rev, _ := exec.CommandContext(ctx, "git", "-C", r.root, "rev-parse", "--short", "HEAD").Output()
	status, _ := exec.CommandContext(ctx, "git", "-C", r.root, "status", "--porcelain", "--", ".", ":!bench").Output()
	r.code = "commit " + strings.TrimSpace(string(rev))
	if dirty := strings.Fields(strings.ReplaceAll(string(status), "\n", " ")); len(dirty) > 0 {
		var files []string
		for i := 1; i < len(dirty); i += 2 {
			files = append(files, dirty[i])
		}
		r.code += " with uncommitted changes to " + strings.Join(files, ", ")
	}
	return nil
}

// firstField is the value of the first "name : value" line of a /proc file.
func firstField(path, name string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func humanKB(s string) string {
	var kb float64
	if _, err := fmt.Sscanf(s, "%f kB", &kb); err != nil {
		return s
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// command is the exact command line of this run.
func command() string {
	parts := []string{"go", "run", "./bench/drain"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
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
	w("    %s", command())
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
		o.partitions, o.records, o.keys, r.distinctKeys, valueSize, extra, o.batch)
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
		w("- Worker log at LOG_LEVEL=warn: %d lines%s", len(r.logIssues), firstLines(r.logIssues, 5))
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

func firstLines(lines []string, n int) string {
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(", first ones:")
	for _, l := range lines[:min(n, len(lines))] {
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		b.WriteString("\n  `" + strings.ReplaceAll(l, "`", "'") + "`")
	}
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
