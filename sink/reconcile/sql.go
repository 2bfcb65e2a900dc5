package reconcile

import (
	"fmt"
	"strings"
)

// query builds one side's SQL. Keys travel between the sides as text and
// are cast back to the side's own column type, so that a range condition
// is a row-value comparison on the key's index.
type query struct {
	table string
	keys  []string // key expressions, quoted, with COLLATE "C" where the sides' collations differ
	casts []string // each key column's type on this side
	hash  string   // the row hash: 64 bits of the compared columns' text
}

// newQuery is side s's query builder for the key and compared columns
// (key first). collateC[i] forces byte order on key i.
func newQuery(s *side, key, compared []string, collateC []bool) query {
	q := query{table: s.table}
	for i, k := range key {
		e := quote(k)
		if collateC[i] {
			e += ` COLLATE "C"`
		}
		q.keys = append(q.keys, e)
		q.casts = append(q.casts, s.cols[k].typ)
	}
	quoted := make([]string, len(compared))
	for i, c := range compared {
		quoted[i] = quote(c)
	}
	// A row's text form quotes what needs it and writes NULL as nothing
	// and '' as "", so distinct rows have distinct texts. hashtextextended
	// (PostgreSQL 11+) is 64 bits and three times as fast as md5; it is
	// the same function on every server of one byte order (x86-64 and
	// arm64 alike).
	q.hash = fmt.Sprintf(`hashtextextended(ROW(%s)::text, 0)`, list(quoted))
	return q
}

// bounds is a key range (lo, hi]; a nil end is open.
type bounds struct{ lo, hi []string }

// where is the range's condition, its parameters numbered from $1.
func (q query) where(r bounds) (string, []any) {
	var conds []string
	var args []any
	row := func(vals []string) string {
		ps := make([]string, len(vals))
		for i, v := range vals {
			args = append(args, v)
			ps[i] = fmt.Sprintf("$%d::text::%s", len(args), q.casts[i])
		}
		return "(" + list(ps) + ")"
	}
	if r.lo != nil {
		conds = append(conds, "("+list(q.keys)+") > "+row(r.lo))
	}
	if r.hi != nil {
		conds = append(conds, "("+list(q.keys)+") <= "+row(r.hi))
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// keyText is the key as text columns.
func (q query) keyText() string {
	ts := make([]string, len(q.keys))
	for i, k := range q.keys {
		ts[i] = k + "::text"
	}
	return list(ts)
}

// agg counts a range's rows and sums their hashes (as numeric: no overflow).
func (q query) agg(r bounds) (string, []any) {
	w, args := q.where(r)
	return fmt.Sprintf("SELECT count(*), coalesce(sum(%s), 0)::text FROM %s WHERE %s", q.hash, q.table, w), args
}

// splits returns the keys at every step-th row of a range of n rows in key
// order, the last row excepted: the upper bounds of its subranges but the
// last. One pass over the range in key order (the key's index).
func (q query) splits(r bounds, n int64, step int64) (string, []any) {
	w, args := q.where(r)
	cols := make([]string, len(q.keys))
	for i := range q.keys {
		cols[i] = fmt.Sprintf("k%d", i)
	}
	inner := make([]string, len(q.keys))
	for i, k := range q.keys {
		inner[i] = k + "::text AS " + cols[i]
	}
	return fmt.Sprintf(`SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS rn FROM %s WHERE %s) s
WHERE rn %% $%d::bigint = 0 AND rn < $%d::bigint ORDER BY rn`, list(cols), list(inner), list(q.keys), q.table, w, len(args)+1, len(args)+2), append(args, step, n)
}

// rows fetches a range's keys and row hashes.
func (q query) rows(r bounds) (string, []any) {
	w, args := q.where(r)
	return fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s", q.keyText(), q.hash, q.table, w), args
}

// all streams every key and row hash in key order: the naive compare.
func (q query) all() string {
	return fmt.Sprintf("SELECT %s, %s FROM %s ORDER BY %s", q.keyText(), q.hash, q.table, list(q.keys))
}
