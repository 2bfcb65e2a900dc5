package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sinkworker/sinkworker/sink/reconcile"
)

const reconcileUsage = `Usage: sinkworker reconcile --source URL --source-table T --target URL --target-table T
                            --key COLS [--columns COLS | --keys-only] [-json] [--naive]
                            [--lock-timeout D]

Says whether two tables, in the same or two PostgreSQL databases, hold the same rows,
and lists the keys missing from the target, extra in it, and different. Both sides
count and checksum key ranges inside the database and split the ranges that differ;
only small differing ranges are fetched, as (key, row hash). Each side reads one
REPEATABLE READ READ ONLY snapshot and never writes. It holds a plain SELECT's
ACCESS SHARE lock on each table until it ends (a TRUNCATE or ALTER TABLE waits for
it), and waits at most --lock-timeout for that lock behind one (exit 3).

Compared columns: --columns, else every column both tables have; the key always.
--columns "" or --keys-only compares the key sets only (users vs points by user_id).
A table may be schema-qualified. Flags win over the environment: RECONCILE_SOURCE_URL,
RECONCILE_TARGET_URL (else DATABASE_URL), RECONCILE_SOURCE_TABLE, RECONCILE_TARGET_TABLE
(else the source table), RECONCILE_KEY, RECONCILE_COLUMNS, RECONCILE_LOCK_TIMEOUT. The
source URL defaults to the target's: two tables of one database.

Exit status: 0 equal, 1 different, 2 for a bad setting, 3 when it could not run
(a database unreachable, a table locked past the lock timeout).

`

// reconcileFailed is the exit status when the comparison could not run.
const reconcileFailed = 3

func runReconcile(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", getenv("RECONCILE_SOURCE_URL"), "source database URL (RECONCILE_SOURCE_URL; default: the target's)")
	target := fs.String("target", getenv("RECONCILE_TARGET_URL"), "target database URL (RECONCILE_TARGET_URL, else DATABASE_URL)")
	sourceTable := fs.String("source-table", getenv("RECONCILE_SOURCE_TABLE"), "source table, optionally schema.table (RECONCILE_SOURCE_TABLE)")
	targetTable := fs.String("target-table", getenv("RECONCILE_TARGET_TABLE"), "target table (RECONCILE_TARGET_TABLE; default: the source table's name)")
	key := fs.String("key", getenv("RECONCILE_KEY"), "key columns, comma-separated (RECONCILE_KEY)")
	columns := fs.String("columns", getenv("RECONCILE_COLUMNS"), `compared columns besides the key, comma-separated (RECONCILE_COLUMNS); "" for keys only; default: the columns both tables have`)
	keysOnly := fs.Bool("keys-only", false, "compare the key sets only")
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	naive := fs.Bool("naive", false, "stream every key and row hash from both sides instead (the baseline; slow on large tables)")
	limit := fs.Int("limit", reconcile.DefaultLimit, "list at most this many keys of each kind (-1: none); counts are always exact")
	var bad []error
	envLock := reconcile.DefaultLockTimeout
	if v := getenv("RECONCILE_LOCK_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			bad = append(bad, fmt.Errorf("RECONCILE_LOCK_TIMEOUT: %w", err))
		}
		envLock = d
	}
	lockTimeout := fs.Duration("lock-timeout", envLock, "longest wait for a table's lock held by another session, then exit 3 (RECONCILE_LOCK_TIMEOUT; 1ms to 1h)")
	fs.Usage = func() { fmt.Fprint(stderr, reconcileUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	if *target == "" {
		*target = getenv("DATABASE_URL")
	}
	if *source == "" {
		*source = *target
	}
	if *targetTable == "" {
		*targetTable = *sourceTable
	}
	cfg := reconcile.Config{SourceURL: *source, TargetURL: *target, SourceTable: *sourceTable, TargetTable: *targetTable,
		Key: split(*key), KeysOnly: *keysOnly, Limit: *limit, LockTimeout: *lockTimeout}
	if *limit == 0 {
		cfg.Limit = -1
	}
	columnsSet := *columns != ""
	fs.Visit(func(f *flag.Flag) { columnsSet = columnsSet || f.Name == "columns" })
	if columnsSet {
		cfg.Columns = split(*columns)
		if cfg.Columns == nil {
			cfg.Columns = []string{}
		}
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if err := cfg.Validate(); err != nil {
		bad = append(bad, err)
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "sinkworker reconcile: %v\n", errors.Join(bad...))
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	compare := reconcile.Compare
	if *naive {
		compare = reconcile.Naive
	}
	r, err := compare(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sinkworker reconcile: %v\n", err)
		if errors.Is(err, reconcile.ErrSettings) {
			return 2
		}
		return reconcileFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printReconcile(stdout, cfg, r)
	}
	if !r.Equal {
		return 1
	}
	return 0
}

// split is a comma-separated list, trimmed; nil when empty.
func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func printReconcile(w io.Writer, cfg reconcile.Config, r *reconcile.Result) {
	if !r.Equal {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "DIFFERENCE\t%s\n", strings.ToUpper(strings.Join(r.Key, "\t")))
		for _, k := range []struct {
			what string
			keys [][]string
		}{{"missing", r.Missing}, {"extra", r.Extra}, {"different", r.Different}} {
			for _, key := range k.keys {
				fmt.Fprintf(tw, "%s\t%s\n", k.what, strings.Join(key, "\t"))
			}
		}
		tw.Flush()
	}
	verdict := "equal"
	if !r.Equal {
		verdict = fmt.Sprintf("different: %d missing (in the source only), %d extra (in the target only), %d different",
			r.MissingCount, r.ExtraCount, r.DifferentCount)
	}
	compared := "keys only"
	if len(r.Columns) > 0 {
		compared = strings.Join(r.Columns, ", ")
	}
	fmt.Fprintf(w, "%s vs %s by (%s), comparing %s: %s\n", cfg.SourceTable, cfg.TargetTable, strings.Join(r.Key, ", "), compared, verdict)
	fmt.Fprintf(w, "%d source rows, %d target rows; %d ranges checked, %d rows fetched; round trips %d source, %d target; bytes %d source, %d target; %s\n",
		r.SourceRows, r.TargetRows, r.Ranges, r.RowsFetched, r.Source.RoundTrips, r.Target.RoundTrips, r.Source.Bytes, r.Target.Bytes, r.Elapsed.Round(1e6))
}
