package format

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDebeziumLandsInPostgres proves Debezium's semantic types, read from
// Connect JSON, land exactly in a table made from their Shape.
func TestDebeziumLandsInPostgres(t *testing.T) {
	field := func(name, typ, semantic, params string) string {
		return `{"field":"` + name + `","type":"` + typ + `","name":"` + semantic + `","parameters":{` + params + `}}`
	}
	schema := `{"type":"struct","fields":[` +
		field("d", "int32", "io.debezium.time.Date", ``) + `,` +
		field("d_bc", "int32", "io.debezium.time.Date", ``) + `,` +
		field("t", "int64", "io.debezium.time.MicroTime", ``) + `,` +
		field("t_ns", "int64", "io.debezium.time.NanoTime", ``) + `,` +
		field("ts", "int64", "io.debezium.time.MicroTimestamp", ``) + `,` +
		field("ts_inf", "int64", "io.debezium.time.Timestamp", ``) + `,` +
		field("tstz", "string", "io.debezium.time.ZonedTimestamp", ``) + `,` +
		field("ttz", "string", "io.debezium.time.ZonedTime", ``) + `,` +
		field("dur", "int64", "io.debezium.time.MicroDuration", ``) + `,` +
		field("ival", "string", "io.debezium.time.Interval", ``) + `,` +
		field("doc", "string", "io.debezium.data.Json", ``) + `,` +
		field("id", "string", "io.debezium.data.Uuid", ``) + `,` +
		field("bits", "bytes", "io.debezium.data.Bits", `"length":"12"`) + `,` +
		field("x", "string", "io.debezium.data.Xml", ``) + `,` +
		field("name", "string", "", `"__debezium.source.column.type":"VARCHAR","__debezium.source.column.length":"20"`) + `,` +
		`{"field":"n","type":"struct","name":"io.debezium.data.VariableScaleDecimal","fields":[{"field":"scale","type":"int32"},{"field":"value","type":"bytes"}]}]}`
	payload := `{"d":19782,"d_bc":-719163,"t":45296789012,"t_ns":45296123456789,"ts":1700000000123456,"ts_inf":9223372036854775807,` +
		`"tstz":"2024-02-29T10:15:30.5+01:00","ttz":"10:15:30Z","dur":-3723000004,"ival":"P1Y2M3DT4H5M6.78S",` +
		`"doc":"{\"a\": [1, \"x\\\"y\"]}","id":"123e4567-e89b-12d3-a456-426614174000","bits":"BQg=","x":"<a>x</a>","name":"Zoë",` +
		`"n":{"scale":3,"value":"AeJA"}}`
	out, shape, err := NewConnectJSON().AppendJSON(nil, cjEnvelope(schema, payload))
	require.NoError(t, err)
	assertLandsInPostgres(t, "debezium_pg_lands", shape, out, map[string]string{
		"d": "2024-02-29", "d_bc": "0001-12-31 BC",
		"t": "12:34:56.789012", "t_ns": "12:34:56.123457",
		"ts": "2023-11-14 22:13:20.123456", "ts_inf": "infinity",
		"tstz": "2024-02-29 09:15:30.5+00", "ttz": "10:15:30+00",
		"dur": "-01:02:03.000004", "ival": "1 year 2 mons 3 days 04:05:06.78",
		"doc": `{"a": [1, "x\"y"]}`, "id": "123e4567-e89b-12d3-a456-426614174000",
		"bits": "100000000101", "x": "<a>x</a>", "name": "Zoë", "n": "123.456",
	})
}
