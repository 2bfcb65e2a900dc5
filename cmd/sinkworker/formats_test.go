package main

import (
	"encoding/base64"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// The format tests: records in Confluent's wire format (Avro, Protobuf,
// JSON Schema, schemas from the real registry) and Kafka Connect's JSON
// envelope, through the real worker into PostgreSQL; every value is read
// back as text and compared exactly.

// payment is the record the format tests (and testdata/producers/
// confluent_produce.py) write: record i of paymentOf.
type payment struct {
	id      int64
	name    string
	cents   int64 // amount, decimal(10,2), unscaled
	created time.Time
	day     time.Time
	tags    []string
	note    *string
}

var paymentEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// paymentOf is record i as confluent_produce.py writes it.
func paymentOf(i int) payment {
	p := payment{id: int64(i), name: fmt.Sprintf("user-%d", i), cents: int64(i * 101),
		created: paymentEpoch.Add(time.Duration(i) * time.Second), day: paymentEpoch.AddDate(0, 0, i%365),
		tags: []string{fmt.Sprintf("t%d", i%3), "x"}}
	if i%2 == 1 {
		n := fmt.Sprintf("n%d", i)
		p.note = &n
	}
	return p
}

const paymentAvroKey = `{"type":"record","name":"PaymentKey","namespace":"sinkworker.test","fields":[{"name":"id","type":"long"}]}`

const paymentAvro = `{"type":"record","name":"Payment","namespace":"sinkworker.test","fields":[
 {"name":"id","type":"long"},
 {"name":"name","type":"string"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"note","type":["null","string"],"default":null}]}`

func (p payment) avro() []byte {
	b := avLong(nil, p.id)
	b = avStr(b, p.name)
	b = avDecimal(b, p.cents)
	b = avLong(b, p.created.UnixMilli())
	b = avLong(b, p.day.Unix()/86400)
	b = avStrings(b, p.tags...)
	if p.note == nil {
		return avNull(b)
	}
	return avSome(b, *p.note)
}

func avroKey(id int64) []byte { return avLong(nil, id) }

// decimalText is cents as numeric(10,2) prints it.
func decimalText(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// json is the payment as JSON (a JSON Schema body, the jsonb value).
func (p payment) json() []byte {
	note := "null"
	if p.note != nil {
		note = strconv.Quote(*p.note)
	}
	tags, _ := json.Marshal(p.tags)
	return fmt.Appendf(nil, `{"id":%d,"name":%q,"amount":%s,"created":%q,"day":%q,"tags":%s,"note":%s}`,
		p.id, p.name, decimalText(p.cents), p.created.Format(time.RFC3339Nano), p.day.Format(time.DateOnly), tags, note)
}

// row is the payment as paymentQuery reads it back.
func (p payment) row() string {
	note := "NULL"
	if p.note != nil {
		note = *p.note
	}
	return strings.Join([]string{strconv.FormatInt(p.id, 10), p.name, decimalText(p.cents),
		p.created.Format("2006-01-02T15:04:05.000Z"), p.day.Format(time.DateOnly),
		"{" + strings.Join(p.tags, ",") + "}", note}, " | ")
}

// paymentQuery reads a payment table's rows as text, by id, then (in
// insert mode, where an id has a row per record) by offset.
func paymentQuery(table string) string {
	return `SELECT id::text, name::text, amount::text, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
	day::text, tags::text, note::text FROM ` + pgx.Identifier{table}.Sanitize() + ` t ORDER BY t.id, t.kafka_offset`
}

// nullPaymentRow is an insert-mode tombstone as paymentQuery reads it: a
// row of its own, every value column null.
const nullPaymentRow = "NULL | NULL | NULL | NULL | NULL | NULL | NULL"

func paymentRows(ps ...payment) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.row()
	}
	return out
}

// paymentColumns is the table created in mode from the Payment schemas:
// id first, the value's fields, the record's coordinates. The primary key
// (paymentKey) is not null: id in upsert mode, the coordinates in insert
// mode.
func paymentColumns(mode, amount, day string) []string {
	cols := []string{"id bigint not null", "name text", "amount " + amount, "created timestamp with time zone",
		"day " + day, "tags text[]", "note text", "kafka_topic text", "kafka_partition integer", "kafka_offset bigint",
		"kafka_timestamp timestamp with time zone"}
	if mode == "insert" {
		cols[0] = "id bigint"
		for i := 7; i < 10; i++ {
			cols[i] += " not null"
		}
	}
	return cols
}

// paymentKey is the primary key of the table created in mode: the key
// schema's id (or SINK_PRIMARY_KEY=id) in upsert mode, the record's
// coordinates in insert mode.
func paymentKey(mode string) []string {
	if mode == "insert" {
		return []string{"kafka_topic", "kafka_partition", "kafka_offset"}
	}
	return []string{"id"}
}

