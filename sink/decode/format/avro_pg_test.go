package format

import (
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
)

// TestAvroLandsInPostgres proves the JSON of an Avro body lands exactly in
// a table made from its Shape, through jsonb_populate_record as the
// columns mapping reads it.
func TestAvroLandsInPostgres(t *testing.T) {
	schema := `{"type":"record","name":"Row","namespace":"pg","fields":[
		{"name":"id","type":"long"},
		{"name":"small","type":"int"},
		{"name":"ok","type":"boolean"},
		{"name":"f32","type":"float"},
		{"name":"f64","type":"double"},
		{"name":"name","type":"string"},
		{"name":"raw","type":"bytes"},
		{"name":"fx","type":{"type":"fixed","name":"F2","size":2}},
		{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
		{"name":"big","type":{"type":"fixed","name":"D16","size":16,"logicalType":"decimal","precision":38,"scale":0}},
		{"name":"id2","type":{"type":"string","logicalType":"uuid"}},
		{"name":"day","type":{"type":"int","logicalType":"date"}},
		{"name":"at","type":{"type":"int","logicalType":"time-millis"}},
		{"name":"at_us","type":{"type":"long","logicalType":"time-micros"}},
		{"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"created_us","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
		{"name":"took","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
		{"name":"tags","type":{"type":"array","items":"string"}},
		{"name":"counts","type":{"type":"array","items":"long"}},
		{"name":"attrs","type":{"type":"map","values":"string"}},
		{"name":"inner","type":{"type":"record","name":"In","fields":[{"name":"a","type":"int"}]}},
		{"name":"either","type":["string","long"]},
		{"name":"note","type":["null","string"],"default":null},
		{"name":"gone","type":["null","long"],"default":null}]}`
	big38, _ := new(big.Rat).SetString("-12345678901234567890123456789012345678")
	body := avroEncode(t, schema, map[string]any{
		"id": int64(9223372036854775807), "small": int32(-2147483648), "ok": true,
		"f32": float32(0.1), "f64": 0.30000000000000004, "name": `Zoë "q"`,
		"raw": []byte{0, 1, 0xff}, "fx": []byte{0xab, 0xcd}, "kind": "B",
		"amount": big.NewRat(1234567, 100), "big": big38,
		"id2":        "123e4567-e89b-12d3-a456-426614174000",
		"day":        time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"at":         12*time.Hour + 34*time.Minute + 56*time.Second + 789*time.Millisecond,
		"at_us":      23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond,
		"created":    time.UnixMilli(1700000000123),
		"created_us": time.UnixMicro(-1),
		"local":      time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC),
		"took":       avro.Duration{Months: 14, Days: 3, Milliseconds: 3723004},
		"tags":       []any{"a", `b "q"`, ""},
		"counts":     []any{int64(-1), int64(9223372036854775807)},
		"attrs":      map[string]any{"k": "v"},
		"inner":      map[string]any{"a": int32(1)},
		"either":     int64(7),
		"note":       "hi",
		"gone":       nil,
	})
	want := map[string]string{
		"id": "9223372036854775807", "small": "-2147483648", "ok": "true",
		"f32": "0.1", "f64": "0.30000000000000004", "name": `Zoë "q"`,
		"raw": `\x0001ff`, "fx": `\xabcd`, "kind": "B",
		"amount":     "12345.67",
		"big":        "-12345678901234567890123456789012345678",
		"id2":        "123e4567-e89b-12d3-a456-426614174000",
		"day":        "2024-02-29",
		"at":         "12:34:56.789",
		"at_us":      "23:59:59.999999",
		"created":    "2023-11-14 22:13:20.123+00",
		"created_us": "1969-12-31 23:59:59.999999+00",
		"local":      "2024-01-02 03:04:05.000006",
		"took":       "1 year 2 mons 3 days 01:02:03.004",
		"tags":       `{a,"b \"q\"",""}`,
		"counts":     "{-1,9223372036854775807}",
		"attrs":      `{"k": "v"}`,
		"inner":      `{"a": 1}`,
		"either":     "7",
		"note":       "hi",
	}
	d, err := CompileAvro(Schema{Text: schema})
	require.NoError(t, err)
	out, shape, err := d.AppendJSON(nil, body)
	require.NoError(t, err)
	require.NotNil(t, shape)

	assertLandsInPostgres(t, "avro_pg_lands", shape, out, want)
}
