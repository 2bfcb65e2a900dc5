package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
)

// poisonKind is one kind of bad or hostile input. want* is the dead-letter
// class the record must get under each mapping, "" when it must LAND.
type poisonKind struct {
	name string
	// key is the record key when ownKey is set (nil: no key). Otherwise the
	// record takes the key of a good record, so that per key a bad record
	// sits between good ones.
	key    []byte
	ownKey bool
	value  []byte // nil: a tombstone

	wantJSONB, wantColumns string
	// insert, when set, overrides the classes {jsonb, columns} in
	// SINK_MODE=insert (a missing or huge key only matters to upsert).
	insert *[2]string
}

const (
	poisonGood       = 100_000
	poisonKeys       = 20_000
	poisonCopies     = 2
	poisonMaxBytes   = 65536
	poisonPartitions = 4
)

// poisonCorpus is the table of bad and hostile inputs, with the class each
// one gets (checked against the real worker, broker and database).
func poisonCorpus() []poisonKind {
	hugeKey := make([]byte, 10_000)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range hugeKey {
		hugeKey[i] = byte(rng.Uint32())
	}
	deep := `{"name":"deep","n":1,"d":` + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + `}`
	lands := &[2]string{"", ""}
	const (
		decode, key, tooLarge, data, constraint = decode.ClassDecode, decode.ClassKey, decode.ClassTooLarge, decode.ClassData, decode.ClassConstraint
	)
	return []poisonKind{
		// Not JSON at all, or not quite.
		{name: "malformed JSON", value: []byte(`{"name": oops, "n": 1}`), wantJSONB: decode, wantColumns: decode},
		{name: "truncated JSON", value: []byte(`{"name":"t","n":12,"ts":"2026-11-`), wantJSONB: decode, wantColumns: decode},
		{name: "empty value (not null)", value: []byte{}, wantJSONB: decode, wantColumns: decode},
		{name: "whitespace only", value: []byte(" \n\t "), wantJSONB: decode, wantColumns: decode},
		{name: "trailing garbage", value: []byte(`{"name":"t","n":1} x`), wantJSONB: decode, wantColumns: decode},
		{name: "two JSON values", value: []byte(`{"name":"a","n":1}{"name":"b","n":2}`), wantJSONB: decode, wantColumns: decode},
		{name: "single quotes", value: []byte(`{'name':'q','n':1}`), wantJSONB: decode, wantColumns: decode},
		{name: "UTF-8 BOM before the JSON", value: []byte("\xef\xbb\xbf{\"name\":\"bom\",\"n\":1}"), wantJSONB: decode, wantColumns: decode},
		{name: `invalid escape \x`, value: []byte(`{"name":"a\x41","n":1}`), wantJSONB: decode, wantColumns: decode},
		{name: "NaN literal", value: []byte(`{"name":"nan","n":NaN}`), wantJSONB: decode, wantColumns: decode},
		{name: "raw control character in a string", value: []byte("{\"name\":\"a\tb\",\"n\":1}"), wantJSONB: decode, wantColumns: decode},
		{name: "deeply nested (20000)", value: []byte(deep), wantJSONB: decode, wantColumns: decode},
		// Text PostgreSQL cannot hold.
		{name: `\u0000 escape in a string`, value: []byte(`{"name":"a\u0000b","n":1}`), wantJSONB: decode, wantColumns: decode},
		{name: "raw NUL byte in the value", value: []byte("{\"name\":\"a\x00b\",\"n\":1}"), wantJSONB: decode, wantColumns: decode},
		{name: "invalid UTF-8 in the value", value: []byte("{\"name\":\"\xff\xfe\",\"n\":1}"), wantJSONB: decode, wantColumns: decode},
		{name: "invalid UTF-8 in the key", key: []byte("user-\xc3\x28"), ownKey: true, value: []byte(`{"name":"k","n":1}`), wantJSONB: decode, wantColumns: decode},
		{name: "NUL byte in the key", key: []byte("user-1\x00x"), ownKey: true, value: []byte(`{"name":"k","n":1}`), wantJSONB: decode, wantColumns: decode},
		// Keys and sizes.
		{name: "missing key (nil)", key: nil, ownKey: true, value: []byte(`{"name":"nokey","n":3}`), wantJSONB: key, wantColumns: key, insert: lands},
		{name: "oversized value (~100 KB)", value: []byte(`{"name":"big","n":1,"pad":"` + strings.Repeat("x", 100_000) + `"}`), wantJSONB: tooLarge, wantColumns: tooLarge},
		{name: "key too big for the primary key index (20000 hex chars)", key: []byte(hex.EncodeToString(hugeKey)), ownKey: true,
			value: []byte(`{"name":"hugekey","n":1}`), wantJSONB: tooLarge, wantColumns: tooLarge, insert: lands},
		// Valid to Go, rejected by PostgreSQL's jsonb.
		{name: `lone surrogate "\ud800"`, value: []byte(`{"name":"\ud800","n":1}`), wantJSONB: data, wantColumns: data},
		{name: "numeric overflow 1e999999", value: []byte(`{"name":"big","n":1,"big":1e999999}`), wantJSONB: data, wantColumns: data},
		// Objects the columns mapping cannot take.
		{name: "array value", value: []byte(`[1,2,3]`), wantColumns: decode},
		{name: "scalar number value", value: []byte(`42`), wantColumns: decode},
		{name: "string value", value: []byte(`"just a string"`), wantColumns: decode},
		{name: "JSON null literal", value: []byte(`null`), wantColumns: decode},
		// Wrong types and ranges for the columns.
		{name: "wrong type for an integer column", value: []byte(`{"name":"wt","n":"abc"}`), wantColumns: data},
		{name: "fraction for an integer column", value: []byte(`{"name":"wt","n":1.5}`), wantColumns: data},
		{name: "array where an integer is expected", value: []byte(`{"name":"wt","n":[1,2]}`), wantColumns: data},
		{name: "integer overflow (n: 99999999999)", value: []byte(`{"name":"wt","n":99999999999}`), wantColumns: data},
		{name: "wrong type for a timestamp column", value: []byte(`{"name":"wt","n":1,"ts":"not a time"}`), wantColumns: data},
		{name: "impossible date (Feb 30)", value: []byte(`{"name":"wt","n":1,"ts":"2026-02-30T00:00:00Z"}`), wantColumns: data},
		{name: "wrong type for a boolean column", value: []byte(`{"name":"wt","n":1,"flag":"maybe"}`), wantColumns: data},
		{name: "wrong type for a uuid column", value: []byte(`{"name":"wt","n":1,"uid":"not-a-uuid"}`), wantColumns: data},
		{name: "numeric(6,2) overflow", value: []byte(`{"name":"wt","n":1,"score":12345.678}`), wantColumns: data},
		{name: "varchar(4) too long", value: []byte(`{"name":"wt","n":1,"code":"abcdefgh"}`), wantColumns: data},
		{name: "NOT NULL column missing", value: []byte(`{"n":5}`), wantColumns: constraint},
		{name: "NOT NULL column given null", value: []byte(`{"name":null,"n":5}`), wantColumns: constraint},
		{name: "unique-constraint clash", value: []byte(`{"name":"clash","n":6,"email":"taken@x"}`), wantColumns: constraint},
		// Hostile but fine: these must land in both mappings.
		{name: "field names that look like SQL", value: []byte(`{"\"; DROP TABLE x;--":1,"select":"*","name":"sqlish","n":7}`)},
		{name: "fields spoofing the Kafka coordinates", value: []byte(`{"name":"spoof","n":8,"kafka_topic":"evil","kafka_partition":999,"kafka_offset":-1}`)},
		{name: "field spoofing the primary key", value: []byte(`{"id":"someone-else","name":"spoof-id","n":9}`)},
		{name: "duplicate field names", value: []byte(`{"name":"first","n":1,"name":"dup-last","n":10}`)},
		{name: `escaped backslash before u0000 (not a NUL)`, value: []byte(`{"name":"a\\u0000b","n":11}`)},
		{name: "number as a string for an integer column", value: []byte(`{"name":"sn","n":"12"}`)},
		{name: "non-ASCII text and escapes", value: []byte(`{"name":"h\u00e9llo 🙂 ünï","n":13}`)},
		{name: "empty key (not null)", key: []byte{}, ownKey: true, value: []byte(`{"name":"emptykey","n":14}`)},
		{name: "large value under the limit (~60 KB)", value: []byte(`{"name":"large","n":15,"pad":"` + strings.Repeat("y", 60_000) + `"}`)},
		// A tombstone on a live key: deletes it (upsert) or is a row with a
		// null value (jsonb insert); a columns insert row of nulls breaks NOT NULL.
		{name: "tombstone", value: nil, insert: &[2]string{"", constraint}},
	}
}