// TestFormatAvroCreatesTable: Avro keys and values, no table, in upsert
// and insert mode: the worker creates the table from the value schema with
// typed columns, and rows hold the values exactly. In upsert mode the key
// schema's id is the primary key, a later record of a key replaces its row
// and a tombstone deletes it. In insert mode the record's coordinates are
// the primary key and every record is a row of its own: the update is a
// second row of its id, the tombstone a row of nulls, nothing is deleted.
func TestFormatAvroCreatesTable(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"upsert", "insert"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 2), uniq("fmt_avro"), ownGroup(t, pool)
			dropTable(t, pool, table)
			keyID := register(t, topic+"-key", sr.TypeAvro, paymentAvroKey)
			valID := register(t, topic+"-value", sr.TypeAvro, paymentAvro)

			var recs []rec
			var model []payment
			for i := range 10 {
				p := paymentOf(i)
				if i == 7 {
					p.cents = -12345 // a negative decimal, two's complement
				}
				model = append(model, p)
				recs = append(recs, rec{key: string(frame(keyID, avroKey(p.id))), value: frame(valID, p.avro())})
			}
			produce(t, topic, recs)
			w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{
				"SINK_KEY_FORMAT": "avro", "SINK_VALUE_FORMAT": "avro", "SINK_MAPPING": "columns", "SINK_MODE": mode,
			}))
			waitApplied(t, pool, group, topic, 30*time.Second)
			assert.Equal(t, paymentColumns(mode, "numeric(10,2)", "date"), columnTypes(t, pool, table))
			assert.Equal(t, paymentKey(mode), primaryKey(t, pool, table))
			assert.Equal(t, paymentRows(model...), textRows(t, pool, paymentQuery(table)))

			upd := paymentOf(3)
			upd.name, upd.cents, upd.note, upd.tags = "renamed", 99999999, nil, nil
			produce(t, topic, []rec{
				{key: string(frame(keyID, avroKey(3))), value: frame(valID, upd.avro())},
				{key: string(frame(keyID, avroKey(4)))}, // tombstone
			})
			waitApplied(t, pool, group, topic, 30*time.Second)
			updRow := "3 | renamed | 999999.99 | 2026-01-01T00:00:03.000Z | 2026-01-04 | {} | NULL"
			if mode == "upsert" {
				want := paymentRows(append(model[:4:4], model[5:]...)...)
				want[3] = updRow
				assert.Equal(t, want, textRows(t, pool, paymentQuery(table)), "row 3 replaced, row 4 deleted")
			} else {
				want := slices.Insert(paymentRows(model...), 4, updRow)
				assert.Equal(t, append(want, nullPaymentRow), textRows(t, pool, paymentQuery(table)),
					"id 3 has a second row, the tombstone a row of nulls, row 4 stays")
				assertRowPerRecord(t, pool, table, topic)
			}
			w.stop()
			assert.Zero(t, dlqCount(t, topic+".dlq"))
		})
	}
}

const evolveV1 = `{"type":"record","name":"Item","namespace":"sinkworker.test","fields":[
 {"name":"id","type":"long"},{"name":"name","type":"string"}]}`

const evolveV2 = `{"type":"record","name":"Item","namespace":"sinkworker.test","fields":[
 {"name":"id","type":"long"},{"name":"name","type":"string"},
 {"name":"color","type":["null","string"],"default":null}]}`

