// Command sinkworker sinks Kafka topics into PostgreSQL. See the README for
// its settings; `sinkworker -h` lists the subcommands.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/sethvargo/go-envconfig"

	"github.com/sinkworker/sinkworker/sink"
)

const usage = `sinkworker sinks Kafka topics into PostgreSQL, one transaction per partition batch,
with the consumed offsets in the same transaction.

Usage:
  sinkworker [run]     run the worker, configured by environment (see README)
  sinkworker demo      run the whole pipeline on this machine, nothing to set up
  sinkworker audit     check that the database and Kafka agree, per partition
  sinkworker offsets reset --topic T [--partition N] --to earliest|latest|OFFSET [--execute]
                       move the database's offsets deliberately (dry run without --execute)
  sinkworker redrive   re-sink dead-lettered records once their cause is fixed
  sinkworker reconcile --source-table T --key COLS [--target-table T] [--source URL] [--target URL]
                       say whether two tables hold the same rows (exit 0 equal, 1 different)
  sinkworker version   print the version
  sinkworker <command> -h

Exit status: 0 after a clean shutdown, 2 for a bad setting, 1 for any other failure.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stderr, usage)
		return 0
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: sinkworker run\n\nRuns one consumer-group member until SIGTERM or SIGINT. All settings come from\nthe environment: KAFKA_BROKERS, KAFKA_TOPICS and DATABASE_URL are required; the\nREADME lists every variable and its default.\n")
		}
		if err := fs.Parse(args); err != nil {
			return exitFor(err)
		}
		return runWorker(stderr)
	case "demo":
		return runDemo(args, os.Stdout, stderr)
	case "audit":
		return runAudit(args, os.Stdout, stderr)
	case "offsets":
		return runOffsets(args, os.Stdout, stderr)
	case "reconcile":
		return runReconcile(args, os.Getenv, os.Stdout, stderr)
	case "redrive":
		fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { fmt.Fprint(stderr, redriveUsage) }
		if err := fs.Parse(args); err != nil {
			return exitFor(err)
		}
		return runRedrive(stderr)
	case "version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { fmt.Fprint(stderr, "Usage: sinkworker version\n\nPrints the version of this build.\n") }
		if err := fs.Parse(args); err != nil {
			return exitFor(err)
		}
		fmt.Fprintln(os.Stdout, version())
		return 0
	default:
		fmt.Fprintf(stderr, "sinkworker: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func exitFor(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func runWorker(stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	cfg, ok := loadConfig(ctx, stderr)
	if !ok {
		return 2
	}
	log := newLogger(cfg, stderr)
	// In a container, the GC works harder near the memory limit rather than
	// let the heap reach it: GOMEMLIMIT becomes 90% of the cgroup's limit
	// (unless GOMEMLIMIT is set; AUTOMEMLIMIT=off disables it).
	if limit, err := memlimit.Set(); err != nil {
		log.Debug("no container memory limit applied", "err", err)
	} else if limit < math.MaxInt64 {
		log.Info("memory limit", "gomemlimit_bytes", limit)
	}
	w, err := sink.New(ctx, cfg, log)
	if err != nil && ctx.Err() != nil {
		log.Info("stopped during start-up", "err", err) // SIGTERM before consuming began: a clean stop
		return 0
	}
	if err != nil {
		log.Error("start-up failed", "err", err)
		if errors.Is(err, sink.ErrConfig) {
			return 2
		}
		return 1
	}
	defer w.Close() // a no-op once Run has returned
	if a := w.Addr(); a != nil {
		log.Info("http listening", "addr", a.String())
	}
	if err := w.Run(ctx); err != nil {
		log.Error("stopped on error", "err", err)
		if errors.Is(err, sink.ErrConfig) { // found while running: a new topic's table (KAFKA_TOPICS_REGEX)
			return 2
		}
		return 1
	}
	return 0
}

// loadConfig reads the environment, the one place main does, and prints
// every problem; ok is false for a bad setting (exit 2).
func loadConfig(ctx context.Context, stderr io.Writer) (cfg sink.Config, ok bool) {
	cfg, err := sink.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		fmt.Fprintf(stderr, "sinkworker: %v\n", err)
		return cfg, false
	}
	if cfg.Member == "" {
		cfg.Member = defaultMember()
	}
	return cfg, true
}

func newLogger(cfg sink.Config, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

var notMember = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// defaultMember is the host (pod) name, its last 32 bytes when longer (a
// pod name's unique suffix is at its end), else a random 8-character id:
// short enough that application_name keeps it whole.
func defaultMember() string {
	if h, err := os.Hostname(); err == nil {
		if h = notMember.ReplaceAllString(h, "-"); h != "" {
			return h[max(0, len(h)-32):]
		}
	}
	return rand.Text()[:8]
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "sinkworker " + bi.Main.Version
	}
	return "sinkworker (devel)"
}
