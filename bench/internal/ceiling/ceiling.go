// Package ceiling writes a dataset's records straight into PostgreSQL with
// the writer's own statements (postgres.CeilingStatements), from memory and
// without Kafka: the database's ceiling for the rows a worker writes.
//
//	perPart, rows := ceiling.Batches(d, l, 5000, false)
//	// sinkdb.EnsureTable(ctx, db, l.Topic, table, false)
//	elapsed, err := ceiling.Write(ctx, ceiling.Config{DSN: dsn, App: "bench-x-ceiling", Table: table, Conns: 4}, perPart)
package ceiling

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// statements are the writer's own (postgres.CeilingStatements) for table
// in sink_offsets: lock the offsets row, write the rows (the upsert, or in
// insert mode the insert), advance the offsets row.
func statements(topic, table string, insert bool) (lock, write, advance string) {
	mode := decode.ModeUpsert
	if insert {
		mode = decode.ModeInsert
	}
	return postgres.CeilingStatements(postgres.Config{OffsetsTable: pgx.Identifier{"sink_offsets"},
		Tables: map[string]pgx.Identifier{topic: {table}}, Mode: mode}, topic)
}

// Batch is consecutive records of one partition, de-duplicated as the
// writer does, held as the write statement's unnest parameters.
type Batch struct {
	part       int32
	keys       []*string
	values     []*string
	offsets    []int64
	timestamps []time.Time
	next       int64 // the batch's last offset + 1, before de-duplication
}

// Chunks cuts each partition's records of d, in offset order, into runs
// of size records; each run is de-duplicated with batch.Dedupe unless
// insert (the writer's insert mode keeps every record; the datasets have
// no tombstones). next is, per run, its last offset + 1 before
// de-duplication.
func Chunks(d *dataset.Dataset, l *dataset.Layout, size int, insert bool) (perPart [][][]*kgo.Record, next [][]int64) {
	perPart, next = make([][][]*kgo.Record, l.Parts), make([][]int64, l.Parts)
	for p, idx := range l.ByPart {
		for lo := 0; lo < len(idx); lo += size {
			chunk := idx[lo:min(lo+size, len(idx))]
			recs := make([]*kgo.Record, len(chunk))
			for j, i := range chunk {
				recs[j] = &kgo.Record{Key: d.Key(i), Value: d.Value(i, l.TsMs[i]), Partition: int32(p),
					Offset: l.Off[i], Timestamp: time.UnixMilli(l.TsMs[i])}
			}
			kept := recs
			if !insert {
				kept, _ = batch.Dedupe(recs)
			}
			perPart[p] = append(perPart[p], kept)
			next[p] = append(next[p], recs[len(recs)-1].Offset+1)
		}
	}
	return perPart, next
}

// Batches is Chunks as the statements' parameters; rows is the number of
// rows they hold. Building them is the untimed part of a ceiling run.
func Batches(d *dataset.Dataset, l *dataset.Layout, size int, insert bool) (perPart [][]Batch, rows int) {
	chunks, next := Chunks(d, l, size, insert)
	perPart = make([][]Batch, l.Parts)
	for p := range chunks {
		for c, kept := range chunks[p] {
			b := Batch{
				part: int32(p), keys: make([]*string, len(kept)), values: make([]*string, len(kept)),
				offsets: make([]int64, len(kept)), timestamps: make([]time.Time, len(kept)),
				next: next[p][c],
			}
			for j, rec := range kept {
				k, v := string(rec.Key), string(rec.Value)
				b.keys[j], b.values[j], b.offsets[j], b.timestamps[j] = &k, &v, rec.Offset, rec.Timestamp
			}
			rows += len(kept)
			perPart[p] = append(perPart[p], b)
		}
	}
	return perPart, rows
}