// TestFormatAvroEvolution: while records flow, a producer registers v2 of
// the value schema with a new optional field. With add-columns the column
// appears and v1 and v2 records both land; with none (the default) the
// field is ignored and counted as an unknown field.
func TestFormatAvroEvolution(t *testing.T) {
	t.Parallel()
	for _, evolution := range []string{"add-columns", "none"} {
		t.Run(evolution, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 1), uniq("fmt_evolve"), ownGroup(t, pool)
			dropTable(t, pool, table)
			keyID := register(t, topic+"-key", sr.TypeAvro, paymentAvroKey)
			v1 := register(t, topic+"-value", sr.TypeAvro, evolveV1)
			key := func(i int) string { return string(frame(keyID, avroKey(int64(i)))) }
			item := func(i int) rec {
				return rec{key: key(i), value: frame(v1, avStr(avLong(nil, int64(i)), fmt.Sprintf("v1-%d", i)))}
			}
			produce(t, topic, []rec{item(0), item(1), item(2)})
			w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{
				"SINK_KEY_FORMAT": "avro", "SINK_VALUE_FORMAT": "avro", "SINK_MAPPING": "columns",
				"SINK_SCHEMA_EVOLUTION": evolution,
			}))
			waitApplied(t, pool, group, topic, 30*time.Second)

			v2 := register(t, topic+"-value", sr.TypeAvro, evolveV2)
			require.NotEqual(t, v1, v2)
			var recs []rec
			for i := 3; i < 8; i++ {
				recs = append(recs, rec{key: key(i), value: frame(v2, avSome(avStr(avLong(nil, int64(i)), fmt.Sprintf("v2-%d", i)), fmt.Sprintf("c%d", i)))})
			}
			recs = append(recs, item(8), rec{key: key(9), value: frame(v2, avNull(avStr(avLong(nil, 9), "v2-9")))})
			produce(t, topic, recs)
			waitApplied(t, pool, group, topic, 30*time.Second)

			base := []string{"id bigint not null", "name text", "kafka_topic text", "kafka_partition integer",
				"kafka_offset bigint", "kafka_timestamp timestamp with time zone"}
			names := []string{"0 | v1-0", "1 | v1-1", "2 | v1-2", "3 | v2-3", "4 | v2-4", "5 | v2-5", "6 | v2-6", "7 | v2-7", "8 | v1-8", "9 | v2-9"}
			ident := pgx.Identifier{table}.Sanitize()
			if evolution == "add-columns" {
				assert.Equal(t, append(base, "color text"), columnTypes(t, pool, table), "color added")
				colors := []string{"NULL", "NULL", "NULL", "c3", "c4", "c5", "c6", "c7", "NULL", "NULL"}
				want := make([]string, len(names))
				for i := range names {
					want[i] = names[i] + " | " + colors[i]
				}
				assert.Equal(t, want, textRows(t, pool, `SELECT id::text, name, color FROM `+ident+` t ORDER BY t.id`))
				assert.Equal(t, 1.0, w.series(t, "sinkworker_schema_columns_added_total", "", ""))
			} else {
				assert.Equal(t, base, columnTypes(t, pool, table), "no column added")
				assert.Equal(t, names, textRows(t, pool, `SELECT id::text, name FROM `+ident+` t ORDER BY t.id`))
				assert.Equal(t, 6.0, w.series(t, "sinkworker_records_total", "outcome", "unknown_fields"),
					"color, once per v2 record")
				assert.LessOrEqual(t, w.series(t, "sinkworker_schema_columns_added_total", "", ""), 0.0)
			}
			w.stop()
			assert.Zero(t, dlqCount(t, topic+".dlq"))
		})
	}
}

const orderProto = `syntax = "proto3";
package sinkworker.test;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Other { string x = 1; }

message Order {
  enum Status { NEW = 0; PAID = 1; }
  int64 id = 1;
  string name = 2;
  google.protobuf.Timestamp at = 3;
  repeated int32 qty = 4;
  Status status = 5;
  uint64 big = 6;
  bool ok = 7;
  google.protobuf.StringValue note = 8;
}
`

// order is an Order message (index [1] of orderProto).
func order(id int64, name string, at time.Time, qty []int32, paid bool, big uint64, note *string) []byte {
	b := pbVarint(nil, 1, uint64(id))
	b = pbLen(b, 2, []byte(name))
	b = pbLen(b, 3, pbTimestamp(at))
	var packed []byte
	for _, q := range qty {
		packed = bin.AppendUvarint(packed, uint64(int64(q)))
	}
	b = pbLen(b, 4, packed)
	if paid {
		b = pbVarint(b, 5, 1)
	}
	b = pbVarint(b, 6, big)
	b = pbVarint(b, 7, 1)
	if note != nil {
		b = pbLen(b, 8, pbLen(nil, 1, []byte(*note)))
	}
	return b
}

// TestFormatProtobufInsert: Protobuf values (the second message of the
// file, so message indexes [1]) in insert mode: the table is created with
// the record's coordinates as the primary key, every value lands exactly
// (uint64 beyond int64, nanoseconds, the enum's name, a wrapper's null).
func TestFormatProtobufInsert(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("fmt_proto"), ownGroup(t, pool)
	dropTable(t, pool, table)
	id := register(t, topic+"-value", sr.TypeProtobuf, orderProto)
	note := "fragile"
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	produce(t, topic, []rec{
		{key: "a", value: pbFrame(id, []int64{1}, order(1, "first", at, []int32{1, -2, 3}, true, 18446744073709551615, &note))},
		{key: "a", value: pbFrame(id, []int64{1}, order(-9223372036854775808, "second", at.Add(time.Hour), nil, false, 0, nil))},
	})
	w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{
		"SINK_VALUE_FORMAT": "protobuf", "SINK_MAPPING": "columns", "SINK_MODE": "insert",
	}))
	waitApplied(t, pool, group, topic, 30*time.Second)
	w.stop()
	assert.Equal(t, []string{"id bigint", "name text", "at timestamp with time zone", "qty integer[]", "status text",
		"big numeric(20,0)", "ok boolean", "note text", "kafka_topic text not null", "kafka_partition integer not null",
		"kafka_offset bigint not null", "kafka_timestamp timestamp with time zone"}, columnTypes(t, pool, table))
	assert.Equal(t, []string{"kafka_topic", "kafka_partition", "kafka_offset"}, primaryKey(t, pool, table))
	assert.Equal(t, []string{
		"0 | 1 | first | 2026-03-04T05:06:07.123456Z | {1,-2,3} | PAID | 18446744073709551615 | true | fragile",
		"1 | -9223372036854775808 | second | 2026-03-04T06:06:07.123456Z | {} | NEW | 0 | true | NULL",
	}, textRows(t, pool, `SELECT kafka_offset::text, id::text, name, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	qty::text, status, big::text, ok::text, note FROM `+pgx.Identifier{table}.Sanitize()+` ORDER BY kafka_offset`))
	assert.Zero(t, dlqCount(t, topic+".dlq"))
}

