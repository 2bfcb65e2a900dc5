package decode

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCanonicalKey(t *testing.T) {
	tests := []struct {
		name string
		pk   []string
		a, b string
		same bool
	}{
		{name: "number and string", pk: []string{"id"}, a: `42`, b: `"42"`, same: true},
		{name: "different values", pk: []string{"id"}, a: `42`, b: `43`},
		{name: "fields reordered", pk: []string{"a", "b"}, a: `{"a":1,"b":"x"}`, b: `{"b":"x","a":1}`, same: true},
		{name: "extra field ignored", pk: []string{"a", "b"}, a: `{"a":1,"b":"x","c":2}`, b: `{"b":"x","a":1}`, same: true},
		{name: "composite differs", pk: []string{"a", "b"}, a: `{"a":1,"b":"x"}`, b: `{"a":1,"b":"y"}`},
		{name: "separator cannot join parts", pk: []string{"a", "b"}, a: `{"a":"1,","b":"x"}`, b: `{"a":"1","b":",x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := CanonicalKey([]byte(tt.a), tt.pk)
			require.NoError(t, err)
			b, err := CanonicalKey([]byte(tt.b), tt.pk)
			require.NoError(t, err)
			assert.Equal(t, tt.same, a == b, "%s vs %s", a, b)
		})
	}
}

// TestDecode: each record comes back as one row, with its operation and
// key, or one rejection, with its class, in the records' order.
func TestDecode(t *testing.T) {
	rec := func(off int64, key, value string, tombstone bool) *kgo.Record {
		r := &kgo.Record{Offset: off, Value: []byte(value)}
		if key != "" {
			r.Key = []byte(key)
		}
		if tombstone {
			r.Value = nil
		}
		return r
	}
	tests := []struct {
		name    string
		cfg     Config
		records []*kgo.Record
		wantOps map[int64]Op     // rows by offset
		wantBad map[int64]string // rejections by offset: class
		wantKey map[int64]string // row keys checked
	}{
		{name: "upsert, tombstones delete",
			cfg:     Config{Mode: ModeUpsert, Mapping: MappingJSONB, MaxRecordBytes: 100, DeleteOnTombstone: true},
			records: []*kgo.Record{rec(0, "a", `{"x":1}`, false), rec(1, "a", "", true), rec(2, "", `{}`, false), rec(3, "b", `nope`, false)},
			wantOps: map[int64]Op{0: OpWrite, 1: OpDelete},
			wantBad: map[int64]string{2: ClassKey, 3: ClassDecode},
			wantKey: map[int64]string{0: "a"}},
		{name: "upsert, tombstones skipped",
			cfg:     Config{Mode: ModeUpsert, Mapping: MappingJSONB, MaxRecordBytes: 100},
			records: []*kgo.Record{rec(0, "a", "", true), rec(1, "a", `"`+string(make([]byte, 100))+`"`, false)},
			wantOps: map[int64]Op{0: OpSkip},
			wantBad: map[int64]string{1: ClassTooLarge}},
		{name: "insert writes tombstones and keyless records",
			cfg:     Config{Mode: ModeInsert, Mapping: MappingJSONB, MaxRecordBytes: 100, DeleteOnTombstone: true},
			records: []*kgo.Record{rec(0, "", `1`, false), rec(1, "a", "", true)},
			wantOps: map[int64]Op{0: OpWrite, 1: OpWrite}},
		{name: "columns: canonical keys, objects only",
			cfg: Config{Mode: ModeUpsert, Mapping: MappingColumns, MaxRecordBytes: 100,
				PrimaryKey: func() []string { return []string{"a", "b"} }},
			records: []*kgo.Record{rec(0, `{"b":"x","a":1}`, `{"v":1}`, false), rec(1, `{"a":1}`, `{}`, false), rec(2, `{"a":1,"b":"x"}`, `[1]`, false)},
			wantOps: map[int64]Op{0: OpWrite},
			wantBad: map[int64]string{1: ClassKey, 2: ClassDecode},
			wantKey: map[int64]string{0: `["1","x"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, bad, err := tt.cfg.Decode(context.Background(), tt.records)
			require.NoError(t, err)
			gotOps, gotBad := map[int64]Op{}, map[int64]string{}
			last := int64(-1)
			for _, r := range rows {
				assert.Greater(t, r.Record.Offset, last, "rows in offset order")
				last = r.Record.Offset
				gotOps[r.Record.Offset] = r.Op
				if want, ok := tt.wantKey[r.Record.Offset]; ok {
					assert.Equal(t, want, r.Key)
				}
				assert.Equal(t, r.Record.Value, r.Value)
			}
			for _, b := range bad {
				gotBad[b.Record.Offset] = b.Class
				assert.NotEmpty(t, b.Reason)
				assert.Equal(t, b.Reason, b.LogReason(), "a decode rejection's reason names the problem, not the data")
			}
			if tt.wantBad == nil {
				tt.wantBad = map[int64]string{}
			}
			assert.Equal(t, tt.wantOps, gotOps)
			assert.Equal(t, tt.wantBad, gotBad)
		})
	}
}

// BenchmarkDecode: the checks of every record (size, key, UTF-8, JSON,
// NUL) that keep bad records from costing a bisection, as a partition
// goroutine runs them before it takes a connection.
func BenchmarkDecode(b *testing.B) {
	recs := make([]*kgo.Record, 5000)
	for i := range recs {
		recs[i] = &kgo.Record{Offset: int64(i), Key: fmt.Appendf(nil, "user-%d", i%1000),
			Value: fmt.Appendf(nil, `{"user_id":%d,"event":"points-changed","points":%d,"pad":"%s"}`, i%1000, i, "xxxxxxxxxxxx")}
	}
	c := Config{Mode: ModeUpsert, Mapping: MappingJSONB, MaxRecordBytes: 4 << 20, DeleteOnTombstone: true}
	b.ReportAllocs()
	for b.Loop() {
		if rows, bad, _ := c.Decode(context.Background(), recs); len(rows) != len(recs) || len(bad) != 0 {
			b.Fatalf("decode: %d rows, %d rejected", len(rows), len(bad))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
