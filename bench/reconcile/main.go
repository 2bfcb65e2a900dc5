// Command reconcile measures `sinkworker reconcile` against the naive
// compare on two tables of -rows rows in DATABASE_URL: once with one extra
// key in the target, once with one changed value. For each it prints the
// difference found, wall time, bytes and round trips of both methods, side
// by side. It creates and drops its own tables.
//
//	eval "$(scripts/services env)"; go run ./bench/reconcile -rows 1000000
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/reconcile"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows in the source table")
	flag.Parse()
	if err := run(context.Background(), *rows); err != nil {
		fmt.Fprintln(os.Stderr, "bench/reconcile:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rows int) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is not set: eval \"$(scripts/services env)\" first")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	name := "rcbench_" + strings.ToLower(rand.Text()[:8])
	src, tgt := name+"_src", name+"_tgt"
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+src+", "+tgt)
	start := time.Now()
	if err := exec(ctx, conn, fmt.Sprintf(`CREATE TABLE %[1]s (id bigint PRIMARY KEY, name text, email text,
	amount numeric(12,2), created_at timestamptz, score double precision, active boolean);
INSERT INTO %[1]s SELECT g, 'user ' || g, 'u' || g || '@example.com', g * 1.25,
	'2024-01-01T00:00:00Z'::timestamptz + g * interval '1 second', g / 7.0, g %% 3 <> 0
FROM generate_series(1, %[3]d) g;
CREATE TABLE %[2]s (LIKE %[1]s INCLUDING ALL);
INSERT INTO %[2]s SELECT * FROM %[1]s;
INSERT INTO %[2]s VALUES (%[3]d / 2 * 2 + 1000001, 'ghost', 'ghost@example.com', 0, now(), 0, true)`, src, tgt, rows)); err != nil {
		return err
	}
	if err := vacuum(ctx, conn, src, tgt); err != nil {
		return err
	}
	fmt.Printf("tables of %d and %d rows loaded in %s\n\n", rows, rows+1, time.Since(start).Round(time.Millisecond))
	cfg := reconcile.Config{SourceURL: url, TargetURL: url, SourceTable: src, TargetTable: tgt, Key: []string{"id"}}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tmethod\tfound\ttime\tbytes source\tbytes target\tbytes total\tround trips s/t\tranges\trows fetched\t")
	cases := []struct {
		name  string
		setup string
	}{
		{fmt.Sprintf("%d vs %d (one extra key)", rows, rows+1), ""},
		{fmt.Sprintf("%d vs %d (one changed value)", rows, rows), fmt.Sprintf(
			"DELETE FROM %[1]s WHERE name = 'ghost'; UPDATE %[1]s SET amount = amount + 0.01 WHERE id = %[2]d", tgt, rows*2/3)},
	}
	for _, c := range cases {
		if c.setup != "" {
			if err := exec(ctx, conn, c.setup); err != nil {
				return err
			}
			if err := vacuum(ctx, conn, tgt); err != nil {
				return err
			}
		}
		// Warm the cache for both, so neither pays for the first read.
		if err := exec(ctx, conn, "SELECT count(*), sum(length(t::text)) FROM "+src+" t; SELECT count(*), sum(length(t::text)) FROM "+tgt+" t"); err != nil {
			return err
		}
		var totals [2]int64
		for i, m := range []struct {
			name string
			f    func(context.Context, reconcile.Config) (*reconcile.Result, error)
		}{{"range checksums", reconcile.Compare}, {"naive", reconcile.Naive}} {
			r, err := m.f(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", c.name, m.name, err)
			}
			totals[i] = r.Source.Bytes + r.Target.Bytes
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%d\t%d\t\n", c.name, m.name, found(r), r.Elapsed.Round(time.Millisecond),
				r.Source.Bytes, r.Target.Bytes, totals[i], r.Source.RoundTrips, r.Target.RoundTrips, r.Ranges, r.RowsFetched)
		}
		fmt.Fprintf(tw, "\t\tnaive / range bytes: %.0fx\t\t\t\t\t\t\t\t\n", float64(totals[1])/float64(totals[0]))
	}
	return tw.Flush()
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