const paymentJSONKey = `{"$schema":"http://json-schema.org/draft-07/schema#","title":"PaymentKey","type":"object",
 "properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":false}`

const paymentJSONSchema = `{"$schema":"http://json-schema.org/draft-07/schema#","title":"Payment","type":"object",
 "properties":{"id":{"type":"integer"},"name":{"type":"string"},"amount":{"type":"number"},
  "created":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},
  "tags":{"type":"array","items":{"type":"string"}},"note":{"type":["null","string"]}},
 "required":["id","name","amount","created","day","tags","note"],"additionalProperties":false}`

// TestFormatJSONSchema: JSON Schema keys and values in upsert and insert
// mode: the table is created from the schema (number as numeric,
// date-time as timestamptz, date as date, an array of strings as text[]).
// In upsert mode a later record of a key replaces its row and a tombstone
// deletes it; in insert mode each is a row of its own.
func TestFormatJSONSchema(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"upsert", "insert"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 2), uniq("fmt_jsonschema"), ownGroup(t, pool)
			dropTable(t, pool, table)
			keyID := register(t, topic+"-key", sr.TypeJSON, paymentJSONKey)
			valID := register(t, topic+"-value", sr.TypeJSON, paymentJSONSchema)
			key := func(i int) string { return string(frame(keyID, fmt.Appendf(nil, `{"id":%d}`, i))) }
			var recs []rec
			var model []payment
			for i := range 6 {
				p := paymentOf(i)
				model = append(model, p)
				recs = append(recs, rec{key: key(i), value: frame(valID, p.json())})
			}
			again := paymentOf(2)
			again.name, again.cents = "again", -1 // -0.01
			recs = append(recs, rec{key: key(2), value: frame(valID, again.json())},
				rec{key: key(4)}) // a tombstone
			produce(t, topic, recs)
			w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{
				"SINK_KEY_FORMAT": "json-schema", "SINK_VALUE_FORMAT": "json-schema", "SINK_MAPPING": "columns", "SINK_MODE": mode,
			}))
			waitApplied(t, pool, group, topic, 30*time.Second)
			w.stop()
			assert.Equal(t, paymentColumns(mode, "numeric", "date"), columnTypes(t, pool, table))
			assert.Equal(t, paymentKey(mode), primaryKey(t, pool, table))
			if mode == "upsert" {
				model[2] = again
				assert.Equal(t, paymentRows(append(model[:4:4], model[5:]...)...), textRows(t, pool, paymentQuery(table)),
					"row 2 replaced, row 4 deleted")
			} else {
				want := paymentRows(slices.Insert(model, 3, again)...)
				assert.Equal(t, append(want, nullPaymentRow), textRows(t, pool, paymentQuery(table)),
					"id 2 has a second row, the tombstone a row of nulls, row 4 stays")
				assertRowPerRecord(t, pool, table, topic)
			}
			assert.Zero(t, dlqCount(t, topic+".dlq"))
		})
	}
}

const connectKey = `{"type":"struct","optional":false,"fields":[{"field":"id","type":"int64","optional":false}]}`

const connectValue = `{"type":"struct","name":"sinkworker.Reading","optional":false,"fields":[
 {"field":"id","type":"int64","optional":false},
 {"field":"small","type":"int16","optional":false},
 {"field":"amount","type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,
  "parameters":{"scale":"2","connect.decimal.precision":"10"}},
 {"field":"day","type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1},
 {"field":"at","type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1},
 {"field":"tod","type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1},
 {"field":"ratio","type":"float64","optional":true},
 {"field":"tags","type":"array","optional":true,"items":{"type":"string","optional":false}}]}`

