package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/netdelay"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// The network scenario: one worker drains the pre-produced
// -network-partitions topic with PostgreSQL across a simulated network
// (bench/internal/netdelay delays every chunk by half the round-trip time
// each way), the worker built from -network-baseline-root (old) against
// the suite's own (new), in pairs that alternate which goes first, per
// -network-rtt, plus one pair straight to the database as the reference.
// The figure is new/old records/s after start-up per round-trip time: the
// batch transaction's round trips cost more as the network gets slower.

// networkOptions are the scenario's flags.
type networkOptions struct {
	rttArg   string
	rtts     []time.Duration // -network-rtt, parsed by validate
	baseline string          // -network-baseline-root, absolute after validate
	parts    int             // -network-partitions
	pairs    int             // -network-pairs
	batch    int             // -network-batch: BATCH_MAX_RECORDS
}

func (n *networkOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&n.rttArg, "network-rtt", "1ms,5ms", "round-trip times the network scenario adds between the worker and PostgreSQL, half each way (comma-separated durations; a direct pair is always run as the reference)")
	fs.StringVar(&n.baseline, "network-baseline-root", "", "module root of the OLD tree the network scenario builds its baseline worker from (e.g. a copy of the previous commit); required with -scenarios network")
	fs.IntVar(&n.parts, "network-partitions", 8, "partitions of the network scenario's topic")
	fs.IntVar(&n.pairs, "network-pairs", 2, "old/new drain pairs of the network scenario per round-trip time, alternating which goes first")
	fs.IntVar(&n.batch, "network-batch", 5000, "BATCH_MAX_RECORDS of the network scenario's workers: small batches make each partition wait on its round trips (a low-rate topic), large ones let the database's work hide them")
}

// validate parses -network-rtt and checks every bound; the baseline tree
// only when the scenario is selected, since only then is it built.
func (n *networkOptions) validate(selected bool) error {
	var errs []error
	var err error
	if n.rtts, err = durations(n.rttArg); err != nil {
		errs = append(errs, fmt.Errorf("-network-rtt: %w", err))
	}
	if n.parts < 1 || n.pairs < 1 || n.batch < 1 {
		errs = append(errs, errors.New("-network-partitions, -network-pairs and -network-batch must be at least 1"))
	}
	if selected {
		if err := n.checkBaseline(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkBaseline makes -network-baseline-root absolute and checks it holds
// a module with cmd/sinkworker.
func (n *networkOptions) checkBaseline() error {
	if n.baseline == "" {
		return errors.New("-network-baseline-root is required with -scenarios network: the directory of the old module tree to build the baseline worker from")
	}
	abs, err := filepath.Abs(n.baseline)
	if err != nil {
		return fmt.Errorf("-network-baseline-root %s: %w", n.baseline, err)
	}
	n.baseline = abs
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return fmt.Errorf("-network-baseline-root %s: no such directory", abs)
	}
	for _, want := range []string{"go.mod", filepath.Join("cmd", "sinkworker")} {
		if _, err := os.Stat(filepath.Join(abs, want)); err != nil {
			return fmt.Errorf("-network-baseline-root %s: no %s in it; want the root of a sinkworker module tree", abs, want)
		}
	}
	return nil
}

// durations parses a comma-separated list of positive, distinct durations.
func durations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration such as 1ms", f)
		}
		if slices.Contains(out, d) {
			return nil, fmt.Errorf("%v twice", d)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("want at least one duration, e.g. 1ms,5ms")
	}
	return out, nil
}

// pgTarget is the host:port dsn connects to (its first host), for the proxy.
func pgTarget(dsn string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	if strings.HasPrefix(cfg.Host, "/") {
		return "", errors.New("the network scenario needs PostgreSQL over TCP, DATABASE_URL names a unix socket")
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), nil
}

