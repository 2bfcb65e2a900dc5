package decode

import (
	"context"
	"encoding/json"
	"strings"
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

// FuzzValidJSON: validJSON (fastjson first) and json.Valid agree on every
// input, including the deeply nested values validJSON leaves to
// encoding/json (the seeds run with every go test).
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"a": 1}`, `[1, 2.5e-3, -0, true, false, null, "x\u00e9\n"]`, `{"a":{"b":[{}]}}`, ` 1 `, `"\ud800"`,
		`01`, `1.`, `.5`, `1e`, `-`, `+1`, `NaN`, `Infinity`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `'x'`,
		"\"\x01\"", "\"\t\"", "[1]\x0c", "\x0c[1]", `"\x"`, `"\u12"`, `"\u12g4"`, `[1] [2]`, ``, ` `, `{"a":1}}`,
		"\xff", `"` + "\xc3\x28" + `"`, strings.Repeat("[", 600) + strings.Repeat("]", 600),
		strings.Repeat("[", 600) + strings.Repeat("]", 599), strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
