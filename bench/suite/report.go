package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

type ceilingResult struct {
	parts    int // the topic's partition count: its records, its de-duplication
	conns    int
	rows     int // rows written after in-batch de-duplication
	time     time.Duration
	attempts int
}

func (c ceilingResult) rate(n int) float64 { return rate(int64(n), c.time) }

type report struct {
	o       options
	started time.Time
	root    string
	total   time.Duration

	machine, postgres, code string
	distinctKeys            int

	ceiling   []ceilingResult
	points    []pointResult
	naive     []naiveResult
	dbz       []dbzResult
	memory    []pointResult
	drain     *drainResult
	rebalance *rebalanceResult
	formats   *formatsResult
	limit     *limitResult
	network   *networkResult
	peers     *peersResult
	phases    []string
	noise     []string
	failures  []string
}

func (r *report) timing(phase string, d time.Duration) {
	r.phases = append(r.phases, fmt.Sprintf("%s %.0f s", phase, d.Seconds()))
}

func (r *report) failed(label string, err error) {
	logf("  %s: FAILED: %v", label, err)
	r.failures = append(r.failures, label+": "+firstLine(err.Error()))
}

func (r *report) describe(ctx context.Context, s *services) error {
	r.machine = testbed.Machine()
	var err error
	r.postgres, err = testbed.Postgres(ctx, s.db, "shared_buffers", "synchronous_commit", "fsync", "max_connections")
	if err != nil {
		return err
	}
	commit, changed := testbed.Code(ctx, r.root)
	r.code = "commit " + commit
	if len(changed) > 0 {
		r.code += " with uncommitted changes outside bench/"
	}
	return nil
}

// ceilingAt is the ceiling rate on the P-partition topic at c connections
// (the nearest measured count at or below).
func (r *report) ceilingAt(P, c int) (float64, int) {
	best, at := 0.0, 0
	for _, x := range r.ceiling {
		if x.parts == P && x.conns <= c && x.conns >= at {
			best, at = x.rate(r.o.records), x.conns
		}
	}
	return best, at
}

// reference is the sinkworker point the ratios use: POOL 16 (the default
// before auto), BATCH 5000, one worker at P partitions, i.e. POOL=min(16,P).
func (r *report) reference(P int) (pointResult, bool) {
	for _, p := range r.points {
		if p.parts == P && p.workers == 1 && p.batch == 5000 && p.pool == min(16, P) {
			return p, true
		}
	}
	// Else the best single-worker point at P.
	var best pointResult
	ok := false
	for _, p := range r.points {
		if p.parts == P && p.workers == 1 && (!ok || p.rate() > best.rate()) {
			best, ok = p, true
		}
	}
	return best, ok
}

