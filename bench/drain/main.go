// Command drain measures sinkworker's core pipeline against the real broker
// and database in one run: it pre-produces records to a fresh topic, times
// the real worker binary draining them into a fresh table (until the
// sink_offsets rows say every record is applied), then times the same rows
// upserted straight into PostgreSQL with the writer's statement and batch
// size (the ceiling), and prints the ratio as a Markdown summary, also
// written to bench/results/<date>-drain.md.
//
// Run it from the module root with the services up:
//
//	scripts/services up && eval "$(scripts/services env)"
//	go run ./bench/drain -records 1000000
//
// See bench/README.md for what each figure means.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
)

// options are the command-line flags.
type options struct {
	records    int
	keys       int
	partitions int
	env        proc.EnvFlag
	keep       bool
	timeout    time.Duration
	batch      int // ceiling batch size: the worker's BATCH_MAX_RECORDS
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.IntVar(&o.records, "records", 1_000_000, "records to pre-produce")
	fs.IntVar(&o.keys, "keys", 200_000, "size of the key space (keys user-0 .. user-<keys-1>, drawn uniformly)")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of the fresh topic")
	fs.Var(&o.env, "env", "extra KEY=VALUE for the worker's environment (repeatable), e.g. -env BATCH_MAX_RECORDS=1000")
	fs.BoolVar(&o.keep, "keep", false, "keep the topic, tables, offsets rows and group at the end")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up if the worker has not drained the topic by then")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/drain [flags]\n\nNeeds KAFKA_BROKERS and DATABASE_URL: scripts/services up && eval \"$(scripts/services env)\"\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.records < 1 || o.keys < 1 || o.partitions < 1 {
		fmt.Fprintln(os.Stderr, "drain: -records, -keys and -partitions must be at least 1")
		return 2
	}
	o.batch = 5000 // the worker's default BATCH_MAX_RECORDS
	for _, kv := range o.env {
		if k, v, _ := strings.Cut(kv, "="); k == "BATCH_MAX_RECORDS" {
			if _, err := fmt.Sscan(v, &o.batch); err != nil || o.batch < 1 {
				fmt.Fprintf(os.Stderr, "drain: -env BATCH_MAX_RECORDS=%s is not a positive number\n", v)
				return 2
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\ndrain: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// bench runs every phase in order and cleans up unless -keep.
func bench(ctx context.Context, o options) error {
	env, err := connect(ctx)
	if err != nil {
		return err
	}
	defer env.close()

	stamp := time.Now().Unix()
	names := names{
		topic:   fmt.Sprintf("bench-drain-%d", stamp),
		group:   fmt.Sprintf("bench-drain-%d", stamp),
		table:   fmt.Sprintf("bench_drain_%d", stamp),
		ceiling: fmt.Sprintf("bench_drain_%d_ceiling", stamp),
		full:    fmt.Sprintf("bench_drain_%d_ceiling_tx", stamp),
	}
	names.fullGroup = names.group + "-ceiling-tx"
	logf("topic %s, group %s, tables %s, %s, %s", names.topic, names.group, names.table, names.ceiling, names.full)
	defer func() {
		if o.keep {
			logf("kept (-keep): topic %s, group %s, tables %s %s %s, sink_offsets rows of groups %s %s",
				names.topic, names.group, names.table, names.ceiling, names.full, names.group, names.fullGroup)
			return
		}
		env.cleanup(names)
	}()

	r := &report{opts: o, names: names, started: time.Now()}
	if err := r.describeMachine(ctx, env); err != nil {
		return err
	}

	// 1. Topic and records.
	if err := broker.CreateTopic(ctx, env.adm, names.topic, int32(o.partitions)); err != nil {
		return err
	}
	d, l, err := produce(ctx, env, names.topic, o, r)
	if err != nil {
		return err
	}

	// 2. The worker.
	if err := drainWithWorker(ctx, env, o, names, d, l, r); err != nil {
		r.failure = err.Error()
		r.write() // what was measured so far, with the failure
		return err
	}

	// 3. The ceiling, the writer's statement without Kafka.
	if err := runCeiling(ctx, env, o, names, d, l, r); err != nil {
		return err
	}

	r.write()
	return nil
}

// names are the run's own topic, group and tables.
type names struct {
	topic, group string
	table        string // the worker's table
	ceiling      string // upsert-only ceiling
	full         string // ceiling with the writer's whole transaction
	fullGroup    string // its sink_offsets group
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
