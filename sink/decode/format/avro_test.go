package format

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
)

// avroField1 is a record schema with one field v of type typ.
func avroField1(typ string) string {
	return `{"type":"record","name":"R","namespace":"t","fields":[{"name":"v","type":` + typ + `}]}`
}

// avroEncode encodes v with the library's own encoder.
func avroEncode(t testing.TB, schema string, v any) []byte {
	t.Helper()
	s, err := avro.Parse(schema)
	require.NoError(t, err)
	b, err := s.Encode(v)
	require.NoError(t, err)
	return b
}

func avroDecode(t testing.TB, s Schema, body []byte) (string, *Shape, error) {
	t.Helper()
	d, err := CompileAvro(s)
	require.NoError(t, err)
	out, shape, err := d.AppendJSON([]byte("prefix:"), body)
	require.Equal(t, "prefix:", string(out[:7]), "AppendJSON keeps dst")
	return string(out[7:]), shape, err
}

func TestAvroTypes(t *testing.T) {
	t.Parallel()
	uuid := [16]byte{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00}
	cases := []struct {
		name     string
		typ      string
		value    any
		json     string
		column   string
		nullable bool
	}{
		{"null", `"null"`, nil, `null`, "jsonb", true},
		{"boolean", `"boolean"`, true, `true`, "boolean", false},
		{"int", `"int"`, int32(math.MinInt32), `-2147483648`, "integer", false},
		{"long", `"long"`, int64(math.MaxInt64), `9223372036854775807`, "bigint", false},
		{"float", `"float"`, float32(1.1), `1.1`, "real", false},
		{"float NaN", `"float"`, float32(math.NaN()), `"NaN"`, "real", false},
		{"double", `"double"`, 0.1, `0.1`, "double precision", false},
		{"double -Inf", `"double"`, math.Inf(-1), `"-Infinity"`, "double precision", false},
		{"bytes", `"bytes"`, []byte{0, 1, 0xfe}, `"\\x0001fe"`, "bytea", false},
		{"string", `"string"`, "é \"q\"\n\x01", `"é \"q\"\n\u0001"`, "text", false},
		{"empty string", `"string"`, "", `""`, "text", false},
		{"fixed", `{"type":"fixed","name":"F3","size":3}`, []byte{0xa, 0xb, 0xc}, `"\\x0a0b0c"`, "bytea", false},
		{"enum", `{"type":"enum","name":"E","symbols":["A","B"]}`, "B", `"B"`, "text", false},
		{"array of string", `{"type":"array","items":"string"}`, []any{"a", "b"}, `["a","b"]`, "text[]", false},
		{"empty array", `{"type":"array","items":"long"}`, []any{}, `[]`, "bigint[]", false},
		{"array of nullable date", `{"type":"array","items":["null",{"type":"int","logicalType":"date"}]}`,
			[]any{nil, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)}, `[null,"2024-02-29"]`, "date[]", false},
		{"array of arrays", `{"type":"array","items":{"type":"array","items":"int"}}`, []any{[]any{int32(1)}}, `[[1]]`, "jsonb", false},
		{"map", `{"type":"map","values":"int"}`, map[string]any{"k\"": int32(1)}, `{"k\"":1}`, "jsonb", false},
		{"record", `{"type":"record","name":"In","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`,
			map[string]any{"a": int32(1), "b": "x"}, `{"a":1,"b":"x"}`, "jsonb", false},
		{"union null", `["null","string"]`, nil, `null`, "text", true},
		{"union string", `["null","string"]`, "x", `"x"`, "text", true},
		{"union null last", `["long","null"]`, int64(5), `5`, "bigint", true},
		{"union of two", `["string","long"]`, int64(7), `7`, "jsonb", false},
		{"union of three", `["null","string","long"]`, "s", `"s"`, "jsonb", true},
		{"decimal bytes", `{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`,
			big.NewRat(1234567, 100), `12345.67`, "numeric(10,2)", false},
		{"decimal negative", `{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`,
			big.NewRat(-5, 100), `-0.05`, "numeric(10,2)", false},
		{"decimal keeps scale", `{"type":"bytes","logicalType":"decimal","precision":10,"scale":3}`,
			big.NewRat(1, 2), `0.500`, "numeric(10,3)", false},
		{"decimal fixed", `{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":4}`,
			big.NewRat(-123456789012345, 10000), `-12345678901.2345`, "numeric(18,4)", false},
		{"uuid", `{"type":"string","logicalType":"uuid"}`, "123e4567-e89b-12d3-a456-426614174000",
			`"123e4567-e89b-12d3-a456-426614174000"`, "uuid", false},
		{"uuid fixed", `{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}`, uuid,
			`"123e4567-e89b-12d3-a456-426614174000"`, "uuid", false},
		{"date", `{"type":"int","logicalType":"date"}`, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), `"2024-02-29"`, "date", false},
		{"date before 1970", `{"type":"int","logicalType":"date"}`, time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), `"1969-12-31"`, "date", false},
		{"time-millis", `{"type":"int","logicalType":"time-millis"}`, 13*time.Hour + 14*time.Minute + 15*time.Second + 123*time.Millisecond,
			`"13:14:15.123"`, "time", false},
		{"time-micros", `{"type":"long","logicalType":"time-micros"}`, 23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond,
			`"23:59:59.999999"`, "time", false},
		{"timestamp-millis", `{"type":"long","logicalType":"timestamp-millis"}`, time.UnixMilli(1700000000123),
			`"2023-11-14T22:13:20.123Z"`, "timestamptz", false},
		{"timestamp-micros", `{"type":"long","logicalType":"timestamp-micros"}`, time.UnixMicro(-1),
			`"1969-12-31T23:59:59.999999Z"`, "timestamptz", false},
		{"timestamp-nanos", `{"type":"long","logicalType":"timestamp-nanos"}`, time.Unix(1700000000, 123456789),
			`"2023-11-14T22:13:20.123456789Z"`, "timestamptz", false},
		{"local-timestamp-millis", `{"type":"long","logicalType":"local-timestamp-millis"}`, time.UnixMilli(1700000000000).UTC(),
			`"2023-11-14T22:13:20Z"`, "timestamp", false},
		{"local-timestamp-micros", `{"type":"long","logicalType":"local-timestamp-micros"}`, time.UnixMicro(1700000000000001).UTC(),
			`"2023-11-14T22:13:20.000001Z"`, "timestamp", false},
		{"duration", `{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}`,
			avro.Duration{Months: 14, Days: 3, Milliseconds: 3723004}, `"P14M3DT3723.004000000S"`, "interval", false},
		{"logical type on the wrong type is ignored", `{"type":"string","logicalType":"date"}`, "x", `"x"`, "text", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			schema := avroField1(tc.typ)
			body := avroEncode(t, schema, map[string]any{"v": tc.value})
			got, shape, err := avroDecode(t, Schema{Text: schema}, body)
			require.NoError(t, err)
			assert.Equal(t, `{"v":`+tc.json+`}`, got)
			assert.True(t, json.Valid([]byte(got)), got)
			require.Len(t, shape.Columns, 1)
			shape.Columns[0].Record = nil // TestAvroRecordShape checks it
			assert.Equal(t, &Shape{Columns: []Column{{Name: "v", Type: tc.column, Nullable: tc.nullable}}}, shape)
		})
	}
}