func (r *report) markdown(base string) string {
	o := r.o
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Bench suite: sinkworker, the database ceiling, a naive consumer and Kafka Connect + Debezium, %s", r.started.Format("2006-01-02 15:04 MST"))
	w("")
	w("Command (module root, after `scripts/services up && eval \"$(scripts/services env)\"`):")
	w("")
	w("    %s", testbed.Command("./bench/suite", os.Args[1:]))
	w("")
	w("- Machine: %s", r.machine)
	w("- Database: %s", r.postgres)
	w("- Broker: Kafka at %s (single node, same machine); every process below shares the same CPUs", os.Getenv("KAFKA_BROKERS"))
	w("- Code: %s", r.code)
	w("- Data: %d records per topic, keys drawn uniformly (fixed seed) from %d (%d distinct), values ~%d-byte JSON, no tombstones; one topic per partition count %v, the same records in each", o.records, o.keys, r.distinctKeys, dataset.ValueSize, o.partitions)
	if len(o.env) > 0 {
		w("- Every worker's settings: defaults except %s (and what each scenario sets)", strings.Join(o.env, " "))
	}
	w("- Sweep: %s; latency runs of %s at half each point's drain rate; naive consumer for %s", map[bool]string{true: "full", false: "default subset (-full for all)"}[o.full], o.latency, o.naiveTime)
	w("- Time: %.0f s in all (%s)", r.total.Seconds(), strings.Join(r.phases, ", "))
	w("- Files: %s.csv (every figure), %s-throughput.png", base, base)
	w("")

	section := func(scenario, title string) bool {
		if !o.scenarios[scenario] {
			return false
		}
		w("### %s", title)
		w("")
		return true
	}
	if section("ceiling", "1. Ceiling: the writer's unnest statement straight into PostgreSQL") {
		r.ceilingSection(w)
	}
	if section("sweep", "2. sinkworker sweep") {
		r.sweepSection(w)
	}
	if section("naive", "3. Naive consumer (bench/naive)") {
		r.naiveSection(w)
	}
	if section("debezium", "4. Kafka Connect standalone + Debezium JDBC sink "+debeziumVersion) {
		r.debeziumSection(w)
	}
	if section("memory", "5. Memory with default settings (16 partitions, POOL auto, BATCH 5000)") {
		r.memorySection(w)
	}
	if section("drain", "6. Drain: one worker with its defaults against the ceiling, start-up left out") {
		r.drainSection(w)
	}
	if o.scenarios["rebalance"] && r.rebalance != nil {
		r.rebalance.markdown(w)
	}
	if o.scenarios["formats"] && r.formats != nil {
		w("### 8. Formats: the same records as JSON and as Avro into a typed table")
		w("")
		r.formats.markdown(w)
	}
	if o.scenarios["limit"] && r.limit != nil {
		w("### 9. Limit: the fastest way PostgreSQL takes the rows (COPY, unnest, MERGE)")
		w("")
		r.limit.markdown(w, o.partitions)
	}
	if o.scenarios["network"] && r.network != nil {
		w("### 10. Network: old vs new batch transaction across a simulated network")
		w("")
		r.network.markdown(w)
	}
	if o.scenarios["peers"] && r.peers != nil {
		w("### 11. Peers' benchmark shape: sinkworker against the Debezium JDBC sink")
		w("")
		r.peers.markdown(w)
	}
	r.tail(w)
	return b.String()
}

func (r *report) ceilingSection(w func(string, ...any)) {
	o := r.o
	w("Per partition count, the records of that topic (keys fall into partitions as the producer put them, so in-batch de-duplication differs: rows written below), batches of 5000 consecutive records of one partition de-duplicated as the writer does, one transaction per batch, connection i writes partitions p with p %% conns == i, from memory, after a CHECKPOINT. records/s counts records, as the sink's figures do.")
	w("")
	w("| partitions | connections | rows written | time | records/s |")
	w("| ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.ceiling {
		w("| %d | %d | %d | %.2f s | %.0f |", c.parts, c.conns, c.rows, c.time.Seconds(), c.rate(o.records))
	}
	w("")
}

func (r *report) sweepSection(w func(string, ...any)) {
	o := r.o
	w("Worker binary (`go build ./cmd/sinkworker`) as child processes, fresh group and table per point; time from start until sink_offsets covers every record (polled every %s). Connections: peak of pg_stat_activity `sinkworker/<group>/%%`. After start-up: records committed after the first poll showing a commit, over the time since. CPU: user+system of all worker processes; RSS: the largest worker's peak resident set (VmHWM, read before SIGTERM). Latency: a fresh topic of the same partition count, produced at half the point's drain rate for %s once the group is stable; per record, produce time to the first 10 ms poll of sink_offsets that shows it committed.", pollInterval, o.latency)
	w("")
	if r.limit != nil {
		w("")
		w("/ limit: records/s after start-up over the limit scenario's fastest method for this mode at the point's connection count (same partitions), and over its fastest at any connection count (section Limit).")
	}
	w("")
	roundCol, roundSep := "", ""
	if o.rounds > 1 {
		roundCol, roundSep = " round |", " ---: |"
		w("Rounds: %d; every point is measured once per round, the rounds one after the other, and latency only in the first.", o.rounds)
		w("")
	}
	w("|%s partitions | workers | POOL_MAX_CONNS | BATCH_MAX_RECORDS | records/s | / ceiling (P, conns) | after start-up | / limit at conns | / best limit | peak conns | CPU s | max RSS MiB | latency p50 | p99 | at records/s | attempts |", roundCol)
	w("|%s ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", roundSep)
	for _, p := range r.points {
		c, at := r.ceilingAt(p.parts, max(1, p.conns()))
		ratio, steady := "-", fmt.Sprintf("%.0f", p.steadyRate())
		if c > 0 {
			ratio = fmt.Sprintf("%.2f (%d)", p.rate()/c, at)
			steady += fmt.Sprintf(" (%.2f)", p.steadyRate()/c)
		}
		atConns, best := "-", "-"
		if l, ok := r.limitFor(p.parts, max(1, p.conns())); ok {
			atConns = fmt.Sprintf("%.2f", p.steadyRate()/l.rate(r.limit.records))
		}
		if l, ok := r.limitFor(p.parts, 0); ok {
			best = fmt.Sprintf("%.2f (%d)", p.steadyRate()/l.rate(r.limit.records), l.conns)
		}
		round, lat := "", "| - | - | - |"
		if o.rounds > 1 {
			round = fmt.Sprintf(" %d |", p.round)
		}
		if p.latN > 0 {
			lat = fmt.Sprintf("| %s | %s | %.0f |", ms(p.p50), ms(p.p99), p.latRate)
		}
		w("|%s %d | %d | %s | %d | %.0f | %s | %s | %s | %s | %d | %.1f | %.0f %s %d |", round, p.parts, p.workers, poolSetting(p.pool), p.batch,
			p.rate(), ratio, steady, atConns, best, p.peakConns, p.cpu.Seconds(), mib(p.maxRSS), lat, p.attempts)
	}
	w("")
	r.writeAuto(w)
}