// proxyDSN is dsn with its host and port replaced by addr (host:port) and
// everything else kept: user, password, database, parameters. A URL's
// host, port and hostaddr parameters are dropped; a keyword/value DSN gets
// host and port appended, which win over earlier ones. With
// sslmode=verify-full the proxy's address fails the host check. Errors
// never hold dsn, which holds the password.
func proxyDSN(dsn, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("proxy address %q: %w", addr, err)
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " host=" + host + " port=" + port, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("DATABASE_URL is not a valid URL") // url's error quotes the URL
	}
	u.Host = net.JoinHostPort(host, port)
	if q := u.Query(); q.Has("host") || q.Has("port") || q.Has("hostaddr") {
		q.Del("host")
		q.Del("port")
		q.Del("hostaddr")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// networkRun is one drain by one binary at one round-trip time.
type networkRun struct {
	pointResult
	binary string // old or new
	pair   int    // 1-based
}

// networkStep is the runs at one round-trip time.
type networkStep struct {
	rtt                  time.Duration // added; 0: straight to the database
	measured             time.Duration // median SELECT 1 round trip through it
	runs                 []networkRun
	ratios, steadyRatios []float64 // new/old per complete pair
}

func (s networkStep) name() string {
	if s.rtt == 0 {
		return "direct"
	}
	return "RTT " + s.rtt.String()
}

// networkResult is the scenario's measurements.
type networkResult struct {
	parts, records int
	batch          int    // BATCH_MAX_RECORDS
	old, new       string // module roots, with their commits
	steps          []networkStep
}

// network runs the scenario on l's topic: the direct reference pair, then
// -network-pairs pairs at each -network-rtt. A failed run is in the
// report's failures and the others go on.
func (b *bench) network(ctx context.Context, l *dataset.Layout) *networkResult {
	o := b.o.network
	newRoot := b.rep.root
	if b.o.workerRoot != "" {
		newRoot = b.o.workerRoot
	}
	res := &networkResult{parts: l.Parts, records: b.d.N, batch: o.batch, old: describeTree(ctx, o.baseline), new: describeTree(ctx, newRoot)}
	target, err := pgTarget(b.s.dsn)
	if err != nil {
		b.rep.failed("network", err)
		return res
	}
	for _, rtt := range append([]time.Duration{0}, o.rtts...) {
		step, err := b.networkAt(ctx, l, target, rtt)
		res.steps = append(res.steps, step)
		if err != nil {
			b.rep.failed("network "+step.name(), err)
		}
	}
	return res
}

// networkAt runs the pairs at one round-trip time (rtt 0: one pair, direct).
func (b *bench) networkAt(ctx context.Context, l *dataset.Layout, target string, rtt time.Duration) (networkStep, error) {
	step := networkStep{rtt: rtt}
	dsn, pairs := b.s.dsn, 1
	if rtt > 0 {
		p, err := netdelay.Start(ctx, "127.0.0.1:0", target, rtt/2)
		if err != nil {
			return step, err
		}
		defer p.Close()
		if dsn, err = proxyDSN(b.s.dsn, p.Addr()); err != nil {
			return step, err
		}
		pairs = b.o.network.pairs
	}
	var err error
	if step.measured, err = roundTrip(ctx, dsn); err != nil {
		return step, fmt.Errorf("SELECT 1 round trip: %w", err)
	}
	logf("  network %s: SELECT 1 takes %s (median of 20)", step.name(), step.measured.Round(10*time.Microsecond))
	bins := map[string]string{"old": b.oldBin, "new": b.workerBin}
	pt := point{l.Parts, 1, min(16, l.Parts), b.o.network.batch}
	for pair := 1; pair <= pairs; pair++ {
		order := []string{"new", "old"}
		if pair%2 == 0 {
			order = []string{"old", "new"}
		}
		got := map[string]networkRun{}
		for _, bin := range order {
			label := fmt.Sprintf("network %s, pair %d/%d, %s", step.name(), pair, pairs, bin)
			run := networkRun{binary: bin, pair: pair}
			err := b.retry(ctx, label, func() error {
				var err error
				run.pointResult, err = b.runPointWith(ctx, workerCmd{bin: bins[bin], dsn: dsn}, pt, b.d, l, 0)
				return err
			}, func(a int) { run.attempts = a })
			if err != nil {
				b.rep.failed(label, err)
				continue
			}
			logf("  %s: %.0f records/s, %.0f after start-up (first commit at %.1f s), %.1f s CPU",
				label, run.rate(), run.steadyRate(), run.firstCommit.Seconds(), run.cpu.Seconds())
			step.runs = append(step.runs, run)
			got[bin] = run
		}
		oldRun, okOld := got["old"]
		newRun, okNew := got["new"]
		if okOld && okNew {
			step.ratios = append(step.ratios, newRun.rate()/oldRun.rate())
			step.steadyRatios = append(step.steadyRatios, newRun.steadyRate()/oldRun.steadyRate())
		}
	}
	return step, nil
}

// roundTrip is the median time of 20 sequential SELECT 1 on one connection
// to dsn, after one to warm it up.
func roundTrip(ctx context.Context, dsn string) (time.Duration, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, errors.New("not a valid pgx connection string")
	}
	cfg.RuntimeParams["application_name"] = "bench-suite-network"
	cn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer cn.Close(context.Background())
	took := make([]time.Duration, 0, 20)
	for i := range 21 {
		start := time.Now()
		var one int
		if err := cn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return 0, err
		}
		if i > 0 {
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	return took[len(took)/2], nil
}

// describeTree is a module root with its commit, for the report.
func describeTree(ctx context.Context, root string) string {
	commit, changed := testbed.Code(ctx, root)
	switch {
	case commit == "":
		return root + " (not a git tree)"
	case len(changed) > 0:
		return root + " (commit " + commit + " with uncommitted changes outside bench/)"
	}
	return root + " (commit " + commit + ")"
}

func (n *networkResult) markdown(w func(string, ...any)) {
	w("Two worker binaries drain the same pre-produced %d-record, %d-partition topic: **old** built from %s, **new** the suite's own from %s. "+
		"Each run is one worker, POOL_MAX_CONNS %d, BATCH_MAX_RECORDS %d (plus -env), a fresh group and table, the table checked after, timed as the drain scenario does; "+
		"the worker's DATABASE_URL points at a TCP proxy on 127.0.0.1 (bench/internal/netdelay) that releases every chunk half the round-trip time after reading it, each way, while the harness polls sink_offsets directly. "+
		"Runs go in pairs, new first in odd pairs and old first in even ones; **direct** is one pair without the proxy. Measured round trip: the median of 20 sequential SELECT 1 on one connection by the same path; it is the network the runs saw, and it exceeds the nominal RTT by the proxy's timer lateness.",
		n.records, n.parts, n.old, n.new, min(16, n.parts), n.batch)
	w("")
	w("| network | measured round trip | pair | binary | records/s | after start-up | first commit | CPU s | peak conns | attempts |")
	w("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range n.steps {
		for _, r := range s.runs {
			w("| %s | %.2f ms | %d | %s | %.0f | %.0f | %.2f s | %.1f | %d | %d |", s.name(), float64(s.measured)/float64(time.Millisecond),
				r.pair, r.binary, r.rate(), r.steadyRate(), r.firstCommit.Seconds(), r.cpu.Seconds(), r.peakConns, r.attempts)
		}
	}
	w("")
	for _, s := range n.steps {
		if len(s.steadyRatios) == 0 {
			w("- %s: no complete pair, no ratio", s.name())
			continue
		}
		per := make([]string, len(s.steadyRatios))
		for i := range s.steadyRatios {
			per[i] = fmt.Sprintf("%.2f (%.2f)", s.steadyRatios[i], s.ratios[i])
		}
		w("- %s: new / old per pair after start-up (from process start) %s; **median after start-up %.2f** (from process start %.2f)",
			s.name(), strings.Join(per, ", "), medianF(s.steadyRatios), medianF(s.ratios))
	}
	w("")
}

func (n *networkResult) summary() string {
	var at []string
	for _, s := range n.steps {
		if len(s.steadyRatios) > 0 {
			at = append(at, fmt.Sprintf("%s (SELECT 1 %.2f ms) **%.2f** (%s)", s.name(), float64(s.measured)/float64(time.Millisecond),
				medianF(s.steadyRatios), plural(len(s.steadyRatios), "pair")))
		}
	}
	if len(at) == 0 {
		return "**network, new / old**: no complete pair"
	}
	return fmt.Sprintf("**network, new / old** records/s after start-up at %d partitions (median): %s", n.parts, strings.Join(at, "; "))
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
