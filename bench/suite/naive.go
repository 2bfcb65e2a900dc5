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

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/rss"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
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
func (b *bench) runNaive(ctx context.Context, l *dataset.Layout, dur time.Duration) (naiveResult, error) {
	s := b.s
	r := naiveResult{parts: l.Parts, consumers: l.Parts, pool: 10}
	id, group, table := b.fresh()
	defer b.forget(table, group)
	if err := sinkdb.EnsureTable(ctx, s.db, l.Topic, table, false); err != nil {
		return r, err
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	args := []string{"-brokers", strings.Join(s.brokers, ","), "-dsn", s.dsn, "-topic", l.Topic, "-group", group,
		"-table", table, "-consumers", strconv.Itoa(r.consumers), "-pool", strconv.Itoa(r.pool),
		"-records", strconv.Itoa(b.d.N), "-duration", dur.String()}
	out := filepath.Join(b.tmp, fmt.Sprintf("naive-%d.out", id))
	p, err := proc.Start(b.naiveBin, args, os.Environ(), out)
	if err != nil {
		return r, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	app := "bench-naive/" + group
	for !p.Done() {
		select {
		case <-ctx.Done():
			p.Kill()
			return r, ctx.Err()
		case <-tick.C:
			if c, err := sinkdb.Conns(ctx, s.db, app); err == nil {
				r.peakConns = max(r.peakConns, c)
			}
			// It exits by itself, so its VmHWM is read while it runs.
			r.maxRSS = max(r.maxRSS, rss.Peak(p.Cmd.Process.Pid))
		}
	}
	exit := p.Stop(time.Second)
	r.cpu, r.maxRSS = exit.CPU, max(r.maxRSS, exit.PeakRSS)
	if exit.Code != 0 {
		return r, fmt.Errorf("naive consumer exited with status %d\n%s", exit.Code, p.Tail(20))
	}
	var res struct {
		Records int64   `json:"records"`
		Seconds float64 `json:"seconds"`
	}
	for _, line := range p.Lines() {
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				return r, err
			}
		}
	}
	if res.Records == 0 {
		return r, fmt.Errorf("naive consumer applied nothing\n%s", p.Tail(20))
	}
	r.records, r.seconds = res.Records, res.Seconds
	return r, nil
}