// writeAuto compares each POOL_MAX_CONNS=auto point with the best fixed
// POOL_MAX_CONNS and 16 (the default before auto) of the same partitions,
// workers and batch size, measured in the same run. Over several rounds each setting's
// figure is its median, and the per-round ratios are listed beside it.
func (r *report) writeAuto(w func(string, ...any)) {
	type cell struct{ parts, workers, batch, pool int }
	rates := map[cell]map[int]float64{} // by round
	var autos []cell
	peak := map[cell]int{} // connections, over the rounds
	for _, p := range r.points {
		c := cell{p.parts, p.workers, p.batch, p.pool}
		peak[c] = max(peak[c], p.peakConns)
		if rates[c] == nil {
			rates[c] = map[int]float64{}
			if p.pool == autoPool {
				autos = append(autos, c)
			}
		}
		rates[c][p.round] = p.rate()
	}
	median := func(byRound map[int]float64) float64 { return medianF(slices.Collect(maps.Values(byRound))) }
	var rows []string
	for _, a := range autos {
		best, def := cell{pool: 0}, cell{pool: 0}
		for c := range rates {
			if c.pool == autoPool || c.parts != a.parts || c.workers != a.workers || c.batch != a.batch {
				continue
			}
			if best.pool == 0 || median(rates[c]) > median(rates[best]) {
				best = c
			}
			if c.pool == min(16, c.parts) {
				def = c
			}
		}
		if best.pool == 0 {
			continue
		}
		auto := median(rates[a])
		vsDefault := "-"
		if def.pool != 0 {
			vsDefault = fmt.Sprintf("%.2f", auto/median(rates[def]))
		}
		var perRound []string // auto over the best fixed setting of the same round
		for _, round := range slices.Sorted(maps.Keys(rates[a])) {
			top := 0.0
			for c, byRound := range rates {
				if c.pool != autoPool && c.parts == a.parts && c.workers == a.workers && c.batch == a.batch {
					top = max(top, byRound[round])
				}
			}
			if top > 0 {
				perRound = append(perRound, fmt.Sprintf("%.2f", rates[a][round]/top))
			}
		}
		rows = append(rows, fmt.Sprintf("| %d | %d | %d | %.0f | %.0f (%d) | **%.2f** | %s | %s | %d |", a.parts, a.workers, a.batch,
			auto, median(rates[best]), best.pool, auto/median(rates[best]), vsDefault, strings.Join(perRound, ", "), peak[a]))
	}
	if len(rows) == 0 {
		return
	}
	w("### POOL_MAX_CONNS=auto against the fixed settings of the same run")
	w("")
	if r.o.rounds > 1 {
		w("Each setting's records/s is its median over the %d rounds; the best fixed setting is the one with the highest median. Per round: auto over the fastest fixed setting of that round (the maximum of several noisy figures, so it leans low).", r.o.rounds)
		w("")
	}
	w("| partitions | workers | batch | auto records/s | best fixed records/s (POOL_MAX_CONNS) | auto / best | auto / 16 (the default before auto) | auto / best, per round | auto peak conns |")
	w("|---|---|---|---|---|---|---|---|---|")
	for _, row := range rows {
		w("%s", row)
	}
	w("")
}