// connectRecord is one Connect JSON key and value.
func connectRecord(id int64, small int16, cents int64, day int32, atMs int64, todMs int32, ratio string, tags string) rec {
	amount := base64.StdEncoding.EncodeToString(twosComplement(big.NewInt(cents)))
	return rec{
		key: fmt.Sprintf(`{"schema":%s,"payload":{"id":%d}}`, connectKey, id),
		value: fmt.Appendf(nil, `{"schema":%s,"payload":{"id":%d,"small":%d,"amount":%q,"day":%d,"at":%d,"tod":%d,"ratio":%s,"tags":%s}}`,
			connectValue, id, small, amount, day, atMs, todMs, ratio, tags),
	}
}

// TestFormatConnectJSON: Kafka Connect's JSON envelope (no registry) in
// upsert and insert mode: the table is created from the envelope's schema
// and Decimal, Date, Time and Timestamp land exactly.
func TestFormatConnectJSON(t *testing.T) {
	t.Parallel()
	recs := []rec{
		connectRecord(1, -32768, 123456789, 20454, 1767225600123, 3723004, "0.1", `["a","b"]`),
		connectRecord(2, 7, -5, -1, -1, 0, "null", "null"),
		connectRecord(1, 1, 9999999999, 0, 0, 86399999, "1e300", `[]`),
	}
	rowsQuery := func(table string) string {
		return `SELECT id::text, small::text, amount::text, day::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
	tod::text, ratio::text, tags::text FROM ` + pgx.Identifier{table}.Sanitize() + ` ORDER BY kafka_offset`
	}
	first := "1 | -32768 | 1234567.89 | 2026-01-01 | 2026-01-01T00:00:00.123Z | 01:02:03.004 | 0.1 | {a,b}"
	second := "2 | 7 | -0.05 | 1969-12-31 | 1969-12-31T23:59:59.999Z | 00:00:00 | NULL | NULL"
	third := "1 | 1 | 99999999.99 | 1970-01-01 | 1970-01-01T00:00:00.000Z | 23:59:59.999 | 1e+300 | {}"
	for _, mode := range []string{"upsert", "insert"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 1), uniq("fmt_connect"), ownGroup(t, pool)
			dropTable(t, pool, table)
			produce(t, topic, recs)
			w := startWorker(t, "w1", map[string]string{
				"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
				"SINK_KEY_FORMAT": "connect-json", "SINK_VALUE_FORMAT": "connect-json", "SINK_MAPPING": "columns", "SINK_MODE": mode,
			})
			waitApplied(t, pool, group, topic, 30*time.Second)
			w.stop()
			cols := []string{"small smallint", "amount numeric(10,2)", "day date", "at timestamp with time zone",
				"tod time without time zone", "ratio double precision", "tags text[]"}
			meta := []string{"kafka_topic text", "kafka_partition integer", "kafka_offset bigint", "kafka_timestamp timestamp with time zone"}
			if mode == "upsert" {
				assert.Equal(t, append(append([]string{"id bigint not null"}, cols...), meta...), columnTypes(t, pool, table))
				assert.Equal(t, []string{"id"}, primaryKey(t, pool, table))
				assert.Equal(t, []string{second, third}, textRows(t, pool, rowsQuery(table)))
			} else {
				for i := range 3 {
					meta[i] += " not null"
				}
				assert.Equal(t, append(append([]string{"id bigint"}, cols...), meta...), columnTypes(t, pool, table))
				assert.Equal(t, []string{first, second, third}, textRows(t, pool, rowsQuery(table)))
			}
			assert.Zero(t, dlqCount(t, topic+".dlq"))
		})
	}
}

// TestFormatExternalProducer: records written by Confluent's own Python
// serializers (confluent-kafka, testdata/producers/confluent_produce.py),
// which also register the schemas, land exactly: the real wire format,
// not only our own encoder's.
func TestFormatExternalProducer(t *testing.T) {
	t.Parallel()
	pythonPath := requiredEnv(t, "SINKWORKER_TEST_PYTHONPATH")
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "testdata", "producers", "confluent_produce.py")
	const n = 200
	// Protobuf has no decimal or date: the script writes both as strings.
	for _, tc := range []struct{ format, amount, day string }{
		{"avro", "numeric(10,2)", "date"}, {"json-schema", "numeric", "date"}, {"protobuf", "text", "text"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 2), uniq("fmt_external"), ownGroup(t, pool)
			dropTable(t, pool, table)
			cmd := exec.CommandContext(t.Context(), "python3", script, "--brokers", strings.Join(brokers, ","),
				"--registry", registryURL(t), "--topic", topic, "--format", tc.format, "--count", strconv.Itoa(n))
			cmd.Env = testenv.ProcessEnv(map[string]string{"PYTHONPATH": pythonPath})
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "confluent_produce.py: %s", out)
			require.Contains(t, string(out), fmt.Sprintf("produced %d", n))

			w := startWorker(t, "w1", formatEnv(t, topic, table, group, map[string]string{
				"SINK_KEY_FORMAT": tc.format, "SINK_VALUE_FORMAT": tc.format, "SINK_MAPPING": "columns", "SINK_MODE": "upsert",
			}))
			waitApplied(t, pool, group, topic, 45*time.Second)
			w.stop()
			dead := deadLetters(t, topic)
			if len(dead) > 0 {
				t.Errorf("%d of %d records dead-lettered; the first: class %s: %s", len(dead), 2*n, dead[0].Class, dead[0].Message)
			}
			want := make([]payment, n)
			for i := range want {
				want[i] = paymentOf(i)
			}
			assert.Equal(t, paymentColumns("upsert", tc.amount, tc.day), columnTypes(t, pool, table))
			assert.Equal(t, paymentRows(want...), textRows(t, pool, paymentQuery(table)))
		})
	}
}

