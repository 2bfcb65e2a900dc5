// Command suite is sinkworker's bench suite: one command that runs, on the
// same pre-produced topics and the same table shape, the database-only
// ceiling, a sinkworker sweep (partitions x workers x POOL_MAX_CONNS x
// BATCH_MAX_RECORDS, with end-to-end latency at half the measured rate),
// the naive consumer (bench/naive), Kafka Connect with the Debezium JDBC
// sink (defaults and tuned), the memory check, the drain of one worker
// against the ceiling with start-up left out, the rebalance pause
// (classic vs consumer group protocol) and the same records as JSON and
// as Avro into a typed table (formats), the physical limit (COPY,
// unnest, MERGE straight into PostgreSQL: limit), on request an old
// worker build against this one across a simulated network (network),
// on request the peers' benchmark shape, sinkworker against the Debezium
// JDBC sink (peers), and writes bench/results/<date>-<name>.md, .csv and .png.
//
//	scripts/services up && eval "$(scripts/services env)"
//	go run ./bench/suite            # the default subset (make bench)
//	go run ./bench/suite -full      # the whole sweep
//	go run ./bench/suite -smoke     # seconds, for CI (make bench-smoke)
//
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

const pollInterval = 100 * time.Millisecond

type options struct {
	records, keys int
	partitions    []int
	full, smoke   bool
	points        []point // -points: exactly these sweep points
	latency       time.Duration
	naiveTime     time.Duration
	debezium      bool
	dbzParts      int
	memory        []int
	timeout       time.Duration
	keep          bool
	name, out     string
	workerRoot    string // module root the worker binary is built from; empty: this one
	retries       int
	rounds        int // sweep rounds: every point measured this many times
	scenarios     map[string]bool
	env           proc.EnvFlag // extra worker settings, every worker
	insert        bool         // -env SINK_MODE=insert: tables, ceilings and checks in insert mode
	drainParts    int
	reb           rebalanceOptions
	formats       formatsOptions
	limit         limitOptions
	network       networkOptions
	peers         peersOptions
}

type bench struct {
	o         options
	s         *services
	d         *dataset.Dataset
	stamp     string
	tmp       string
	workerBin string
	oldBin    string // the network scenario's baseline worker, from -network-baseline-root
	naiveBin  string
	ids       atomic.Int64
	rep       *report
}

func (b *bench) nextID() int { return int(b.ids.Add(1)) }

// fresh names one measurement's own consumer group and table, from a new id.
func (b *bench) fresh() (id int, group, table string) {
	id = b.nextID()
	return id, fmt.Sprintf("bs%s-%d", b.stamp, id), fmt.Sprintf("bench_suite_%s_%d", b.stamp, id)
}

