package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// recTime is the timestamp of the record at offset 0; a record at offset n
// is n milliseconds later.
var recTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func recTS(offset int64) time.Time { return recTime.Add(time.Duration(offset) * time.Millisecond) }

// valueOf is the value val(offset, key) carries: a JSON string naming the
// record, so a row shows which record it came from.
func valueOf(offset int64, key string) string { return key + "@" + strconv.FormatInt(offset, 10) }

// val is a record of key whose value is the JSON string valueOf(offset, key).
// Topic and partition are set by writerFixture.records.
func val(offset int64, key string) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: []byte(strconv.Quote(valueOf(offset, key))), Offset: offset, Timestamp: recTS(offset)}
}

// raw is a record of key with the value bytes as given (nil: a tombstone).
func raw(offset int64, key string, value []byte) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: value, Offset: offset, Timestamp: recTS(offset)}
}

// tomb is a tombstone of key.
func tomb(offset int64, key string) *kgo.Record { return raw(offset, key, nil) }

// span is val(o, "k<o>") for every offset in [from, to].
func span(from, to int64) []*kgo.Record {
	var recs []*kgo.Record
	for o := from; o <= to; o++ {
		recs = append(recs, val(o, "k"+strconv.FormatInt(o, 10)))
	}
	return recs
}

// writerFixture is one test's topic, table and offsets table, created fresh
// by EnsureTables and dropped when the test ends.
type writerFixture struct {
	db      *pgxpool.Pool
	cfg     Config
	topic   string
	table   pgx.Identifier
	offsets pgx.Identifier
}

func newWriterFixture(t testing.TB, db *pgxpool.Pool, mode decode.Mode, deleteOnTombstone bool) *writerFixture {
	t.Helper()
	sfx := testenv.Suffix()
	f := &writerFixture{
		db:      db,
		topic:   "sw.writer-" + sfx,
		table:   pgx.Identifier{"sw_writer_" + sfx},
		offsets: pgx.Identifier{"sw_writer_offsets_" + sfx},
	}
	f.cfg = testConfig(t, mode, f.offsets[0], map[string]string{f.topic: f.table[0]}, f.topic)
	f.cfg.Group = "sw-writer-" + sfx
	f.cfg.DeleteOnTombstone = deleteOnTombstone
	dropTablesAtCleanup(t, db, f.table, f.offsets)
	require.NoError(t, EnsureTables(t.Context(), db, f.cfg))
	return f
}

// records returns copies of recs on the fixture's topic and partition, so
// the same literal records can serve parallel tests.
func (f *writerFixture) records(partition int32, recs []*kgo.Record) []*kgo.Record {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		c := *r
		c.Topic, c.Partition = f.topic, partition
		out[i] = &c
	}
	return out
}

// write applies recs on partition with a new writer and requires success.
func (f *writerFixture) write(t *testing.T, partition int32, recs []*kgo.Record) Result {
	t.Helper()
	res, err := newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db, f.records(partition, recs), noDeadLetters(t))
	require.NoError(t, err)
	return res
}

// nextOffset is the partition's stored next_offset; ok is false without a row.
func (f *writerFixture) nextOffset(t *testing.T, partition int32) (next int64, ok bool) {
	t.Helper()
	err := f.db.QueryRow(t.Context(), `SELECT next_offset FROM `+f.offsets.Sanitize()+
		` WHERE consumer_group = $1 AND topic = $2 AND partition = $3`, f.cfg.Group, f.topic, partition).Scan(&next)
	if err == pgx.ErrNoRows {
		return 0, false
	}
	require.NoError(t, err)
	return next, true
}

