package format

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// avroBenchSchema is a typical record: an id, a name, a decimal amount,
// a timestamp, a date, a few tags and an optional note.
const avroBenchSchema = `{"type":"record","name":"Order","namespace":"bench","fields":[
	{"name":"id","type":"long"},
	{"name":"name","type":"string"},
	{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
	{"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"day","type":{"type":"int","logicalType":"date"}},
	{"name":"tags","type":{"type":"array","items":"string"}},
	{"name":"note","type":["null","string"],"default":null}]}`

// avroBenchJSON is avroBenchBody decoded: what the schemaless JSON path
// would read for the same record.
const avroBenchJSON = `{"id":1234567890123,"name":"Ada Lovelace, Analytical Engine Ltd","amount":12345.67,` +
	`"created":"2023-11-14T22:13:20.123Z","day":"2024-02-29","tags":["priority","export","eu-west-1","wholesale"],` +
	`"note":"deliver before noon; ring twice at the gate"}`

// avroBenchBody is a 138-byte body of avroBenchSchema.
func avroBenchBody(tb testing.TB) []byte {
	tb.Helper()
	return avroEncode(tb, avroBenchSchema, map[string]any{
		"id":      int64(1234567890123),
		"name":    "Ada Lovelace, Analytical Engine Ltd",
		"amount":  big.NewRat(1234567, 100),
		"created": time.UnixMilli(1700000000123),
		"day":     time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"tags":    []any{"priority", "export", "eu-west-1", "wholesale"},
		"note":    "deliver before noon; ring twice at the gate",
	})
}

func BenchmarkAvroAppendJSON(b *testing.B) {
	d, err := CompileAvro(Schema{Text: avroBenchSchema})
	if err != nil {
		b.Fatal(err)
	}
	body := avroBenchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		if dst, _, err = d.AppendJSON(dst[:0], body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAvroJSONValid is what the schemaless path spends on the same
// record as JSON text: checking it, before PostgreSQL parses it.
func BenchmarkAvroJSONValid(b *testing.B) {
	text := []byte(avroBenchJSON)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(text) {
			b.Fatal("invalid")
		}
	}
}
