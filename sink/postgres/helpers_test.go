package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// The helpers below are shared by the postgres package's tests
// (tables, errors, writer, privileges). They use the real PostgreSQL that
// `scripts/services up` starts; without DATABASE_URL they fail, never skip.

// testPool opens a pgxpool on the real database, closed when the test ends.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Ping(t.Context()), "the database must answer")
	return db
}

// dropTablesAtCleanup drops the named tables (if they exist) when the test
// ends, whatever its outcome.
func dropTablesAtCleanup(t testing.TB, db *pgxpool.Pool, tables ...pgx.Identifier) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tb := range tables {
			_, err := db.Exec(ctx, `DROP TABLE IF EXISTS `+tb.Sanitize())
			assert.NoError(t, err, "drop %s", tb.Sanitize())
		}
	})
}

// createSchema creates a schema for the test and drops it, with everything
// in it, when the test ends.
func createSchema(t *testing.T, db *pgxpool.Pool, name string) {
	t.Helper()
	id := pgx.Identifier{name}.Sanitize()
	_, err := db.Exec(t.Context(), `CREATE SCHEMA `+id)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := db.Exec(ctx, `DROP SCHEMA IF EXISTS `+id+` CASCADE`)
		assert.NoError(t, err, "drop schema %s", id)
	})
}

// testConfig is a Config for topics and mode (jsonb mapping, tombstones
// delete), with tables and offsets table the caller names ("table" or
// "schema.table"). The caller owns the names.
func testConfig(t testing.TB, mode decode.Mode, offsetsTable string, tableMap map[string]string, topics ...string) Config {
	t.Helper()
	parse := func(s string) pgx.Identifier {
		t.Helper()
		id, err := ParseIdentifier(s)
		require.NoError(t, err, "test table name %q", s)
		return id
	}
	c := Config{
		Group:             "sinktest",
		OffsetsTable:      parse(offsetsTable),
		Topics:            topics,
		Tables:            map[string]pgx.Identifier{},
		Mode:              mode,
		Mapping:           decode.MappingJSONB,
		DeleteOnTombstone: true,
		TxIdleTimeout:     60 * time.Second,
	}
	for topic, table := range tableMap {
		c.Tables[topic] = parse(table)
	}
	return c
}

// testWriter is a Writer fed as the partition goroutine feeds it: each
// batch decoded first (decode.Config.Decode, SINK_MAX_RECORD_BYTES at its
// default of 4 MiB).
type testWriter struct {
	*Writer
	dec decode.Config
}

// newWriter is NewWriter with the decode stage in front.
func newWriter(c Config, topic string, partition int32, cols *Columns) *testWriter {
	dec := decode.Config{Mode: c.Mode, Mapping: c.Mapping, MaxRecordBytes: 4 << 20, DeleteOnTombstone: c.DeleteOnTombstone}
	if cols != nil {
		dec.PrimaryKey = cols.PrimaryKey
	}
	return &testWriter{Writer: NewWriter(c, topic, partition, cols), dec: dec}
}

// Write decodes records and writes the batch.
func (w *testWriter) Write(ctx context.Context, db Beginner, records []*kgo.Record, dlq DeadLetterFunc) (Result, error) {
	rows, rejected, err := w.dec.Decode(ctx, records)
	if err != nil {
		return Result{}, err
	}
	return w.Writer.Write(ctx, db, rows, rejected, dlq)
}
