package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// The per-record work of the write path, without the database: what a
// partition goroutine spends CPU on besides waiting for PostgreSQL. Run
// with: go test -run '^$' -bench 'ColumnsOf' -benchmem ./sink/postgres/ (and
// BenchmarkDecode in sink/decode/, BenchmarkDedupe in batch/)

// benchRecords is one batch as the bench suites produce it: keys user-<n>
// (repeating), ~100-byte JSON values.
func benchRecords(n int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(7, 7))
	ts := time.Unix(1_790_000_000, 0)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		u := rng.IntN(n / 5)
		recs[i] = &kgo.Record{
			Topic: "bench", Partition: 0, Offset: int64(i), Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
			Key: fmt.Appendf(nil, "user-%d", u),
			Value: fmt.Appendf(nil, `{"user_id":%d,"event":"points-changed","points":%d,"ts":"%s","pad":"%s"}`,
				u, rng.IntN(100_000), ts.Format(time.RFC3339), "xxxxxxxxxxxx"),
		}
	}
	return recs
}

// benchRows is benchRecords(n) decoded and collapsed to the last record
// per key, as the upsert statement gets it.
func benchRows(n int) []decode.Row {
	dec := decode.Config{Mode: decode.ModeUpsert, Mapping: decode.MappingJSONB, MaxRecordBytes: 4 << 20, DeleteOnTombstone: true}
	rows, _, _ := dec.Decode(context.Background(), benchRecords(n))
	return (&Writer{}).collapse(rows, &Result{})
}

// BenchmarkColumnsOf: turning a de-duplicated batch into the unnest
// statement's parameter arrays.
func BenchmarkColumnsOf(b *testing.B) {
	recs := benchRows(5000)
	b.ReportAllocs()
	for b.Loop() {
		if c := columnsOf(recs); len(c.offsets) != len(recs) || len(c.keys.([]string)) != len(recs) {
			b.Fatal("columnsOf lost records")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// BenchmarkEncodeColumns: building the parameters of one upsert statement
// and pgx's binary encoding of them, as SendBatch does (a batch of 5000
// records, de-duplicated). "copied-pointers" is the form the writer used
// before, []*string of copied strings, which pgx encodes by reflection:
// kept as the baseline the shipped "text-array" form is measured against.
func BenchmarkEncodeColumns(b *testing.B) {
	recs := benchRows(5000)
	for _, form := range []struct {
		name  string
		build func([]decode.Row) columns
	}{{"text-array", columnsOf}, {"copied-pointers", copiedPointerColumns}} {
		b.Run(form.name, func(b *testing.B) {
			m := pgtype.NewMap()
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				c := form.build(recs)
				buf = buf[:0]
				for _, p := range []struct {
					oid uint32
					v   any
				}{{pgtype.TextArrayOID, c.keys}, {pgtype.TextArrayOID, c.values}, {pgtype.Int8ArrayOID, c.offsets}, {pgtype.TimestamptzArrayOID, c.timestamps}} {
					var err error
					if buf, err = m.Encode(p.oid, pgtype.BinaryFormatCode, p.v, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}

// copiedPointerColumns is the baseline of BenchmarkEncodeColumns.
func copiedPointerColumns(rows []decode.Row) columns {
	keys, values := make([]*string, len(rows)), make([]*string, len(rows))
	c := columns{keys: keys, values: values, offsets: make([]int64, len(rows)), timestamps: make([]time.Time, len(rows))}
	for i, row := range rows {
		r := row.Record
		k, v := string(r.Key), string(row.Value)
		keys[i], values[i] = &k, &v
		c.offsets[i], c.timestamps[i] = r.Offset, r.Timestamp
	}
	return c
}

// TestTextArrayNulls: a null field (insert mode's null key) switches the
// parameter to []*string with nil for NULL; otherwise []string, sharing the
// records' bytes.
func TestTextArrayNulls(t *testing.T) {
	recs := []decode.Row{{Record: &kgo.Record{Key: []byte("a")}, KeyText: []byte("a")}, {Record: &kgo.Record{Key: []byte{}}, KeyText: []byte{}}, {Record: &kgo.Record{Key: nil}}}
	got, ok := textArray(recs, rowKey).([]*string)
	if !ok || len(got) != 3 || *got[0] != "a" || *got[1] != "" || got[2] != nil {
		t.Fatalf("with a null key: got %#v", textArray(recs, rowKey))
	}
	plain, ok := textArray(recs[:2], rowKey).([]string)
	if !ok || len(plain) != 2 || plain[0] != "a" || plain[1] != "" {
		t.Fatalf("without nulls: got %#v", textArray(recs[:2], rowKey))
	}
}

// BenchmarkCollapse: an upsert batch of 5000 decoded rows (keys repeat)
// collapsed to the last row per key, as every upsert batch is.
func BenchmarkCollapse(b *testing.B) {
	dec := decode.Config{Mode: decode.ModeUpsert, Mapping: decode.MappingJSONB, MaxRecordBytes: 4 << 20, DeleteOnTombstone: true}
	rows, _, _ := dec.Decode(context.Background(), benchRecords(5000))
	w := &Writer{}
	b.ReportAllocs()
	for b.Loop() {
		_ = w.collapse(rows, &Result{})
	}
}
