package postgres

// BenchmarkBulkUpsert chooses the bulk write path of upsert mode by
// measurement against a real PostgreSQL (DATABASE_URL; it fails, never skips,
// without one):
//
//   - unnest: the real writer (newWriter(...).Write): INSERT .. SELECT FROM
//     unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) ..
//     ON CONFLICT (key) DO UPDATE;
//   - copy: COPY (pgx CopyFrom) into a per-connection temp table (ON COMMIT
//     DELETE ROWS, created once right after connecting), then INSERT .. SELECT
//     FROM it .. ON CONFLICT (key) DO UPDATE, wrapped in the writer's own
//     steps (offsets lock, Go validation, collapse, SAVEPOINT, advance), so
//     both do the same work per batch.
//
// Every sub-benchmark gets fresh tables (random suffix, dropped in
// b.Cleanup), pre-filled with every other key of the 200,000-key space, and
// the same deterministic record stream, so inserts and updates both happen in
// the same mix for both methods. Offsets increase across iterations, so no
// record is dropped as already applied (checked after the loop).
//
// Run (go test's -count repeats each sub-benchmark back to back, so repeat
// the whole command instead to interleave the methods):
//
//	eval "$(scripts/services env)"
//	go test -run '^$' -bench BulkUpsert -benchtime 60x -count 1 ./sink/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

const (
	bulkKeySpace  = 200_000
	bulkTopic     = "bench.bulk"
	bulkPartition = int32(0)
	bulkGroup     = "bench"
	bulkStage     = "bulk_stage" // the copy method's per-connection temp table
)

var bulkSizes = []int{500, 2000, 5000}

// bulkMethod writes one batch in one transaction on conn.
type bulkMethod struct {
	name string
	// prepare runs once on the benchmark's dedicated connection, before the
	// timer starts, and returns the per-batch write function.
	prepare func(tb testing.TB, ctx context.Context, conn *pgx.Conn, cfg Config) func(records []*kgo.Record) error
}

var bulkMethods = []bulkMethod{
	{"unnest", bulkPrepareUnnest},
	{"copy", bulkPrepareCopy},
}

func BenchmarkBulkUpsert(b *testing.B) {
	url := testenv.DatabaseURL(b)
	for _, m := range bulkMethods {
		b.Run(m.name, func(b *testing.B) {
			for _, n := range bulkSizes {
				b.Run(strconv.Itoa(n), func(b *testing.B) { bulkRun(b, url, m, n) })
			}
		})
	}
}

func bulkRun(b *testing.B, url string, m bulkMethod, size int) {
	ctx := context.Background()
	tag := fmt.Sprintf("%s_%d_%08x", m.name, size, rand.Uint32())
	table, offsets := "bench_bulk_"+tag, "bench_bulk_offsets_"+tag
	cfg := Config{
		Topics:            []string{bulkTopic},
		Group:             bulkGroup,
		Mode:              decode.ModeUpsert,
		Mapping:           decode.MappingJSONB,
		DeleteOnTombstone: true,
		OffsetsTable:      pgx.Identifier{offsets},
		Tables:            map[string]pgx.Identifier{bulkTopic: {table}},
	}

	admin := bulkConnect(b, ctx, url)
	b.Cleanup(func() {
		// Drop with a fresh context: the tables must go even after a failure.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range []string{table, offsets} {
			if _, err := admin.Exec(cctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize()); err != nil {
				b.Errorf("drop %s: %v", t, err)
			}
		}
	})
	if err := EnsureTables(ctx, admin, cfg); err != nil {
		b.Fatal(err)
	}
	tid := pgx.Identifier{table}.Sanitize()
	// Half the key space exists before the first batch, so batches are a
	// mix of inserts and updates from the start. Autovacuum is off for the
	// bench table so it does not land in one method's timed loop only.
	for _, q := range []string{
		`INSERT INTO ` + tid + ` (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT 'user-' || lpad(g::text, 6, '0'),
	jsonb_build_object('user_id', g, 'event', 'points-changed', 'points', 0, 'ts', '2026-11-25T04:00:00Z', 'pad', 'seed'),
	0, -1, now(), now()
FROM generate_series(0, ` + strconv.Itoa(bulkKeySpace-1) + `, 2) AS g`,
		`ALTER TABLE ` + tid + ` SET (autovacuum_enabled = false)`,
		`VACUUM (ANALYZE) ` + tid,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var before int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+tid).Scan(&before); err != nil {
		b.Fatal(err)
	}

	// The benchmark's dedicated connection, set up like a worker's.
	conn := bulkConnect(b, ctx, url)
	write := m.prepare(b, ctx, conn, cfg)
	gen := newBulkGen(size)

	b.ReportAllocs()
	var rows, written int64
	for b.Loop() {
		records := gen.next()
		if err := write(records); err != nil {
			b.Fatal(err)
		}
		rows += int64(len(records))
		written += int64(gen.upserts)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")

	// Untimed checks: every record was applied, none dropped as old.
	var next, after int64
	if err := admin.QueryRow(ctx, `SELECT next_offset FROM `+pgx.Identifier{offsets}.Sanitize()+
		` WHERE consumer_group = $1 AND topic = $2 AND partition = $3`,
		bulkGroup, bulkTopic, bulkPartition).Scan(&next); err != nil {
		b.Fatal(err)
	}
	if next != gen.offset {
		b.Fatalf("next_offset = %d, want %d: records were dropped", next, gen.offset)
	}
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+tid).Scan(&after); err != nil {
		b.Fatal(err)
	}
	if written > 0 {
		b.ReportMetric(float64(after-before)/float64(written), "ins-frac")
	}
}

