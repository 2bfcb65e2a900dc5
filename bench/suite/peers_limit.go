package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// The peers scenario's limit: the rows sinkworker's run writes, straight
// from memory into a fresh table of its insert shape by binary COPY (pgx
// CopyFrom), one COPY of peersLimitBatch consecutive records of one
// partition per transaction. No Kafka, no decoding, no offsets: what this
// PostgreSQL takes of these rows at best, which bounds every sink.
//
// The rows are not held in memory (10M rows of Go values are several GB):
// each connection rebuilds a batch's rows from the record indexes into a
// buffer it reuses, then copies them. That generation runs inside the
// timed loop, so it is also measured alone (peersLimitGenerate) and
// reported beside the limit, with the client's CPU during each run.

// peersLimitBatch is the records per COPY: sinkworker's default
// BATCH_MAX_RECORDS.
const peersLimitBatch = 5000

// peersLimitRun is one limit measurement.
type peersLimitRun struct {
	conns     int
	time      time.Duration // from the first COPY to the last commit
	clientCPU time.Duration // this process's CPU (user + system) in that time: generation and COPY encoding
	attempts  int
}

// peersLimitConns are the connection counts measured: one per partition
// (connection i writes partition i), and 2, which on a 2-core machine
// often goes faster.
func peersLimitConns(parts int) []int {
	if parts > 2 {
		return []int{parts, 2}
	}
	return []int{parts}
}

// peersRows is one batch of rows as the insert table takes them, rebuilt
// from the record indexes into buffers reused from batch to batch.
type peersRows struct {
	topic string
	parts int
	part  int32
	buf   []byte
	cut   []int // row j's key is buf[cut[2j]:cut[2j+1]], its value buf[cut[2j+1]:cut[2j+2]]
	off   []int64
	row   []any // CopyFrom encodes each row before asking for the next
}

func newPeersRows(topic string, parts, size int) *peersRows {
	return &peersRows{topic: topic, parts: parts, buf: make([]byte, 0, size*(peersPayloadSize+64)),
		cut: make([]int, 0, 2*size+1), off: make([]int64, 0, size), row: make([]any, 6)}
}

// fill makes the rows of partition p's n records from offset from on:
// record i = offset * parts + p, as producePeers placed it.
func (r *peersRows) fill(p int, from int64, n int) {
	r.part, r.buf, r.cut, r.off = int32(p), r.buf[:0], append(r.cut[:0], 0), r.off[:0]
	for o := from; o < from+int64(n); o++ {
		i := int(o)*r.parts + p
		r.buf = appendPeersKeyText(r.buf, i)
		r.cut = append(r.cut, len(r.buf))
		r.buf = appendPeersDecoded(r.buf, i)
		r.cut = append(r.cut, len(r.buf))
		r.off = append(r.off, o)
	}
}

// at is row j in the insert table's column order (peersLimitColumns). The
// timestamp is the record's created time; the produced records carry
// their produce time, which is as wide.
func (r *peersRows) at(j int) ([]any, error) {
	i := int(r.off[j])*r.parts + int(r.part)
	r.row[0], r.row[1], r.row[2] = r.topic, r.part, r.off[j]
	r.row[3], r.row[4] = r.buf[r.cut[2*j]:r.cut[2*j+1]], r.buf[r.cut[2*j+1]:r.cut[2*j+2]] // text, and raw JSON for jsonb
	r.row[5] = time.UnixMilli(peersEpoch + int64(i))
	return r.row, nil
}

var peersLimitColumns = []string{"kafka_topic", "kafka_partition", "kafka_offset", "key", "value", "kafka_timestamp"}

// peersLimitEach calls fn for connection c of conns with each batch it
// writes: the batches of partitions p with p % conns == c, one batch of
// each in turn, as a worker's partitions progress together.
func peersLimitEach(records, parts, conns, c, size int, fn func(p int, from int64, n int) error) error {
	for from := int64(0); ; from += int64(size) {
		more := false
		for p := c; p < parts; p += conns {
			if left := peersCount(records, parts, p) - from; left > 0 {
				if err := fn(p, from, int(min(left, int64(size)))); err != nil {
					return err
				}
				more = true
			}
		}
		if !more {
			return nil
		}
	}
}

// peersLimitGenerate is how long one goroutine takes to build every
// batch's rows without writing them: the generation the limit runs do
// inside their time.
func peersLimitGenerate(topic string, records, parts int) time.Duration {
	rows := newPeersRows(topic, parts, peersLimitBatch)
	start := time.Now()
	_ = peersLimitEach(records, parts, 1, 0, peersLimitBatch, func(p int, from int64, n int) error {
		rows.fill(p, from, n)
		return nil
	})
	return time.Since(start)
}