// limitFor is the limit scenario's fastest run for the sweep's mode at P
// partitions and conns connections (0: any).
func (r *report) limitFor(P, conns int) (limitRun, bool) {
	if r.limit == nil {
		return limitRun{}, false
	}
	mode := "upsert"
	if r.o.insert {
		mode = "insert"
	}
	return r.limit.best(mode, P, conns)
}

func (r *report) naiveSection(w func(string, ...any)) {
	w("One process, one consumer thread per partition, one shared pool of 10 opened eagerly (HikariCP's default), one transaction per record, Kafka commit after each poll. It runs for %s (or until every record is applied); records/s from the first applied record.", r.o.naiveTime)
	w("")
	w("| partitions | consumer threads | pool | records applied | records/s | peak conns | CPU s | max RSS MiB |")
	w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, n := range r.naive {
		w("| %d | %d | %d | %d | %.0f | %d | %.1f | %.0f |", n.parts, n.consumers, n.pool, n.records, n.rate(), n.peakConns, n.cpu.Seconds(), mib(n.maxRSS))
	}
	w("")
}

func (r *report) debeziumSection(w func(string, ...any)) {
	if !r.o.debezium {
		w("Not run (-debezium=false).")
	} else {
		w("connect-runtime/connect-json 4.3.1 (bench/connect/pom.xml), plugin io.debezium:debezium-connector-jdbc:%s:tar.gz:plugin on plugin.path; JsonConverter with schemas.enable=true on a topic with the same records (same partitions and offsets) in the JSON-with-schema envelope (key struct {key}, value struct {value: io.debezium.data.Json, kafka_partition, kafka_offset, kafka_timestamp: ZonedTimestamp}); insert.mode=upsert, primary.key.mode=record_key into a table of the sink's shape; offset.flush.interval.ms=1000; JVM -Xmx1g. Done when the table holds every key at its highest offset (polled every 250 ms).", debeziumVersion)
		w("")
		w("| run | settings | partitions | records/s (from JVM start) | records/s (from first row) | start-up | peak conns | CPU s | max RSS MiB |")
		w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, d := range r.dbz {
			if !d.finished {
				w("| %s | %s | %d | not finished (%d rows) | | | %d | | |", d.name, d.settings, d.parts, d.rowsAtEnd, d.peakConns)
				continue
			}
			w("| %s | %s | %d | %.0f | %.0f | %.1f s | %d | %.1f | %.0f |", d.name, d.settings, d.parts, d.rate(), d.steadyRate(),
				d.firstRow.Seconds(), d.peakConns, d.cpu.Seconds(), mib(d.maxRSS))
		}
	}
	w("")
}

func (r *report) memorySection(w func(string, ...any)) {
	o := r.o
	if len(r.memory) == 0 {
		w("Not run.")
	} else {
		w("| records | records/s | max RSS MiB | CPU s |")
		w("| ---: | ---: | ---: | ---: |")
		for _, m := range r.memory {
			w("| %d | %.0f | %.0f | %.1f |", m.records, m.rate(), mib(m.maxRSS), m.cpu.Seconds())
		}
		if len(r.memory) > 1 {
			a, z := r.memory[0], r.memory[len(r.memory)-1]
			w("")
			w("Peak RSS at %d records is %.2fx that at %d.", z.records, float64(z.maxRSS)/float64(max(1, a.maxRSS)), a.records)
		}
		if !slices.Contains(o.memory, 10_000_000) {
			w("")
			w("10,000,000 records were not run (-memory-10m).")
		}
	}
	w("")
}

