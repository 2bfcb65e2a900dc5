package batch

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dedupe collapses records, given in offset order, to the last record of
// each key: the highest offset wins. A tombstone (nil value) that is the
// last record of its key wins too and comes back in deletes; an earlier
// tombstone followed by a value is superseded by the value.
//
// upserts and deletes are each in order of the winning record's offset, and
// no key appears in both. Dedupe never modifies records. It is what makes one
// INSERT .. ON CONFLICT DO UPDATE per batch possible: PostgreSQL rejects a
// statement that touches the same key twice (SQLSTATE 21000).
func Dedupe(records []*kgo.Record) (upserts, deletes []*kgo.Record) {
	last := make(map[string]int, len(records))
	for i, r := range records {
		last[string(r.Key)] = i // no allocation: the compiler reads the map by the bytes
	}
	return pick(records, func(i int, r *kgo.Record) bool { return last[string(r.Key)] == i })
}

// DedupeBy is Dedupe over any item type, with the row an item writes given
// by key rather than by a record's key bytes (the decoded key: the JSON keys
// "42" and 42, or an object's fields in another order, are one row), and
// whether the item deletes its row given by isDelete. It returns the
// winners in one new slice, the upserts first and then the deletes, each in
// offset order, and the number of upserts; items are not modified. key and
// isDelete get a pointer to the item (items may be large structs) and are
// called at most twice per item. last is scratch space for the keys, so
// that a caller with batch after batch allocates it once (nil: a new one);
// it is emptied before DedupeBy returns, so it never keeps a batch's keys
// (and the buffers they point into) alive.
func DedupeBy[T any](items []T, last map[string]int, key func(*T) string, isDelete func(*T) bool) (out []T, upserts int) {
	if last == nil {
		last = make(map[string]int, len(items))
	}
	defer clear(last)
	for i := range items {
		last[key(&items[i])] = i
	}
	out = make([]T, len(last))
	dels := len(out) // deletes fill out from the back, then turn around
	for i := range items {
		it := &items[i]
		if last[key(it)] != i {
			continue
		}
		if isDelete(it) {
			dels--
			out[dels] = *it
		} else {
			out[upserts] = *it
			upserts++
		}
	}
	slices.Reverse(out[upserts:])
	return out, upserts
}

// pick splits the records that win into upserts and deletes.
func pick(records []*kgo.Record, wins func(int, *kgo.Record) bool) (upserts, deletes []*kgo.Record) {
	for i, r := range records {
		if !wins(i, r) {
			continue
		}
		if r.Value == nil {
			deletes = append(deletes, r)
		} else {
			upserts = append(upserts, r)
		}
	}
	return upserts, deletes
}