// want is the kind's dead-letter class for a mapping and mode.
func (k poisonKind) want(mapping, mode string) string {
	i := 0
	if mapping == sink.MappingColumns {
		i = 1
	}
	if mode == sink.ModeInsert && k.insert != nil {
		return k.insert[i]
	}
	return [2]string{k.wantJSONB, k.wantColumns}[i]
}

// prec is one produced record and where it landed in the topic.
type prec struct {
	key, value []byte
	headers    []kgo.RecordHeader
	kind       int // index in the corpus, -1 for a good record
	partition  int32
	offset     int64
}

type coord struct {
	partition int32
	offset    int64
}

func (r *prec) coord() coord { return coord{r.partition, r.offset} }

func goodValue(i int) []byte {
	extra := ""
	if i%3 == 0 {
		extra = `,"extra":"unknown field sometimes"`
	}
	return fmt.Appendf(nil, `{"name":"n-%d","n":%d,"ts":"2026-11-25T04:00:00Z","flag":true,"uid":"%08x-0000-4000-8000-%012x","score":12.5,"code":"ab"%s}`,
		i, i, i, i, extra)
}

func userKey(i int) []byte {
	return fmt.Appendf(nil, "user-%d", ((i%poisonKeys)+poisonKeys)%poisonKeys)
}

