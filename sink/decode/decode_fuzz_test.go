package decode

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzRecordChecks feeds arbitrary keys and values through everything that
// reads a record before the database does: the checks of every mode and
// mapping, the columns mapping's key decoding, and the de-duplication key.
// None of it may panic, every record comes back as a row or a rejection
// with a class and reason, and a key KeyObject takes has a canonical form.
// (postgres's FuzzColumnsRows builds the rows of what gets through.)
//
// go test -run '^$' -fuzz FuzzRecordChecks ./sink/decode/ explores further;
// the seeds run with every go test.
func FuzzRecordChecks(f *testing.F) {
	for _, s := range []struct {
		key, value string
		tombstone  bool
	}{
		{key: "k", value: `{"a": 1}`},
		{key: `"42"`, value: `{"id": 42, "name": "x"}`},
		{key: `{"a": 1, "b": "x"}`, value: `{"a": 1, "b": "x", "c": [1, 2]}`},
		{key: `{"b": "x"}`, value: `[]`},
		{key: "k", value: `"\u0000"`},
		{key: "k", value: `\\u0000`},
		{key: "\xff", value: "\x00"},
		{key: "", value: ""},
		{key: "k", tombstone: true},
		{key: `{"a": {"nested": [1, {"x": null}]}, "b": 1e400}`, value: `{"a": 1e400}`},
	} {
		f.Add([]byte(s.key), []byte(s.value), s.tombstone)
	}
	pks := [][]string{nil, {"id"}, {"a", "b"}}
	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		}
		r := &kgo.Record{Key: key, Value: value}
		for _, mode := range []Mode{ModeUpsert, ModeInsert} {
			for _, mapping := range []Mapping{MappingJSONB, MappingColumns} {
				for _, pk := range pks {
					c := Config{Mode: mode, Mapping: mapping, MaxRecordBytes: 1 << 20, DeleteOnTombstone: true}
					if mapping == MappingColumns {
						c.PrimaryKey = func() []string { return pk }
					}
					rows, bad, _ := c.Decode(context.Background(), []*kgo.Record{r})
					if len(rows)+len(bad) != 1 {
						t.Fatalf("one record gave %d rows and %d rejections", len(rows), len(bad))
					}
					if len(bad) == 1 && (bad[0].Class == "" || bad[0].Reason == "" || bad[0].Record != r) {
						t.Fatalf("a rejection without record, class or reason: %+v", bad[0])
					}
					if len(rows) == 1 && rows[0].Record != r {
						t.Fatalf("a row without its record: %+v", rows[0])
					}
					if _, err := KeyObject(key, pk); err != nil {
						continue
					}
					if _, err := CanonicalKey(key, pk); err != nil {
						t.Fatalf("a key KeyObject takes must have a canonical form: %v", err)
					}
				}
			}
		}
	})
}
