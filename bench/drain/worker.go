package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/rss"
)

// pollInterval is how often the harness reads sink_offsets and
// pg_stat_activity while the worker drains.
const pollInterval = 100 * time.Millisecond

// drainWithWorker builds the worker, runs it on the topic until the
// sink_offsets rows of its group add up to the topic's end offsets, stops
// it with SIGTERM and checks the table.
func drainWithWorker(ctx context.Context, s *services, o options, n names, ds *dataset, r *report) error {
	tmp, err := os.MkdirTemp("", "bench-drain-")
	if err != nil {
		return err
	}
	bin := filepath.Join(tmp, "sinkworker")
	logf("building the worker: go build -o %s ./cmd/sinkworker", bin)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sinkworker")
	build.Dir, build.Stdout, build.Stderr = r.root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/sinkworker: %w", err)
	}

	logPath := filepath.Join(tmp, "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	r.workerLog = logPath

	cmd := exec.Command(bin)
	cmd.Env = workerEnv(s, o, n)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil { // start from clean buffers, as the ceiling does
		return fmt.Errorf("checkpoint: %w", err)
	}

	total := int64(ds.n)
	appName := "sinkworker/" + n.group + "/%"
	logf("starting the worker (log: %s); waiting for sink_offsets of group %s to reach %d", logPath, n.group, total)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	trace, err := os.Create(filepath.Join(tmp, "progress.csv"))
	if err != nil {
		return err
	}
	defer trace.Close()
	r.trace = trace.Name()
	fmt.Fprintf(trace, "elapsed_ms,connections,committed%s\n", partitionColumns(o.partitions))

	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var (
		lastPrint, lastProgress time.Time
		prev                    int64
	)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			kill()
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("the worker exited before draining the topic (%s)\n%s", cmd.ProcessState, tail(logPath, 40))
		case now := <-tick.C:
			next, conns, err := poll(ctx, s.db, n.group, n.topic, appName, o.partitions)
			if err != nil {
				logf("  poll: %v", err)
				continue
			}
			committed, elapsed := sum(next), now.Sub(start)
			fmt.Fprintf(trace, "%d,%d,%d%s\n", elapsed.Milliseconds(), conns, committed, joinInts(next))
			r.peakConns = max(r.peakConns, conns)
			if committed > 0 && r.firstCommit == 0 {
				r.firstCommit, r.firstCommitted, lastProgress = elapsed, committed, now
			}
			if committed > prev && r.firstCommit > 0 {
				r.longestStall = max(r.longestStall, now.Sub(lastProgress))
				lastProgress, prev = now, committed
			}
			switch {
			case committed == total:
				r.drainTime, done = elapsed, true
			case committed > total:
				kill()
				return fmt.Errorf("sink_offsets of group %s add up to %d, more than the %d records produced", n.group, committed, total)
			case elapsed > o.timeout:
				kill()
				return fmt.Errorf("the worker has not drained the topic after %s: %d of %d records committed, %d connections\n%s",
					o.timeout, committed, total, conns, tail(logPath, 40))
			case now.Sub(lastPrint) >= 2*time.Second:
				lastPrint = now
				logf("  %s: %d/%d committed (%.0f records/s so far), %d connections",
					elapsed.Round(100*time.Millisecond), committed, total, float64(committed)/elapsed.Seconds(), conns)
			}
		}
	}
	logf("drained %d records in %s (%.0f records/s); first commit after %s; peak %d connections",
		total, r.drainTime.Round(time.Millisecond), float64(total)/r.drainTime.Seconds(),
		r.firstCommit.Round(time.Millisecond), r.peakConns)

	if err := stopWorker(cmd, exited, r); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(logPath, 40))
	}
	r.logIssues = issues(logPath)
	if err := checkTable(ctx, s.db, n.table, ds, &r.workerCheck); err != nil {
		return err
	}
	_ = os.Remove(bin)
	return nil
}