// poisonWorkload is the good records with copies of every kind at
// seeded-random positions. Copy 0 takes the key of the good record just
// before it (same batch: exercises in-batch isolation of one key), copy 1
// the key of a good record 10000 positions away (other batches). Either
// way the next record of that key is far away, so a bad record is never
// superseded inside its own batch.
func poisonWorkload(corpus []poisonKind, seed uint64) []*prec {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type slot struct{ pos, kind, copy int }
	var slots []slot
	used := map[int]bool{}
	for k := range corpus {
		for c := range poisonCopies {
			p := 1 + rng.IntN(poisonGood-1)
			for used[p] {
				p = 1 + rng.IntN(poisonGood-1)
			}
			used[p] = true
			slots = append(slots, slot{p, k, c})
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].pos < slots[j].pos })
	out := make([]*prec, 0, poisonGood+len(slots))
	s := 0
	for i := range poisonGood {
		for ; s < len(slots) && slots[s].pos == i; s++ {
			sl := slots[s]
			k := corpus[sl.kind]
			r := &prec{kind: sl.kind, value: k.value, headers: []kgo.RecordHeader{
				{Key: "poison-kind", Value: []byte(k.name)},
				{Key: "poison-copy", Value: strconv.AppendInt(nil, int64(sl.copy), 10)},
			}}
			switch {
			case k.ownKey:
				r.key = k.key
			case sl.copy == 0:
				r.key = userKey(i - 1)
			default:
				r.key = userKey(i + poisonKeys/2)
			}
			out = append(out, r)
		}
		out = append(out, &prec{kind: -1, key: userKey(i), value: goodValue(i)})
	}
	return out
}

// producePoison writes records in order and records each one's partition
// and offset from its promise.
func producePoison(t *testing.T, topic string, recs []*prec) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	require.NoError(t, err)
	defer cl.Close()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, r := range recs {
		wg.Add(1)
		cl.Produce(t.Context(), &kgo.Record{Key: r.key, Value: r.value, Headers: r.headers}, func(pr *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
				return
			}
			r.partition, r.offset = pr.Partition, pr.Offset
		})
	}
	require.NoError(t, cl.Flush(t.Context()))
	wg.Wait()
	require.NoError(t, first)
}