// requiredEnv is a setting the test needs: it fails without it.
func requiredEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s must be set: %s", name, testenv.Hint)
	}
	return v
}

// TestFormatRegistryOutage: the worker reaches the registry through a
// proxy the test switches off. Records of a schema it knows keep landing;
// records of a schema id new to it wait (retried as class registry,
// /readyz 503, nothing dead-lettered) and land once the registry is back.
func TestFormatRegistryOutage(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("fmt_outage"), ownGroup(t, pool)
	dropTable(t, pool, table)
	keyID := register(t, topic+"-key", sr.TypeAvro, paymentAvroKey)
	v1 := register(t, topic+"-value", sr.TypeAvro, evolveV1)
	u, err := url.Parse(registryURL(t))
	require.NoError(t, err)
	proxy := newSwitchProxy(t, u.Host)
	item := func(i int, id int, prefix string) rec {
		return rec{key: string(frame(keyID, avroKey(int64(i)))), value: frame(id, avStr(avLong(nil, int64(i)), fmt.Sprintf("%s-%d", prefix, i)))}
	}
	produce(t, topic, []rec{item(0, v1, "v1"), item(1, v1, "v1")})
	env := formatEnv(t, topic, table, group, map[string]string{
		"SINK_KEY_FORMAT": "avro", "SINK_VALUE_FORMAT": "avro", "SINK_MAPPING": "columns",
	})
	env["SCHEMA_REGISTRY_URL"] = proxy.via(t, registryURL(t))
	w := startWorker(t, "w1", env)
	waitApplied(t, pool, group, topic, 30*time.Second)

	proxy.set(true)
	produce(t, topic, []rec{item(2, v1, "v1"), item(3, v1, "v1")})
	waitApplied(t, pool, group, topic, 30*time.Second) // known schemas: no registry needed

	// An id the worker has never seen: the same schema under another
	// subject, in another form, gets its own id.
	other := register(t, uniq("fmt_outage_other")+"-value", sr.TypeAvro, strings.ReplaceAll(evolveV1, "\n", " "))
	produce(t, topic, []rec{item(4, other, "new"), item(5, v1, "v1")})
	require.Eventually(t, func() bool {
		return w.series(t, "sinkworker_retries_total", "class", "registry") > 0
	}, 30*time.Second, 100*time.Millisecond, "retries of class registry while it is unreachable")
	require.Eventually(t, func() bool { return w.readyz() == http.StatusServiceUnavailable }, 30*time.Second, 100*time.Millisecond,
		"/readyz answers 503 while records wait for the registry")
	applied, err := appliedOffsets(t.Context(), pool, group, topic)
	require.NoError(t, err)
	assert.EqualValues(t, 4, applied, "the record of the unknown id and the one after it wait")
	assert.Zero(t, dlqCount(t, topic+".dlq"), "an unreachable registry dead-letters nothing")

	proxy.set(false)
	waitApplied(t, pool, group, topic, 60*time.Second)
	require.Eventually(t, func() bool { return w.readyz() == http.StatusOK }, 30*time.Second, 100*time.Millisecond,
		"/readyz ready again once the registry answers")
	w.stop()
	assert.Equal(t, []string{"0 | v1-0", "1 | v1-1", "2 | v1-2", "3 | v1-3", "4 | new-4", "5 | v1-5"},
		textRows(t, pool, `SELECT id::text, name FROM `+pgx.Identifier{table}.Sanitize()+` t ORDER BY t.id`))
	assert.Zero(t, dlqCount(t, topic+".dlq"))
}