func TestAvroShape(t *testing.T) {
	t.Parallel()
	d, err := CompileAvro(Schema{Text: avroBenchSchema})
	require.NoError(t, err)
	body := avroBenchBody(t)
	out, shape, err := d.AppendJSON(nil, body)
	require.NoError(t, err)
	assert.Equal(t, avroBenchJSON, string(out))
	assert.Equal(t, []Column{
		{Name: "id", Type: "bigint"},
		{Name: "name", Type: "text"},
		{Name: "amount", Type: "numeric(10,2)"},
		{Name: "created", Type: "timestamptz"},
		{Name: "day", Type: "date"},
		{Name: "tags", Type: "text[]"},
		{Name: "note", Type: "text", Nullable: true},
	}, shape.Columns)
	_, shape2, err := d.AppendJSON(nil, body)
	require.NoError(t, err)
	assert.Same(t, shape, shape2, "one Shape per schema")

	notRecord, err := CompileAvro(Schema{Text: `{"type":"map","values":"long"}`})
	require.NoError(t, err)
	out, shape, err = notRecord.AppendJSON(nil, avroEncode(t, `{"type":"map","values":"long"}`, map[string]any{"a": int64(-1)}))
	require.NoError(t, err)
	assert.Equal(t, `{"a":-1}`, string(out))
	assert.Nil(t, shape)
}

