// Package reconcile compares a source and a target table, in the same or
// two PostgreSQL databases, and says which rows differ: missing from the
// target, extra in it, or present in both with different values.
//
// The comparison runs inside the databases. Each side counts the rows of a
// key range and sums a 64-bit hash of each row's compared columns (an
// order-independent checksum); ranges whose counts or sums differ are split
// at keys the side with more rows finds in one pass over its index, and
// checked again, both sides at once, one batch of queries per level. Only
// a differing range of at most LeafRows rows is fetched, as (key, row hash)
// pairs. So two tables of a million rows that differ in one row cost a few
// round trips and kilobytes, not a copy of either table.
//
// Each side runs in one REPEATABLE READ READ ONLY transaction (a
// consistent snapshot) with its text formats pinned (UTC, ISO dates,
// extra_float_digits) and never writes. It takes only the lock a plain
// SELECT takes (ACCESS SHARE), held until it ends: a TRUNCATE or ALTER
// TABLE of either table waits for it, and it waits at most
// Config.LockTimeout behind one (ErrLocked). Use Compare; Naive is the baseline that streams every row's key
// and hash from both sides.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is what a comparison found and what it cost.
type Result struct {
	Equal bool `json:"equal"`
	// Missing keys are in the source only, Extra keys in the target only,
	// Different keys in both with different compared columns. Each lists
	// at most Config.Limit keys, each key its columns' text; the counts
	// are exact.
	Missing        [][]string `json:"missing"`
	Extra          [][]string `json:"extra"`
	Different      [][]string `json:"different"`
	MissingCount   int64      `json:"missing_count"`
	ExtraCount     int64      `json:"extra_count"`
	DifferentCount int64      `json:"different_count"`

	Key     []string `json:"key"`
	Columns []string `json:"columns"` // compared besides the key

	SourceRows int64 `json:"source_rows"` // in the source table's snapshot
	TargetRows int64 `json:"target_rows"`
	// Ranges is how many key ranges had their checksums compared;
	// RowsFetched how many (key, hash) pairs came over the wire.
	Ranges      int   `json:"ranges"`
	RowsFetched int64 `json:"rows_fetched"`

	Source  Traffic       `json:"source"`
	Target  Traffic       `json:"target"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Traffic is one database's share of the cost.
type Traffic struct {
	// RoundTrips after connecting, the snapshot's set-up included: a read
	// from the socket after a write.
	RoundTrips int `json:"round_trips"`
	// Bytes read and written on the connection, its start-up included.
	Bytes int64 `json:"bytes"`
}

// pair is the two sides of a comparison and what is compared.
type pair struct {
	cfg      Config
	src, tgt *side
	qs, qt   query
	res      *Result
}

// open connects both sides (at once), resolves the compared columns and
// builds the queries. The caller closes the pair.
func open(ctx context.Context, cfg Config) (*pair, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &pair{cfg: cfg, res: &Result{Key: cfg.Key}}
	var errS, errT error
	var wg sync.WaitGroup
	wg.Go(func() { p.src, errS = openSide(ctx, "source", cfg.SourceURL, cfg.SourceTable, cfg.LockTimeout) })
	wg.Go(func() { p.tgt, errT = openSide(ctx, "target", cfg.TargetURL, cfg.TargetTable, cfg.LockTimeout) })
	wg.Wait()
	if err := errors.Join(errS, errT); err != nil {
		p.close()
		return nil, err
	}
	cols, err := p.columns()
	if err != nil {
		p.close()
		return nil, err
	}
	p.res.Columns = cols
	collateC := make([]bool, len(cfg.Key))
	for i, k := range cfg.Key {
		// Ranges must order keys alike on both sides: where the collations
		// differ, compare bytes (slower: the key's index is not used).
		cs, ct := p.src.cols[k].coll, p.tgt.cols[k].coll
		collateC[i] = cs != ct
	}
	compared := append(slices.Clone(cfg.Key), cols...)
	p.qs = newQuery(p.src, cfg.Key, compared, collateC)
	p.qt = newQuery(p.tgt, cfg.Key, compared, collateC)
	return p, nil
}

// columns checks the key and column names against both tables and returns
// the compared columns besides the key.
func (p *pair) columns() ([]string, error) {
	var bad []error
	has := func(name string) bool {
		_, s := p.src.cols[name]
		_, t := p.tgt.cols[name]
		if !s {
			bad = append(bad, fmt.Errorf("column %q is not in the source table %s", name, p.src.table))
		}
		if !t {
			bad = append(bad, fmt.Errorf("column %q is not in the target table %s", name, p.tgt.table))
		}
		return s && t
	}
	for _, k := range p.cfg.Key {
		has(k)
	}
	var cols []string
	switch {
	case p.cfg.KeysOnly || (p.cfg.Columns != nil && len(p.cfg.Columns) == 0):
	case p.cfg.Columns != nil:
		for _, c := range p.cfg.Columns {
			if has(c) && !slices.Contains(p.cfg.Key, c) && !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	default:
		for _, c := range p.src.order {
			if _, ok := p.tgt.cols[c]; ok && !slices.Contains(p.cfg.Key, c) {
				cols = append(cols, c)
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrSettings, errors.Join(bad...))
	}
	return cols, nil
}

func (p *pair) close() {
	for _, s := range []*side{p.src, p.tgt} {
		if s != nil {
			s.close()
		}
	}
}

// finish fills in the costs.
func (p *pair) finish(start time.Time) *Result {
	p.res.Source, p.res.Target = p.src.traffic(), p.tgt.traffic()
	for _, l := range []*[][]string{&p.res.Missing, &p.res.Extra, &p.res.Different} {
		slices.SortFunc(*l, slices.Compare) // a stable report
	}
	p.res.RowsFetched = p.src.fetched + p.tgt.fetched
	p.res.Elapsed = time.Since(start)
	p.res.Equal = p.res.MissingCount+p.res.ExtraCount+p.res.DifferentCount == 0
	for _, l := range []*[][]string{&p.res.Missing, &p.res.Extra, &p.res.Different} {
		if *l == nil {
			*l = [][]string{}
		}
	}
	return p.res
}

// both runs fs and ft at once, one per side, and joins their errors.
func both(fs, ft func() error) error {
	var es, et error
	var wg sync.WaitGroup
	wg.Go(func() { es = fs() })
	wg.Go(func() { et = ft() })
	wg.Wait()
	return errors.Join(es, et)
}

// report records one key's difference; kind is 'm', 'x' or 'd'.
func (p *pair) report(kind byte, key string) {
	var l *[][]string
	var n *int64
	switch kind {
	case 'm':
		l, n = &p.res.Missing, &p.res.MissingCount
	case 'x':
		l, n = &p.res.Extra, &p.res.ExtraCount
	default:
		l, n = &p.res.Different, &p.res.DifferentCount
	}
	*n++
	if p.cfg.Limit < 0 || len(*l) >= p.cfg.Limit {
		return
	}
	*l = append(*l, strings.Split(key, keySep))
}

// keySep joins a key's columns into a map key: text never holds a NUL.
const keySep = "\x00"

// hashes is a key's row hashes on one side: one unless the key repeats.
type hashes []int64

// diff reports the differences between the two sides' rows of a range
// (or of the whole table), by key: a hash on one side only is a missing or
// extra row, unmatched hashes on both sides a different row.
func (p *pair) diff(src, tgt map[string]hashes) {
	type found struct {
		kind byte
		key  string
	}
	var out []found
	for k, hs := range src {
		switch s, t := unmatched(hs, tgt[k]); {
		case s > 0 && t > 0:
			out = append(out, found{'d', k})
		case s > 0:
			out = append(out, found{'m', k})
		case t > 0:
			out = append(out, found{'x', k})
		}
	}
	for k := range tgt {
		if _, ok := src[k]; !ok {
			out = append(out, found{'x', k})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return strings.Compare(a.key, b.key) }) // the same keys listed under Limit
	for _, f := range out {
		p.report(f.kind, f.key)
	}
}

// unmatched counts the hashes of a and b that the other lacks (as
// multisets).
func unmatched(a, b hashes) (na, nb int) {
	if len(a) == 1 && len(b) == 1 {
		if a[0] == b[0] {
			return 0, 0
		}
		return 1, 1
	}
	rest := slices.Clone(b)
	for _, h := range a {
		if i := slices.Index(rest, h); i >= 0 {
			rest = slices.Delete(rest, i, i+1)
		} else {
			na++
		}
	}
	return na, len(rest)
}

// scanRows reads (key text..., hash) rows into m.
func scanRows(rows pgx.Rows, nkey int, m map[string]hashes) (int64, error) {
	vals := make([]any, nkey+1)
	keys := make([]string, nkey)
	for i := range keys {
		vals[i] = &keys[i]
	}
	var h int64
	vals[nkey] = &h
	var n int64
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return n, err
		}
		k := strings.Join(keys, keySep)
		m[k] = append(m[k], h)
		n++
	}
	return n, rows.Err()
}