// TestFormatTypeChange: v2 of a schema turns a bigint field into a string.
// The table keeps its column (never retyped): v2 records whose text is
// not a number are rejected by the database and dead-lettered as data,
// never coerced; a v2 record whose text is a number lands; v1 records
// land.
func TestFormatTypeChange(t *testing.T) {
	t.Parallel()
	r := newRetype(t, "fmt_retype")
	recs, want := r.firstV1(20)
	recs = append(recs, r.v2Rec(20, "lots"), r.v2Rec(21, "210"), r.v2Rec(22, "12.5"), r.v1Rec(23, 230))
	produce(t, r.topic, recs)
	w := startWorker(t, "w1", formatEnv(t, r.topic, r.table, r.group, map[string]string{
		"SINK_KEY_FORMAT": "avro", "SINK_VALUE_FORMAT": "avro", "SINK_MAPPING": "columns", "SINK_SCHEMA_EVOLUTION": "add-columns",
	}))
	waitApplied(t, r.pool, r.group, r.topic, 30*time.Second)
	w.stop()
	assert.Contains(t, columnTypes(t, r.pool, r.table), "qty bigint", "never retyped")
	want = append(want, "21 | 210", "23 | 230")
	assert.Equal(t, want, r.rows(t))
	dead := deadLetters(t, r.topic)
	require.Len(t, dead, 2, "lots and 12.5")
	for _, d := range dead {
		assert.Equal(t, decode.ClassData, d.Class, d.Message)
		assert.Contains(t, d.Message, "bigint", "the reason names the column type")
	}
}

// wireKind is one kind of bad record in a registry or Connect format: the
// value, the dead-letter class it must get and a word its reason must
// hold. The wire-format poison corpus, in the style of poisonCorpus.
type wireKind struct {
	name   string
	format decode.Format
	value  func(ids wireIDs) []byte
	class  string
	reason string
}

// wireIDs are the schema ids a corpus run registered.
type wireIDs struct{ avro, proto, jsonSchema int }

const (
	wireAvro  = `{"type":"record","name":"W","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"]}]}`
	wireProto = `syntax = "proto3"; package sinkworker.test; message W { int64 id = 1; string note = 2; }`
	wireJSON  = `{"type":"object","properties":{"id":{"type":"integer"},"note":{"type":"string"}},"required":["id"]}`
	wireCJ    = `{"type":"struct","fields":[{"field":"id","type":"int64","optional":false},` +
		`{"field":"amount","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}`
)

// wireGood is good record i in format f.
func wireGood(f decode.Format, ids wireIDs, i int) []byte {
	switch f {
	case decode.FormatAvro:
		return frame(ids.avro, avSome(avLong(nil, int64(i)), "ok"))
	case decode.FormatProtobuf:
		return pbFrame(ids.proto, []int64{0}, pbLen(pbVarint(nil, 1, uint64(i)), 2, []byte("ok")))
	case decode.FormatJSONSchema:
		return frame(ids.jsonSchema, fmt.Appendf(nil, `{"id":%d,"note":"ok"}`, i))
	}
	return fmt.Appendf(nil, `{"schema":%s,"payload":{"id":%d,"amount":"AQ=="}}`, wireCJ, i)
}

func wireCorpus() []wireKind {
	const dec, sch = decode.ClassDecode, decode.ClassSchema
	avro, proto, js, cj := decode.FormatAvro, decode.FormatProtobuf, decode.FormatJSONSchema, decode.FormatConnectJSON
	good := func(f decode.Format) func(wireIDs) []byte {
		return func(ids wireIDs) []byte { return wireGood(f, ids, 1) }
	}
	edit := func(f decode.Format, change func([]byte) []byte) func(wireIDs) []byte {
		return func(ids wireIDs) []byte { return change(good(f)(ids)) }
	}
	fixed := func(b []byte) func(wireIDs) []byte { return func(wireIDs) []byte { return b } }
	cjValue := func(payload string) func(wireIDs) []byte {
		return fixed([]byte(`{"schema":` + wireCJ + payload + `}`))
	}
	return []wireKind{
		{"wrong magic byte", avro, edit(avro, func(b []byte) []byte { b[0] = 1; return b }), dec, "magic byte"},
		{"short header (3 bytes)", avro, fixed([]byte{0, 0, 0}), dec, "5-byte header"},
		{"empty value", avro, fixed([]byte{}), dec, "5-byte header"},
		{"unknown schema id", avro, func(wireIDs) []byte { return frame(2_000_000_000, avNull(avLong(nil, 1))) }, sch, "not in the registry"},
		{"id of another format's schema", avro, func(ids wireIDs) []byte { return frame(ids.jsonSchema, avNull(avLong(nil, 1))) }, sch, "JSON"},
		{"truncated avro body", avro, edit(avro, func(b []byte) []byte { return b[:len(b)-2] }), dec, "avro body"},
		{"trailing bytes after the avro value", avro, edit(avro, func(b []byte) []byte { return append(b, 7, 7) }), dec, "after its value"},
		{"avro union index out of range", avro, func(ids wireIDs) []byte { return frame(ids.avro, avLong(avLong(nil, 1), 5)) }, dec, "union index"},
		{"avro string length beyond the body", avro, func(ids wireIDs) []byte { return frame(ids.avro, avLong(avLong(avLong(nil, 1), 1), 1000)) }, dec, "beyond its end"},
		{"protobuf message index that does not exist", proto, func(ids wireIDs) []byte {
			return pbFrame(ids.proto, []int64{3}, pbVarint(nil, 1, 1))
		}, sch, "message index 3"},
		{"protobuf message indexes truncated", proto, func(ids wireIDs) []byte { return frame(ids.proto, []byte{4}) }, dec, "message index"},
		{"corrupt protobuf body", proto, func(ids wireIDs) []byte {
			return pbFrame(ids.proto, []int64{0}, []byte{0x12, 0x50, 'a'}) // note: 80 bytes announced, 1 there
		}, dec, "protobuf"},
		{"json-schema violation (id not an integer)", js, func(ids wireIDs) []byte { return frame(ids.jsonSchema, []byte(`{"id":"one"}`)) }, sch, "/id"},
		{"json-schema required property missing", js, func(ids wireIDs) []byte { return frame(ids.jsonSchema, []byte(`{"note":"x"}`)) }, sch, "required"},
		{"json-schema payload not JSON", js, func(ids wireIDs) []byte { return frame(ids.jsonSchema, []byte(`{"id":`)) }, dec, "not JSON"},
		{"connect envelope without payload", cj, fixed([]byte(`{"schema":` + wireCJ + `}`)), dec, "no payload"},
		{"connect envelope without schema", cj, fixed([]byte(`{"payload":{"id":1}}`)), dec, "no schema"},
		{"connect payload not matching its schema", cj, cjValue(`,"payload":{"id":"one"}`), sch, "/id"},
		{"connect invalid base64 decimal", cj, cjValue(`,"payload":{"id":1,"amount":"*not base64*"}`), sch, "base64"},
		{"connect value not JSON", cj, fixed([]byte(`{"schema":`)), dec, "not JSON"},
	}
}