func TestAvroReferences(t *testing.T) {
	t.Parallel()
	country := `{"type":"enum","name":"Country","namespace":"geo","symbols":["NL","PT"]}`
	addr := `{"type":"record","name":"Addr","namespace":"geo","fields":[
		{"name":"city","type":"string"},{"name":"country","type":"Country"}]}`
	root := `{"type":"record","name":"Person","namespace":"people","fields":[
		{"name":"home","type":"geo.Addr"},
		{"name":"work","type":["null","geo.Addr"]},
		{"name":"friend","type":["null","Person"]}]}`
	s := Schema{Text: root, References: map[string]Schema{
		"geo.Addr": {Text: addr, References: map[string]Schema{"geo.Country": {Text: country}}},
	}}
	// full is root with its references written inline, for the encoder.
	full := `{"type":"record","name":"Person","namespace":"people","fields":[
		{"name":"home","type":{"type":"record","name":"Addr","namespace":"geo","fields":[
			{"name":"city","type":"string"},{"name":"country","type":` + country + `}]}},
		{"name":"work","type":["null","geo.Addr"]},
		{"name":"friend","type":["null","Person"]}]}`
	body := avroEncode(t, full, map[string]any{
		"home":   map[string]any{"city": "Lisboa", "country": "PT"},
		"work":   map[string]any{"city": "Delft", "country": "NL"},
		"friend": map[string]any{"home": map[string]any{"city": "Porto", "country": "PT"}, "work": nil, "friend": nil},
	})
	got, shape, err := avroDecode(t, s, body)
	require.NoError(t, err)
	assert.Equal(t, `{"home":{"city":"Lisboa","country":"PT"},"work":{"city":"Delft","country":"NL"},`+
		`"friend":{"home":{"city":"Porto","country":"PT"},"work":null,"friend":null}}`, got)
	addrShape := &Shape{Columns: []Column{{Name: "city", Type: "text"}, {Name: "country", Type: "text"}}}
	require.Len(t, shape.Columns, 3)
	person := shape.Columns[2].Record
	require.NotNil(t, person)
	assert.Same(t, person, person.Columns[2].Record, "a recursive record shares its Shape")
	assert.Equal(t, []Column{
		{Name: "home", Type: "jsonb", Record: addrShape},
		{Name: "work", Type: "jsonb", Nullable: true, Record: addrShape},
		{Name: "friend", Type: "jsonb", Nullable: true, Record: person},
	}, shape.Columns)

	_, err = CompileAvro(Schema{Text: root})
	assert.ErrorIs(t, err, ErrSchema, "a reference left out")
}

