package main

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// csv is every figure, one row per measurement.
func (r *report) csv() [][]string {
	rows := [][]string{{"scenario", "partitions", "workers", "pool", "batch", "settings", "records", "seconds", "records_per_s", "peak_conns", "cpu_s", "max_rss_mib", "latency_rate", "p50_ms", "p99_ms", "attempts", "first_commit_s", "steady_records_per_s", "round"}}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	i := strconv.Itoa
	for _, c := range r.ceiling {
		rows = append(rows, []string{"ceiling", i(c.parts), "", i(c.conns), "5000", "unnest upsert, " + i(c.rows) + " rows", i(r.o.records), f(c.time.Seconds()), f(c.rate(r.o.records)), i(c.conns), "", "", "", "", "", i(c.attempts)})
	}
	for _, p := range r.points {
		rows = append(rows, []string{"sinkworker", i(p.parts), i(p.workers), poolSetting(p.pool), i(p.batch), "", i(p.records), f(p.drain.Seconds()), f(p.rate()), i(p.peakConns),
			f(p.cpu.Seconds()), f(mib(p.maxRSS)), f(p.latRate), f(float64(p.p50) / 1e6), f(float64(p.p99) / 1e6), i(p.attempts), f(p.firstCommit.Seconds()), f(p.steadyRate()), i(p.round)})
	}
	for _, n := range r.naive {
		rows = append(rows, []string{"naive", i(n.parts), "1", i(n.pool), "1", "one tx per record", strconv.FormatInt(n.records, 10), f(n.seconds), f(n.rate()), i(n.peakConns), f(n.cpu.Seconds()), f(mib(n.maxRSS)), "", "", "", i(n.attempts)})
	}
	for _, d := range r.dbz {
		rows = append(rows, []string{"debezium-" + d.name, i(d.parts), "", "", "", d.settings, i(d.records), f(d.total.Seconds()), f(d.rate()), i(d.peakConns), f(d.cpu.Seconds()), f(mib(d.maxRSS)), "", "", "", i(d.attempts)})
	}
	if d := r.drain; d != nil {
		n := int64(d.records)
		rows = append(rows, []string{"drain", i(d.parts), "1", poolSetting(d.pool), "5000", "", i(d.records), f(d.drain.Seconds()), f(d.rate()), i(d.peakConns),
			f(d.cpu.Seconds()), f(mib(d.maxRSS)), "", "", "", i(d.attempts), f(d.firstCommit.Seconds()), f(d.steadyRate())},
			[]string{"drain-ceiling", i(d.parts), "", i(d.parts), "5000", "write statement, " + i(d.rows) + " rows", i(d.records), f(d.ceiling.Seconds()), f(rate(n, d.ceiling)), i(d.parts), "", "", "", "", "", i(d.attempts)},
			[]string{"drain-ceiling-tx", i(d.parts), "", i(d.parts), "5000", "writer's transaction, " + i(d.rows) + " rows", i(d.records), f(d.writerTx.Seconds()), f(rate(n, d.writerTx)), i(d.parts), "", "", "", "", "", i(d.attempts)})
	}
	if r.formats != nil {
		rows = append(rows, r.formats.csv()...)
	}
	if r.limit != nil {
		rows = append(rows, r.limit.csv()...)
	}
	for _, m := range r.memory {
		rows = append(rows, []string{"memory", i(m.parts), i(m.workers), poolSetting(m.pool), i(m.batch), "defaults", i(m.records), f(m.drain.Seconds()), f(m.rate()), i(m.peakConns), f(m.cpu.Seconds()), f(mib(m.maxRSS)), "", "", "", i(m.attempts)})
	}
	return rows
}

// plotThroughput: records/s against database connections, the ceiling and
// one line per partition count (single worker, batch 5000).
func (r *report) plotThroughput(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Drain of %d records: records/s vs connections", r.o.records)
	p.X.Label.Text = "database connections (POOL_MAX_CONNS, capped by partitions)"
	p.Y.Label.Text = "records/s"
	p.Legend.Top = true
	var lines []any
	for _, P := range r.o.partitions {
		xy := plotter.XYs{}
		for _, c := range r.ceiling {
			if c.parts == P {
				xy = append(xy, plotter.XY{X: float64(c.conns), Y: c.rate(r.o.records)})
			}
		}
		if len(xy) > 0 {
			lines = append(lines, fmt.Sprintf("ceiling (DB only), %d partitions", P), xy)
		}
		xy = plotter.XYs{}
		for _, pt := range r.points {
			if pt.parts == P && pt.workers == 1 && pt.batch == 5000 && pt.pool != autoPool && pt.round <= 1 {
				xy = append(xy, plotter.XY{X: float64(pt.pool), Y: pt.rate()})
			}
		}
		if len(xy) > 0 {
			lines = append(lines, fmt.Sprintf("sinkworker, %d partitions", P), xy)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	for _, n := range r.naive {
		s, err := plotter.NewScatter(plotter.XYs{{X: float64(n.peakConns), Y: n.rate()}})
		if err == nil {
			s.Color = color.RGBA{R: 200, A: 255}
			p.Add(s)
			p.Legend.Add(fmt.Sprintf("naive, %d partitions", n.parts), s)
		}
	}
	p.Y.Min = 0
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, r.started.Format("2006-01-02")+"-"+r.o.name)
	md := r.markdown(filepath.Base(base))
	fmt.Println()
	fmt.Print(md)
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	f, err := os.Create(base + ".csv")
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.WriteAll(r.csv())
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.plotThroughput(base + "-throughput.png"); err != nil {
		logf("plot: %v", err)
	}
	logf("results: %s.md, .csv, -throughput.png", base)
	return nil
}