// TestFormatBadRecordsDeadLettered runs the wire-format corpus: for each
// format a topic of good records with two copies of every bad kind among
// them. Each bad record is dead-lettered once, with its kind's class and a
// reason naming the cause; every good record lands.
func TestFormatBadRecordsDeadLettered(t *testing.T) {
	t.Parallel()
	corpus := wireCorpus()
	require.GreaterOrEqual(t, len(corpus), 12)
	for _, f := range []decode.Format{decode.FormatAvro, decode.FormatProtobuf, decode.FormatJSONSchema, decode.FormatConnectJSON} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			pool := db(t)
			topic, table, group := ownTopic(t, 1), uniq("fmt_bad"), ownGroup(t, pool)
			dropTable(t, pool, table)
			var ids wireIDs
			if f != decode.FormatConnectJSON {
				ids = wireIDs{avro: register(t, topic+"-avro", sr.TypeAvro, wireAvro),
					proto:      register(t, topic+"-proto", sr.TypeProtobuf, wireProto),
					jsonSchema: register(t, topic+"-json", sr.TypeJSON, wireJSON)}
			}
			var recs []*kgo.Record
			want := map[string]wireKind{} // by value
			good := 0
			for copyN := range 2 {
				for _, k := range corpus {
					if k.format != f {
						continue
					}
					v := k.value(ids)
					want[string(v)] = k
					recs = append(recs,
						&kgo.Record{Key: fmt.Appendf(nil, "good-%d", good), Value: wireGood(f, ids, good)},
						&kgo.Record{Key: fmt.Appendf(nil, "bad-%d", copyN), Value: v})
					good++
				}
			}
			produceRaw(t, topic, recs...)
			env := formatEnv(t, topic, table, group, map[string]string{"SINK_VALUE_FORMAT": string(f)})
			if f == decode.FormatConnectJSON {
				delete(env, "SCHEMA_REGISTRY_URL")
			}
			w := startWorker(t, "w1", env)
			waitApplied(t, pool, group, topic, 30*time.Second)
			w.stop()
			dead := deadLetters(t, topic)
			got := map[string]int{}
			for _, d := range dead {
				k, ok := want[string(d.Value)]
				if !ok {
					t.Errorf("dead-lettered a record that is not bad: %q (%s: %s)", d.Key, d.Class, d.Message)
					continue
				}
				got[k.name]++
				assert.Equal(t, k.class, d.Class, "%s: %s", k.name, d.Message)
				assert.Contains(t, d.Message, k.reason, "%s: the reason names the cause", k.name)
				t.Logf("%-45s %s: %s", k.name, d.Class, d.Message)
			}
			for _, k := range want {
				assert.Equal(t, 2, got[k.name], "%s: dead letters", k.name)
			}
			var rows int
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+
				` WHERE key LIKE 'good-%' AND value->>'id' = substr(key, 6)`).Scan(&rows))
			assert.Equal(t, good, rows, "every good record landed, its id in its value")
		})
	}
}
