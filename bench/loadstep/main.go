// Command loadstep measures what POOL_MAX_CONNS=auto does when another load
// starts on the database and when it ends. It produces the suite's records
// to a fresh topic, starts sinkworker processes with POOL_MAX_CONNS=auto
// that upsert them into a fresh table, scrapes each one's /metrics every
// 250 ms (the limit, the latency ratio, the waiting partitions, the records
// written) and polls sink_offsets at the same moments. -t1 after the first
// commit, -load-conns connections start a tight loop of upserts, each on a
// scratch table of its own, for -load-for; the run ends when every record is
// applied. It writes bench/results/<date>-<name>.md (phases, reaction times,
// a per-second timeline) and .csv (every sample).
//
//	scripts/services up && eval "$(scripts/services env)"
//	go run ./bench/loadstep -workers 1 -name loadstep-w1
//	go run ./bench/loadstep -workers 2 -name loadstep-w2
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

// sampleEvery is how often the harness scrapes the workers and polls
// sink_offsets.
const sampleEvery = 250 * time.Millisecond

type options struct {
	records, keys int
	parts         int
	workers       int
	warmup        time.Duration // left out of the before phase: slow start
	t1            time.Duration // first commit to the other load's start
	loadFor       time.Duration // how long the other load runs
	alone         time.Duration // the other load alone after the drain, for reference; 0: not
	loadConns     int
	loadRows      int // rows per transaction of the other load
	loadTable     int // rows of each scratch table
	timeout       time.Duration
	env           proc.EnvFlag
	insert        bool // -env SINK_MODE=insert
	name, out     string
	keep          bool
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	fs := flag.NewFlagSet("loadstep", flag.ContinueOnError)
	fs.IntVar(&o.records, "records", 6_000_000, "records produced to the topic (the suite's records)")
	fs.IntVar(&o.keys, "keys", 0, "key space (default records/5: keys repeat)")
	fs.IntVar(&o.parts, "partitions", 16, "partitions of the topic")
	fs.IntVar(&o.workers, "workers", 1, "sinkworker processes, each with POOL_MAX_CONNS=auto")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "time after the first commit left out of the before phase (slow start)")
	fs.DurationVar(&o.t1, "t1", 15*time.Second, "first commit to the start of the other load (T1)")
	fs.DurationVar(&o.loadFor, "load-for", 20*time.Second, "how long the other load runs (T2 = T1 + this)")
	fs.IntVar(&o.loadConns, "load-conns", 4, "connections of the other load, each a tight loop of write transactions on its own table")
	fs.IntVar(&o.loadRows, "load-rows", 2000, "rows each transaction of the other load upserts")
	fs.IntVar(&o.loadTable, "load-table", 100_000, "rows of each of the other load's scratch tables")
	fs.DurationVar(&o.alone, "alone", 5*time.Second, "after the drain, run the other load alone this long for its reference rate (0: not)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when the records are not all applied after this long")
	fs.Var(&o.env, "env", "extra KEY=VALUE for every worker (repeatable); not the settings the harness sets")
	fs.StringVar(&o.name, "name", "loadstep", "result file name: <out>/<UTC date>-<name>.md and .csv")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results)")
	fs.BoolVar(&o.keep, "keep", false, "keep the topic, the sink table and the group (the scratch tables are always dropped)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/loadstep [flags]\n\n"+
			"What POOL_MAX_CONNS=auto does when another database load starts and ends.\n"+
			"Needs KAFKA_BROKERS and DATABASE_URL: "+servicesHint+"\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadstep: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "loadstep: %v\n", err)
		return 2
	}
	if o.keys == 0 {
		o.keys = max(1, o.records/5)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := loadstep(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\nloadstep: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// validate names every bad flag at once, and reads SINK_MODE from -env.
func (o *options) validate() error {
	var bad []string
	positive := map[string]int{"-records": o.records, "-partitions": o.parts, "-workers": o.workers,
		"-load-conns": o.loadConns, "-load-rows": o.loadRows, "-load-table": o.loadTable}
	for name, v := range positive {
		if v < 1 {
			bad = append(bad, name+" must be at least 1")
		}
	}
	if o.keys < 0 {
		bad = append(bad, "-keys must not be negative")
	}
	if o.workers > o.parts {
		bad = append(bad, "-workers must not exceed -partitions (a worker without partitions has no limit to watch)")
	}
	if o.loadRows > o.loadTable {
		bad = append(bad, "-load-rows must not exceed -load-table (a transaction upserts distinct keys)")
	}
	if o.warmup < 0 || o.warmup >= o.t1 {
		bad = append(bad, "-warmup must be at least 0 and shorter than -t1")
	}
	if o.loadFor <= 0 || o.timeout <= 0 || o.alone < 0 {
		bad = append(bad, "-load-for and -timeout must be positive, -alone not negative")
	}
	for _, kv := range o.env {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "POOL_MAX_CONNS", "HTTP_ADDR", "SINK_MEMBER", "KAFKA_TOPICS", "KAFKA_GROUP", "SINK_TABLE_MAP", "KAFKA_BROKERS", "DATABASE_URL":
			bad = append(bad, "-env "+k+": the harness sets it")
		case "SINK_MODE":
			o.insert = v == "insert"
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// rate is n per second of d; 0 for an empty span.
func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}
