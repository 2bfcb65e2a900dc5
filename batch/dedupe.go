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
		last[string(r.Key)] = i
	}
	for i, r := range records {
		if last[string(r.Key)] != i {
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
