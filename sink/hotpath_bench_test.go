package sink

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
)

// The per-record work of the write path, without the database: what a
// partition goroutine spends CPU on besides waiting for PostgreSQL. Run
// with: go test -run '^$' -bench 'Validate|ColumnsOf' -benchmem ./sink/ (and BenchmarkDedupe in batch/)

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

func benchWriter(b *testing.B) *writer {
	b.Helper()
	cfg := Config{Group: "g", Mode: ModeUpsert, Mapping: MappingJSONB, DeleteOnTombstone: true,
		OffsetsTable: "sink_offsets", MaxRecordBytes: 4 << 20, TableMap: map[string]string{"bench": "bench"}}
	return newWriter(cfg, "bench", 0, nil)
}

// BenchmarkValidate: the Go-side checks of every record (size, key, UTF-8,
// JSON, NUL) that keep bad records from costing a bisection.
func BenchmarkValidate(b *testing.B) {
	w, recs := benchWriter(b), benchRecords(5000)
	b.ReportAllocs()
	for b.Loop() {
		if good, bad := w.validate(recs); len(good) != len(recs) || len(bad) != 0 {
			b.Fatalf("validate: %d good, %d bad", len(good), len(bad))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// BenchmarkColumnsOf: turning a de-duplicated batch into the unnest
// statement's parameter arrays.
func BenchmarkColumnsOf(b *testing.B) {
	recs, _ := batch.Dedupe(benchRecords(5000))
	b.ReportAllocs()
	for b.Loop() {
		if c := columnsOf(recs); len(c.keys) != len(recs) {
			b.Fatal("columnsOf lost records")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