func TestAvroCorrupt(t *testing.T) {
	t.Parallel()
	body := avroBenchBody(t)
	d, err := CompileAvro(Schema{Text: avroBenchSchema})
	require.NoError(t, err)
	for n := range len(body) {
		_, _, err := d.AppendJSON(nil, body[:n])
		assert.ErrorIs(t, err, ErrCorrupt, "truncated to %d bytes", n)
	}
	_, _, err = d.AppendJSON(nil, append(body[:len(body):len(body)], 0))
	assert.ErrorIs(t, err, ErrCorrupt, "trailing byte")

	cases := []struct {
		name string
		typ  string
		body []byte
	}{
		{"boolean byte 2", `"boolean"`, []byte{2}},
		{"int beyond 32 bits", `"int"`, []byte{0x80, 0x80, 0x80, 0x80, 0x20}},
		{"long beyond 64 bits", `"long"`, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"long never ends", `"long"`, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"negative length", `"string"`, []byte{1}},
		{"length beyond the end", `"bytes"`, []byte{8, 'a'}},
		{"string not UTF-8", `"string"`, []byte{2, 0xff}},
		{"enum index out of range", `{"type":"enum","name":"E","symbols":["A"]}`, []byte{2}},
		{"union index out of range", `["null","string"]`, []byte{4}},
		{"union index negative", `["null","string"]`, []byte{1}},
		{"array count beyond the body", `{"type":"array","items":"long"}`, []byte{0x80, 0x01, 0}},
		{"array of nulls too long", `{"type":"array","items":"null"}`, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
		{"map key not UTF-8", `{"type":"map","values":"null"}`, []byte{2, 2, 0xc0, 0}},
		{"time of day past midnight", `{"type":"int","logicalType":"time-millis"}`, []byte{0x80, 0xb8, 0xe5, 0x52}},
		{"time of day negative", `{"type":"long","logicalType":"time-micros"}`, []byte{1}},
		{"fixed cut short", `{"type":"fixed","name":"F","size":4}`, []byte{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := avroDecode(t, Schema{Text: avroField1(tc.typ)}, tc.body)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestAvroEmptyItems(t *testing.T) {
	t.Parallel()
	schema := avroField1(`{"type":"array","items":"null"}`)
	block := binary.AppendVarint(nil, 40000)
	got, _, err := avroDecode(t, Schema{Text: schema}, append(block, 0))
	require.NoError(t, err)
	assert.Equal(t, 40000, strings.Count(got, "null"))

	_, _, err = avroDecode(t, Schema{Text: schema}, append(append(block, block...), 0))
	assert.ErrorIs(t, err, ErrCorrupt, "more empty items in all than a body may have")
}

func TestAvroDeepRecursion(t *testing.T) {
	t.Parallel()
	schema := `{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}`
	body := make([]byte, 5000)
	for i := range body {
		body[i] = 2 // branch N, all the way down
	}
	body[len(body)-1] = 0
	_, _, err := avroDecode(t, Schema{Text: schema}, body)
	assert.ErrorIs(t, err, ErrCorrupt)

	got, _, err := avroDecode(t, Schema{Text: schema}, []byte{2, 2, 0})
	require.NoError(t, err)
	assert.Equal(t, `{"next":{"next":{"next":null}}}`, got)
}

func TestAvroInvalidSchema(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{
		"not JSON":      `{"type":"record"`,
		"unknown type":  avroField1(`"Nope"`),
		"no fields":     `{"type":"record","name":"R"}`,
		"bad reference": `{"type":"record","name":"R","fields":[{"name":"a","type":"x.Y"}]}`,
	} {
		_, err := CompileAvro(Schema{Text: text})
		assert.ErrorIs(t, err, ErrSchema, name)
	}
	_, err := CompileAvro(Schema{Text: avroField1(`"string"`), References: map[string]Schema{"x": {Text: "{"}}})
	assert.ErrorIs(t, err, ErrSchema, "reference that does not parse")
}

// avroFuzzSchema has every kind of type, a recursive one included.
const avroFuzzSchema = `{"type":"record","name":"F","fields":[
	{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"f","type":"float"},{"name":"d","type":"double"},
	{"name":"by","type":"bytes"},{"name":"fx","type":{"type":"fixed","name":"X","size":2}},
	{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
	{"name":"m","type":{"type":"map","values":["null","long","string"]}},
	{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":3}},
	{"name":"u","type":{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}},
	{"name":"dt","type":{"type":"int","logicalType":"date"}},
	{"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"ts","type":{"type":"long","logicalType":"timestamp-nanos"}},
	{"name":"dur","type":{"type":"fixed","name":"D","size":12,"logicalType":"duration"}},
	{"name":"kids","type":{"type":"array","items":"F"}},
	{"name":"nulls","type":{"type":"array","items":"null"}}]}`

func FuzzAvro(f *testing.F) {
	var decoders []Decoder
	for _, s := range []string{avroBenchSchema, avroFuzzSchema} {
		d, err := CompileAvro(Schema{Text: s})
		require.NoError(f, err)
		decoders = append(decoders, d)
	}
	f.Add(0, avroBenchBody(f))
	f.Add(1, make([]byte, 40))
	f.Add(1, append(make([]byte, 16), 2, 0x80, 0x01))
	f.Fuzz(func(t *testing.T, which int, body []byte) {
		d := decoders[uint(which)%2]
		out, _, err := d.AppendJSON(nil, body)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.True(t, json.Valid(out), "%q", out)
	})
}

func TestAvroDecimalFastPath(t *testing.T) {
	t.Parallel()
	values := [][]byte{{0}, {0x7f}, {0x80}, {0xff}, {0x01, 0x00}, {0x80, 0, 0, 0, 0, 0, 0, 0}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x00, 0x12, 0xd6, 0x87}, {0xff, 0xed, 0x29, 0x79}}
	for _, v := range values {
		for _, scale := range []int{-2, 0, 1, 2, 5, 18, 19, 25} {
			assert.Equal(t, string(AppendUnscaled(nil, v, scale)), string(appendAvroDecimal(nil, v, scale)), "% x scale %d", v, scale)
		}
	}
	assert.Equal(t, "0.00", string(appendAvroDecimal(nil, nil, 2)), "no bytes is zero")
}
