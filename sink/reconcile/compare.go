package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// maxLevels bounds the splitting: each level divides the larger side's rows
// of a range by Fanout, so real tables end far sooner.
const maxLevels = 64

// span is a key range and its checksum on each side.
type span struct {
	b          bounds
	ns, nt     int64  // row counts
	sums, sumt string // hash sums
}

func (s *span) equal() bool { return s.ns == s.nt && s.sums == s.sumt }

// Compare compares the tables by recursive range checksums (see the
// package comment). An error wrapping ErrSettings means bad settings,
// including a table or column that is not there; any other error a failure
// to run. It holds two connections for its duration.
func Compare(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	p, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer p.close()
	root := &span{}
	if err := p.rootAgg(ctx, root); err != nil {
		return nil, err
	}
	p.res.SourceRows, p.res.TargetRows = root.ns, root.nt
	pending := []*span{}
	if !root.equal() {
		pending = append(pending, root)
	}
	for level := 0; len(pending) > 0; level++ {
		if level == maxLevels {
			return nil, errors.New("ranges still differ after 64 levels of splitting")
		}
		if pending, err = p.level(ctx, pending); err != nil {
			return nil, err
		}
	}
	return p.finish(start), nil
}

// level handles one level of differing ranges: small ones are fetched and
// diffed, the others split and their subranges' checksums compared. It
// returns the subranges that still differ. Two round trips per side.
func (p *pair) level(ctx context.Context, pending []*span) ([]*span, error) {
	var leaves, big []*span
	for _, s := range pending {
		if max(s.ns, s.nt) <= int64(p.cfg.LeafRows) {
			leaves = append(leaves, s)
		} else {
			big = append(big, s)
		}
	}
	// Split points, found by the side with more rows in each range.
	splits := make([][][]string, len(big))
	var bs, bt pgx.Batch
	for i, s := range big {
		q, b, n := p.qs, &bs, s.ns
		if s.nt > s.ns {
			q, b, n = p.qt, &bt, s.nt
		}
		// No more parts than it takes to make each a leaf: a checksum
		// costs about as many bytes as five fetched rows.
		k := min(int64(p.cfg.Fanout), max(2, (n+int64(p.cfg.LeafRows)-1)/int64(p.cfg.LeafRows)))
		step := (n + k - 1) / k
		sql, args := q.splits(s.b, n, step)
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
				k := make([]string, len(p.cfg.Key))
				ptrs := make([]any, len(k))
				for j := range k {
					ptrs[j] = &k[j]
				}
				return k, r.Scan(ptrs...)
			})
			splits[i] = keys
			return err
		})
	}
	if err := both(func() error { return p.src.run(ctx, &bs) }, func() error { return p.tgt.run(ctx, &bt) }); err != nil {
		return nil, err
	}
	var subs []*span
	for i, s := range big {
		parts := subranges(s.b, splits[i])
		if len(parts) == 1 { // one key value fills the range: fetch it
			leaves = append(leaves, s)
			continue
		}
		for _, b := range parts {
			subs = append(subs, &span{b: b})
		}
	}
	// The subranges' checksums and the leaves' rows, in one batch a side.
	src := make([]map[string]hashes, len(leaves))
	tgt := make([]map[string]hashes, len(leaves))
	var fs, ft pgx.Batch
	p.queueAggs(&fs, &ft, subs)
	for i, s := range leaves {
		src[i], tgt[i] = map[string]hashes{}, map[string]hashes{}
		queueRows(&fs, p.src, p.qs, s.b, src[i])
		queueRows(&ft, p.tgt, p.qt, s.b, tgt[i])
	}
	if err := both(func() error { return p.src.run(ctx, &fs) }, func() error { return p.tgt.run(ctx, &ft) }); err != nil {
		return nil, err
	}
	for i := range leaves {
		p.diff(src[i], tgt[i])
	}
	var next []*span
	for _, s := range subs {
		if !s.equal() {
			next = append(next, s)
		}
	}
	return next, nil
}

// subranges splits b at the keys (in key order), dropping repeats.
func subranges(b bounds, keys [][]string) []bounds {
	var out []bounds
	lo := b.lo
	for _, k := range keys {
		if lo != nil && equalKey(lo, k) {
			continue
		}
		out = append(out, bounds{lo: lo, hi: k})
		lo = k
	}
	return append(out, bounds{lo: lo, hi: b.hi})
}

func equalKey(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// rootAgg computes the whole tables' checksums, one round trip a side: a
// statement run once is not worth preparing.
func (p *pair) rootAgg(ctx context.Context, root *span) error {
	agg := func(s *side, q query, n *int64, sum *string) func() error {
		return func() error {
			sql, args := q.agg(root.b)
			if err := s.conn.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(n, sum); err != nil {
				return s.failed("checksum "+s.table, err)
			}
			return nil
		}
	}
	p.res.Ranges++
	return both(agg(p.src, p.qs, &root.ns, &root.sums), agg(p.tgt, p.qt, &root.nt, &root.sumt))
}

func (p *pair) queueAggs(bs, bt *pgx.Batch, spans []*span) {
	p.res.Ranges += len(spans)
	for _, s := range spans {
		sql, args := p.qs.agg(s.b)
		bs.Queue(sql, args...).QueryRow(func(r pgx.Row) error { return r.Scan(&s.ns, &s.sums) })
		sql, args = p.qt.agg(s.b)
		bt.Queue(sql, args...).QueryRow(func(r pgx.Row) error { return r.Scan(&s.nt, &s.sumt) })
	}
}

// queueRows fetches a range's (key, hash) pairs from side s into m.
func queueRows(b *pgx.Batch, s *side, q query, r bounds, m map[string]hashes) {
	sql, args := q.rows(r)
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		n, err := scanRows(rows, len(q.keys), m)
		s.fetched += n
		return err
	})
}
