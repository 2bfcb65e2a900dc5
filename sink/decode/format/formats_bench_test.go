package format

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// The benchmarks read one ~200-byte record of an order-like schema, next
// to json.Valid over the same payload as a floor.

const cjBenchSchema = `{"type":"struct","name":"order","fields":[
{"field":"id","type":"int64"},
{"field":"customer","type":"string"},
{"field":"amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
{"field":"qty","type":"int32"},
{"field":"paid","type":"boolean"},
{"field":"day","type":"int32","name":"org.apache.kafka.connect.data.Date"},
{"field":"at","type":"int64","name":"org.apache.kafka.connect.data.Timestamp"},
{"field":"note","type":"string","optional":true},
{"field":"tags","type":"array","items":{"type":"string"}}]}`

const benchPayload = `{"id":1234567890123,"customer":"customer-000042@example.com","amount":"AeJA","qty":17,` +
	`"paid":true,"day":19000,"at":1641651296789,"note":"leave at the door, ring twice","tags":["express","gift","fragile"]}`

const jsBenchSchema = `{"type":"object","properties":{
"id":{"type":"integer"},"customer":{"type":"string"},"amount":{"type":"number"},"qty":{"type":"integer","minimum":1},
"paid":{"type":"boolean"},"day":{"type":"string","format":"date"},"at":{"type":"string","format":"date-time"},
"note":{"type":["string","null"]},"tags":{"type":"array","items":{"type":"string"}}},
"required":["id","customer","amount","qty","paid"]}`

const jsBenchPayload = `{"id":1234567890123,"customer":"customer-000042@example.com","amount":1234.56,"qty":17,` +
	`"paid":true,"day":"2022-01-08","at":"2022-01-08T14:14:56.789Z","note":"leave at the door","tags":["express","gift","fragile"]}`

func BenchmarkConnectJSONAppendJSON(b *testing.B) {
	d := NewConnectJSON()
	body := cjEnvelope(cjBenchSchema, benchPayload)
	dst, _, err := d.AppendJSON(nil, body)
	require.NoError(b, err)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _, err = d.AppendJSON(dst[:0], body)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConnectJSONValid(b *testing.B) {
	body := []byte(benchPayload)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkJSONSchemaAppendJSON(b *testing.B) {
	d, err := CompileJSONSchema(Schema{Text: jsBenchSchema})
	require.NoError(b, err)
	body := []byte(jsBenchPayload)
	dst, _, err := d.AppendJSON(nil, body)
	require.NoError(b, err)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _, err = d.AppendJSON(dst[:0], body)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONSchemaValid(b *testing.B) {
	body := []byte(jsBenchPayload)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}
