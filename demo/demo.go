// Package demo runs sinkworker end to end on one machine with nothing set up:
// an embedded Kafka broker (kfake) unless brokers are given, a temporary
// PostgreSQL unless a database URL is given, a producer telling the classic
// user-service story (user-created and points-changed events keyed by user
// id, some deletes, a few deliberately bad records), and a fleet of real
// sinkworker processes, one of which is killed and restarted mid-run. It
// shows live progress and ends with a check of the table against a model of
// what was produced. With Options.Format avro or protobuf the records are
// in Confluent's wire format, their schemas in an in-process registry
// (srfake), and the workers create a typed table from the value schema.
//
// Use: opts := demo.DefaultOptions(); opts.Out = os.Stdout; res, err :=
// demo.Run(ctx, opts); res.Passed tells whether the final check passed.
// `sinkworker demo` is the command.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Postgres values of Options.Postgres: how to get a database when
// Options.DatabaseURL is empty.
const (
	PostgresAuto      = "auto"      // installed binaries, else embedded
	PostgresInstalled = "installed" // the installed initdb and postgres only
	PostgresEmbedded  = "embedded"  // binaries fetched by embedded-postgres only
)

// Options configures a run. Start from DefaultOptions; Run fills in a zero
// Format, Postgres, Seed, StallTimeout, WorkerBinary and Out with the defaults given
// on each field, and rejects values out of bounds, naming each.
type Options struct {
	// Events is how many good events to produce (DefaultOptions: 200,000);
	// the bad records come on top.
	Events int
	// Rate caps production in events per second; 0 is as fast as possible.
	Rate int
	// Workers is the number of worker processes, 1-32 (DefaultOptions: 3).
	Workers int
	// Partitions of the topic, 1-64 (DefaultOptions: 6).
	Partitions int
	// Bad is how many deliberately bad records to mix in (invalid JSON, a
	// NUL byte, ...; for avro and protobuf a wrong magic byte, an unknown
	// schema id, a truncated body, ...); they must all end up in the
	// dead-letter topic.
	// DefaultOptions has 5.
	Bad int
	// DeletePercent is the share of events that delete their user (a
	// tombstone), in percent, 0-50. DefaultOptions has 2.
	DeletePercent float64
	// Format is how the records are written and read: FormatJSON
	// (default; the values into a jsonb column), FormatAvro or
	// FormatProtobuf (Confluent's wire format with the schemas in an
	// in-process registry, srfake; the workers create a typed table from
	// the value schema).
	Format string
	// NoKill skips killing and restarting a worker in the middle.
	NoKill bool
	// WorkerBinary is the sinkworker executable the workers run (`run`
	// subcommand); default os.Executable().
	WorkerBinary string
	// WorkerEnv is the environment the workers start from (main passes
	// os.Environ(), so SASL/TLS settings reach them); the demo's own
	// settings override it.
	WorkerEnv []string
	// Brokers of a real Kafka cluster; empty starts kfake in-process. The
	// demo's own clients speak plaintext; the workers get WorkerEnv's
	// KAFKA_SASL_* and KAFKA_TLS_* settings.
	Brokers []string
	// DatabaseURL of a real PostgreSQL; empty starts a temporary one.
	DatabaseURL string
	// Postgres picks the temporary database's binaries: PostgresAuto
	// (default), PostgresInstalled or PostgresEmbedded.
	Postgres string
	// Seed makes the produced events reproducible (default 1).
	Seed uint64
	// StallTimeout ends the run as failed when nothing is sunk for this
	// long while records wait (default 60 s).
	StallTimeout time.Duration
	// Out receives progress and the summary (default io.Discard).
	Out io.Writer
	// Interactive redraws a two-line progress block in place (Out is a
	// terminal); otherwise a progress line is printed every few seconds.
	Interactive bool
}

// DefaultOptions are the command's defaults: 200,000 events as fast as
// possible, 5 bad records, 2% deletes, 3 workers, 6 partitions, output
// discarded.
func DefaultOptions() Options {
	return Options{Events: 200_000, Workers: 3, Partitions: 6, Bad: 5, DeletePercent: 2,
		Format: FormatJSON, Postgres: PostgresAuto, Seed: 1, StallTimeout: time.Minute}
}

// fill applies the defaults and checks the bounds, naming every bad field.
func (o *Options) fill() error {
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Postgres == "" {
		o.Postgres = PostgresAuto
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.WorkerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("worker binary: %w", err)
		}
		o.WorkerBinary = exe
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Events < 1 {
		bad("-events: must be at least 1, got %d", o.Events)
	}
	if o.Rate < 0 {
		bad("-rate: must be 0 (as fast as possible) or more, got %d", o.Rate)
	}
	if o.Workers < 1 || o.Workers > 32 {
		bad("-workers: must be 1-32, got %d", o.Workers)
	}
	if o.Partitions < 1 || o.Partitions > 64 {
		bad("-partitions: must be 1-64, got %d", o.Partitions)
	}
	if o.Bad < 0 || o.Bad > o.Events {
		bad("-bad: must be 0 to -events (%d), got %d", o.Events, o.Bad)
	}
	if o.DeletePercent < 0 || o.DeletePercent > 50 {
		bad("-deletes: must be 0-50 percent, got %g", o.DeletePercent)
	}
	if o.Format != FormatJSON && o.Format != FormatAvro && o.Format != FormatProtobuf {
		bad("-format: must be json, avro or protobuf, got %q", o.Format)
	}
	if o.Postgres != PostgresAuto && o.Postgres != PostgresInstalled && o.Postgres != PostgresEmbedded {
		bad("-postgres: must be auto, installed or embedded, got %q", o.Postgres)
	}
	return errors.Join(errs...)
}

// ErrOptions marks an error as bad options (the command exits 2 for it).
var ErrOptions = errors.New("invalid demo options")

// Run brings everything up, produces, lets the workers sink while showing
// progress, kills and restarts one worker halfway, stops the fleet and
// checks the result. Everything it started is stopped and its temporary
// directories removed before it returns, also when ctx is cancelled
// (Ctrl-C). The error is for a run that could not be carried out (a service
// did not start, ctx ended); a run that completed reports its check in
// Result.Passed and Result.Problems.
func Run(ctx context.Context, opts Options) (Result, error) {
	if err := opts.fill(); err != nil {
		return Result{}, fmt.Errorf("%w:\n%w", ErrOptions, err)
	}
	start := time.Now()
	r := &run{opts: opts, out: opts.Out, start: start}
	defer r.tearDown()
	if err := r.setUp(ctx); err != nil {
		return Result{}, err
	}
	if err := r.sink(ctx); err != nil {
		return r.res, err
	}
	if err := r.check(ctx); err != nil {
		return r.res, err
	}
	r.res.Elapsed = time.Since(start)
	r.printSummary()
	return r.res, nil
}
