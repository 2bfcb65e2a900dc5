package format

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dbzCase is one Debezium semantic type: its Connect type, a value (as
// a Go value for Avro, its JSON for Connect), and the JSON and column
// type it must become.
type dbzCase struct {
	name, typ, params string
	value             any
	json, column      string
}

var dbzCases = []dbzCase{
	{"io.debezium.time.Date", "int32", ``, int32(19782), `"2024-02-29"`, "date"},
	{"io.debezium.time.Date", "int32", ``, int32(-719163), `"0001-12-31 BC"`, "date"},
	{"io.debezium.time.Time", "int32", ``, int32(45296789), `"12:34:56.789"`, "time"},
	{"io.debezium.time.MicroTime", "int64", ``, int64(86399999999), `"23:59:59.999999"`, "time"},
	{"io.debezium.time.MicroTime", "int64", ``, int64(86400000000), `"24:00:00"`, "time"},
	{"io.debezium.time.NanoTime", "int64", ``, int64(45296123456789), `"12:34:56.123456789"`, "time"},
	{"io.debezium.time.Timestamp", "int64", ``, int64(1700000000123), `"2023-11-14T22:13:20.123"`, "timestamp"},
	{"io.debezium.time.MicroTimestamp", "int64", ``, int64(-1), `"1969-12-31T23:59:59.999999"`, "timestamp"},
	{"io.debezium.time.MicroTimestamp", "int64", ``, int64(9223372036854775807), `"infinity"`, "timestamp"},
	{"io.debezium.time.NanoTimestamp", "int64", ``, int64(1700000000123456789), `"2023-11-14T22:13:20.123456789"`, "timestamp"},
	{"io.debezium.time.MicroDuration", "int64", ``, int64(-3723000004), `"P0M0DT-3723.000004000S"`, "interval"},
	{"io.debezium.time.ZonedTimestamp", "string", ``, "2024-02-29T10:15:30.5+01:00", `"2024-02-29T10:15:30.5+01:00"`, "timestamptz"},
	{"io.debezium.time.ZonedTime", "string", ``, "10:15:30Z", `"10:15:30Z"`, "timetz"},
	{"io.debezium.time.Interval", "string", ``, "P1Y2M3DT4H5M6.78S", `"P1Y2M3DT4H5M6.78S"`, "interval"},
	{"io.debezium.data.Json", "string", ``, `{"a": [1, "x\"y"], "b": null}`, `{"a": [1, "x\"y"], "b": null}`, "jsonb"},
	{"io.debezium.data.Uuid", "string", ``, "123e4567-e89b-12d3-a456-426614174000", `"123e4567-e89b-12d3-a456-426614174000"`, "uuid"},
	{"io.debezium.data.Enum", "string", ``, "happy", `"happy"`, "text"},
	{"io.debezium.data.EnumSet", "string", ``, "a,b", `"a,b"`, "text"},
	{"io.debezium.data.Xml", "string", ``, "<a>x</a>", `"<a>x</a>"`, "xml"},
	{"io.debezium.data.Bits", "bytes", `"length":"12"`, []byte{0x05, 0x08}, `"100000000101"`, "varbit"},
	{"io.debezium.data.Bits", "bytes", `"length":"2147483647"`, []byte{0x06}, `"110"`, "varbit"},
	{"io.debezium.data.Bits", "bytes", `"length":"4"`, []byte{}, `"0000"`, "varbit"},
}

// connectJSONValue is v as JsonConverter writes it.
func connectJSONValue(t *testing.T, v any) string {
	t.Helper()
	if b, ok := v.([]byte); ok {
		v = base64.StdEncoding.EncodeToString(b)
	}
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}

func TestDebeziumConnectJSON(t *testing.T) {
	for _, tc := range dbzCases {
		t.Run(tc.name+" "+tc.json, func(t *testing.T) {
			schema := `{"type":"struct","fields":[{"field":"v","type":"` + tc.typ + `","optional":false,"name":"` + tc.name +
				`","version":1,"parameters":{` + tc.params + `}}]}`
			got, shape, err := cjDecode(t, schema, `{"v":`+connectJSONValue(t, tc.value)+`}`)
			require.NoError(t, err)
			assert.Equal(t, `{"v":`+tc.json+`}`, got)
			assert.Equal(t, []Column{{Name: "v", Type: tc.column}}, shape.Columns)
		})
	}
}

var avroTypes = map[string]string{"int32": "int", "int64": "long", "string": "string", "bytes": "bytes"}

func TestDebeziumAvro(t *testing.T) {
	t.Parallel()
	for _, tc := range dbzCases {
		t.Run(tc.name+" "+tc.json, func(t *testing.T) {
			t.Parallel()
			typ := `{"type":"` + avroTypes[tc.typ] + `","connect.version":1,"connect.name":"` + tc.name +
				`","connect.parameters":{` + tc.params + `}}`
			schema := avroField1(`["null",` + typ + `]`)
			got, shape, err := avroDecode(t, Schema{Text: schema}, avroEncode(t, schema, map[string]any{"v": tc.value}))
			require.NoError(t, err)
			assert.Equal(t, `{"v":`+tc.json+`}`, got)
			assert.Equal(t, []Column{{Name: "v", Type: tc.column, Nullable: true}}, shape.Columns)
		})
	}
}

func TestDebeziumVariableScaleDecimal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scale int32
		value []byte
		want  string
	}{
		{2, []byte{0x30, 0x39}, "123.45"},
		{3, []byte{0xff}, "-0.001"},
		{0, []byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "4722366482869645213696"},
		{5, nil, "0.00000"},
	} {
		connect := `{"type":"struct","fields":[{"field":"v","type":"struct","name":"io.debezium.data.VariableScaleDecimal","optional":true,` +
			`"fields":[{"field":"scale","type":"int32"},{"field":"value","type":"bytes"}]}]}`
		payload := `{"v":{"value":` + connectJSONValue(t, tc.value) + `,"scale":` + strconv.Itoa(int(tc.scale)) + `}}`
		got, shape, err := cjDecode(t, connect, payload)
		require.NoError(t, err)
		assert.Equal(t, `{"v":`+tc.want+`}`, got)
		assert.Equal(t, []Column{{Name: "v", Type: "numeric", Nullable: true}}, shape.Columns)

		avroSchema := avroField1(`["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data",` +
			`"fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.name":"io.debezium.data.VariableScaleDecimal"}]`)
		body := avroEncode(t, avroSchema, map[string]any{"v": map[string]any{"scale": tc.scale, "value": tc.value}})
		got, shape, err = avroDecode(t, Schema{Text: avroSchema}, body)
		require.NoError(t, err)
		assert.Equal(t, `{"v":`+tc.want+`}`, got)
		assert.Equal(t, []Column{{Name: "v", Type: "numeric", Nullable: true}}, shape.Columns)
	}
}

