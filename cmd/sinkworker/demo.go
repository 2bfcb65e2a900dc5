//go:build !nodemo

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sinkworker/sinkworker/demo"
)

const demoUsage = `Usage: sinkworker demo [flags]

Runs the whole pipeline on this machine with nothing set up: an embedded Kafka
broker (kfake) unless KAFKA_BROKERS is set, a temporary PostgreSQL unless
DATABASE_URL is set, a user service producing user-created and points-changed
events keyed by user id with some deletes and a few bad records, and several
sinkworker processes, one of which is killed and restarted halfway. Shows live
progress, then checks the table against a model of what was produced, the
dead-letter topic against the bad records, and the peak of database
connections against the partition count. Ctrl-C stops it and removes its
temporary files.

-format avro or -format protobuf writes the records in Confluent's wire
format, with the key and value schemas in an in-process schema registry
(franz-go's srfake; no JVM), and the workers create a typed table from the
value schema; the summary shows its columns and types.

Exit status: 0 only when the final check passes, 2 for a bad flag, else 1.

Flags:
`

// runDemo is `sinkworker demo`.
func runDemo(args []string, stdout, stderr io.Writer) int {
	opts := demo.DefaultOptions()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&opts.Events, "events", opts.Events, "good events to produce")
	fs.IntVar(&opts.Rate, "rate", opts.Rate, "events per second; 0 is as fast as possible")
	fs.IntVar(&opts.Workers, "workers", opts.Workers, "worker processes (consumer-group members)")
	fs.IntVar(&opts.Partitions, "partitions", opts.Partitions, "partitions of the topic")
	fs.StringVar(&opts.Format, "format", opts.Format, "record format: json (into a jsonb column), avro or protobuf (schemas in an in-process registry, a typed table)")
	fs.IntVar(&opts.Bad, "bad", opts.Bad, "deliberately bad records (invalid JSON, a wrong magic byte, ...) to mix in")
	fs.Float64Var(&opts.DeletePercent, "deletes", opts.DeletePercent, "percent of events that delete their user (tombstones)")
	kill := fs.Bool("kill", true, "SIGKILL one worker halfway and restart it")
	fs.StringVar(&opts.Postgres, "postgres", opts.Postgres, "without DATABASE_URL: auto, installed (the machine's binaries) or embedded (embedded-postgres)")
	fs.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of the produced events")
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sinkworker demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts.NoKill = !*kill
	opts.WorkerEnv = os.Environ()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		opts.Brokers = strings.Split(b, ",")
	}
	opts.DatabaseURL = os.Getenv("DATABASE_URL")
	opts.Out = stdout
	if f, ok := stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			opts.Interactive = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop) // a second Ctrl-C during the clean-up ends the process at once
	res, err := demo.Run(ctx, opts)
	switch {
	case errors.Is(err, demo.ErrOptions):
		fmt.Fprintf(stderr, "sinkworker demo: %v\n", err)
		return 2
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(stderr, "sinkworker demo: interrupted; what it started is stopped and its temporary files removed")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "sinkworker demo: %v\n", err)
		return 1
	case !res.Passed:
		return 1
	}
	return 0
}
