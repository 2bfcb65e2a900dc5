// Command rebalance measures, side by side in one run, how long a
// membership change stops progress under each consumer-group protocol of
// the worker (KAFKA_GROUP_PROTOCOL=classic and consumer). Each protocol
// gets its own topic, group, table and two workers; a producer feeds both
// topics throughout; in each round a third worker joins and then leaves
// (SIGTERM) each group in turn, while the harness polls sink_offsets every
// 50 ms. The pause of an event is the longest time any partition went
// without its next_offset advancing around it. The Markdown report is
// printed and written to bench/results/<date>-rebalance.md.
//
// Run it from the module root with the services up:
//
//	scripts/services up && eval "$(scripts/services env)"
//	go run ./bench/rebalance
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

	"github.com/sinkworker/sinkworker/bench/internal/proc"
)

// options are the command-line flags.
type options struct {
	partitions int
	rate       float64
	rounds     int
	settle     time.Duration
	warmup     time.Duration
	poll       time.Duration
	env        proc.EnvFlag
	out        string
	keep       bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("rebalance", flag.ContinueOnError)
	fs.IntVar(&o.partitions, "partitions", 12, "partitions of each protocol's topic")
	fs.Float64Var(&o.rate, "rate", 3000, "records/s produced in total, split evenly over the two topics")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each has a quiet window, then a join and a leave per protocol")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "time after each event (and length of the quiet window) before the next")
	fs.DurationVar(&o.warmup, "warmup", 20*time.Second, "time from the start of the workers to the first round (then until the groups are settled)")
	fs.DurationVar(&o.poll, "poll", 50*time.Millisecond, "how often sink_offsets is read for both groups")
	fs.Var(&o.env, "env", "extra KEY=VALUE for every worker (repeatable); KAFKA_SESSION_TIMEOUT goes to classic workers only")
	fs.StringVar(&o.out, "out", "", "report path (default bench/results/<date>-rebalance.md under the module root)")
	fs.BoolVar(&o.keep, "keep", false, "keep the topics, tables, sink_offsets rows and groups at the end")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/rebalance [flags]\n\nNeeds KAFKA_BROKERS and DATABASE_URL: scripts/services up && eval \"$(scripts/services env)\"\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rebalance: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\nrebalance: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// validate names every bad flag at once.
func (o options) validate() error {
	var errs []error
	if o.partitions < 3 {
		errs = append(errs, errors.New("-partitions must be at least 3 (one per worker)"))
	}
	if o.rate < 10 {
		errs = append(errs, errors.New("-rate must be at least 10 records/s"))
	}
	if o.rounds < 1 {
		errs = append(errs, errors.New("-rounds must be at least 1"))
	}
	if o.settle < 2*time.Second {
		errs = append(errs, errors.New("-settle must be at least 2s"))
	}
	if o.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if o.poll < 5*time.Millisecond || o.poll > time.Second {
		errs = append(errs, errors.New("-poll must be between 5ms and 1s"))
	}
	for _, kv := range o.env {
		if k, _, _ := strings.Cut(kv, "="); k == "KAFKA_GROUP_PROTOCOL" || k == "SINK_MEMBER" {
			errs = append(errs, fmt.Errorf("-env %s: the harness sets it", k))
		}
	}
	return errors.Join(errs...)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
