package batch

import "github.com/twmb/franz-go/pkg/kgo"

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
// whether the item deletes its row given by isDelete. key and isDelete are
// called at most twice per item.
func DedupeBy[T any](items []T, key func(T) string, isDelete func(T) bool) (upserts, deletes []T) {
	last := make(map[string]int, len(items))
	for i, it := range items {
		last[key(it)] = i
	}
	for i, it := range items {
		if last[key(it)] != i {
			continue
		}
		if isDelete(it) {
			deletes = append(deletes, it)
		} else {
			upserts = append(upserts, it)
		}
	}
	return upserts, deletes
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
