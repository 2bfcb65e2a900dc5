package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Result is what a run did and found.
type Result struct {
	Names Names
	// Committed and RolledBack signup attempts; Users and Points the rows
	// of users (source) and points (target) at the end.
	Committed, RolledBack int64
	Users, Points         int64
	// TopicRecords is how many events the topic holds: Committed plus any
	// Debezium sent again after a restart (at least once).
	TopicRecords int64
	// WorkerKills and ConnectRestarts are the faults injected.
	WorkerKills, ConnectRestarts int
	// Reconcile is `sinkworker reconcile --keys-only`'s answer, ReconcileExit
	// its exit status.
	Reconcile     *Reconciled
	ReconcileExit int
	// Signups is the time of the signups, Drain from
	// the last signup until points held every user, Total the whole run.
	Signups, Drain, Total time.Duration
}

// Agree is the outcome the example exists for: reconcile exit 0 and
// users == points == committed signups, never one more.
func (r *Result) Agree() bool {
	return r.Reconcile != nil && r.Reconcile.Equal && r.ReconcileExit == 0 &&
		r.Users == r.Committed && r.Points == r.Committed
}

// Run is one run: tables, connector, worker, signups with the faults, the
// drain, reconcile, a report on out, and (unless c.Keep) the clean-up.
// Progress goes to log. c must have passed Validate.
func Run(ctx context.Context, c Config, out, log io.Writer) (res *Result, err error) {
	start := time.Now()
	n := c.names()
	res = &Result{Names: n}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "outbox-"+c.Run+"-")
	if err != nil {
		return nil, err
	}
	defer func() { // the worker's log and binary stay when something is to be looked at
		if c.Keep || err != nil || !res.Agree() {
			fmt.Fprintf(log, "outbox: worker log and binary kept in %s\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	bin := c.Sinkworker
	if bin == "" {
		fmt.Fprintf(log, "outbox: building cmd/sinkworker ...\n")
		if bin, err = buildWorker(ctx, root, dir, log); err != nil {
			return nil, err
		}
	}
	pc, err := pgxpool.ParseConfig(c.Env.SourceURL)
	if err != nil {
		return nil, errors.New("SOURCE_DATABASE_URL is not a valid connection string")
	}
	pc.MaxConns = int32(c.Clients + 2)
	src, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tgt, err := pgxpool.New(ctx, c.Env.TargetURL)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid connection string")
	}
	defer tgt.Close()

	var cl cleanup
	if !c.Keep {
		defer func() { err = errors.Join(err, cl.run(context.WithoutCancel(ctx), log)) }()
	}
	if err := setUp(ctx, c, n, root, src, tgt, &cl, log); err != nil {
		return res, err
	}

	logPath := filepath.Join(dir, "sinkworker.log")
	f := &faults{c: c, n: n, root: root, tgt: tgt, log: log, bin: bin, env: workerEnv(c, n), logPath: logPath}
	if f.w, err = startWorker(bin, f.env, logPath); err != nil {
		return res, err
	}
	defer f.stop()
	fmt.Fprintf(log, "outbox: worker started (log %s); signing up %d users, %.1f%% of attempts rolled back, %d clients\n",
		logPath, c.Users, c.RollbackPct, c.Clients)
	fctx, cancelFaults := context.WithCancel(ctx)
	faultsDone := make(chan error, 1)
	go func() { faultsDone <- f.run(fctx) }()
	defer func() { cancelFaults(); <-faultsDone }()

	t0 := time.Now()
	res.Committed, res.RolledBack, err = signups(ctx, src, n, plan(c.Users, c.RollbackPct), c.Clients, c.Rate)
	res.Signups = time.Since(t0)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(log, "outbox: %d signups committed, %d rolled back in %v; waiting for points to catch up\n",
		res.Committed, res.RolledBack, res.Signups.Round(time.Millisecond))

	t0 = time.Now()
	if err := drain(ctx, tgt, n.Points, res.Committed, c.DrainTimeout, log); err != nil {
		return res, err
	}
	res.Drain = time.Since(t0)
	select { // the Connect restart may still be under way
	case err := <-faultsDone:
		faultsDone <- err // for the deferred receive
		if err != nil {
			return res, err
		}
	case <-time.After(3 * time.Minute):
		return res, errors.New("the faults did not finish within 3 minutes of the drain")
	}
	res.WorkerKills, res.ConnectRestarts = f.kills, f.restarts
	if err := measure(ctx, c, n, bin, src, tgt, res); err != nil {
		return res, err
	}
	res.Total = time.Since(start)
	report(out, c, res)
	return res, nil
}

// setUp creates the tables, registers the connector and waits until its
// slot is active, adding each undo step to cl.
func setUp(ctx context.Context, c Config, n Names, root string, src, tgt *pgxpool.Pool, cl *cleanup, log io.Writer) error {
	cl.add(func(ctx context.Context) error {
		_, err := src.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s",
			pgx.Identifier{n.Users}.Sanitize(), pgx.Identifier{n.Outbox}.Sanitize()))
		return err
	})
	if err := createSourceTables(ctx, src, n); err != nil {
		return fmt.Errorf("create source tables: %w", err)
	}
	// The points table is made up front: the worker reads JSON (no schema
	// to create a table from) onto its columns; user_id is the record key.
	cl.add(func(ctx context.Context) error {
		_, err := tgt.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{n.Points}.Sanitize())
		return err
	})
	cl.add(func(ctx context.Context) error {
		_, err := tgt.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", n.Connector)
		return err
	})
	if _, err := tgt.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (user_id bigint PRIMARY KEY, points integer NOT NULL,
		kafka_partition integer, kafka_offset bigint, kafka_timestamp timestamptz)`, pgx.Identifier{n.Points}.Sanitize())); err != nil {
		return fmt.Errorf("create points table: %w", err)
	}
	cfg, err := connectorConfig(c, n)
	if err != nil {
		return err
	}
	cl.add(func(ctx context.Context) error {
		return deleteKafka(ctx, c.Env.KafkaBrokers, n.Connector, n.Topic, n.Topic+".dlq")
	})
	cl.add(func(ctx context.Context) error { return cdcRetry(ctx, root, log, nil, "unregister", n.Connector) })
	if err := cdcRetry(ctx, root, log, cfg, "register", n.Connector, "-"); err != nil {
		return err
	}
	if err := cdcRetry(ctx, root, log, nil, "wait-running", n.Connector); err != nil {
		return err
	}
	return waitSlot(ctx, src, n.Connector)
}

// measure fills in res's row counts, topic records and reconcile's answer.
func measure(ctx context.Context, c Config, n Names, bin string, src, tgt *pgxpool.Pool, res *Result) error {
	var err error
	if res.Users, err = count(ctx, src, n.Users); err != nil {
		return err
	}
	if res.Points, err = count(ctx, tgt, n.Points); err != nil {
		return err
	}
	if res.TopicRecords, err = topicRecords(ctx, c.Env.KafkaBrokers, n.Topic); err != nil {
		return fmt.Errorf("end offsets of %s: %w", n.Topic, err)
	}
	res.Reconcile, res.ReconcileExit, err = reconcile(ctx, bin, c, n)
	return err
}

// drain waits until points holds want rows, failing at once when it holds
// more (an event that escaped a rollback) and after timeout.
func drain(ctx context.Context, tgt *pgxpool.Pool, points string, want int64, timeout time.Duration, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := time.Now()
	for {
		got, err := count(ctx, tgt, points)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("points has not caught up after %v: %w", timeout, ctx.Err())
		case err != nil:
			return fmt.Errorf("count %s: %w", points, err)
		case got == want:
			return nil
		case got > want:
			return fmt.Errorf("%s has %d rows, more than the %d committed signups", points, got, want)
		}
		if time.Since(last) >= 5*time.Second {
			fmt.Fprintf(log, "outbox: points %d of %d\n", got, want)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("points has %d of %d rows after %v", got, want, timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// cleanup undoes a run's set-up, last step first.
type cleanup struct{ steps []func(context.Context) error }

func (c *cleanup) add(f func(context.Context) error) { c.steps = append(c.steps, f) }

func (c *cleanup) run(ctx context.Context, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for i := len(c.steps) - 1; i >= 0; i-- {
		if err := c.steps[i](ctx); err != nil {
			errs = append(errs, fmt.Errorf("clean-up: %w", err))
		}
	}
	fmt.Fprintf(log, "outbox: cleaned up\n")
	return errors.Join(errs...)
}

func report(w io.Writer, c Config, r *Result) {
	n, rc := r.Names, r.Reconcile
	attempts := r.Committed + r.RolledBack
	verdict := "equal"
	if !rc.Equal {
		verdict = fmt.Sprintf("DIFFERENT: %d missing, %d extra", rc.MissingCount, rc.ExtraCount)
	}
	fmt.Fprintf(w, "outbox run %s: %d signups committed, %d rolled back (%.1f%% of %d attempts), %d clients\n",
		c.Run, r.Committed, r.RolledBack, 100*float64(r.RolledBack)/float64(max(attempts, 1)), attempts, c.Clients)
	fmt.Fprintf(w, "  faults: %d worker SIGKILL(s), %d Kafka Connect restart(s)\n", r.WorkerKills, r.ConnectRestarts)
	fmt.Fprintf(w, "  signups %v (%.0f attempts/s); points caught up %v after the last; total %v\n",
		r.Signups.Round(time.Millisecond), float64(attempts)/r.Signups.Seconds(), r.Drain.Round(time.Millisecond), r.Total.Round(time.Millisecond))
	fmt.Fprintf(w, "  topic %s: %d events (%d sent again by Debezium after a restart)\n", n.Topic, r.TopicRecords, r.TopicRecords-r.Committed)
	fmt.Fprintf(w, "  %s (source): %d rows; %s (target): %d rows\n", n.Users, r.Users, n.Points, r.Points)
	fmt.Fprintf(w, "  %s\n  -> %s, exit %d: %d vs %d rows, %d ranges, %d rows fetched, %d + %d bytes, %v\n",
		reconcileCommand(n), verdict, r.ReconcileExit, rc.SourceRows, rc.TargetRows, rc.Ranges, rc.RowsFetched,
		rc.Source.Bytes, rc.Target.Bytes, rc.Elapsed.Round(time.Millisecond))
	if r.Agree() {
		fmt.Fprintf(w, "users == points == %d committed signups\n", r.Committed)
	} else {
		fmt.Fprintf(w, "users %d, points %d, committed %d: they do NOT agree\n", r.Users, r.Points, r.Committed)
	}
}
