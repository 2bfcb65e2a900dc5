package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// report is a run as a results file, in the style of bench/results.
type report struct {
	rows    int
	load    time.Duration
	cases   []*benchCase
	total   time.Duration
	started time.Time

	machine, postgres, code string
}

// describe reads the machine, the database's settings and the code.
func (r *report) describe(ctx context.Context, conn *pgx.Conn) error {
	r.machine = testbed.Machine()
	var err error
	if r.postgres, err = testbed.Postgres(ctx, conn, "shared_buffers", "work_mem", "max_parallel_workers_per_gather"); err != nil {
		return err
	}
	root, err := testbed.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	commit, changed := testbed.Code(ctx, root)
	r.code = "commit " + commit
	if len(changed) > 0 {
		r.code += " with uncommitted changes outside bench/"
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Reconcile: range checksums against the naive compare, %s", r.started.Format("2006-01-02 15:04 MST"))
	w("")
	w("Command (module root, after `scripts/services up && eval \"$(scripts/services env)\"`):")
	w("")
	w("    %s", testbed.Command("./bench/reconcile", os.Args[1:]))
	w("")
	w("- Machine: %s", r.machine)
	w("- Database: %s; source and target are two tables of one database, each side its own connection", r.postgres)
	w("- Code: %s", r.code)
	w("- Data: source %d rows (id bigint primary key, name text, email text, amount numeric(12,2), created_at timestamptz, "+
		"score double precision, active boolean); target a copy (CREATE TABLE .. LIKE .. INCLUDING ALL, INSERT .. SELECT); "+
		"VACUUM ANALYZE on both; loaded in %.1f s", r.rows, r.load.Seconds())
	w("- Cases: **one extra key** (the target holds one more row, %d rows); then **one changed value** (the extra row deleted, "+
		"one amount changed by 0.01, %d rows each)", r.rows+1, r.rows)
	w("- Time: %.0f s in all", r.total.Seconds())
	w("")
	w("Both methods compare every column (key `id`) and run from a warm cache (each table read once before each case). " +
		"**range checksums** is `reconcile.Compare`, what `sinkworker reconcile` runs: each database counts and sums a " +
		"64-bit hash of the rows of key ranges itself, differing ranges are split 64 ways and checked again, both sides " +
		"at once, and only ranges of at most 256 rows are fetched as (key, row hash). **naive** is `reconcile.Naive` " +
		"(`sinkworker reconcile --naive`): every key and row hash streamed from both sides and compared in memory. " +
		"Time is from connecting to the result; bytes are read and written on each side's connection (start-up " +
		"included); a round trip is a read that follows a write (a batch of queries is one), after connecting.")
	w("")
	w("| case | method | difference found | time | bytes source | bytes target | bytes total | round trips source / target | ranges | rows fetched |")
	w("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.cases {
		for _, m := range c.runs {
			res := m.r
			method := m.method
			if m.method == "range checksums" {
				method = "**" + method + "**"
			}
			w("| %s | %s | %s | %.2f s | %d | %d | %d | %d / %d | %d | %d |", c.name, method, found(res), res.Elapsed.Seconds(),
				res.Source.Bytes, res.Target.Bytes, total(res), res.Source.RoundTrips, res.Target.RoundTrips, res.Ranges, res.RowsFetched)
		}
	}
	w("")
	for _, c := range r.cases {
		rc, nv := c.runs[0].r, c.runs[1].r
		w("- %s: range checksums %s in %.2f s, naive %s in %.2f s: **%.0fx fewer bytes**, naive / range time %.2fx",
			c.name, human(total(rc)), rc.Elapsed.Seconds(), human(total(nv)), nv.Elapsed.Seconds(), c.ratio(),
			nv.Elapsed.Seconds()/rc.Elapsed.Seconds())
	}
	var wrong []string
	for _, c := range r.cases {
		for _, m := range c.runs {
			if !m.ok {
				wrong = append(wrong, fmt.Sprintf("%s, %s: found %q, planted %q", c.name, m.method, found(m.r), c.want))
			}
		}
	}
	if len(wrong) == 0 {
		w("- Checks: each method found exactly the planted difference, and nothing else, in both cases")
	} else {
		w("- Checks FAILED: %s", strings.Join(wrong, "; "))
	}
	return b.String()
}

// human is n bytes in B, KB or MB (powers of 1000).
func human(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1_000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
