package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// pollInterval is how often the harness reads sink_offsets and
// pg_stat_activity while the worker drains.
const pollInterval = 100 * time.Millisecond

// drainWithWorker builds the worker, runs it on the topic until the
// sink_offsets rows of its group add up to the topic's end offsets, stops
// it with SIGTERM and checks the table.
func drainWithWorker(ctx context.Context, s *services, o options, n names, d *dataset.Dataset, l *dataset.Layout, r *report) error {
	tmp, err := os.MkdirTemp("", "bench-drain-")
	if err != nil {
		return err
	}
	bin := filepath.Join(tmp, "sinkworker")
	logf("building the worker: go build -o %s ./cmd/sinkworker", bin)
	if err := proc.Build(ctx, r.root, "./cmd/sinkworker", bin); err != nil {
		return err
	}

	trace, err := os.Create(filepath.Join(tmp, "progress.csv"))
	if err != nil {
		return err
	}
	defer trace.Close()
	r.trace = trace.Name()
	fmt.Fprintf(trace, "elapsed_ms,connections,committed%s\n", partitionColumns(o.partitions))

	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil { // start from clean buffers, as the ceiling does
		return fmt.Errorf("checkpoint: %w", err)
	}
	total := int64(d.N)
	appName := "sinkworker/" + n.group + "/%"
	r.workerLog = filepath.Join(tmp, "worker.log")
	logf("starting the worker (log: %s); waiting for sink_offsets of group %s to reach %d", r.workerLog, n.group, total)
	start := time.Now()
	p, err := proc.Start(bin, nil, proc.WorkerEnv(os.Environ(), s.brokers, s.dsn, n.topic, n.group, n.table, o.env...), r.workerLog)
	if err != nil {
		return err
	}
	defer p.Kill() // on the way out of a failure; a no-op after stopWorker

	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var (
		lastPrint, lastProgress time.Time
		prev                    int64
	)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Exited():
			return fmt.Errorf("the worker exited before draining the topic (%s)\n%s", p.Cmd.ProcessState, p.Tail(40))
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
				return fmt.Errorf("sink_offsets of group %s add up to %d, more than the %d records produced", n.group, committed, total)
			case elapsed > o.timeout:
				return fmt.Errorf("the worker has not drained the topic after %s: %d of %d records committed, %d connections\n%s",
					o.timeout, committed, total, conns, p.Tail(40))
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

	if err := stopWorker(p, r); err != nil {
		return fmt.Errorf("%w\n%s", err, p.Tail(40))
	}
	r.logIssues = p.Lines()
	if r.workerCheck, err = checkTable(ctx, s.db, n.table, d, l); err != nil {
		return err
	}
	_ = os.Remove(bin)
	return nil
}

// poll reads the group's committed offsets for the topic, per partition,
// and the number of connections the worker holds.
func poll(ctx context.Context, db *pgx.Conn, group, topic, appName string, parts int) (next []int64, conns int, err error) {
	if conns, err = sinkdb.Conns(ctx, db, appName); err != nil {
		return nil, 0, err
	}
	next, err = sinkdb.Next(ctx, db, group, topic, parts)
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
func stopWorker(p *proc.Proc, r *report) error {
	start := time.Now()
	exit := p.Stop(60 * time.Second)
	r.workerMaxRSS = exit.PeakRSS
	if exit.Killed {
		return errors.New("the worker did not exit within 60s of SIGTERM; killed")
	}
	r.shutdownTime = time.Since(start)
	r.exitCode, r.workerCPU = exit.Code, exit.CPU
	logf("worker exited with status %d %s after SIGTERM", r.exitCode, r.shutdownTime.Round(time.Millisecond))
	if r.exitCode != 0 {
		return fmt.Errorf("the worker exited with status %d after SIGTERM, want 0", r.exitCode)
	}
	return nil
}

// checkTable compares an upsert table with what the records imply (one row
// per distinct key, holding the highest offset of that key) and says so
// for the report.
func checkTable(ctx context.Context, db *pgx.Conn, table string, d *dataset.Dataset, l *dataset.Layout) (string, error) {
	wantRows, wantSum := l.Expected(d)
	if err := sinkdb.Check(ctx, db, table, wantRows, wantSum); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d rows = distinct keys, each at its highest offset (offset sums match)", wantRows), nil
}
