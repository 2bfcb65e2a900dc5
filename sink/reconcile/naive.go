package reconcile

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Naive compares the tables the way a batch job would: it streams every
// row's key and hash from both sides (in key order, both at once) and
// diffs them in memory. Its Result has the same differences as Compare's;
// it is the baseline Compare's cost is measured against. Memory grows with
// the source table.
func Naive(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	p, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer p.close()
	src, tgt := map[string]hashes{}, map[string]hashes{}
	stream := func(s *side, q query, m map[string]hashes) func() error {
		return func() error {
			var b pgx.Batch
			queueRowsSQL(&b, s, q, q.all(), m)
			return s.run(ctx, &b)
		}
	}
	if err := both(stream(p.src, p.qs, src), stream(p.tgt, p.qt, tgt)); err != nil {
		return nil, err
	}
	p.res.SourceRows, p.res.TargetRows = p.src.fetched, p.tgt.fetched
	p.diff(src, tgt)
	return p.finish(start), nil
}

// queueRowsSQL queues sql, which selects (key text..., hash), reading its
// rows from side s into m.
func queueRowsSQL(b *pgx.Batch, s *side, q query, sql string, m map[string]hashes) {
	b.Queue(sql).Query(func(rows pgx.Rows) error {
		n, err := scanRows(rows, len(q.keys), m)
		s.fetched += n
		return err
	})
}
