package format

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConnectJSONLandsInPostgres proves the JSON of a Connect payload lands
// exactly in a table made from its Shape, through jsonb_populate_record as
// the columns mapping reads it.
func TestConnectJSONLandsInPostgres(t *testing.T) {
	schema := `{"type":"struct","fields":[
		{"field":"id","type":"int64"},
		{"field":"small","type":"int8"},
		{"field":"f32","type":"float"},
		{"field":"f64","type":"double"},
		{"field":"price","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"}},
		{"field":"neg","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"4"}},
		{"field":"big","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}},
		{"field":"day","type":"int32","name":"org.apache.kafka.connect.data.Date"},
		{"field":"at","type":"int32","name":"org.apache.kafka.connect.data.Time"},
		{"field":"ts","type":"int64","name":"org.apache.kafka.connect.data.Timestamp"},
		{"field":"raw","type":"bytes"},
		{"field":"tags","type":"array","items":{"type":"string"}},
		{"field":"blobs","type":"array","items":{"type":"bytes"}},
		{"field":"m","type":"map","keys":{"type":"int32"},"values":{"type":"string"}},
		{"field":"note","type":"string","optional":true},
		{"field":"dflt","type":"int32","optional":true,"default":7}]}`
	payload := `{"id":9223372036854775807,"small":-128,"f32":0.1,"f64":0.30000000000000004,"price":"MDk=","neg":"/zk=",` +
		`"big":"AQAAAAAAAAAAAA==","day":19000,"at":45296789,"ts":1641651296789,"raw":"AAH/","tags":["a","b \"q\"",null],` +
		`"blobs":["AQI=",""],"m":[[1,"x"]]}`
	want := map[string]string{
		"id":    "9223372036854775807",
		"small": "-128",
		"f32":   "0.1",
		"f64":   "0.30000000000000004",
		"price": "123.45",
		"neg":   "-0.0199",
		"big":   "4722366482869645213696",
		"day":   "2022-01-08",
		"at":    "12:34:56.789",
		"ts":    "2022-01-08 14:14:56.789+00",
		"raw":   `\x0001ff`,
		"tags":  `{a,"b \"q\"",NULL}`,
		"blobs": `{"\\x0102","\\x"}`,
		"m":     `{"1": "x"}`,
		"dflt":  "7",
	}
	out, shape, err := NewConnectJSON().AppendJSON(nil, cjEnvelope(
		strings.Replace(schema, `"items":{"type":"string"}`, `"items":{"type":"string","optional":true}`, 1), payload))
	require.NoError(t, err)
	require.NotNil(t, shape)

	assertLandsInPostgres(t, "connect_pg_lands", shape, out, want)
}