func TestDebeziumBadValues(t *testing.T) {
	for _, tc := range []struct{ name, typ, params, value string }{
		{"io.debezium.data.Json", "string", ``, `"{\"a\":"`},
		{"io.debezium.time.MicroTime", "int64", ``, `86400000001`},
		{"io.debezium.time.Time", "int32", ``, `-1`},
		{"io.debezium.data.Bits", "bytes", `"length":"3"`, `"CA=="`},
		{"io.debezium.time.Timestamp", "int64", ``, `9000000000000000000`},
	} {
		schema := `{"type":"` + tc.typ + `","name":"` + tc.name + `","parameters":{` + tc.params + `}}`
		_, _, err := cjDecode(t, schema, tc.value)
		assert.ErrorIs(t, err, ErrSchema, tc.name)
	}
	_, _, err := cjDecode(t, `{"type":"string","name":"io.debezium.time.Date"}`, `"x"`)
	assert.ErrorIs(t, err, ErrSchema, "a semantic type on the wrong Connect type")

	schema := avroField1(`{"type":"string","connect.name":"io.debezium.data.Json"}`)
	_, _, err = avroDecode(t, Schema{Text: schema}, avroEncode(t, schema, map[string]any{"v": "{"}))
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestDebeziumSourceColumnTypes(t *testing.T) {
	for _, tc := range []struct{ typ, connect, params, want string }{
		{"int16", "", `"__debezium.source.column.type":"INT2"`, "smallint"},
		{"int32", "", `"__debezium.source.column.type":"SERIAL"`, "integer"},
		{"int64", "", `"__debezium.source.column.type":"INT8"`, "bigint"},
		{"string", "", `"__debezium.source.column.type":"VARCHAR","__debezium.source.column.length":"255"`, "varchar(255)"},
		{"string", "", `"__debezium.source.column.type":"VARCHAR","__debezium.source.column.length":"2147483647"`, "varchar"},
		{"string", "", `"__debezium.source.column.type":"BPCHAR","__debezium.source.column.length":"3"`, "bpchar(3)"},
		{"string", "", `"__debezium.source.column.type":"inet"`, "inet"},
		{"bytes", "org.apache.kafka.connect.data.Decimal", `"scale":"2","__debezium.source.column.type":"NUMERIC","__debezium.source.column.length":"10","__debezium.source.column.scale":"2"`, "numeric(10,2)"},
		{"string", "", `"__debezium.source.column.type":"NUMERIC","__debezium.source.column.length":"8","__debezium.source.column.scale":"3"`, "numeric(8,3)"},
		{"float", "", `"__debezium.source.column.type":"FLOAT4"`, "real"},
		{"boolean", "", `"__debezium.source.column.type":"BOOL"`, "boolean"},
		{"string", "io.debezium.data.Json", `"__debezium.source.column.type":"JSON"`, "json"},
		{"string", "io.debezium.time.ZonedTimestamp", `"__debezium.source.column.type":"TIMESTAMPTZ"`, "timestamptz"},
		{"bytes", "io.debezium.data.Bits", `"length":"5","__debezium.source.column.type":"BIT","__debezium.source.column.length":"5"`, "bit(5)"},
		{"string", "", `"__debezium.source.column.type":"BYTEA"`, "text"}, // binary.handling.mode=base64: bytea would misread it
		{"string", "", `"__debezium.source.column.type":"MONEY"`, "text"},
		{"int32", "", `"__debezium.source.column.type":"INT2"`, "integer"}, // would not hold every int32
	} {
		name := ""
		if tc.connect != "" {
			name = `,"name":"` + tc.connect + `"`
		}
		schema := `{"type":"struct","fields":[{"field":"v","type":"` + tc.typ + `"` + name + `,"parameters":{` + tc.params + `}}]}`
		_, shape, err := cjDecode(t, schema, `null`)
		require.NoError(t, err, tc.params)
		assert.Equal(t, tc.want, shape.Columns[0].Type, tc.params)
	}

	arrays := `{"type":"struct","fields":[{"field":"v","type":"array","items":{"type":"int32"},"parameters":{"__debezium.source.column.type":"_INT4"}}]}`
	_, shape, err := cjDecode(t, arrays, `null`)
	require.NoError(t, err)
	assert.Equal(t, "integer[]", shape.Columns[0].Type)

	schema := avroField1(`["null",{"type":"string","connect.parameters":{"__debezium.source.column.type":"VARCHAR","__debezium.source.column.length":"40"}}]`)
	d, err := CompileAvro(Schema{Text: schema})
	require.NoError(t, err)
	_, shape, err = d.AppendJSON(nil, []byte{0})
	require.NoError(t, err)
	assert.Equal(t, []Column{{Name: "v", Type: "varchar(40)", Nullable: true}}, shape.Columns)
}

func TestDebeziumRecordShape(t *testing.T) {
	schema := `{"type":"struct","fields":[{"field":"after","type":"struct","optional":true,"fields":[{"field":"id","type":"int32"},` +
		`{"field":"d","type":"int32","name":"io.debezium.time.Date","optional":true}]},{"field":"op","type":"string"}]}`
	_, shape, err := cjDecode(t, schema, `null`)
	require.NoError(t, err)
	after := &Shape{Columns: []Column{{Name: "id", Type: "integer"}, {Name: "d", Type: "date", Nullable: true}}}
	assert.Equal(t, []Column{{Name: "after", Type: "jsonb", Nullable: true, Record: after}, {Name: "op", Type: "text"}}, shape.Columns)
}
