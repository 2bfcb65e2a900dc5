// Command suite is sinkworker's bench suite: one command that runs, on the
// same pre-produced topics and the same table shape, the database-only
// ceiling, a sinkworker sweep (partitions x workers x POOL_MAX_CONNS x
// BATCH_MAX_RECORDS, with end-to-end latency at half the measured rate),
// the naive consumer (bench/naive), Kafka Connect with the Debezium JDBC
// sink (defaults and tuned) and the memory check, and writes
// bench/results/<date>-<name>.md, .csv and .png.
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
	"github.com/sinkworker/sinkworker/bench/internal/ceiling"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

const pollInterval = 100 * time.Millisecond

type options struct {
	records, keys int
	partitions    []int
	full, smoke   bool
	latency       time.Duration
	naiveTime     time.Duration
	debezium      bool
	dbzParts      int
	memory        []int
	timeout       time.Duration
	keep          bool
	name, out     string
	retries       int
	scenarios     map[string]bool
}

type bench struct {
	o         options
	s         *services
	d         *dataset.Dataset
	stamp     string
	tmp       string
	workerBin string
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
	fs.BoolVar(&o.smoke, "smoke", false, "a tiny run in seconds (CI): 2000 records, 4 partitions, 2 points, no Debezium, no memory scenario; results to a temp dir")
	fs.DurationVar(&o.latency, "latency", 5*time.Second, "length of each point's latency run at half its drain rate (0: none)")
	fs.DurationVar(&o.naiveTime, "naive-time", 20*time.Second, "how long the naive consumer runs (it is slow: one transaction per record)")
	fs.BoolVar(&o.debezium, "debezium", true, "run Kafka Connect + Debezium JDBC sink (needs java and mvn)")
	fs.IntVar(&o.dbzParts, "debezium-partitions", 16, "partitions of the Debezium topic (tuned: tasks.max = this)")
	fs.StringVar(&memory, "memory", "1000000", "record counts of the memory scenario (defaults, 16 partitions); empty: none")
	fs.BoolVar(&mem10m, "memory-10m", false, "add 10,000,000 records to the memory scenario (minutes)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on one measurement after this long")
	fs.IntVar(&o.retries, "retries", 3, "attempts per measurement (a failed or disturbed one is measured again)")
	scen := fs.String("scenarios", "ceiling,sweep,naive,debezium,memory", "scenarios to run (comma-separated)")
	fs.BoolVar(&o.keep, "keep", false, "keep topics, tables, groups")
	fs.StringVar(&o.name, "name", "suite", "result file name: bench/results/<date>-<name>.md")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results; -smoke: a temp dir)")
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