// snapshot is every row of the table and of the offsets table, as sorted
// JSON lines, for "nothing changed" checks (updated_at included).
func (f *writerFixture) snapshot(t *testing.T) []string {
	t.Helper()
	var lines []string
	for _, tb := range []pgx.Identifier{f.table, f.offsets} {
		rows, err := f.db.Query(t.Context(), `SELECT to_jsonb(t)::text FROM `+tb.Sanitize()+` t`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, l := range got {
			lines = append(lines, tb[0]+" "+l)
		}
	}
	slices.Sort(lines)
	return lines
}

// upsertRow is a row of an upsert-mode table.
type upsertRow struct {
	Value     string // the JSON string value, unquoted
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// upsertRows reads an upsert-mode table by key.
func (f *writerFixture) upsertRows(t *testing.T) map[string]upsertRow {
	t.Helper()
	rows, err := f.db.Query(t.Context(), `SELECT key, value #>> '{}', kafka_partition, kafka_offset, kafka_timestamp, updated_at IS NOT NULL
FROM `+f.table.Sanitize())
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]upsertRow{}
	for rows.Next() {
		var (
			key     string
			r       upsertRow
			updated bool
		)
		require.NoError(t, rows.Scan(&key, &r.Value, &r.Partition, &r.Offset, &r.Timestamp, &updated))
		assert.True(t, updated, "updated_at of %q is set", key)
		r.Timestamp = r.Timestamp.UTC()
		out[key] = r
	}
	require.NoError(t, rows.Err())
	return out
}

// wantUpsertRows is the table holding, for each key, val(offset, key).
func wantUpsertRows(partition int32, keyOffsets map[string]int64) map[string]upsertRow {
	out := map[string]upsertRow{}
	for k, o := range keyOffsets {
		out[k] = upsertRow{Value: valueOf(o, k), Partition: partition, Offset: o, Timestamp: recTS(o)}
	}
	return out
}

// insertRow is a row of an insert-mode table.
type insertRow struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       *string
	Value     *string // jsonb as text; nil for a tombstone
	Timestamp time.Time
}

// insertRows reads an insert-mode table in (partition, offset) order.
func (f *writerFixture) insertRows(t *testing.T) []insertRow {
	t.Helper()
	rows, err := f.db.Query(t.Context(), `SELECT kafka_topic, kafka_partition, kafka_offset, key, value::text, kafka_timestamp
FROM `+f.table.Sanitize()+` ORDER BY kafka_partition, kafka_offset`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[insertRow])
	require.NoError(t, err)
	for i := range got {
		got[i].Timestamp = got[i].Timestamp.UTC()
	}
	return got
}

func ptr(s string) *string { return &s }

// noDeadLetters is the dead-letter function of tests whose records are all
// good: any dead letter fails the test.
func noDeadLetters(t *testing.T) DeadLetterFunc {
	return func(_ context.Context, bad []decode.Rejection) error {
		for _, b := range bad {
			t.Errorf("unexpected dead letter at offset %d: %s: %s", b.Record.Offset, b.Class, b.Reason)
		}
		return nil
	}
}

// deadLetters records what Write dead-letters; with err set it fails every
// produce, as an unreachable broker would.
type deadLetters struct {
	mu    sync.Mutex
	err   error
	calls int
	bad   []decode.Rejection
}

func (d *deadLetters) send(_ context.Context, bad []decode.Rejection) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(bad) > 0 {
		d.calls++
	}
	if d.err != nil {
		return d.err
	}
	d.bad = append(d.bad, bad...)
	return nil
}

// got returns the dead-lettered records' offsets and classes.
func (d *deadLetters) got() map[int64]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[int64]string{}
	for _, b := range d.bad {
		out[b.Record.Offset] = b.Class
	}
	return out
}

