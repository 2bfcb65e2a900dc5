package format

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
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

	conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	// t.Context is done by the time cleanups run.
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "SET TIME ZONE 'UTC'")
	require.NoError(t, err)

	const table = "connect_json_pg_lands"
	cols := make([]string, len(shape.Columns))
	defs := make([]string, len(shape.Columns))
	for i, c := range shape.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
		defs[i] = cols[i] + " " + c.Type
		if !c.Nullable {
			defs[i] += " NOT NULL"
		}
	}
	_, err = conn.Exec(t.Context(), "DROP TABLE IF EXISTS "+table)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), fmt.Sprintf("CREATE TABLE %s (%s)", table, strings.Join(defs, ", ")))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP TABLE "+table)
		assert.NoError(t, err)
	})
	_, err = conn.Exec(t.Context(), fmt.Sprintf(
		"INSERT INTO %[1]s SELECT * FROM jsonb_populate_record(NULL::%[1]s, $1::jsonb)", table), string(out))
	require.NoError(t, err)

	texts := make([]string, len(cols))
	for i, c := range cols {
		texts[i] = c + "::text"
	}
	row := make([]*string, len(cols))
	dsts := make([]any, len(cols))
	for i := range row {
		dsts[i] = &row[i]
	}
	require.NoError(t, conn.QueryRow(t.Context(), fmt.Sprintf("SELECT %s FROM %s", strings.Join(texts, ", "), table)).Scan(dsts...))
	for i, c := range shape.Columns {
		w, ok := want[c.Name]
		if !ok {
			assert.Nil(t, row[i], "column %s", c.Name)
			continue
		}
		if assert.NotNil(t, row[i], "column %s", c.Name) {
			assert.Equal(t, w, *row[i], "column %s (%s)", c.Name, c.Type)
		}
	}
}