// sweep is the list of sinkworker points.
func sweep(o options) []point {
	var pts []point
	seen := map[point]bool{}
	add := func(p point) {
		p.pool = min(p.pool, p.parts)
		if p.workers > p.parts || seen[p] {
			return
		}
		seen[p] = true
		pts = append(pts, p)
	}
	pools := func(P int) []int { return []int{1, 2, 4, 8, 16, P} } // 16: the default POOL_MAX_CONNS
	if o.smoke {
		P := slices.Max(o.partitions)
		add(point{P, 1, 1, 5000})
		add(point{P, 2, P, 1000})
		return pts
	}
	if o.full {
		for _, P := range o.partitions {
			for _, w := range []int{1, 2, 4} {
				for _, pool := range pools(P) {
					for _, bs := range []int{100, 1000, 5000} {
						add(point{P, w, pool, bs})
					}
				}
			}
		}
		return pts
	}
	for _, P := range o.partitions {
		for _, pool := range pools(P) {
			add(point{P, 1, pool, 5000})
		}
	}
	// Batch size and worker count at one partition count: 16, else the largest below it.
	mid := o.partitions[0]
	for _, P := range o.partitions {
		if P <= 16 {
			mid = max(mid, P)
		}
	}
	for _, bs := range []int{100, 1000} {
		add(point{mid, 1, mid, bs})
	}
	for _, w := range []int{2, 4} {
		add(point{mid, w, mid, 5000})
	}
	return pts
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
	for bin, pkg := range map[string]string{b.workerBin: "./cmd/sinkworker", b.naiveBin: "./bench/naive"} {
		if err := proc.Build(ctx, root, pkg, bin); err != nil {
			return err
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
	allParts := slices.Clone(o.partitions)
	if o.debezium && !slices.Contains(allParts, o.dbzParts) {
		allParts = append(allParts, o.dbzParts)
	}
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

	// 1. Ceiling: per partition count, on that topic's records (de-duplication
	// depends on how keys fall into partitions), at every connection count the
	// sweep uses there.
	phase = time.Now()
	for _, P := range o.partitions {
		if !o.scenarios["ceiling"] {
			break
		}
		l := layouts[P]
		conns := []int{}
		for _, c := range []int{1, 2, 4, 8, 16, P} {
			if c <= P && !slices.Contains(conns, c) {
				conns = append(conns, c)
			}
		}
		for _, p := range pts {
			if c := min(p.conns(), P); p.parts == P && !slices.Contains(conns, c) {
				conns = append(conns, c)
			}
		}
		slices.Sort(conns)
		perPart, rows := ceiling.Batches(b.d, l, 5000)
		for _, c := range conns {
			res := ceilingResult{parts: P, conns: c, rows: rows}
			err := b.retry(ctx, fmt.Sprintf("ceiling, %d partitions, %d connections", P, c), func() error {
				table := fmt.Sprintf("bench_suite_%s_%d", b.stamp, b.nextID())
				defer s.dropTable(table)
				d, err := ceilingRun(ctx, s, b.d, l, perPart, c, table)
				res.time = d
				return err
			}, func(a int) { res.attempts = a })
			if err != nil {
				b.rep.failed(fmt.Sprintf("ceiling %d/%d", P, c), err)
				continue
			}
			logf("  ceiling %d partitions, %d connections: %.0f records/s (%d rows)", P, c, res.rate(o.records), rows)
			b.rep.ceiling = append(b.rep.ceiling, res)
		}
	}
	b.rep.timing("ceiling", time.Since(phase))

	// 2. sinkworker sweep.
	phase = time.Now()
	if !o.scenarios["sweep"] {
		pts = nil
	}
	for i, pt := range pts {
		var res pointResult
		label := fmt.Sprintf("sinkworker %d/%d %s", i+1, len(pts), pt)
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runPoint(ctx, pt, b.d, layouts[pt.parts], nil, o.latency)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			continue
		}
		logf("  %s: %.0f records/s, peak %d connections, %.1f s CPU, max RSS %.0f MiB, latency p50 %s p99 %s at %.0f records/s",
			label, res.rate(), res.peakConns, res.cpu.Seconds(), mib(res.maxRSS), ms(res.p50), ms(res.p99), res.latRate)
		b.rep.points = append(b.rep.points, res)
	}
	b.rep.timing("sinkworker sweep", time.Since(phase))

	// 3. Naive consumer at the largest partition count (the connections question) and at 16 if swept.
	phase = time.Now()
	naiveParts := []int{slices.Max(o.partitions)}
	if slices.Contains(o.partitions, 16) && naiveParts[0] != 16 {
		naiveParts = append([]int{16}, naiveParts...)
	}
	if !o.scenarios["naive"] {
		naiveParts = nil
	}
	for _, P := range naiveParts {
		var res naiveResult
		label := fmt.Sprintf("naive consumer, %d partitions", P)
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runNaive(ctx, layouts[P], o.naiveTime)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			continue
		}
		logf("  %s: %.0f records/s, peak %d connections", label, res.rate(), res.peakConns)
		b.rep.naive = append(b.rep.naive, res)
	}
	b.rep.timing("naive consumer", time.Since(phase))

	// 4. Debezium.
	if o.debezium && o.scenarios["debezium"] {
		phase = time.Now()
		if err := b.debezium(ctx, layouts[o.dbzParts], &topics); err != nil {
			b.rep.failed("debezium", err)
		}
		b.rep.timing("Kafka Connect + Debezium", time.Since(phase))
	}

	// 5. Memory.
	if len(o.memory) > 0 && o.scenarios["memory"] {
		phase = time.Now()
		for _, n := range o.memory {
			label := fmt.Sprintf("memory, %d records", n)
			var res pointResult
			err := b.retry(ctx, label, func() error {
				d := b.d
				if n != o.records {
					d = dataset.New(n, max(1, n/5))
				}
				topic := fmt.Sprintf("bench-suite-%s-mem%d", b.stamp, b.nextID())
				defer s.dropTopics(topic, topic+".dlq")
				if err := broker.CreateTopic(ctx, s.adm, topic, 16); err != nil {
					return err
				}
				logf("  producing %d records to %s ...", n, topic)
				l, err := produce(ctx, s, d, topic, 16)
				if err != nil {
					return err
				}
				res, err = b.runPoint(ctx, point{16, 1, 16, 5000}, d, l, nil, 0)
				res.records = n
				return err
			}, func(a int) { res.attempts = a })
			if err != nil {
				b.rep.failed(label, err)
				continue
			}
			logf("  %s: %.0f records/s, max RSS %.0f MiB, %.1f s CPU", label, res.rate(), mib(res.maxRSS), res.cpu.Seconds())
			b.rep.memory = append(b.rep.memory, res)
		}
		b.rep.timing("memory", time.Since(phase))
	}

	b.rep.total = time.Since(started)
	if err := b.rep.write(o.out); err != nil {
		return err
	}
	if len(b.rep.failures) > 0 {
		return fmt.Errorf("%d measurement(s) failed: %s", len(b.rep.failures), strings.Join(b.rep.failures, "; "))
	}
	return nil
}

func (b *bench) debezium(ctx context.Context, src *dataset.Layout, topics *[]string) error {
	s := b.s
	dir, err := b.connectDir(ctx)
	if err != nil {
		return err
	}
	topic := fmt.Sprintf("bench-suite-%s-dbz-p%d", b.stamp, src.Parts)
	*topics = append(*topics, topic)
	err = b.retry(ctx, "produce envelope "+topic, func() error {
		s.dropTopics(topic)
		if err := broker.CreateTopic(ctx, s.adm, topic, int32(src.Parts)); err != nil {
			return err
		}
		return produceEnvelope(ctx, s, b.d, src, topic)
	}, nil)
	if err != nil {
		return err
	}
	for _, tuned := range []bool{false, true} {
		var res dbzResult
		label := "Kafka Connect + Debezium JDBC sink, defaults"
		if tuned {
			label = "Kafka Connect + Debezium JDBC sink, tuned"
		}
		err := b.retry(ctx, label, func() error {
			var err error
			res, err = b.runDebezium(ctx, dir, topic, src, tuned)
			return err
		}, func(a int) { res.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			if res.rowsAtEnd > 0 {
				b.rep.dbz = append(b.rep.dbz, res)
			}
			continue
		}
		logf("  %s: %.0f records/s (%.0f after start-up), peak %d connections", label, res.rate(), res.steadyRate(), res.peakConns)
		b.rep.dbz = append(b.rep.dbz, res)
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
