package postgres

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// Rejections the database makes for reasons other than a value's type or a
// constraint: what a trigger or function raises, and when such a rejection
// stops being a bad record and becomes a systemic failure.

// rejectTrigger makes f's table refuse, with RAISE EXCEPTION (SQLSTATE
// P0001), every row whose kafka_offset satisfies cond (SQL over NEW).
func rejectTrigger(t *testing.T, f *writerFixture, cond string) {
	t.Helper()
	fn := pgx.Identifier{f.table[0] + "_reject"}.Sanitize()
	_, err := f.db.Exec(t.Context(), `CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF `+cond+` THEN
		RAISE EXCEPTION 'rejected by trigger: secret %', NEW.key;
	END IF;
	RETURN NEW;
END $$`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = f.db.Exec(context.Background(), `DROP FUNCTION IF EXISTS `+fn+` CASCADE`)
	})
	_, err = f.db.Exec(t.Context(), `CREATE TRIGGER reject BEFORE INSERT OR UPDATE ON `+f.table.Sanitize()+
		` FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
	require.NoError(t, err)
}

func TestWriterTriggerRejectionIsDeadLettered(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, mode, true)
			f.cfg.SystemicRejects = 100
			rejectTrigger(t, f, `NEW.kafka_offset IN (7, 300, 555)`)
			dl := &deadLetters{}

			got, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db, f.records(0, span(0, 599)), dl.send)

			require.NoError(t, err, "a trigger's rejection of three records is theirs, not an outage")
			assert.Equal(t, map[int64]string{7: decode.ClassRejected, 300: decode.ClassRejected, 555: decode.ClassRejected}, dl.got())
			for _, b := range dl.bad {
				assert.Contains(t, b.Reason, "P0001", "the header keeps the SQLSTATE")
				assert.Contains(t, b.Reason, "rejected by trigger", "and the server's message")
				assert.NotContains(t, b.LogReason(), "secret", "a log line never quotes the row")
			}
			assert.Equal(t, 597, got.Written)
			assert.EqualValues(t, 600, got.NextOffset)
			next, ok := f.nextOffset(t, 0)
			require.True(t, ok)
			assert.EqualValues(t, 600, next)
		})
	}
}

func TestWriterBrokenTriggerIsSystemic(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name    string
		cond    string
		limit   int
		batches [][]*kgo.Record
		// dead is how many records the batches before the last one
		// dead-letter; the last one must halt.
		dead int
	}{
		{name: "every record rejected in one batch", cond: `true`, limit: 100, batches: [][]*kgo.Record{span(0, 999)}},
		{name: "a run across small batches", cond: `true`, limit: 5,
			batches: [][]*kgo.Record{span(0, 1), span(2, 3), span(4, 5)}, dead: 4},
		{name: "three in four rejected", cond: `NEW.kafka_offset % 4 <> 0`, limit: 10, batches: [][]*kgo.Record{span(0, 39)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, decode.ModeInsert, true)
			f.cfg.SystemicRejects = tt.limit
			rejectTrigger(t, f, tt.cond)
			dl := &deadLetters{}
			wr := newWriter(f.cfg, f.topic, 0, nil)
			for _, b := range tt.batches[:len(tt.batches)-1] {
				_, err := wr.Write(t.Context(), f.db, f.records(0, b), dl.send)
				require.NoError(t, err)
			}
			require.Len(t, dl.got(), tt.dead)
			before := f.snapshot(t)

			_, err := wr.Write(t.Context(), f.db, f.records(0, tt.batches[len(tt.batches)-1]), dl.send)

			var sys *SystemicError
			require.ErrorAs(t, err, &sys, "a rejection that does not isolate to records halts: %v", err)
			assert.Equal(t, "P0001", sys.Code)
			assert.GreaterOrEqual(t, sys.Rejected, tt.limit)
			assert.NotContains(t, err.Error(), "secret", "the error never quotes the row")
			assert.Len(t, dl.got(), tt.dead, "nothing more is dead-lettered")
			assert.Equal(t, before, f.snapshot(t), "nothing of the batch is applied, the offset does not move")
		})
	}
}

// TestWriterRejectionBelowNextOffsetIsNotDeadLetteredAgain: the decode
// stage rejects a record on every attempt, but only the transaction that
// moves next_offset past it dead-letters it. A replay of the batch (a
// retry after an unknown commit outcome, a zombie, a new owner) finds it
// below next_offset: dropped with the rows, counted as already applied,
// and not dead-lettered a second time; a batch that overlaps it
// dead-letters only the rejections at or above next_offset.
func TestWriterRejectionBelowNextOffsetIsNotDeadLetteredAgain(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, mode, true)
			batch := []*kgo.Record{val(0, "k0"), raw(1, "k1", []byte(`{bad`)), val(2, "k2"), raw(3, "k3", []byte(`{bad`))}
			dl := &deadLetters{}
			w := newWriter(f.cfg, f.topic, 0, nil)
			first, err := w.Write(t.Context(), f.db, f.records(0, batch), dl.send)
			require.NoError(t, err)
			assert.Equal(t, 2, first.DeadLettered)
			assert.Equal(t, map[int64]string{1: decode.ClassDecode, 3: decode.ClassDecode}, dl.got())

			again := &deadLetters{}
			replay, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db, f.records(0, batch), again.send)
			require.NoError(t, err)
			assert.Empty(t, again.got(), "nothing of the replayed batch is dead-lettered again")
			assert.Equal(t, 4, replay.AlreadyApplied, "rows and rejections alike")
			assert.Zero(t, replay.Applied)
			assert.EqualValues(t, 4, replay.NextOffset)

			more := &deadLetters{}
			overlap, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db,
				f.records(0, append(batch[2:], raw(4, "k4", []byte(`{bad`)), val(5, "k5"))), more.send)
			require.NoError(t, err)
			assert.Equal(t, map[int64]string{4: decode.ClassDecode}, more.got(), "only the new rejection")
			assert.Equal(t, 2, overlap.AlreadyApplied)
			assert.Equal(t, 2, overlap.Applied)
			next, ok := f.nextOffset(t, 0)
			require.True(t, ok)
			assert.EqualValues(t, 6, next)

			only := &deadLetters{}
			res, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db,
				f.records(0, []*kgo.Record{raw(6, "k6", []byte(`{bad`))}), only.send)
			require.NoError(t, err)
			assert.Equal(t, map[int64]string{6: decode.ClassDecode}, only.got())
			assert.EqualValues(t, 7, res.NextOffset, "a batch of rejections alone moves next_offset past them")
		})
	}
}

func TestWriterInsertReplayIsNoop(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	f := newWriterFixture(t, db, decode.ModeInsert, true)
	f.write(t, 0, span(0, 9))
	_, err := db.Exec(t.Context(), `DELETE FROM `+f.offsets.Sanitize()) // the offsets table lost or re-keyed
	require.NoError(t, err)

	got := f.write(t, 0, span(0, 14)) // noDeadLetters: a replay is no constraint violation

	assert.Equal(t, 5, got.Written, "only the new records are written")
	assert.Equal(t, 10, got.AlreadyApplied, "the replayed ones are no-ops")
	assert.Len(t, f.insertRows(t), 15)
	next, ok := f.nextOffset(t, 0)
	require.True(t, ok)
	assert.EqualValues(t, 15, next)
}

func TestWriterAllTombstonesSkipped(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	f := newWriterFixture(t, db, decode.ModeUpsert, false)
	conn, trips := tripConnect(t)
	w := newWriter(f.cfg, f.topic, 0, nil)
	_, err := w.Write(t.Context(), conn, f.records(0, []*kgo.Record{val(0, "a")}), noDeadLetters(t)) // prepares the statements
	require.NoError(t, err)
	trips.Store(0)

	got, err := w.Write(t.Context(), conn, f.records(0, []*kgo.Record{tomb(1, "a"), tomb(2, "b"), tomb(3, "a")}), noDeadLetters(t))

	require.NoError(t, err)
	assert.EqualValues(t, 2, trips.Load(), "nothing to write: BEGIN with the lock, the advance with COMMIT, no statement")
	assert.Equal(t, 3, got.TombstonesSkipped)
	assert.EqualValues(t, 4, got.NextOffset)
}

func TestWriterStatementTimeoutShrinksStatements(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	f := newWriterFixture(t, db, decode.ModeInsert, true)
	fn := pgx.Identifier{f.table[0] + "_slow"}.Sanitize()
	_, err := db.Exec(t.Context(), `CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.004); RETURN NEW; END $$`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec(context.Background(), `DROP FUNCTION IF EXISTS `+fn+` CASCADE`) })
	_, err = db.Exec(t.Context(), `CREATE TRIGGER slow BEFORE INSERT ON `+f.table.Sanitize()+` FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
	require.NoError(t, err)
	conn, err := db.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release() // testPool is this test's: the setting ends with it
	// 400 rows take about 1.6 s; a quarter of them fits in the timeout.
	_, err = conn.Exec(t.Context(), `SET statement_timeout = '600ms'`)
	require.NoError(t, err)

	got, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), conn, f.records(0, span(0, 399)), noDeadLetters(t))

	require.NoError(t, err, "a statement over statement_timeout is split, not retried at the same size")
	assert.Positive(t, got.Shrunk)
	assert.Equal(t, 400, got.Written)
	assert.Len(t, f.insertRows(t), 400)
}

// columnsFixture is a writerFixture whose table the test creates with ddl
// (%s is the table) for SINK_MAPPING=columns.
func columnsFixture(t *testing.T, mode decode.Mode, ddl string) (*writerFixture, *Columns) {
	t.Helper()
	db := testPool(t)
	f := newWriterFixture(t, db, mode, true)
	_, err := db.Exec(t.Context(), `DROP TABLE `+f.table.Sanitize())
	require.NoError(t, err)
	_, err = db.Exec(t.Context(), fmt.Sprintf(ddl, f.table.Sanitize()))
	require.NoError(t, err)
	f.cfg.Mapping = decode.MappingColumns
	cols := &Columns{id: f.table, keyless: mode == decode.ModeInsert}
	require.NoError(t, cols.load(t.Context(), db))
	return f, cols
}

func TestWriterColumnsCanonicalKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ddl  string
		seed string // SQL run before the batch, %s the table
		recs []*kgo.Record
		want string // the table as SQL text, rows ordered
		sql  string // %s the table
	}{
		{
			name: "an older tombstone spelled as a string never deletes the newer row",
			ddl:  `CREATE TABLE %s (id int PRIMARY KEY, name text)`,
			seed: `INSERT INTO %s VALUES (42, 'old')`,
			recs: []*kgo.Record{raw(0, `"42"`, nil), raw(1, `42`, []byte(`{"name": "new"}`))},
			sql:  `SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM %s`,
			want: "42=new",
		},
		{
			name: "a composite key with its fields reordered is one row",
			ddl:  `CREATE TABLE %s (a int, b text, name text, PRIMARY KEY (a, b))`,
			recs: []*kgo.Record{
				raw(0, `{"a": 1, "b": "x"}`, []byte(`{"name": "first"}`)),
				raw(1, `{"b": "x", "a": "1"}`, []byte(`{"name": "second"}`)),
			},
			sql:  `SELECT string_agg(a || b || '=' || name, ',' ORDER BY a) FROM %s`,
			want: "1x=second",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, cols := columnsFixture(t, decode.ModeUpsert, tt.ddl)
			if tt.seed != "" {
				_, err := f.db.Exec(t.Context(), fmt.Sprintf(tt.seed, f.table.Sanitize()))
				require.NoError(t, err)
			}

			got, err := newWriter(f.cfg, f.topic, 0, cols).Write(t.Context(), f.db, f.records(0, tt.recs), noDeadLetters(t))

			require.NoError(t, err)
			assert.Equal(t, 1, got.Deduplicated, "the earlier record of the row is superseded")
			var table string
			require.NoError(t, f.db.QueryRow(t.Context(), fmt.Sprintf(tt.sql, f.table.Sanitize())).Scan(&table))
			assert.Equal(t, tt.want, table)
		})
	}
}