// readTopic reads every partition of topic from the start to the end
// offsets it has now. A missing topic reads as empty.
func readTopic(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out []*kgo.Record
	got := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if got[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading %s to its end", topic)
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			got[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// sameBytes is bytes.Equal that also tells nil from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func header(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// nameN is what a columns row must hold for a value: name and n as
// PostgreSQL's jsonb_populate_record reads them (last duplicate wins).
func nameN(t *testing.T, value []byte) (name *string, n *int64) {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(value, &fields), "landing value %q", value)
	if raw, ok := fields["name"]; ok && string(raw) != "null" {
		var s string
		require.NoError(t, json.Unmarshal(raw, &s))
		name = &s
	}
	if raw, ok := fields["n"]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "n of landing value %q", value)
		n = &v
	}
	return name, n
}

// TestPoisonCorpus mixes copies of every kind of bad input into 100,000
// good records over 4 partitions, runs one worker to the end in each
// mapping and mode, and checks: every record whose kind has a class is in
// the dead-letter topic exactly once (after de-duplication) with that
// class, a message, its source coordinates and its original bytes; every
// other record landed; landed + dead-lettered == produced; and in upsert
// mode the table is the last landing record per key.
func TestPoisonCorpus(t *testing.T) {
	corpus := poisonCorpus()
	require.GreaterOrEqual(t, len(corpus), 25)
	names := map[string]bool{}
	for _, k := range corpus {
		require.False(t, names[k.name], "duplicate kind %q", k.name)
		names[k.name] = true
	}
	t.Logf("corpus: %d kinds x %d copies = %d bad records among %d good", len(corpus), poisonCopies,
		len(corpus)*poisonCopies, poisonGood)
	for _, tc := range []struct{ mapping, mode string }{
		{sink.MappingJSONB, sink.ModeInsert},
		{sink.MappingJSONB, sink.ModeUpsert},
		{sink.MappingColumns, sink.ModeUpsert},
		{sink.MappingColumns, sink.ModeInsert},
	} {
		t.Run(tc.mapping+"_"+tc.mode, func(t *testing.T) {
			runPoison(t, corpus, tc.mapping, tc.mode)
		})
	}
}