// drainSection is the drain scenario's table: the figure bench/drain used
// to give, the worker's rate against the ceiling with start-up left out.
func (r *report) drainSection(w func(string, ...any)) {
	d := r.drain
	if d == nil {
		w("Failed (see below).")
		w("")
		return
	}
	n := int64(d.records)
	w("The worker binary with its defaults (upsert unless -env SINK_MODE=insert; POOL_MAX_CONNS %s, BATCH_MAX_RECORDS 5000) drains the pre-produced %d-partition topic into a fresh table (time from start until sink_offsets covers every record; after start-up: from the first poll showing a commit), then the same rows go straight into PostgreSQL, %d connections (one per partition), batches of 5000 consecutive records of one partition de-duplicated as the writer does, after a CHECKPOINT: the write statement alone per batch (the ceiling), and the writer's whole transaction (lock the sink_offsets row, write, advance it). Every table is checked against what the records imply.", poolSetting(d.pool), d.parts, d.parts)
	w("")
	w("| figure | time | records/s | sink / this |")
	w("| --- | ---: | ---: | ---: |")
	ceil, tx := rate(n, d.ceiling), rate(n, d.writerTx)
	w("| **sink drain**, worker start to every offset in sink_offsets | %.2f s | **%.0f** | |", d.drain.Seconds(), d.rate())
	w("| sink after start-up (first commit seen at %.2f s) | %.2f s | %.0f | |", d.firstCommit.Seconds(), (d.drain - d.firstCommit).Seconds(), d.steadyRate())
	w("| **ceiling**: write statement alone, %d rows | %.2f s | **%.0f** | **%.2f** (after start-up **%.2f**) |", d.rows, d.ceiling.Seconds(), ceil, d.rate()/ceil, d.steadyRate()/ceil)
	w("| ceiling with the writer's whole transaction | %.2f s | %.0f | %.2f (after start-up %.2f) |", d.writerTx.Seconds(), tx, d.rate()/tx, d.steadyRate()/tx)
	w("")
	w("Peak connections %d; longest time without progress after the first commit %.2f s; CPU %.1f s; max RSS %.0f MiB; worker log %d lines at LOG_LEVEL=warn; exit 0 after SIGTERM.",
		d.peakConns, d.stall.Seconds(), d.cpu.Seconds(), mib(d.maxRSS), d.logLines)
	w("")
}

// tail is the summary, the reruns and the failures.
func (r *report) tail(w func(string, ...any)) {
	w("### Summary")
	w("")
	for _, line := range r.summary() {
		w("- %s", line)
	}
	w("")
	if len(r.noise) > 0 {
		w("### Noise and reruns")
		w("")
		w("A failed measurement, or one during which PostgreSQL's start time or the broker's pid changed (other work restarts them), was measured again:")
		w("")
		for _, n := range r.noise {
			w("- %s", n)
		}
		w("")
	}
	if len(r.failures) > 0 {
		w("### Failed")
		w("")
		for _, f := range r.failures {
			w("- %s", f)
		}
		w("")
	}
	w("Every process (broker, PostgreSQL, the harness, the system under test) runs on the same %d CPUs: figures compare designs on this machine, not absolute capacity. Run-to-run variation on such a machine is easily 10-30%%.", runtime.NumCPU())
}

