// Package ceiling writes a dataset's records straight into PostgreSQL with
// the writer's own statements, from memory and without Kafka: the
// database's ceiling for the rows a worker writes. The statements are
// copies of the unexported ones in sink/writer.go: keep them in step.
//
//	perPart, rows := ceiling.Batches(d, l, 5000, false)
//	// sinkdb.EnsureTable(ctx, db, l.Topic, table, sink.ModeUpsert)
//	elapsed, err := ceiling.Write(ctx, ceiling.Config{DSN: dsn, App: "bench-x-ceiling", Table: table, Conns: 4}, perPart)
package ceiling

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
)

// statements are the writer's: lock the offsets row, write the rows (the
// upsert, or in insert mode the insert), advance the offsets row.
func statements(table string, insert bool) (lock, write, advance string) {
	t := pgx.Identifier{table}.Sanitize()
	lock = `INSERT INTO sink_offsets AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING o.next_offset`
	advance = `UPDATE sink_offsets SET next_offset = $4, updated_at = now()
WHERE consumer_group = $1 AND topic = $2 AND partition = $3`
	write = `INSERT INTO ` + t + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, u.v::jsonb, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`
	if insert {
		write = fmt.Sprintf(`INSERT INTO %s (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp)
SELECT $1, $2, u.o, u.k, u.v::jsonb, u.ts
FROM unnest($3::text[], $4::text[], $5::int8[], $6::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING`, t)
	}
	return lock, write, advance
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

// Batches cuts each partition's records of d, in offset order, into
// batches of size records and, unless insert (the writer's insert mode
// keeps every record), de-duplicates each with batch.Dedupe (the datasets
// have no tombstones). rows is the number of rows they hold. Building them
// is the untimed part of a ceiling run.
func Batches(d *dataset.Dataset, l *dataset.Layout, size int, insert bool) (perPart [][]Batch, rows int) {
	perPart = make([][]Batch, l.Parts)
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
			b := Batch{
				part: int32(p), keys: make([]*string, len(kept)), values: make([]*string, len(kept)),
				offsets: make([]int64, len(kept)), timestamps: make([]time.Time, len(kept)),
				next: recs[len(recs)-1].Offset + 1,
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
