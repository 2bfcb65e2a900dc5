package postgres

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// FuzzColumnsRows: a record that decodes in SINK_MAPPING=columns, whatever
// its key and value, must build the columns statements' row (the decode
// stage's FuzzRecordChecks covers what comes before). The seeds are
// FuzzRecordChecks's.
//
// go test -run '^$' -fuzz FuzzColumnsRows ./sink/postgres/ explores
// further; the seeds run with every go test.
func FuzzColumnsRows(f *testing.F) {
	for _, s := range []struct {
		key, value string
		tombstone  bool
	}{
		{key: "k", value: `{"a": 1}`},
		{key: `"42"`, value: `{"id": 42, "name": "x"}`},
		{key: `{"a": 1, "b": "x"}`, value: `{"a": 1, "b": "x", "c": [1, 2]}`},
		{key: `{"b": "x"}`, value: `[]`},
		{key: "k", value: `"\u0000"`},
		{key: "\xff", value: "\x00"},
		{key: "k", tombstone: true},
		{key: `{"a": {"nested": [1, {"x": null}]}, "b": 1e400}`, value: `{"a": 1e400}`},
	} {
		f.Add([]byte(s.key), []byte(s.value), s.tombstone)
	}
	pks := [][]string{nil, {"id"}, {"a", "b"}}
	cols := map[string]bool{"id": true, "a": true, "b": true, "kafka_offset": true}
	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		}
		r := &kgo.Record{Key: key, Value: value}
		for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
			for _, pk := range pks {
				c := decode.Config{Mode: mode, Mapping: decode.MappingColumns, MaxRecordBytes: 1 << 20, DeleteOnTombstone: true,
					PrimaryKey: func() []string { return pk }}
				rows, _, _ := c.Decode(context.Background(), []*kgo.Record{r})
				if len(rows) == 0 {
					continue // rejected: dead-lettered, never built
				}
				rowPK := pk
				if mode == decode.ModeInsert {
					rowPK = nil // Columns.prepare: the key does not give an insert table's key
				}
				if _, err := buildColumnsRows(rows, cols, rowPK); err != nil {
					t.Fatalf("a record decode lets through must build a row: %v", err)
				}
			}
		}
	})
}
