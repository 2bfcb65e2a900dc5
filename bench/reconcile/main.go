// Command reconcile measures `sinkworker reconcile` against the naive
// compare on two tables of -rows rows in DATABASE_URL: once with one extra
// key in the target, once with one changed value. For each it prints the
// difference found, wall time, bytes and round trips of both methods, side
// by side, and writes them as a results file (-out). It creates and drops
// its own tables.
//
//	eval "$(scripts/services env)"; go run ./bench/reconcile -rows 1000000
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/testbed"
	"github.com/sinkworker/sinkworker/sink/reconcile"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows in the source table")
	out := flag.String("out", "", `results file (default bench/results/<UTC date>-reconcile.md under the module root; "-": none)`)
	flag.Parse()
	if err := run(context.Background(), *rows, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/reconcile:", err)
		os.Exit(1)
	}
}

// measured is one method's run on one case.
type measured struct {
	method string
	r      *reconcile.Result
	ok     bool // found exactly the planted difference
}

// benchCase is one planted difference and both methods' runs on it.
type benchCase struct {
	name, want string // want: the planted difference, as found() spells it
	setup      string // SQL that plants it in the target
	runs       []measured
}

func run(ctx context.Context, rows int, out string) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is not set: eval \"$(scripts/services env)\" first")
	}
	if out == "" {
		root, err := testbed.ModuleRoot(ctx)
		if err != nil {
			return err
		}
		out = filepath.Join(root, "bench", "results", time.Now().UTC().Format("2006-01-02")+"-reconcile.md")
	}
	began := time.Now()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	name := "rcbench_" + strings.ToLower(rand.Text()[:8])
	src, tgt := name+"_src", name+"_tgt"
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+src+", "+tgt)
	extra, changed := rows/2*2+1000001, rows*2/3
	start := time.Now()
	if err := exec(ctx, conn, fmt.Sprintf(`CREATE TABLE %[1]s (id bigint PRIMARY KEY, name text, email text,
	amount numeric(12,2), created_at timestamptz, score double precision, active boolean);
INSERT INTO %[1]s SELECT g, 'user ' || g, 'u' || g || '@example.com', g * 1.25,
	'2024-01-01T00:00:00Z'::timestamptz + g * interval '1 second', g / 7.0, g %% 3 <> 0
FROM generate_series(1, %[3]d) g;
CREATE TABLE %[2]s (LIKE %[1]s INCLUDING ALL);
INSERT INTO %[2]s SELECT * FROM %[1]s;
INSERT INTO %[2]s VALUES (%[4]d, 'ghost', 'ghost@example.com', 0, now(), 0, true)`, src, tgt, rows, extra)); err != nil {
		return err
	}
	if err := vacuum(ctx, conn, src, tgt); err != nil {
		return err
	}
	load := time.Since(start)
	fmt.Printf("tables of %d and %d rows loaded in %s\n\n", rows, rows+1, load.Round(time.Millisecond))
	cfg := reconcile.Config{SourceURL: url, TargetURL: url, SourceTable: src, TargetTable: tgt, Key: []string{"id"}}

	cases := []*benchCase{
		{name: fmt.Sprintf("%d vs %d (one extra key)", rows, rows+1), want: fmt.Sprintf("extra %d", extra)},
		{name: fmt.Sprintf("%d vs %d (one changed value)", rows, rows), want: fmt.Sprintf("different %d", changed), setup: fmt.Sprintf(
			"DELETE FROM %[1]s WHERE name = 'ghost'; UPDATE %[1]s SET amount = amount + 0.01 WHERE id = %[2]d", tgt, changed)},
	}
	for _, c := range cases {
		if err := measure(ctx, conn, cfg, tgt, c); err != nil {
			return err
		}
	}
	printTable(cases)
	if out == "-" {
		return nil
	}
	rep := report{rows: rows, load: load, cases: cases, total: time.Since(began), started: began.UTC()}
	if err := rep.describe(ctx, conn); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s\n", out)
	for _, c := range cases {
		for _, m := range c.runs {
			if !m.ok {
				return fmt.Errorf("%s, %s: found %q, planted %q", c.name, m.method, found(m.r), c.want)
			}
		}
	}
	return nil
}

// measure plants c's difference and runs both methods on it, from a warm
// cache.
func measure(ctx context.Context, conn *pgx.Conn, cfg reconcile.Config, tgt string, c *benchCase) error {
	if c.setup != "" {
		if err := exec(ctx, conn, c.setup); err != nil {
			return err
		}
		if err := vacuum(ctx, conn, tgt); err != nil {
			return err
		}
	}
	// Warm the cache for both, so neither pays for the first read.
	if err := exec(ctx, conn, "SELECT count(*), sum(length(t::text)) FROM "+cfg.SourceTable+" t; SELECT count(*), sum(length(t::text)) FROM "+tgt+" t"); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		f    func(context.Context, reconcile.Config) (*reconcile.Result, error)
	}{{"range checksums", reconcile.Compare}, {"naive", reconcile.Naive}} {
		r, err := m.f(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", c.name, m.name, err)
		}
		c.runs = append(c.runs, measured{method: m.name, r: r, ok: found(r) == c.want})
	}
	return nil
}

// printTable prints every run, as the results file's table, to stdout.
func printTable(cases []*benchCase) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tmethod\tfound\ttime\tbytes source\tbytes target\tbytes total\tround trips s/t\tranges\trows fetched\t")
	for _, c := range cases {
		for _, m := range c.runs {
			r := m.r
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%d\t%d\t\n", c.name, m.method, found(r), r.Elapsed.Round(time.Millisecond),
				r.Source.Bytes, r.Target.Bytes, total(r), r.Source.RoundTrips, r.Target.RoundTrips, r.Ranges, r.RowsFetched)
		}
		fmt.Fprintf(tw, "\t\tnaive / range bytes: %.0fx\t\t\t\t\t\t\t\t\n", c.ratio())
	}
	tw.Flush()
}

// total is the bytes both connections moved.
func total(r *reconcile.Result) int64 { return r.Source.Bytes + r.Target.Bytes }

// ratio is the naive compare's bytes over the range compare's.
func (c *benchCase) ratio() float64 {
	return float64(total(c.runs[1].r)) / float64(total(c.runs[0].r))
}

func found(r *reconcile.Result) string {
	var parts []string
	for _, k := range []struct {
		what string
		keys [][]string
	}{{"missing", r.Missing}, {"extra", r.Extra}, {"different", r.Different}} {
		for _, key := range k.keys {
			parts = append(parts, k.what+" "+strings.Join(key, ","))
		}
	}
	if len(parts) == 0 {
		return "equal"
	}
	return strings.Join(parts, "; ")
}

func exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	return conn.PgConn().Exec(ctx, sql).Close()
}

// vacuum sets the tables' visibility maps (index-only scans) and statistics.
func vacuum(ctx context.Context, conn *pgx.Conn, tables ...string) error {
	for _, t := range tables {
		if err := exec(ctx, conn, "VACUUM ANALYZE "+t); err != nil {
			return err
		}
	}
	return nil
}