func TestWriterUpsert(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	prior := []*kgo.Record{val(0, "b"), val(1, "d"), val(2, "f")}
	mixed := []*kgo.Record{
		val(3, "a"),
		val(4, "b"),
		val(5, "a"),  // a's last value
		val(6, "c"),  //
		tomb(7, "b"), // deletes b (present since offset 0)
		tomb(8, "d"), // deletes d (present since offset 1)
		val(9, "c"),  // c's last value
		tomb(10, "e"),
		val(11, "e"),  // a value after a tombstone wins
		tomb(12, "g"), // g was never there
	}
	tests := []struct {
		name     string
		deletes  bool // SINK_DELETE_ON_TOMBSTONE
		prior    []*kgo.Record
		batch    []*kgo.Record
		want     Result
		wantRows map[string]int64 // key -> offset of the record whose value it holds
	}{
		{
			name:     "last value per key and tombstones delete",
			deletes:  true,
			prior:    prior,
			batch:    mixed,
			want:     Result{Written: 3, Deleted: 2, Deduplicated: 4, Applied: 10, NextOffset: 13},
			wantRows: map[string]int64{"a": 5, "c": 9, "e": 11, "f": 2},
		},
		{
			name:    "tombstones skipped and counted when DeleteOnTombstone is false",
			deletes: false,
			prior:   prior,
			batch:   mixed,
			// b keeps its value from offset 4, the last non-tombstone of the
			// batch; d keeps its value from the prior batch.
			want:     Result{Written: 4, Deduplicated: 2, Applied: 10, TombstonesSkipped: 4, NextOffset: 13},
			wantRows: map[string]int64{"a": 5, "b": 4, "c": 9, "d": 1, "e": 11, "f": 2},
		},
		{
			name:     "only tombstones",
			deletes:  true,
			prior:    []*kgo.Record{val(0, "a"), val(1, "b")},
			batch:    []*kgo.Record{tomb(2, "a"), tomb(3, "a"), tomb(4, "z")},
			want:     Result{Deleted: 1, Deduplicated: 1, Applied: 3, NextOffset: 5},
			wantRows: map[string]int64{"b": 1},
		},
		{
			name:     "only tombstones skipped still advances the offset",
			deletes:  false,
			prior:    []*kgo.Record{val(0, "a"), val(1, "b")},
			batch:    []*kgo.Record{tomb(2, "a"), tomb(3, "a"), tomb(4, "z")},
			want:     Result{Applied: 3, TombstonesSkipped: 3, NextOffset: 5},
			wantRows: map[string]int64{"a": 0, "b": 1},
		},
		{
			name:     "first batch past offset zero",
			deletes:  true,
			batch:    []*kgo.Record{val(100, "a"), val(101, "a"), val(102, "b")},
			want:     Result{Written: 2, Deduplicated: 1, Applied: 3, NextOffset: 103},
			wantRows: map[string]int64{"a": 101, "b": 102},
		},
		{
			name:     "empty key is a key",
			deletes:  true,
			batch:    []*kgo.Record{val(0, ""), val(1, "x"), val(2, "")},
			want:     Result{Written: 2, Deduplicated: 1, Applied: 3, NextOffset: 3},
			wantRows: map[string]int64{"": 2, "x": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const partition = 2
			f := newWriterFixture(t, db, decode.ModeUpsert, tt.deletes)
			if len(tt.prior) > 0 {
				f.write(t, partition, tt.prior)
			}

			got := f.write(t, partition, tt.batch)

			assert.Equal(t, tt.want, got)
			assert.Equal(t, wantUpsertRows(partition, tt.wantRows), f.upsertRows(t))
			next, ok := f.nextOffset(t, partition)
			require.True(t, ok, "offsets row exists")
			assert.Equal(t, tt.want.NextOffset, next, "stored next_offset")
		})
	}
}

func TestWriterInsert(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name    string
		deletes bool // no effect in insert mode: a tombstone is a row
		start   int64
	}{
		{name: "from offset zero", deletes: true, start: 0},
		{name: "DeleteOnTombstone false", deletes: false, start: 0},
		{name: "past offset zero", deletes: true, start: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const partition = 3
			f := newWriterFixture(t, db, decode.ModeInsert, tt.deletes)
			s := tt.start
			nullKey := raw(s+3, "", []byte(`{"n": 1}`))
			nullKey.Key = nil
			batch := []*kgo.Record{
				val(s, "a"),
				val(s+1, "a"), // same key: its own row
				tomb(s+2, "a"),
				nullKey,
				val(s+4, "b"),
			}

			got := f.write(t, partition, batch)

			assert.Equal(t, Result{Written: 5, Applied: 5, NextOffset: s + 5}, got)
			row := func(o int64, key *string, value *string) insertRow {
				return insertRow{Topic: f.topic, Partition: partition, Offset: o, Key: key, Value: value, Timestamp: recTS(o)}
			}
			q := func(o int64, k string) *string { return ptr(strconv.Quote(valueOf(o, k))) }
			assert.Equal(t, []insertRow{
				row(s, ptr("a"), q(s, "a")),
				row(s+1, ptr("a"), q(s+1, "a")),
				row(s+2, ptr("a"), nil),
				row(s+3, nil, ptr(`{"n": 1}`)),
				row(s+4, ptr("b"), q(s+4, "b")),
			}, f.insertRows(t))
			next, ok := f.nextOffset(t, partition)
			require.True(t, ok, "offsets row exists")
			assert.Equal(t, s+5, next)
		})
	}
}

