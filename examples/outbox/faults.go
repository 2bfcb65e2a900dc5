package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// faults owns the worker process and injects the run's two faults by the
// progress of the points table, so that each lands while events flow
// through the stage it hits: the worker is SIGKILLed and a new one started
// when points holds a third of the users, Kafka Connect is restarted at two
// thirds (Debezium then resumes from its last flushed position and may
// send some events again).
type faults struct {
	c       Config
	n       Names
	root    string
	tgt     *pgxpool.Pool
	log     io.Writer
	bin     string
	env     []string
	logPath string

	mu sync.Mutex // guards w
	w  *worker
	// kills and restarts count the faults done; read them after run
	// returned.
	kills, restarts int
}

// run injects the faults Config asks for, in order, and returns when both
// are done, at the first error, or when ctx ends.
func (f *faults) run(ctx context.Context) error {
	for _, s := range []struct {
		on bool
		at int64
		do func(context.Context, int64) error
	}{
		{f.c.KillWorker, f.c.Users / 3, f.killWorker},
		{f.c.RestartConnect, 2 * f.c.Users / 3, f.restartConnect},
	} {
		if !s.on {
			continue
		}
		for {
			got, err := count(ctx, f.tgt, f.n.Points)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return fmt.Errorf("count %s: %w", f.n.Points, err)
			}
			if got >= s.at {
				if err := s.do(ctx, got); err != nil {
					return err
				}
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (f *faults) killWorker(_ context.Context, sunk int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(f.log, "outbox: SIGKILL the worker (pid %d) at %d points rows; starting a new one\n", f.w.cmd.Process.Pid, sunk)
	f.w.stop(syscall.SIGKILL)
	w, err := startWorker(f.bin, f.env, f.logPath)
	if err != nil {
		return err
	}
	f.w = w
	f.kills++
	return nil
}

// restartConnect restarts Kafka Connect and waits for the connector. It is
// not cancelled with ctx: a restart cut short would leave Connect, shared
// with other users, stopped.
func (f *faults) restartConnect(ctx context.Context, sunk int64) error {
	fmt.Fprintf(f.log, "outbox: restarting Kafka Connect at %d points rows\n", sunk)
	ctx = context.WithoutCancel(ctx)
	if err := cdc(ctx, f.root, f.log, nil, "connect-restart"); err != nil {
		return err
	}
	if err := cdcRetry(ctx, f.root, f.log, nil, "wait-running", f.n.Connector); err != nil {
		return err
	}
	f.restarts++
	return nil
}

// stop ends the worker (SIGTERM: a clean shutdown).
func (f *faults) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w.stop(syscall.SIGTERM)
}