func runPoison(t *testing.T, corpus []poisonKind, mapping, mode string) {
	began := time.Now()
	pool := db(t)
	topic, table, group := newTopic(t, poisonPartitions), uniq("t"), uniq("g")
	ident := pgx.Identifier{table}.Sanitize()
	dropTable(t, pool, table)
	t.Cleanup(func() { _, _ = admin(t).DeleteTopics(context.Background(), topic+".dlq") })

	if mapping == sink.MappingColumns {
		cols := `id text PRIMARY KEY, name text NOT NULL, n int, ts timestamptz, flag boolean, uid uuid,
	score numeric(6,2), code varchar(4), email text UNIQUE, kafka_offset bigint`
		pre := `INSERT INTO ` + ident + ` (id, name, email) VALUES ('pre-taken', 'pre', 'taken@x')`
		if mode == sink.ModeInsert {
			cols = `id text, name text NOT NULL, n int, ts timestamptz, flag boolean, uid uuid,
	score numeric(6,2), code varchar(4), email text UNIQUE,
	kafka_partition int, kafka_offset bigint, PRIMARY KEY (kafka_partition, kafka_offset)`
			pre = `INSERT INTO ` + ident + ` (id, name, email, kafka_partition, kafka_offset) VALUES ('pre-taken', 'pre', 'taken@x', -1, -1)`
		}
		_, err := pool.Exec(t.Context(), `CREATE TABLE `+ident+` (`+cols+`)`)
		require.NoError(t, err)
		_, err = pool.Exec(t.Context(), pre)
		require.NoError(t, err)
	}

	recs := poisonWorkload(corpus, 20261125)
	producePoison(t, topic, recs)
	produced := time.Now()

	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"SINK_MODE": mode, "SINK_MAPPING": mapping,
		"SINK_MAX_RECORD_BYTES": strconv.Itoa(poisonMaxBytes), "BATCH_MAX_RECORDS": "1000",
	})
	waitApplied(t, pool, group, topic, 3*time.Minute)
	drained := time.Now()
	metrics := w.scrape(t)
	w.stop()

	// What must happen to each record.
	byCoord := make(map[coord]*prec, len(recs))
	wantDead := map[coord]string{}
	var landing []*prec
	for _, r := range recs {
		byCoord[r.coord()] = r
		class := ""
		if r.kind >= 0 {
			class = corpus[r.kind].want(mapping, mode)
		}
		if class != "" {
			wantDead[r.coord()] = class
		} else {
			landing = append(landing, r)
		}
	}
	require.Len(t, byCoord, len(recs), "every produced record has its own coordinates")

	// The dead-letter topic, de-duplicated by source coordinates.
	dlqRecs := readTopic(t, topic+".dlq")
	dead := map[coord]*kgo.Record{}
	seen := map[string]map[string]string{} // kind -> class -> a message
	problems := 0
	report := func(format string, args ...any) {
		problems++
		if problems <= 30 {
			t.Errorf(format, args...)
		}
	}
	for _, d := range dlqRecs {
		src, _ := header(d, dlq.HeaderTopic)
		ps, _ := header(d, dlq.HeaderPartition)
		ofs, _ := header(d, dlq.HeaderOffset)
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(ofs, 10, 64)
		if src != topic || err1 != nil || err2 != nil {
			report("dead letter at %s[%d]@%d has bad source headers %q %q %q", d.Topic, d.Partition, d.Offset, src, ps, ofs)
			continue
		}
		c := coord{int32(p), o}
		dead[c] = d // at least once: a repeat must be the same
		orig, ok := byCoord[c]
		if !ok {
			report("dead letter names %v, which the test never produced", c)
			continue
		}
		class, _ := header(d, dlq.HeaderClass)
		msg, _ := header(d, dlq.HeaderMessage)
		kind := "good record"
		if orig.kind >= 0 {
			kind = corpus[orig.kind].name
		}
		if seen[kind] == nil {
			seen[kind] = map[string]string{}
		}
		seen[kind][class] = msg
		if want := wantDead[c]; class != want {
			report("%s at %v: dead-lettered as %q, want %q (%s)", kind, c, class, want, msg)
		}
		if msg == "" {
			report("%s at %v: empty %s", kind, c, dlq.HeaderMessage)
		}
		if !sameBytes(d.Key, orig.key) || !sameBytes(d.Value, orig.value) {
			report("%s at %v: dead letter's key/value (%d/%d bytes, nil %v/%v) differ from the original (%d/%d, nil %v/%v)",
				kind, c, len(d.Key), len(d.Value), d.Key == nil, d.Value == nil,
				len(orig.key), len(orig.value), orig.key == nil, orig.value == nil)
		}
		if len(d.Headers) < len(orig.headers) || !slices.EqualFunc(d.Headers[:len(orig.headers)], orig.headers,
			func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			report("%s at %v: original headers not kept: %v", kind, c, d.Headers)
		}
	}
	for c, class := range wantDead {
		if _, ok := dead[c]; !ok {
			report("%s at %v: not dead-lettered, want class %q", corpus[byCoord[c].kind].name, c, class)
		}
	}

	// The table.
	landed := checkPoisonTable(t, pool, table, mapping, mode, landing, report)

	byClass, sentByClass := map[string]int{}, map[string]int{}
	for c := range dead {
		class, _ := header(dead[c], dlq.HeaderClass)
		byClass[class]++
	}
	for _, d := range dlqRecs {
		class, _ := header(d, dlq.HeaderClass)
		sentByClass[class]++
	}
	if problems > 30 {
		t.Errorf("... %d problems in all", problems)
	}
	// The worker's count of what it dead-lettered, by class, is what the
	// dead-letter topic holds (repeats included: both count sends).
	for class, n := range sentByClass {
		assert.EqualValues(t, n, sum(metrics, "sinkworker_dead_letters_total", "class", class), "dead_letters_total{class=%q}", class)
	}
	assert.EqualValues(t, len(dlqRecs), max(0, sum(metrics, "sinkworker_dead_letters_total", "", "")), "dead_letters_total over all classes")
	if mode == sink.ModeInsert {
		// One row per landed record: what the table holds, counted, plus what
		// the dead-letter topic holds, is what was produced.
		var rows int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+ident+` WHERE kafka_partition >= 0`).Scan(&rows))
		assert.Equal(t, len(recs), rows+len(dead), "rows in the table + dead-lettered records == produced")
	}

	// The classes seen, per kind, for the lead's table.
	var lines []string
	for i, k := range corpus {
		got := "LANDS"
		for class, msg := range seen[k.name] {
			got = class + ": " + msg
		}
		if len(got) > 150 {
			got = got[:150] + "..."
		}
		lines = append(lines, fmt.Sprintf("  %2d %-58s want %-10q got %s", i+1, k.name, k.want(mapping, mode), got))
	}
	t.Logf("%s/%s kinds:\n%s", mapping, mode, strings.Join(lines, "\n"))
	t.Logf("%s/%s: produced %d (%d bad), landed %d records (%s), dead-lettered %d (%d dead letters read, %d repeats) by class %v; "+
		"produce %s, drain %s, total %s",
		mapping, mode, len(recs), len(recs)-poisonGood, len(landing), landed, len(dead), len(dlqRecs), len(dlqRecs)-len(dead), byClass,
		produced.Sub(began).Round(time.Millisecond), drained.Sub(produced).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// checkPoisonTable compares the table with the records that must land and
// returns a description of what it holds.
func checkPoisonTable(t *testing.T, pool *pgxpool.Pool, table, mapping, mode string, landing []*prec, report func(string, ...any)) string {
	t.Helper()
	ident := pgx.Identifier{table}.Sanitize()
	ctx := t.Context()
	if mode == sink.ModeInsert {
		var (
			ps       []int32
			offs     []int64
			vs       []*string
			names    []*string
			ns       []*int64
			rows, dd int64
			bad      int64
		)
		for _, r := range landing {
			ps, offs = append(ps, r.partition), append(offs, r.offset)
			if mapping == sink.MappingJSONB {
				var v *string
				if r.value != nil {
					s := string(r.value)
					v = &s
				}
				vs = append(vs, v)
				continue
			}
			name, n := nameN(t, r.value)
			names, ns = append(names, name), append(ns, n)
		}
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset))
FROM `+ident+` WHERE kafka_partition >= 0`).Scan(&rows, &dd))
		if mapping == sink.MappingJSONB {
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::int[], $2::int8[], $3::text[]) AS m(p, o, v)
LEFT JOIN `+ident+` t ON t.kafka_partition = m.p AND t.kafka_offset = m.o
WHERE t.kafka_offset IS NULL OR t.value IS DISTINCT FROM m.v::jsonb`, ps, offs, vs).Scan(&bad))
		} else {
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::int[], $2::int8[], $3::text[], $4::int8[]) AS m(p, o, name, n)
LEFT JOIN `+ident+` t ON t.kafka_partition = m.p AND t.kafka_offset = m.o
WHERE t.kafka_offset IS NULL OR t.name IS DISTINCT FROM m.name OR t.n IS DISTINCT FROM m.n`, ps, offs, names, ns).Scan(&bad))
		}
		if rows != int64(len(landing)) || dd != rows || bad != 0 {
			report("insert table: %d rows (%d distinct offsets), want exactly the %d landing records; %d landing records missing or different",
				rows, dd, len(landing), bad)
		}
		return fmt.Sprintf("%d rows", rows)
	}

	// Upsert: the last landing record per key, in offset order.
	sorted := slices.Clone(landing)
	slices.SortFunc(sorted, func(a, b *prec) int {
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return int(a.offset - b.offset)
	})
	model := map[string]*prec{}
	for _, r := range sorted {
		if r.value == nil {
			delete(model, string(r.key))
		} else {
			model[string(r.key)] = r
		}
	}
	if mapping == sink.MappingJSONB {
		m := make(map[string]string, len(model))
		for k, r := range model {
			m[k] = string(r.value)
		}
		before := t.Failed()
		assertUpsertTable(t, pool, table, m)
		if !before && t.Failed() {
			report("upsert table differs from the model (see above)")
		}
		return fmt.Sprintf("%d keys", len(m))
	}
	var (
		ids    []string
		names  []*string
		ns     []*int64
		rows   int64
		wrongs int64
	)
	for k, r := range model {
		name, n := nameN(t, r.value)
		ids, names, ns = append(ids, k), append(names, name), append(ns, n)
	}
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+ident+` WHERE id <> 'pre-taken'`).Scan(&rows))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[], $2::text[], $3::int8[]) AS m(id, name, n)
LEFT JOIN `+ident+` t ON t.id = m.id
WHERE t.id IS NULL OR t.name IS DISTINCT FROM m.name OR t.n IS DISTINCT FROM m.n`, ids, names, ns).Scan(&wrongs))
	if rows != int64(len(model)) || wrongs != 0 {
		report("upsert columns table: %d rows, model %d keys; %d keys missing or with another name/n than the last landing record", rows, len(model), wrongs)
	}
	return fmt.Sprintf("%d keys", rows)
}