// peersLimit writes every record's row with conns connections into a
// fresh insert table, after a CHECKPOINT, and checks the table.
func (b *bench) peersLimit(ctx context.Context, topic string, res *peersResult, conns int) (peersLimitRun, error) {
	run := peersLimitRun{conns: conns}
	_, _, table := b.fresh()
	defer func() {
		if !b.o.keep {
			b.s.dropTable(table)
		}
	}()
	if err := sinkdb.EnsureTable(ctx, b.s.db, topic, table, true); err != nil {
		return run, err
	}
	cns, closeAll, err := b.connectN(ctx, conns, "bench-suite-peers-limit")
	if err != nil {
		return run, err
	}
	defer closeAll()
	if _, err := cns[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return run, fmt.Errorf("checkpoint: %w", err)
	}
	ident := pgx.Identifier{table}
	errs := make([]error, conns)
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for c, cn := range cns {
		wg.Go(func() {
			rows := newPeersRows(topic, res.parts, peersLimitBatch)
			errs[c] = peersLimitEach(res.records, res.parts, conns, c, peersLimitBatch, func(p int, from int64, n int) error {
				rows.fill(p, from, n)
				got, err := cn.CopyFrom(ctx, ident, peersLimitColumns, pgx.CopyFromSlice(n, rows.at))
				if err == nil && got != int64(n) {
					err = fmt.Errorf("copied %d rows, want %d", got, n)
				}
				if err != nil {
					return fmt.Errorf("limit %s[%d] from offset %d: %w", table, p, from, err)
				}
				return nil
			})
		})
	}
	wg.Wait()
	run.time, run.clientCPU = time.Since(start), selfCPU()-cpu0
	if err := errors.Join(errs...); err != nil {
		return run, err
	}
	wantRows, wantSum := peersExpected(res.records, res.parts)
	if err := sinkdb.Check(ctx, b.s.db, table, wantRows, wantSum); err != nil {
		return run, err
	}
	return run, peersPlaced(ctx, b.s, table, "(value->>'id')::bigint", "kafka_partition", "kafka_offset", res.parts)
}

// peersLimits measures the generation alone, then the limit at each of
// peersLimitConns; a failed run is in the report and the others go on.
func (b *bench) peersLimits(ctx context.Context, topic string, res *peersResult) (failed []string) {
	res.limitGen = peersLimitGenerate(topic, res.records, res.parts)
	logf("  peers: limit rows generated alone in %.2f s (%.0f records/s, one goroutine)", res.limitGen.Seconds(), rate(int64(res.records), res.limitGen))
	for _, c := range peersLimitConns(res.parts) {
		label := fmt.Sprintf("peers: limit, binary COPY, %d connections", c)
		var run peersLimitRun
		err := b.retry(ctx, label, func() error {
			var err error
			run, err = b.peersLimit(ctx, topic, res, c)
			return err
		}, func(a int) { run.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			failed = append(failed, label)
			continue
		}
		logf("  %s: %.0f records/s, client CPU %.1f s", label, rate(int64(res.records), run.time), run.clientCPU.Seconds())
		res.limits = append(res.limits, run)
	}
	return failed
}

// limit is the fastest limit run, false when none finished.
func (p *peersResult) limit() (peersLimitRun, bool) {
	var best peersLimitRun
	for _, r := range p.limits {
		if best.time == 0 || r.time < best.time {
			best = r
		}
	}
	return best, best.time > 0
}

// limitMarkdown writes the report table's limit rows, after sinkworker's
// and Debezium's, then the generation's cost.
func (p *peersResult) limitMarkdown(w func(string, ...any), perM func(time.Duration) float64) {
	best, ok := p.limit()
	for _, r := range p.limits {
		name, cell := "limit", fmt.Sprintf("%.0f", rate(int64(p.records), r.time))
		if r == best {
			name, cell = "**limit**", "**"+cell+"**"
		}
		w("| %s, %d connections | binary COPY from memory, batches of %d, one transaction each; CPU s: this process | %s | %s | none | %d | %.1f | %.1f | | %d |",
			name, r.conns, peersLimitBatch, cell, cell, r.conns, r.clientCPU.Seconds(), perM(r.clientCPU), r.attempts)
	}
	w("")
	if ok {
		w("Building the limit's rows alone (one goroutine, no writing) takes %.2f s for the %d records (%.0f records/s), %.0f%% of the limit run's %.1f s; it runs on the same cores as PostgreSQL.",
			p.limitGen.Seconds(), p.records, rate(int64(p.records), p.limitGen), 100*p.limitGen.Seconds()/best.time.Seconds(), best.time.Seconds())
		w("")
	}
}

// limitSummary is the summary's part on the limit: sink / limit, and
// limit / Debezium tuned, the most any sink could reach against Debezium
// on this database; "" without a limit.
func (p *peersResult) limitSummary() string {
	l, ok := p.limit()
	if !ok {
		return ""
	}
	lr := rate(int64(p.records), l.time)
	line := ""
	if p.sink != nil {
		line += fmt.Sprintf("; **sink / limit**: **%.2f** from process start (%.0f / %.0f records/s, limit at %d connections), %.2f after start-up",
			p.sink.rate()/lr, p.sink.rate(), lr, l.conns, p.sink.steadyRate()/lr)
	} else {
		line += fmt.Sprintf("; **limit**: %.0f records/s (%d connections)", lr, l.conns)
	}
	for _, d := range p.dbz {
		if d.name == "tuned" && d.finished {
			line += fmt.Sprintf("; **limit / Debezium tuned**: **%.1f** (%.0f / %.0f records/s), %.1f after Debezium's start-up: the most any sink could reach against Debezium here",
				lr/d.rate(), lr, d.rate(), lr/d.steadyRate())
		}
	}
	return line
}

// peersLimitConnsText is peersLimitConns for the report: "16 and 2".
func peersLimitConnsText(parts int) string {
	var cs []string
	for _, c := range peersLimitConns(parts) {
		cs = append(cs, strconv.Itoa(c))
	}
	return strings.Join(cs, " and ")
}

// selfCPU is this process's user + system CPU so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