func TestWriterEmptyBatch(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	f := newWriterFixture(t, db, decode.ModeUpsert, true)

	got, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db, nil, noDeadLetters(t))

	require.NoError(t, err)
	assert.Equal(t, Result{}, got)
	assert.Empty(t, f.snapshot(t), "no row, not even an offsets row")
}

func TestWriterSameBatchTwice(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, mode, true)
			batch := []*kgo.Record{val(0, "a"), val(1, "b"), val(2, "a"), tomb(3, "c"), val(4, "d")}
			first := f.write(t, 0, batch)
			require.Equal(t, 5, first.Applied)
			require.EqualValues(t, 5, first.NextOffset)
			before := f.snapshot(t)

			second := f.write(t, 0, batch)

			assert.Equal(t, Result{AlreadyApplied: 5, NextOffset: 5}, second)
			assert.Equal(t, before, f.snapshot(t), "nothing changed, not even updated_at")
		})
	}
}

func TestWriterOverlappingBatch(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, mode, true)
			f.write(t, 0, span(0, 4))
			before := f.snapshot(t)

			got := f.write(t, 0, span(3, 7))

			assert.Equal(t, Result{Written: 3, Applied: 3, AlreadyApplied: 2, NextOffset: 8}, got)
			after := f.snapshot(t)
			for _, line := range before {
				if strings.HasPrefix(line, f.table[0]+" ") {
					assert.Contains(t, after, line, "rows of offsets 0-4 untouched")
				}
			}
			if mode == decode.ModeInsert {
				var offsets []int64
				for _, r := range f.insertRows(t) {
					offsets = append(offsets, r.Offset)
				}
				assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7}, offsets, "one row per offset")
			} else {
				assert.Equal(t, wantUpsertRows(0, map[string]int64{
					"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7,
				}), f.upsertRows(t))
			}
			next, ok := f.nextOffset(t, 0)
			require.True(t, ok)
			assert.EqualValues(t, 8, next)
		})
	}
}

func TestWriterZombieIsFenced(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	older := []*kgo.Record{val(0, "a"), val(1, "b"), val(2, "c")}
	newer := []*kgo.Record{val(3, "a"), val(4, "b"), val(5, "c")}
	tests := []struct {
		name   string
		zombie []*kgo.Record // what the zombie still holds and writes
	}{
		{name: "replays the older batch", zombie: older},
		{name: "replays a batch straddling both", zombie: []*kgo.Record{val(1, "b"), val(2, "c"), val(3, "a"), val(4, "b")}},
		{name: "replays the newer batch", zombie: newer},
		{name: "replays everything", zombie: slices.Concat(older, newer)},
	}
	for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				const partition = 1
				f := newWriterFixture(t, db, mode, true)
				// The zombie took the partition first and then stalled;
				// the new owner has since applied both batches.
				zombie := newWriter(f.cfg, f.topic, partition, nil)
				owner := newWriter(f.cfg, f.topic, partition, nil)
				for _, b := range [][]*kgo.Record{older, newer} {
					_, err := owner.Write(t.Context(), f.db, f.records(partition, b), noDeadLetters(t))
					require.NoError(t, err)
				}
				before := f.snapshot(t)

				got, err := zombie.Write(t.Context(), f.db, f.records(partition, tt.zombie), noDeadLetters(t))

				require.NoError(t, err)
				assert.Equal(t, Result{AlreadyApplied: len(tt.zombie), NextOffset: 6}, got)
				assert.Equal(t, before, f.snapshot(t), "the zombie changed nothing")
				if mode == decode.ModeUpsert {
					assert.Equal(t, wantUpsertRows(partition, map[string]int64{"a": 3, "b": 4, "c": 5}),
						f.upsertRows(t), "values stay the newer ones")
				}
			})
		}
	}
}

