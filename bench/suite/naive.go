package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/rss"
	"github.com/sinkworker/sinkworker/sink"
)

// naiveResult is the hand-written consumer's run (bench/naive).
type naiveResult struct {
	parts, consumers, pool int
	records                int64
	seconds                float64
	peakConns              int
	cpu                    time.Duration
	maxRSS                 int64
	attempts               int
}

func (r naiveResult) rate() float64 {
	if r.seconds <= 0 {
		return 0
	}
	return float64(r.records) / r.seconds
}

// runNaive runs bench/naive on l's topic with one consumer thread per
// partition and a pool of 10, for dur (or until every record is applied).
func (b *bench) runNaive(ctx context.Context, l *layout, dur time.Duration) (naiveResult, error) {
	s := b.s
	r := naiveResult{parts: l.parts, consumers: l.parts, pool: 10}
	id := b.nextID()
	group, table := fmt.Sprintf("bs%s-%d", b.stamp, id), fmt.Sprintf("bench_suite_%s_%d", b.stamp, id)
	defer func() {
		if !b.o.keep {
			s.dropTable(table)
			s.dropGroup(group)
		}
	}()
	cfg := sink.Config{Topics: []string{l.topic}, TableMap: map[string]string{l.topic: table}, Mode: sink.ModeUpsert, OffsetsTable: "sink_offsets"}
	if err := sink.EnsureTables(ctx, s.db, cfg); err != nil {
		return r, err
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	args := []string{"-brokers", strings.Join(s.brokers, ","), "-dsn", s.dsn, "-topic", l.topic, "-group", group,
		"-table", table, "-consumers", strconv.Itoa(r.consumers), "-pool", strconv.Itoa(r.pool),
		"-records", strconv.Itoa(b.d.n), "-duration", dur.String()}
	out := filepath.Join(b.tmp, fmt.Sprintf("naive-%d.out", id))
	p, err := startProc(ctx, b.naiveBin, args, os.Environ(), out)
	if err != nil {
		return r, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	app := "bench-naive/" + group
	for !p.done() {
		select {
		case <-ctx.Done():
			p.kill()
			return r, ctx.Err()
		case <-tick.C:
			if c, err := s.connsLike(ctx, app); err == nil {
				r.peakConns = max(r.peakConns, c)
			}
			// It exits by itself, so its VmHWM is read while it runs.
			r.maxRSS = max(r.maxRSS, rss.Peak(p.cmd.Process.Pid))
		}
	}
	code, cpu, peak := p.stop(time.Second)
	r.cpu, r.maxRSS = cpu, max(r.maxRSS, peak)
	if code != 0 {
		return r, fmt.Errorf("naive consumer exited with status %d\n%s", code, tail(out, 20))
	}
	var res struct {
		Records int64   `json:"records"`
		Seconds float64 `json:"seconds"`
	}
	ls := lines(out)
	for _, line := range ls {
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				return r, err
			}
		}
	}
	if res.Records == 0 {
		return r, fmt.Errorf("naive consumer applied nothing\n%s", tail(out, 20))
	}
	r.records, r.seconds = res.Records, res.Seconds
	return r, nil
}