func (r *report) summary() []string {
	var out []string
	if d := r.drain; d != nil {
		ceil := rate(int64(d.records), d.ceiling)
		out = append(out, fmt.Sprintf("**drain / ceiling** at %d partitions: **%.2f**, after start-up **%.2f** (%.0f and %.0f / %.0f records/s)",
			d.parts, d.rate()/ceil, d.steadyRate()/ceil, d.rate(), d.steadyRate(), ceil))
	}
	if r.formats != nil {
		out = append(out, r.formats.summary())
	}
	if r.limit != nil {
		out = append(out, r.limit.summary(r.o.partitions)...)
	}
	if r.network != nil {
		out = append(out, r.network.summary())
	}
	if r.peers != nil {
		out = append(out, r.peers.summary())
	}
	// sink / ceiling, for every partition count, at POOL_MAX_CONNS 16.
	for _, P := range r.o.partitions {
		p, ok := r.reference(P)
		if !ok {
			continue
		}
		if l, ok := r.limitFor(P, max(1, p.conns())); ok {
			line := fmt.Sprintf("**sink / limit** at %d partitions (%s), after start-up: **%.2f** at its %d connections (%.0f / %.0f records/s, %s)",
				P, p.point, p.steadyRate()/l.rate(r.limit.records), l.conns, p.steadyRate(), l.rate(r.limit.records), l.method)
			if top, ok := r.limitFor(P, 0); ok {
				line += fmt.Sprintf(", %.2f against the best connection count (%.0f records/s, %s at %d)",
					p.steadyRate()/top.rate(r.limit.records), top.rate(r.limit.records), top.method, top.conns)
			}
			out = append(out, line)
		}
		c, at := r.ceilingAt(P, max(1, p.conns()))
		if c > 0 {
			out = append(out, fmt.Sprintf("**sink / ceiling** at %d partitions (%s): **%.2f** (%.0f / %.0f records/s at %d connections); %.2f leaving out the worker's start-up (%.0f records/s after its first commit at %.1f s)",
				P, p.point, p.rate()/c, p.rate(), c, at, p.steadyRate()/c, p.steadyRate(), p.firstCommit.Seconds()))
		}
	}
	if len(r.ceiling) > 0 && len(r.points) > 0 {
		best := slices.MaxFunc(r.points, func(a, b pointResult) int { return cmpF(a.rate(), b.rate()) })
		var topC ceilingResult
		for _, c := range r.ceiling {
			if c.parts == best.parts && c.rate(r.o.records) > topC.rate(r.o.records) {
				topC = c
			}
		}
		if topC.conns > 0 {
			out = append(out, fmt.Sprintf("best sink point %s: %.0f records/s = %.2f of the best ceiling at %d partitions (%.0f at %d connections)", best.point, best.rate(), best.rate()/topC.rate(r.o.records), best.parts, topC.rate(r.o.records), topC.conns))
		}
	}
	for _, d := range r.dbz {
		if !d.finished {
			continue
		}
		if p, ok := r.reference(d.parts); ok {
			out = append(out, fmt.Sprintf("**sink / Debezium %s** at %d partitions: **%.2f** from process start (%.0f / %.0f records/s); %.2f excluding both start-ups (%.0f / %.0f)",
				d.name, d.parts, p.rate()/d.rate(), p.rate(), d.rate(), p.steadyRate()/d.steadyRate(), p.steadyRate(), d.steadyRate()))
		}
	}
	for _, n := range r.naive {
		if p, ok := r.reference(n.parts); ok {
			out = append(out, fmt.Sprintf("**sink / naive** at %d partitions: **%.1f** (%.0f / %.0f records/s)", n.parts, p.rate()/n.rate(), p.rate(), n.rate()))
		}
	}
	// Connections at 64 partitions.
	const P = 64
	var conns []string
	if p, ok := r.reference(P); ok {
		conns = append(conns, fmt.Sprintf("sinkworker (POOL_MAX_CONNS=%d, 1 worker) measured %d; with k workers at most min(64, k x POOL_MAX_CONNS)", p.pool, p.peakConns))
	} else {
		conns = append(conns, "sinkworker: max(1, min(assigned partitions, POOL_MAX_CONNS)) per worker, so at most 64 with the default (auto) and min(64, 16 x workers) with POOL_MAX_CONNS=16")
	}
	for _, n := range r.naive {
		if n.parts == P {
			conns = append(conns, fmt.Sprintf("naive consumer measured %d per process (pool of 10 whatever the partitions; 64 one-thread replicas would hold 640)", n.peakConns))
		}
	}
	for _, d := range r.dbz {
		what := "tasks.max=1: 5 to 32 (c3p0 min/max) whatever the partitions"
		if d.name == "tuned" {
			what = "tasks.max=64 with a pool of 1-2 per task: 64 to 128"
		}
		conns = append(conns, fmt.Sprintf("Debezium %s: measured %d at %d partitions; at 64 by design %s", d.name, d.peakConns, d.parts, what))
	}
	out = append(out, "**Connections at 64 partitions**: "+strings.Join(conns, "; "))
	// Pool sizing.
	for _, P := range r.o.partitions {
		var cands []pointResult
		for _, p := range r.points {
			if p.parts == P && p.workers == 1 && p.batch == 5000 {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			continue
		}
		best := slices.MaxFunc(cands, func(a, b pointResult) int { return cmpF(a.rate(), b.rate()) })
		slices.SortFunc(cands, func(a, b pointResult) int { return a.pool - b.pool })
		for _, c := range cands {
			if c.rate() >= 0.95*best.rate() {
				out = append(out, fmt.Sprintf("**pool sizing** at %d partitions: POOL_MAX_CONNS=%s (%.0f records/s, within 5%% of the best %.0f at POOL_MAX_CONNS=%s)", P, poolSetting(c.pool), c.rate(), best.rate(), poolSetting(best.pool)))
				break
			}
		}
	}
	return out
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
