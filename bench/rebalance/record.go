package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// recorder polls sink_offsets for every fleet's group on its own
// connection and keeps what it read. Start it with run in a goroutine;
// cancelling run's ctx stops it. Its methods are safe for concurrent use.
type recorder struct {
	db     *pgx.Conn // owned by run
	dsn    string    // to dial again after a PostgreSQL restart
	start  time.Time // the zero of every time in the series
	every  time.Duration
	fleets []*fleet

	mu      sync.Mutex
	series  []series // per fleet, in the order of fleets
	polls   int
	errs    int
	lastErr string
	slowest time.Duration // longest time between two consecutive polls
}

// run polls until ctx is done, then closes the connection.
func (r *recorder) run(ctx context.Context) {
	defer func() { r.db.Close(context.Background()) }() // redial may have replaced it
	t := time.NewTicker(r.every)
	defer t.Stop()
	var prev time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !prev.IsZero() {
			r.mu.Lock()
			r.slowest = max(r.slowest, now.Sub(prev))
			r.mu.Unlock()
		}
		prev = now
		for i, f := range r.fleets {
			at := time.Since(r.start)
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			next, err := sinkdb.Next(qctx, r.db, f.group, f.topic, f.parts)
			cancel()
			r.mu.Lock()
			if err != nil {
				r.errs++
				r.lastErr = err.Error()
			} else {
				r.series[i].at = append(r.series[i].at, at)
				r.series[i].next = append(r.series[i].next, next)
			}
			r.mu.Unlock()
			if err != nil && r.db.IsClosed() && ctx.Err() == nil {
				r.redial(ctx)
			}
		}
		r.mu.Lock()
		r.polls++
		r.mu.Unlock()
	}
}

// redial replaces a connection the server has closed (PostgreSQL was
// restarted); the gap shows up in the series.
func (r *recorder) redial(ctx context.Context) {
	c, err := dial(ctx, r.dsn, "bench-rebalance-poll")
	if err != nil {
		return // try again at the next poll
	}
	r.db = c
}

// snapshot is what fleet i's series holds now.
func (r *recorder) snapshot(i int) series {
	r.mu.Lock()
	defer r.mu.Unlock()
	return series{at: r.series[i].at, next: r.series[i].next}
}

// progress is fleet i's advances so far.
func (r *recorder) progress(i int) progress {
	return newProgress(r.snapshot(i), r.fleets[i].parts)
}

// now is the time since the recorder's zero.
func (r *recorder) now() time.Duration { return time.Since(r.start) }

// stats are the poll counts and errors, for the report.
func (r *recorder) stats() (polls, errs int, lastErr string, slowest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.polls, r.errs, r.lastErr, r.slowest
}

// writeCSV saves every observation: elapsed_ms, protocol, then next_offset
// per partition.
func (r *recorder) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("elapsed_ms,protocol")
	for p := range r.fleets[0].parts {
		fmt.Fprintf(&b, ",p%d", p)
	}
	b.WriteString("\n")
	for i, fl := range r.fleets {
		s := r.snapshot(i)
		for j, at := range s.at {
			fmt.Fprintf(&b, "%d,%s", at.Milliseconds(), fl.protocol)
			for _, n := range s.next[j] {
				fmt.Fprintf(&b, ",%d", n)
			}
			b.WriteString("\n")
		}
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
