package sink

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzRecordChecks feeds arbitrary keys and values through everything that
// reads a record before the database does: the Go checks of every mode and
// mapping, the columns mapping's key decoding and row building, and the
// de-duplication key. None of it may panic, and a record the checks let
// through in columns mapping must decode.
//
// go test -run '^$' -fuzz FuzzRecordChecks ./sink/ explores further; the
// seeds run with every go test.
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
		for _, mode := range []string{ModeUpsert, ModeInsert} {
			for _, mapping := range []string{MappingJSONB, MappingColumns} {
				w := &writer{mode: mode, mapping: mapping, maxRecordBytes: 1 << 20, deletes: true}
				bad, ok := w.check(r)
				if !ok && (bad.class == "" || bad.reason == "") {
					t.Fatalf("a rejection without class or reason: %+v", bad)
				}
				if !ok || mapping != MappingColumns {
					continue
				}
				for _, pk := range pks {
					if _, err := keyObject(key, pk); err != nil {
						continue // dead-lettered as a key error by validate
					}
					if _, err := canonicalKey(key, pk); err != nil {
						t.Fatalf("a key keyObject takes must have a canonical form: %v", err)
					}
					cols := map[string]bool{"id": true, "a": true, "b": true, "kafka_offset": true}
					if _, err := buildColumnsRows([]*kgo.Record{r}, cols, pk); err != nil {
						t.Fatalf("a record the checks let through must build a row: %v", err)
					}
				}
			}
		}
	})
}