func TestWriterColumnsDroppedColumnReadsCatalogAgain(t *testing.T) {
	t.Parallel()
	f, cols := columnsFixture(t, decode.ModeUpsert, `CREATE TABLE %s (id int PRIMARY KEY, name text, extra text)`)
	_, err := f.db.Exec(t.Context(), `ALTER TABLE `+f.table.Sanitize()+` DROP COLUMN extra`)
	require.NoError(t, err)

	wr := newWriter(f.cfg, f.topic, 0, cols)
	recs := f.records(0, []*kgo.Record{raw(0, "1", []byte(`{"name": "n", "extra": "e"}`))})

	_, err = wr.Write(t.Context(), f.db, recs, noDeadLetters(t))
	require.Error(t, err, "the statement named the dropped column")
	assert.Equal(t, Transient, Classify(err), "retried after the catalog is read again, not fatal: %v", err)
	got, err := wr.Write(t.Context(), f.db, recs, noDeadLetters(t))

	require.NoError(t, err, "the retry reads the catalog again")
	assert.Equal(t, 1, got.Written)
	assert.Equal(t, 1, got.UnknownFields, "the field is now one no column takes")
}

func TestLoggableWithholdsRowData(t *testing.T) {
	err := fmt.Errorf("write t[0] offsets 1-2: %w", &pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "secret"`,
		Detail: "Key (email)=(secret@example.com)", ConstraintName: "c1", TableName: "users"})
	got := Loggable(err)
	assert.NotContains(t, got, "secret")
	assert.Contains(t, got, "22P02")
	assert.Contains(t, got, "write t[0] offsets 1-2: ")
	assert.Contains(t, got, "constraint=c1")
	fatal := &pgconn.PgError{Code: "42P01", Message: `relation "x" does not exist`}
	assert.Equal(t, fatal.Error(), Loggable(fatal), "schema errors name no row: kept as they are")
	assert.Equal(t, strconv.Quote(""), strconv.Quote(Loggable(nil)))
}