// workerEnv is the caller's environment without any sinkworker setting,
// plus the run's own settings and -env.
func workerEnv(s *services, o options, n names) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !ownedSetting(k) {
			env = append(env, kv)
		}
	}
	env = append(env,
		"KAFKA_BROKERS="+strings.Join(s.brokers, ","),
		"DATABASE_URL="+s.dsn,
		"KAFKA_TOPICS="+n.topic,
		"KAFKA_GROUP="+n.group,
		"SINK_TABLE_MAP="+n.topic+"="+n.table,
		"HTTP_ADDR=127.0.0.1:0",
		"LOG_LEVEL=warn",
	)
	return append(env, o.env...) // later entries win
}

func ownedSetting(k string) bool {
	for _, p := range []string{"KAFKA_", "SINK_", "BATCH_", "POOL_", "LOG_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	switch k {
	case "DATABASE_URL", "ERROR_POLICY", "DLQ_TOPIC", "HTTP_ADDR", "SHUTDOWN_TIMEOUT":
		return true
	}
	return false
}

// poll reads the group's committed offsets for the topic, per partition,
// and the number of connections the worker holds.
func poll(ctx context.Context, db *pgx.Conn, group, topic, appName string, parts int) (next []int64, conns int, err error) {
	err = db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1`, appName).Scan(&conns)
	if err != nil {
		return nil, 0, err
	}
	next = make([]int64, parts)
	rows, err := db.Query(ctx, `SELECT partition, next_offset FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, group, topic)
	if err != nil {
		if undefinedTable(err) {
			return next, conns, nil // the worker has not created it yet
		}
		return nil, 0, err
	}
	var p int32
	var o int64
	_, err = pgx.ForEachRow(rows, []any{&p, &o}, func() error {
		if int(p) >= parts {
			return fmt.Errorf("sink_offsets has a row for partition %d of %d", p, parts)
		}
		next[p] = o
		return nil
	})
	return next, conns, err
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

func partitionColumns(n int) string {
	var b strings.Builder
	for p := range n {
		fmt.Fprintf(&b, ",p%d", p)
	}
	return b.String()
}

func joinInts(xs []int64) string {
	var b strings.Builder
	for _, x := range xs {
		fmt.Fprintf(&b, ",%d", x)
	}
	return b.String()
}

// stopWorker sends SIGTERM and waits for a clean exit.
func stopWorker(cmd *exec.Cmd, exited <-chan struct{}, r *report) error {
	start := time.Now()
	// The worker's own peak (VmHWM) before it stops: ru_maxrss is not, as on
	// Linux exec records the forking parent's peak (this harness) in it.
	r.workerMaxRSS = rss.Peak(cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("the worker did not exit within 60s of SIGTERM; killed")
	}
	r.shutdownTime = time.Since(start)
	r.exitCode = cmd.ProcessState.ExitCode()
	r.workerCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	logf("worker exited with status %d %s after SIGTERM", r.exitCode, r.shutdownTime.Round(time.Millisecond))
	if r.exitCode != 0 {
		return fmt.Errorf("the worker exited with status %d after SIGTERM, want 0", r.exitCode)
	}
	return nil
}

// checkTable compares an upsert table with what the records imply: one row
// per distinct key, holding the highest offset of that key.
func checkTable(ctx context.Context, db *pgx.Conn, table string, ds *dataset, out *string) error {
	wantRows, wantSum := ds.expected()
	var rows, sum int64
	err := db.QueryRow(ctx, `SELECT count(*), coalesce(sum(kafka_offset), 0)::bigint FROM `+
		pgx.Identifier{table}.Sanitize()).Scan(&rows, &sum)
	if err != nil {
		return fmt.Errorf("check %s: %w", table, err)
	}
	if rows != int64(wantRows) || sum != wantSum {
		return fmt.Errorf("table %s holds %d rows with offsets summing to %d, want %d rows summing to %d",
			table, rows, sum, wantRows, wantSum)
	}
	*out = fmt.Sprintf("%d rows = distinct keys, each at its highest offset (offset sums match)", rows)
	return nil
}

// issues returns the worker's log lines (it logs at warn and above).
func issues(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// tail is the last n lines of the worker's log, for an error message.
func tail(path string, n int) string {
	lines := issues(path)
	lines = lines[max(0, len(lines)-n):]
	return "worker log (" + path + ", last lines):\n  " + strings.Join(lines, "\n  ")
}