func TestWriterRacingWritersApplyEachOffsetOnce(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	const (
		total = 600
		keys  = 7
	)
	all := make([]*kgo.Record, total)
	for o := range int64(total) {
		all[o] = val(o, "k"+strconv.FormatInt(o%keys, 10))
	}
	for _, mode := range []decode.Mode{decode.ModeInsert, decode.ModeUpsert} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			const partition = 0
			f := newWriterFixture(t, db, mode, true)
			// Two members both believe they own the partition and write
			// the same records in differently cut, overlapping batches.
			sizes := []int{50, 37}
			results := make([][]Result, len(sizes))
			errs := make([]error, len(sizes))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, size := range sizes {
				wg.Go(func() {
					w := newWriter(f.cfg, f.topic, partition, nil)
					recs := f.records(partition, all)
					<-start
					for b := range slices.Chunk(recs, size) {
						res, err := w.Write(t.Context(), f.db, b, noDeadLetters(t))
						if err != nil {
							errs[i] = fmt.Errorf("writer %d, batch at %d: %w", i, b[0].Offset, err)
							return
						}
						results[i] = append(results[i], res)
					}
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}

			applied := 0
			for i, rs := range results {
				seen := 0
				for _, r := range rs {
					applied += r.Applied
					seen += r.Applied + r.AlreadyApplied
				}
				assert.Equal(t, total, seen, "writer %d accounted for every record", i)
			}
			assert.Equal(t, total, applied, "each offset applied exactly once across both writers")
			next, ok := f.nextOffset(t, partition)
			require.True(t, ok)
			assert.EqualValues(t, total, next)

			if mode == decode.ModeInsert {
				var rows, distinct, lo, hi int64
				require.NoError(t, f.db.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT kafka_offset),
	min(kafka_offset), max(kafka_offset) FROM `+f.table.Sanitize()).Scan(&rows, &distinct, &lo, &hi))
				assert.EqualValues(t, total, rows, "one row per record")
				assert.EqualValues(t, total, distinct, "no offset twice")
				assert.EqualValues(t, 0, lo)
				assert.EqualValues(t, total-1, hi)
				return
			}
			want := map[string]int64{}
			for o := int64(total - keys); o < total; o++ {
				want["k"+strconv.FormatInt(o%keys, 10)] = o
			}
			assert.Equal(t, wantUpsertRows(partition, want), f.upsertRows(t), "each key holds its highest offset")
		})
	}
}

// badCases are records that cannot be written, each at offset 4 of a batch
// between two good records: class is the dead-letter class, and dbSide
// marks the ones only the database can reject (found by bisection).
func badCases() []struct {
	name   string
	modes  []decode.Mode
	bad    *kgo.Record
	class  string
	dbSide bool
} {
	nullKey := raw(4, "", []byte(`{"n": 1}`))
	nullKey.Key = nil
	both := []decode.Mode{decode.ModeUpsert, decode.ModeInsert}
	return []struct {
		name   string
		modes  []decode.Mode
		bad    *kgo.Record
		class  string
		dbSide bool
	}{
		{name: "invalid JSON", modes: both, bad: raw(4, "x", []byte(`{not json`)), class: decode.ClassDecode},
		{name: "empty value", modes: both, bad: raw(4, "x", []byte{}), class: decode.ClassDecode},
		{name: "NUL escape in JSON", modes: both, bad: raw(4, "x", []byte(`"\u0000"`)), class: decode.ClassDecode},
		{name: "invalid UTF-8 key", modes: both, bad: raw(4, "x\xff", []byte(`1`)), class: decode.ClassDecode},
		{name: "null key", modes: []decode.Mode{decode.ModeUpsert}, bad: nullKey, class: decode.ClassKey},
		{name: "number jsonb cannot hold", modes: both, bad: raw(4, "x", []byte(`{"n": 1e1000000}`)), class: decode.ClassData, dbSide: true},
	}
}

func TestWriterDeadLettersBadRecords(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, tt := range badCases() {
		for _, mode := range tt.modes {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				const partition = 5
				f := newWriterFixture(t, db, mode, true)
				f.write(t, partition, span(0, 2))
				dl := &deadLetters{}

				got, err := newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db,
					f.records(partition, []*kgo.Record{val(3, "k3"), tt.bad, val(5, "k5")}), dl.send)

				require.NoError(t, err, "a bad record does not fail the batch")
				assert.Equal(t, map[int64]string{4: tt.class}, dl.got(), "exactly the bad record is dead-lettered")
				for _, b := range dl.bad {
					assert.Equal(t, f.topic, b.Record.Topic)
					assert.Equal(t, int32(partition), b.Record.Partition)
					assert.NotEmpty(t, b.Reason)
				}
				assert.Equal(t, 2, got.Written, "the good records are written")
				assert.Equal(t, 3, got.Applied)
				assert.Equal(t, 1, got.DeadLettered)
				assert.EqualValues(t, 6, got.NextOffset, "the partition moves on")
				if tt.dbSide {
					assert.Positive(t, got.Statements, "the database's rejection was isolated by bisection")
				} else {
					assert.Zero(t, got.Statements, "rejected in Go, no database round trip spent")
				}
				next, ok := f.nextOffset(t, partition)
				require.True(t, ok)
				assert.EqualValues(t, 6, next)
				if mode == decode.ModeUpsert {
					assert.Equal(t, wantUpsertRows(partition, map[string]int64{"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k5": 5}),
						f.upsertRows(t))
					return
				}
				var offsets []int64
				for _, r := range f.insertRows(t) {
					offsets = append(offsets, r.Offset)
				}
				assert.Equal(t, []int64{0, 1, 2, 3, 5}, offsets, "every record but the dead-lettered one")
			})
		}
	}
}

func TestWriterDeadLetterFailureChangesNothing(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, tt := range badCases() {
		for _, mode := range tt.modes {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				const partition = 5
				f := newWriterFixture(t, db, mode, true)
				f.write(t, partition, span(0, 2))
				before := f.snapshot(t)
				brokerDown := errors.New("dead-letter produce: broker unreachable")
				dl := &deadLetters{err: brokerDown}

				_, err := newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db,
					f.records(partition, []*kgo.Record{val(3, "k3"), tt.bad, val(5, "k5")}), dl.send)

				require.Error(t, err)
				assert.ErrorIs(t, err, brokerDown)
				assert.Equal(t, Transient, Classify(err), "retried, never skipped: %v", err)
				assert.Equal(t, 1, dl.calls)
				assert.Equal(t, before, f.snapshot(t), "table and offsets untouched")
				next, ok := f.nextOffset(t, partition)
				require.True(t, ok)
				assert.EqualValues(t, 3, next)
			})
		}
	}
}

func TestWriterStopPolicyHaltsBeforeBadRecord(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	for _, tt := range badCases() {
		for _, mode := range tt.modes {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				const partition = 5
				f := newWriterFixture(t, db, mode, true)
				f.cfg.StopOnReject = true
				f.write(t, partition, span(0, 2))
				dl := &deadLetters{}

				got, err := newWriter(f.cfg, f.topic, partition, nil).Write(t.Context(), f.db,
					f.records(partition, []*kgo.Record{val(3, "k3"), tt.bad, val(5, "k5")}), dl.send)

				var halt *HaltError
				require.ErrorAs(t, err, &halt)
				assert.EqualValues(t, 4, halt.Record.Offset)
				assert.Equal(t, tt.class, halt.Class)
				assert.Empty(t, dl.got(), "nothing is dead-lettered under ERROR_POLICY=stop")
				assert.Equal(t, Result{Written: 1, Applied: 1, NextOffset: 4}, got, "the record before it is applied")
				next, ok := f.nextOffset(t, partition)
				require.True(t, ok)
				assert.EqualValues(t, 4, next, "the bad record is next")
			})
		}
	}
}

func TestWriterUpsertKeepsLastGoodValue(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name string
		bad  *kgo.Record
	}{
		{name: "rejected in Go", bad: raw(2, "a", []byte(`{not json`))},
		{name: "rejected by the database", bad: raw(2, "a", []byte(`1e1000000`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newWriterFixture(t, db, decode.ModeUpsert, true)
			dl := &deadLetters{}

			got, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db,
				f.records(0, []*kgo.Record{val(0, "a"), val(1, "a"), tt.bad, val(3, "b")}), dl.send)

			require.NoError(t, err)
			assert.Len(t, dl.got(), 1)
			assert.Contains(t, dl.got(), int64(2))
			assert.Equal(t, 1, got.DeadLettered)
			assert.EqualValues(t, 4, got.NextOffset)
			assert.Equal(t, wantUpsertRows(0, map[string]int64{"a": 1, "b": 3}), f.upsertRows(t),
				"a holds its last good value")
		})
	}
}

func TestWriterMissingTablesAreFatal(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name string
		drop func(f *writerFixture) pgx.Identifier
	}{
		{name: "offsets table", drop: func(f *writerFixture) pgx.Identifier { return f.offsets }},
		{name: "topic table", drop: func(f *writerFixture) pgx.Identifier { return f.table }},
	}
	for _, tt := range tests {
		for _, mode := range []decode.Mode{decode.ModeUpsert, decode.ModeInsert} {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				f := newWriterFixture(t, db, mode, true)
				_, err := db.Exec(t.Context(), `DROP TABLE `+tt.drop(f).Sanitize())
				require.NoError(t, err)

				_, err = newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), f.db, f.records(0, span(0, 1)), noDeadLetters(t))

				require.Error(t, err)
				assert.Equal(t, Fatal, Classify(err), "%v", err)
			})
		}
	}
}

// TestWriterCountsTheGroupsTransactions: with CountGroup (POOL_MAX_CONNS=
// auto), a batch counts the transactions open on the group's connections
// as it begins, its own included: not a connection of the group that is
// idle, nor an open transaction of another group whose name only starts
// like it. Without CountGroup it counts nothing.
func TestWriterCountsTheGroupsTransactions(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	f := newWriterFixture(t, db, decode.ModeUpsert, true)
	prefix := "sinkworker/" + f.cfg.Group + "/"
	connect := func(name string, inTx bool) *pgx.Conn {
		t.Helper()
		cfg, err := pgx.ParseConfig(testenv.DatabaseURL(t))
		require.NoError(t, err)
		cfg.RuntimeParams["application_name"] = name
		conn, err := pgx.ConnectConfig(t.Context(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		if inTx {
			_, err := conn.Exec(t.Context(), "BEGIN; SELECT 1")
			require.NoError(t, err)
		}
		return conn
	}
	connect(prefix+"other-member", true)
	connect(prefix+"idle-member", false)
	connect("sinkworker/"+f.cfg.Group+"x/member", true) // another group, the same start
	own := connect(prefix+"this-member", false)

	// The start-up check: a member sees itself; a session of another name
	// does not, however many of the group's transactions are open.
	assert.NoError(t, CheckCountGroup(t.Context(), own, prefix), "a member of the group")
	assert.ErrorIs(t, CheckCountGroup(t.Context(), db, prefix), ErrGroupUnseen, "a connection of no group")

	res, err := newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), own, f.records(0, []*kgo.Record{val(0, "a")}), noDeadLetters(t))
	require.NoError(t, err)
	assert.Zero(t, res.GroupTransactions, "not counted without CountGroup")

	f.cfg.CountGroup = prefix
	res, err = newWriter(f.cfg, f.topic, 0, nil).Write(t.Context(), own, f.records(0, []*kgo.Record{val(1, "b")}), noDeadLetters(t))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Applied)
	assert.Equal(t, 2, res.GroupTransactions, "this batch's and the other member's")
}