func bulkConnect(b *testing.B, ctx context.Context, url string) *pgx.Conn {
	b.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatalf("connect to DATABASE_URL: %v", err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// bulkPrepareUnnest is exactly the production path: decode, then Writer.Write.
func bulkPrepareUnnest(tb testing.TB, ctx context.Context, conn *pgx.Conn, cfg Config) func([]*kgo.Record) error {
	w := newWriter(cfg, bulkTopic, bulkPartition, nil)
	return func(records []*kgo.Record) error {
		res, err := w.Write(ctx, conn, records, bulkNoDeadLetters)
		if err != nil {
			return err
		}
		if res.Applied != len(records) || res.Written+res.Deduplicated != len(records) || res.DeadLettered != 0 {
			return fmt.Errorf("unnest: unexpected result %+v for %d records", res, len(records))
		}
		return nil
	}
}

// bulkNoDeadLetters is the dead-letter function of both methods: the
// benchmark's records are all valid, so any bad one is a bug.
func bulkNoDeadLetters(_ context.Context, bad []decode.Rejection) error {
	if len(bad) > 0 {
		return fmt.Errorf("%d records dead-lettered, first: %s: %s", len(bad), bad[0].Class, bad[0].Reason)
	}
	return nil
}

// bulkPrepareCopy creates the connection's temp staging table and returns a
// writer that does what writer.Write does for a clean upsert batch in
// SINK_MAPPING=jsonb (lock the offsets row, drop old records, decode,
// collapse to the last record per key, write under a SAVEPOINT, call the
// dead-letter function, advance, commit), with COPY + INSERT .. SELECT in
// place of the unnest parameters. It reuses the writer's own SQL and Go
// steps. Round trips: the writer spends 5 (BEGIN, lock, SAVEPOINT+upsert,
// advance, COMMIT); this spends 6 (BEGIN, lock+SAVEPOINT, COPY,
// INSERT+DELETE, advance, COMMIT), as COPY cannot join a pgx.Batch.
func bulkPrepareCopy(tb testing.TB, ctx context.Context, conn *pgx.Conn, cfg Config) func([]*kgo.Record) error {
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE `+bulkStage+
		` (k text, v text, o int8, ts timestamptz) ON COMMIT DELETE ROWS`); err != nil {
		tb.Fatal(err)
	}
	w := newWriter(cfg, bulkTopic, bulkPartition, nil) // for its SQL, decoding and collapse
	table := cfg.Table(bulkTopic).Sanitize()
	mergeSQL := `INSERT INTO ` + table + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
SELECT s.k, s.v::jsonb, $1, s.o, s.ts, now()
FROM ` + bulkStage + ` AS s
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`
	stage := pgx.Identifier{bulkStage}
	stageCols := []string{"k", "v", "o", "ts"}

	return func(records []*kgo.Record) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

		var next int64
		var lock pgx.Batch
		lock.Queue(w.offsets.lockSQL(), w.offsets.Group, w.topic, w.partition).QueryRow(func(row pgx.Row) error { return row.Scan(&next) })
		lock.Queue("SAVEPOINT sink")
		if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
			return fmt.Errorf("copy: lock offsets row: %w", err)
		}
		fresh := records
		for len(fresh) > 0 && fresh[0].Offset < next {
			fresh = fresh[1:]
		}
		if len(fresh) != len(records) {
			return fmt.Errorf("copy: %d records below next_offset %d", len(records)-len(fresh), next)
		}
		good, bad, _ := w.dec.Decode(context.Background(), fresh)
		var res Result
		var upserts, deletes []decode.Row
		for _, r := range w.Writer.collapse(good, &res) {
			if r.Op == decode.OpDelete {
				deletes = append(deletes, r)
			} else {
				upserts = append(upserts, r)
			}
		}
		if len(upserts) > 0 {
			n, err := tx.CopyFrom(ctx, stage, stageCols, pgx.CopyFromSlice(len(upserts), func(i int) ([]any, error) {
				r := upserts[i].Record
				return []any{string(r.Key), upserts[i].Value, r.Offset, r.Timestamp}, nil
			}))
			if err != nil {
				return fmt.Errorf("copy: copy: %w", err)
			}
			if n != int64(len(upserts)) {
				return fmt.Errorf("copy: copied %d rows, want %d", n, len(upserts))
			}
		}
		var write pgx.Batch
		var upserted pgconn.CommandTag
		if len(upserts) > 0 {
			write.Queue(mergeSQL, w.partition).Exec(func(ct pgconn.CommandTag) error { upserted = ct; return nil })
		}
		if len(deletes) > 0 {
			write.Queue(w.deleteSQL, textArray(deletes, rowKey))
		}
		if write.Len() > 0 {
			if err := tx.SendBatch(ctx, &write).Close(); err != nil {
				return fmt.Errorf("copy: upsert: %w", err)
			}
		}
		if upserted.RowsAffected() != int64(len(upserts)) {
			return fmt.Errorf("copy: upserted %d rows, want %d", upserted.RowsAffected(), len(upserts))
		}
		if err := bulkNoDeadLetters(ctx, bad); err != nil {
			return err
		}
		last := fresh[len(fresh)-1].Offset + 1
		if _, err := tx.Exec(ctx, w.advanceSQL, w.offsets.Group, w.topic, w.partition, last); err != nil {
			return fmt.Errorf("copy: advance offset: %w", err)
		}
		return tx.Commit(ctx)
	}
}

