package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/sink"
)

// upsertSQL is the writer's statement (sink/writer.go, unexported): keep it
// in step, as bench/drain/ceiling.go does.
const upsertSQL = `INSERT INTO %s AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, u.v::jsonb, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`

type columns struct {
	part       int32
	keys       []*string
	values     []*string
	offsets    []int64
	timestamps []time.Time
}

// buildBatches cuts each partition's records, in offset order, into
// batches of size, de-duplicated with batch.Dedupe as the writer does.
func buildBatches(d *dataset, l *layout, size int) (perPart [][]columns, rows int) {
	perPart = make([][]columns, l.parts)
	for p, idx := range l.byPart {
		for lo := 0; lo < len(idx); lo += size {
			chunk := idx[lo:min(lo+size, len(idx))]
			recs := make([]*kgo.Record, len(chunk))
			for j, i := range chunk {
				recs[j] = &kgo.Record{Key: d.key(i), Value: d.value(i, l.tsMs[i]), Partition: int32(p),
					Offset: l.off[i], Timestamp: time.UnixMilli(l.tsMs[i])}
			}
			upserts, _ := batch.Dedupe(recs)
			c := columns{part: int32(p), keys: make([]*string, len(upserts)), values: make([]*string, len(upserts)),
				offsets: make([]int64, len(upserts)), timestamps: make([]time.Time, len(upserts))}
			for j, rec := range upserts {
				k, v := string(rec.Key), string(rec.Value)
				c.keys[j], c.values[j], c.offsets[j], c.timestamps[j] = &k, &v, rec.Offset, rec.Timestamp
			}
			rows += len(upserts)
			perPart[p] = append(perPart[p], c)
		}
	}
	return perPart, rows
}

// ceilingRun upserts every batch into a fresh table with conns connections:
// connection i writes the batches of partitions p with p % conns == i,
// round-robin over its partitions, one transaction per batch. It returns
// the elapsed time after a CHECKPOINT and checks the table.
func ceilingRun(ctx context.Context, s *services, d *dataset, l *layout, perPart [][]columns, conns int, table string) (time.Duration, error) {
	cfg := sink.Config{Topics: []string{l.topic}, TableMap: map[string]string{l.topic: table},
		Mode: sink.ModeUpsert, OffsetsTable: "sink_offsets"}
	if err := sink.EnsureTables(ctx, s.db, cfg); err != nil {
		return 0, err
	}
	pc, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return 0, err
	}
	pc.RuntimeParams["application_name"] = "bench-suite-ceiling"
	cs := make([]*pgx.Conn, conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range cs {
		if cs[i], err = pgx.ConnectConfig(ctx, pc); err != nil {
			return 0, fmt.Errorf("ceiling connection: %w", err)
		}
	}
	if _, err := cs[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	upsert := fmt.Sprintf(upsertSQL, pgx.Identifier{table}.Sanitize())
	// Interleave each connection's partitions, as partitions progress together in the worker.
	work := make([][]columns, conns)
	for i := range conns {
		var mine [][]columns
		for p := i; p < len(perPart); p += conns {
			mine = append(mine, perPart[p])
		}
		for j := 0; ; j++ {
			more := false
			for _, bs := range mine {
				if j < len(bs) {
					work[i], more = append(work[i], bs[j]), true
				}
			}
			if !more {
				break
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, conns)
	start := time.Now()
	for i := range conns {
		wg.Go(func() {
			for _, b := range work[i] {
				if _, err := cs[i].Exec(ctx, upsert, b.part, b.keys, b.values, b.offsets, b.timestamps); err != nil {
					errs[i] = fmt.Errorf("ceiling %s: %w", table, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return elapsed, checkTable(ctx, s, table, d, l)
}

// checkTable compares an upsert table with what the records imply.
func checkTable(ctx context.Context, s *services, table string, d *dataset, l *layout) error {
	wantRows, wantSum := l.expected(d)
	var rows, sum int64
	err := s.db.QueryRow(ctx, `SELECT count(*), coalesce(sum(kafka_offset), 0)::bigint FROM `+
		pgx.Identifier{table}.Sanitize()).Scan(&rows, &sum)
	if err != nil {
		return fmt.Errorf("check %s: %w", table, err)
	}
	if rows != int64(wantRows) || sum != wantSum {
		return fmt.Errorf("table %s holds %d rows with offsets summing to %d, want %d rows summing to %d",
			table, rows, sum, wantRows, wantSum)
	}
	return nil
}