// forget drops a measurement's table and group (sink_offsets rows and
// Kafka group), best effort, unless -keep.
func (b *bench) forget(table, group string) {
	if !b.o.keep {
		b.s.dropTable(table)
		b.s.dropGroup(group)
	}
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	var parts, memory string
	var mem10m bool
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.IntVar(&o.records, "records", 1_000_000, "records pre-produced to each topic")
	fs.IntVar(&o.keys, "keys", 0, "key space (default records/5: keys repeat)")
	fs.StringVar(&parts, "partitions", "1,4,16,64", "partition counts of the sweep (one topic each)")
	fs.BoolVar(&o.full, "full", false, "the whole sweep: partitions x workers {1,2,4} x POOL_MAX_CONNS {1,2,4,8,16,P} x BATCH_MAX_RECORDS {100,1000,5000}")
	pointsArg := fs.String("points", "", "exactly these sweep points instead of the default subset: comma-separated PARTITIONS/WORKERS/POOL_MAX_CONNS/BATCH_MAX_RECORDS, e.g. 16/1/16/5000 or 16/2/auto/5000 (each partition count must be in -partitions)")
	fs.BoolVar(&o.smoke, "smoke", false, "a tiny run in seconds (CI): 2000 records, 4 partitions, 2 points, no Debezium, no memory scenario; results to a temp dir")
	fs.DurationVar(&o.latency, "latency", 5*time.Second, "length of each point's latency run at half its drain rate (0: none)")
	fs.DurationVar(&o.naiveTime, "naive-time", 20*time.Second, "how long the naive consumer runs (it is slow: one transaction per record)")
	fs.BoolVar(&o.debezium, "debezium", true, "run Kafka Connect + Debezium JDBC sink (needs java and mvn)")
	fs.IntVar(&o.dbzParts, "debezium-partitions", 16, "partitions of the Debezium topic (tuned: tasks.max = this)")
	fs.StringVar(&memory, "memory", "1000000", "record counts of the memory scenario (defaults, 16 partitions); empty: none")
	fs.BoolVar(&mem10m, "memory-10m", false, "add 10,000,000 records to the memory scenario (minutes)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on one measurement after this long")
	fs.IntVar(&o.rounds, "rounds", 1, "sweep rounds: every point is measured this many times, round after round, so that the machine's drift falls on every setting alike; the latency runs are in the first round only, and the auto comparison uses each setting's median")
	fs.IntVar(&o.retries, "retries", 3, "attempts per measurement (a failed or disturbed one is measured again)")
	scen := fs.String("scenarios", "ceiling,sweep,naive,debezium,memory,drain,rebalance,formats,limit", "scenarios to run (comma-separated)")
	fs.Var(&o.env, "env", "extra KEY=VALUE for every worker (repeatable), e.g. -env SINK_MODE=insert; not the settings the harness sets per run")
	fs.IntVar(&o.drainParts, "drain-partitions", 8, "partitions of the drain scenario's topic")
	o.reb.flags(fs)
	o.formats.flags(fs)
	o.limit.flags(fs)
	o.network.flags(fs)
	o.peers.flags(fs)
	fs.BoolVar(&o.keep, "keep", false, "keep topics, tables, groups")
	fs.StringVar(&o.name, "name", "suite", "result file name: bench/results/<date>-<name>.md")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results; -smoke: a temp dir)")
	fs.StringVar(&o.workerRoot, "worker-root", "", "build the worker from the module at this directory (e.g. a git worktree of another commit), to compare two trees with one harness; default: this module")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/suite [flags]\n\nNeeds KAFKA_BROKERS and DATABASE_URL: scripts/services up && eval \"$(scripts/services env)\"\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var err error
	if o.partitions, err = ints(parts); err != nil || len(o.partitions) == 0 {
		fmt.Fprintln(os.Stderr, "suite: -partitions: want a comma-separated list of positive numbers")
		return 2
	}
	if o.points, err = parsePoints(*pointsArg, o.partitions); err != nil {
		fmt.Fprintln(os.Stderr, "suite: -points:", err)
		return 2
	}
	if o.memory, err = ints(memory); err != nil {
		fmt.Fprintln(os.Stderr, "suite: -memory: want a comma-separated list of positive numbers")
		return 2
	}
	if mem10m {
		o.memory = append(o.memory, 10_000_000)
	}
	o.scenarios = map[string]bool{}
	for _, sc := range strings.Split(*scen, ",") {
		o.scenarios[strings.TrimSpace(sc)] = true
	}
	var bad []string
	for _, kv := range o.env {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "POOL_MAX_CONNS", "BATCH_MAX_RECORDS", "KAFKA_GROUP_PROTOCOL", "SINK_MEMBER", "KAFKA_TOPICS", "KAFKA_GROUP", "SINK_TABLE_MAP":
			bad = append(bad, "-env "+k+": the harness sets it")
		case "SINK_MODE":
			o.insert = v == "insert"
		case "DATABASE_URL":
			if o.scenarios["network"] {
				bad = append(bad, "-env DATABASE_URL: the network scenario sets it")
			}
		}
	}
	if err := o.reb.validate(); err != nil {
		bad = append(bad, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := o.formats.validate(); err != nil {
		bad = append(bad, err.Error())
	}
	if err := o.limit.validate(); err != nil {
		bad = append(bad, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := o.network.validate(o.scenarios["network"]); err != nil {
		bad = append(bad, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := o.peers.validate(); err != nil {
		bad = append(bad, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if o.drainParts < 1 {
		bad = append(bad, "-drain-partitions must be at least 1")
	}
	if o.rounds < 1 {
		bad = append(bad, "-rounds must be at least 1")
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "suite: %s\n", strings.Join(bad, "; "))
		return 2
	}
	if o.smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["records"] {
			o.records = 2000
		}
		if !set["partitions"] {
			o.partitions = []int{4}
		}
		if !set["latency"] {
			o.latency = time.Second
		}
		if !set["naive-time"] {
			o.naiveTime = 2 * time.Second
		}
		if !set["debezium"] {
			o.debezium = false
		}
		if !set["memory"] {
			o.memory = nil
		}
		if !set["name"] {
			o.name = "smoke"
		}
		if !set["timeout"] {
			o.timeout = 2 * time.Minute
		}
		if !set["drain-partitions"] {
			o.drainParts = slices.Max(o.partitions)
		}
		o.reb.smoke(set)
		o.formats.smoke(set, slices.Max(o.partitions))
	}
	if o.keys == 0 {
		o.keys = max(1, o.records/5)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := suite(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\nsuite: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func suite(ctx context.Context, o options) error {
	started := time.Now()
	root, err := testbed.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	s, err := connect(ctx, root)
	if err != nil {
		return err
	}
	defer s.close()
	tmp, err := os.MkdirTemp("", "bench-suite-")
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results")
		if o.smoke {
			o.out = tmp
		}
	}
	b := &bench{o: o, s: s, stamp: strconv.FormatInt(time.Now().Unix()%1_000_000, 10), tmp: tmp}
	b.rep = &report{o: o, started: started, root: root}
	if err := b.rep.describe(ctx, s); err != nil {
		return err
	}
	pts := sweep(o)
	logf("bench suite: %d records, %d keys; partitions %v; %d sinkworker points; latency %s; naive %s; debezium %v; memory %v; logs in %s",
		o.records, o.keys, o.partitions, len(pts), o.latency, o.naiveTime, o.debezium, o.memory, tmp)

	// Build the worker and the naive consumer.
	phase := time.Now()
	b.workerBin, b.naiveBin = filepath.Join(tmp, "sinkworker"), filepath.Join(tmp, "naive")
	workerRoot := root
	if o.workerRoot != "" {
		workerRoot = o.workerRoot
	}
	if err := proc.Build(ctx, workerRoot, "./cmd/sinkworker", b.workerBin); err != nil {
		return err
	}
	if err := proc.Build(ctx, root, "./bench/naive", b.naiveBin); err != nil {
		return err
	}
	if o.scenarios["network"] {
		b.oldBin = filepath.Join(tmp, "sinkworker-old")
		if err := proc.Build(ctx, o.network.baseline, "./cmd/sinkworker", b.oldBin); err != nil {
			return fmt.Errorf("-network-baseline-root: %w", err)
		}
	}
	b.rep.timing("build", time.Since(phase))

	// Pre-produce: one topic per partition count, the same records.
	phase = time.Now()
	b.d = dataset.New(o.records, o.keys)
	b.rep.distinctKeys = b.d.DistinctKeys
	layouts := map[int]*dataset.Layout{}
	var topics []string
	defer func() {
		if !o.keep {
			s.dropTopics(topics...)
		}
	}()
	// Only the topics the selected scenarios read (memory produces its own).
	var allParts []int
	need := func(P int, scenarios ...string) {
		for _, sc := range scenarios {
			if o.scenarios[sc] && !slices.Contains(allParts, P) {
				allParts = append(allParts, P)
			}
		}
	}
	for _, P := range o.partitions {
		need(P, "ceiling", "sweep", "naive", "limit")
	}
	if o.debezium {
		need(o.dbzParts, "debezium")
	}
	need(o.drainParts, "drain")
	need(o.network.parts, "network")
	for _, P := range allParts {
		topic := fmt.Sprintf("bench-suite-%s-p%d", b.stamp, P)
		topics = append(topics, topic, topic+".dlq")
		err := b.retry(ctx, "produce "+topic, func() error {
			s.dropTopics(topic)
			if err := broker.CreateTopic(ctx, s.adm, topic, int32(P)); err != nil {
				return err
			}
			l, err := produce(ctx, s, b.d, topic, P)
			if err == nil {
				layouts[P] = l
				logf("  produced %d records to %s (%d partitions) at %.0f records/s", o.records, topic, P, rate(int64(b.d.N), l.Took))
			}
			return err
		}, nil)
		if err != nil {
			return err
		}
	}
	b.rep.timing("pre-produce", time.Since(phase))

	b.scenarios(ctx, layouts, pts, &topics)

	b.rep.total = time.Since(started)
	if err := b.rep.write(o.out); err != nil {
		return err
	}
	if len(b.rep.failures) > 0 {
		return fmt.Errorf("%d measurement(s) failed: %s", len(b.rep.failures), strings.Join(b.rep.failures, "; "))
	}
	return nil
}

// retry runs fn up to -retries times: again when it fails or when a
// service was restarted while it ran (the fingerprint changed), after
// waiting for the services. attempts (may be nil) gets the attempt count.
func (b *bench) retry(ctx context.Context, label string, fn func() error, attempts func(int)) error {
	var err error
	for a := 1; a <= b.o.retries; a++ {
		if err := b.s.waitUp(ctx, 5*time.Minute); err != nil {
			return err
		}
		logf("%s ...", label)
		before := b.s.fingerprint(ctx)
		err = fn()
		after := b.s.fingerprint(ctx)
		if attempts != nil {
			attempts(a)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && before == after {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("disturbed: a service restarted during the measurement (%s -> %s)", before, after)
		}
		b.rep.noise = append(b.rep.noise, fmt.Sprintf("%s, attempt %d: %s", label, a, firstLine(err.Error())))
		logf("  %s: attempt %d failed: %v", label, a, err)
		if a < b.o.retries {
			logf("  measuring it again")
			time.Sleep(2 * time.Second)
		}
	}
	return err
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// parsePoints reads -points: P/W/POOL/BATCH entries, each P one of parts.
func parsePoints(arg string, parts []int) ([]point, error) {
	if arg == "" {
		return nil, nil
	}
	var pts []point
	for _, e := range strings.Split(arg, ",") {
		fields := strings.Split(strings.TrimSpace(e), "/")
		auto := len(fields) == 4 && fields[2] == "auto"
		if auto {
			fields[2] = "1"
		}
		f, err := ints(strings.Join(fields, ","))
		if auto && err == nil {
			f[2] = autoPool
		}
		if err != nil || len(f) != 4 {
			return nil, fmt.Errorf("%q: want PARTITIONS/WORKERS/POOL_MAX_CONNS/BATCH_MAX_RECORDS, each a positive number", e)
		}
		if !slices.Contains(parts, f[0]) {
			return nil, fmt.Errorf("%q: %d partitions is not in -partitions %v", e, f[0], parts)
		}
		pts = append(pts, point{f[0], f[1], f[2], f[3]})
	}
	return pts, nil
}