// TestErrorPolicyStop: with ERROR_POLICY=stop, one invalid record at a
// known offset of partition 0 halts that partition exactly there, with an
// error log line naming it and /readyz not ready, while partition 1 drains;
// nothing is dead-lettered.
func TestErrorPolicyStop(t *testing.T) {
	const perPartition, badOffset = 1000, 500
	pool := db(t)
	topic, table, group := newTopic(t, 2), uniq("t"), uniq("g")
	dropTable(t, pool, table)
	t.Cleanup(func() { _, _ = admin(t).DeleteTopics(context.Background(), topic+".dlq") })

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range perPartition {
			v := fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i)
			if p == 0 && i == badOffset {
				v = []byte(`{"p":0,"i":`) // invalid JSON
			}
			recs = append(recs, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "k-%d-%d", p, i), Value: v})
		}
	}
	res := cl.ProduceSync(t.Context(), recs...)
	cl.Close()
	require.NoError(t, res.FirstErr())
	for _, r := range res {
		require.Equal(t, int64(r.Record.Value[5]-'0'), int64(r.Record.Partition))
		if r.Record.Partition == 0 && bytes.Equal(r.Record.Value, []byte(`{"p":0,"i":`)) {
			require.EqualValues(t, badOffset, r.Record.Offset, "the bad record's offset")
		}
	}

	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"SINK_MODE": "insert", "ERROR_POLICY": "stop", "BATCH_MAX_RECORDS": "200",
	})
	next := func() map[int32]int64 {
		m := map[int32]int64{}
		rows, err := pool.Query(t.Context(), `SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2`, group, topic)
		require.NoError(t, err)
		var (
			p int32
			o int64
		)
		_, err = pgx.ForEachRow(rows, []any{&p, &o}, func() error { m[p] = o; return nil })
		require.NoError(t, err)
		return m
	}
	require.Eventually(t, func() bool {
		m := next()
		return m[0] == badOffset && m[1] == perPartition
	}, 30*time.Second, 100*time.Millisecond, "partition 0 stops at %d, partition 1 drains to %d", badOffset, perPartition)
	require.Eventually(t, func() bool { return w.readyz() == http.StatusServiceUnavailable }, 10*time.Second, 100*time.Millisecond,
		"/readyz answers 503 while a partition is halted")
	time.Sleep(3 * time.Second) // it stays halted
	m := next()
	assert.EqualValues(t, badOffset, m[0], "partition 0 never moves past the bad record")
	assert.EqualValues(t, perPartition, m[1])
	assert.Equal(t, http.StatusServiceUnavailable, w.readyz())

	var p0, p1 int64
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE kafka_partition = 0), count(*) FILTER (WHERE kafka_partition = 1)
FROM `+pgx.Identifier{table}.Sanitize()).Scan(&p0, &p1))
	assert.EqualValues(t, badOffset, p0, "rows of partition 0: the records before the bad one")
	assert.EqualValues(t, perPartition, p1, "rows of partition 1")

	// The error line names topic, partition and offset.
	f, err := os.Open(w.logs)
	require.NoError(t, err)
	var line map[string]any
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() && !found {
		line = nil
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["level"] == "ERROR" &&
			line["topic"] == topic && line["partition"] == float64(0) && line["offset"] == float64(badOffset) {
			found = true
		}
	}
	f.Close()
	require.True(t, found, "an ERROR log line naming %s partition 0 offset %d; log:\n%s", topic, badOffset, testenv.Tail(w.logs, 20))
	t.Logf("halt log line: %v", line)
	assert.NotEmpty(t, line["reason"], "the log line gives the reason")

	w.stop()
	assert.Zero(t, dlqCount(t, topic+".dlq"), "ERROR_POLICY=stop dead-letters nothing")
}
