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

// The writer's statements (sink/writer.go), which the sink package does not
// export; %s is the quoted table. Keep them in step with the writer.
const (
	upsertSQL = `INSERT INTO %s AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT u.k, u.v::jsonb, $1, u.o, u.ts, now()
FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) AS u(k, v, o, ts)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`
	lockSQL = `INSERT INTO sink_offsets AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING o.next_offset`
	advanceSQL = `UPDATE sink_offsets SET next_offset = $4, updated_at = now()
WHERE consumer_group = $1 AND topic = $2 AND partition = $3`
)

// columns is one batch, de-duplicated, as the writer's unnest parameters.
type columns struct {
	keys, values []*string
	offsets      []int64
	timestamps   []time.Time
	next         int64 // the batch's last offset + 1, before de-duplication
}

// ceiling writes the same records straight into PostgreSQL, twice: the
// upsert statement alone in one transaction per batch (the ceiling), and the
// writer's whole transaction (lock the offsets row, upsert, advance it).
// Batches are BATCH_MAX_RECORDS consecutive records of one partition,
// de-duplicated by batch.Dedupe, written by one goroutine and connection
// per partition. Building the batches is not timed.
func ceiling(ctx context.Context, s *services, o options, n names, ds *dataset, r *report) error {
	batches, rows := buildBatches(ds, o.batch)
	logf("ceiling: %d records in %d batches of up to %d per partition, %d rows after de-duplication",
		ds.n, countBatches(batches), o.batch, rows)
	r.ceilingRows = rows

	for _, run := range []struct {
		table, group string
		withOffsets  bool
		out          *time.Duration
		check        *string
	}{
		{n.ceiling, "", false, &r.ceilingTime, &r.ceilingCheck},
		{n.full, n.fullGroup, true, &r.fullTime, &r.fullCheck},
	} {
		cfg := sink.Config{Topics: []string{n.topic}, TableMap: map[string]string{n.topic: run.table},
			Mode: sink.ModeUpsert, OffsetsTable: "sink_offsets"}
		if err := sink.EnsureTables(ctx, s.db, cfg); err != nil {
			return err
		}
		elapsed, err := writeAll(ctx, s.dsn, run.table, run.group, n.topic, batches, run.withOffsets)
		if err != nil {
			return err
		}
		*run.out = elapsed
		if err := checkTable(ctx, s.db, run.table, ds, run.check); err != nil {
			return err
		}
		if err := sameRows(ctx, s.db, n.table, run.table); err != nil {
			return err
		}
		logf("ceiling %s: %d records in %s (%.0f records/s, %.0f rows/s)", run.table, ds.n,
			elapsed.Round(time.Millisecond), float64(ds.n)/elapsed.Seconds(), float64(rows)/elapsed.Seconds())
	}
	return nil
}

// buildBatches cuts each partition's records, in offset order, into
// batches of size and de-duplicates each as the writer does.
func buildBatches(ds *dataset, size int) (perPart [][]columns, rows int) {
	perPart = make([][]columns, ds.parts)
	for p, idx := range ds.byPart {
		for lo := 0; lo < len(idx); lo += size {
			chunk := idx[lo:min(lo+size, len(idx))]
			recs := make([]*kgo.Record, len(chunk))
			for j, i := range chunk {
				recs[j] = &kgo.Record{Key: ds.key(i), Value: ds.value(i), Partition: int32(p),
					Offset: ds.off[i], Timestamp: time.UnixMilli(ds.tsMs[i])}
			}
			upserts, _ := batch.Dedupe(recs) // no tombstones are produced
			c := columns{
				keys: make([]*string, len(upserts)), values: make([]*string, len(upserts)),
				offsets: make([]int64, len(upserts)), timestamps: make([]time.Time, len(upserts)),
				next: recs[len(recs)-1].Offset + 1,
			}
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

func countBatches(perPart [][]columns) (n int) {
	for _, b := range perPart {
		n += len(b)
	}
	return n
}

// writeAll opens one connection per partition, then times every
// partition's batches written concurrently, one transaction each.
func writeAll(ctx context.Context, dsn, table, group, topic string, perPart [][]columns, withOffsets bool) (time.Duration, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, err
	}
	pc.RuntimeParams["application_name"] = "bench-drain-ceiling"
	conns := make([]*pgx.Conn, len(perPart))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for p := range conns {
		if conns[p], err = pgx.ConnectConfig(ctx, pc); err != nil {
			return 0, fmt.Errorf("ceiling connection: %w", err)
		}
	}
	if _, err := conns[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	upsert := fmt.Sprintf(upsertSQL, pgx.Identifier{table}.Sanitize())

	var (
		wg   sync.WaitGroup
		errs = make([]error, len(perPart))
	)
	start := time.Now()
	for p, batches := range perPart {
		wg.Go(func() {
			for _, b := range batches {
				if err := writeBatch(ctx, conns[p], upsert, group, topic, int32(p), b, withOffsets); err != nil {
					errs[p] = fmt.Errorf("ceiling %s[%d] batch ending %d: %w", table, p, b.next, err)
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
	return elapsed, nil
}

func writeBatch(ctx context.Context, c *pgx.Conn, upsert, group, topic string, p int32, b columns, withOffsets bool) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if withOffsets {
		var next int64
		if err := tx.QueryRow(ctx, lockSQL, group, topic, p).Scan(&next); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, upsert, p, b.keys, b.values, b.offsets, b.timestamps); err != nil {
		return err
	}
	if withOffsets {
		if _, err := tx.Exec(ctx, advanceSQL, group, topic, p, b.next); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// sameRows checks that two upsert tables hold the same keys with the same
// values, partitions, offsets and timestamps.
func sameRows(ctx context.Context, db *pgx.Conn, a, b string) error {
	var diff int64
	err := db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s a FULL JOIN %s b USING (key)
WHERE a.value IS DISTINCT FROM b.value OR a.kafka_partition IS DISTINCT FROM b.kafka_partition
	OR a.kafka_offset IS DISTINCT FROM b.kafka_offset OR a.kafka_timestamp IS DISTINCT FROM b.kafka_timestamp`,
		pgx.Identifier{a}.Sanitize(), pgx.Identifier{b}.Sanitize())).Scan(&diff)
	if err != nil {
		return fmt.Errorf("compare %s with %s: %w", a, b, err)
	}
	if diff != 0 {
		return fmt.Errorf("%s and %s differ in %d keys: the ceiling did not write the worker's rows", a, b, diff)
	}
	return nil
}