// bulkGen produces the benchmark's record stream: batches of size records
// with keys drawn (with repeats) from bulkKeySpace keys, ~100-byte JSON
// values, and offsets that keep increasing across batches. The stream is
// deterministic, so every method sees the same one. Records and their value
// buffers are reused from batch to batch (the writers keep no reference), so
// generating a batch costs next to nothing and allocates nothing.
type bulkGen struct {
	rng     *rand.Rand
	keys    [][]byte
	recs    []kgo.Record
	batch   []*kgo.Record
	offset  int64 // the next record's offset
	upserts int   // distinct keys in the last batch: the rows it writes
	seen    map[int]struct{}
}

var bulkKeys = func() [][]byte {
	keys := make([][]byte, bulkKeySpace)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%06d", i)
	}
	return keys
}()

func newBulkGen(size int) *bulkGen {
	g := &bulkGen{
		rng:   rand.New(rand.NewPCG(uint64(size), 0x5eed)),
		keys:  bulkKeys,
		recs:  make([]kgo.Record, size),
		batch: make([]*kgo.Record, size),
		seen:  make(map[int]struct{}, size),
	}
	for i := range g.recs {
		g.recs[i].Topic = bulkTopic
		g.recs[i].Partition = bulkPartition
		g.recs[i].Value = make([]byte, 0, 128)
		g.batch[i] = &g.recs[i]
	}
	return g
}

var bulkEpoch = time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)

func (g *bulkGen) next() []*kgo.Record {
	clear(g.seen)
	for i := range g.recs {
		r := &g.recs[i]
		k := g.rng.IntN(bulkKeySpace)
		g.seen[k] = struct{}{}
		r.Key = g.keys[k]
		r.Offset = g.offset
		r.Timestamp = bulkEpoch.Add(time.Duration(g.offset) * time.Millisecond)
		g.offset++
		// {"user_id":123456,"event":"points-changed","points":4567,"ts":"2026-11-25T04:00:00Z","pad":"xxxxxxxxxxxx"}
		v := r.Value[:0]
		v = append(v, `{"user_id":`...)
		v = strconv.AppendInt(v, int64(k), 10)
		v = append(v, `,"event":"points-changed","points":`...)
		v = strconv.AppendInt(v, int64(g.rng.IntN(10_000)), 10)
		v = append(v, `,"ts":"2026-11-25T04:00:00Z","pad":"`...)
		for len(v) < 98 {
			v = append(v, 'x')
		}
		v = append(v, `"}`...)
		r.Value = v
	}
	g.upserts = len(g.seen)
	return g.batch
}
