package batch

// Rejection is one item Bisect isolated: its index and the error that
// rejected it on its own.
type Rejection struct {
	Index int
	Err   error
}

// Bisect isolates the items of a rejected batch of n that are rejected on
// their own. apply(lo, hi) tries items [lo, hi) as one sub-statement and
// must leave no trace when it fails (a SAVEPOINT rolled back); rejected
// tells an error that belongs to the data (the items stay out) from one
// that aborts the whole search (an outage: Bisect returns it).
//
// The whole batch has failed already with whole (a rejection), so Bisect
// starts with the two halves; a batch of one is that item, rejected by
// whole. Each rejected range is split in two until single items
// remain, so k bad items among n cost at most about 2k*log2(n/k) + 2k
// sub-statements, not n; good items are applied in ranges as large as
// possible. statements counts the calls of apply.
func Bisect(n int, whole error, apply func(lo, hi int) error, rejected func(error) bool) (bad []Rejection, statements int, err error) {
	var split func(lo, hi int) error
	try := func(lo, hi int) error {
		statements++
		e := apply(lo, hi)
		switch {
		case e == nil:
			return nil
		case !rejected(e):
			return e
		case hi-lo == 1:
			bad = append(bad, Rejection{Index: lo, Err: e})
			return nil
		default:
			return split(lo, hi)
		}
	}
	split = func(lo, hi int) error {
		mid := lo + (hi-lo)/2
		if err := try(lo, mid); err != nil {
			return err
		}
		return try(mid, hi)
	}
	switch n {
	case 0:
		return nil, 0, nil
	case 1:
		return []Rejection{{Index: 0, Err: whole}}, 0, nil
	}
	if err := split(0, n); err != nil {
		return nil, statements, err
	}
	return bad, statements, nil
}
