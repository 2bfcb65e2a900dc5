package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cjEnvelope wraps a schema and payload as JsonConverter writes them.
func cjEnvelope(schema, payload string) []byte {
	return []byte(`{"schema":` + schema + `,"payload":` + payload + `}`)
}

func cjDecode(t *testing.T, schema, payload string) (string, *Shape, error) {
	t.Helper()
	out, shape, err := NewConnectJSON().AppendJSON(nil, cjEnvelope(schema, payload))
	if err == nil {
		require.True(t, json.Valid(out), "output %s is not JSON", out)
	}
	return string(out), shape, err
}

func TestConnectJSONValues(t *testing.T) {
	decimal2 := `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}`
	tests := []struct {
		name, schema, payload, want string
	}{
		{"int8", `{"type":"int8"}`, `-128`, `-128`},
		{"int16", `{"type":"int16"}`, `32767`, `32767`},
		{"int32", `{"type":"int32"}`, `-2147483648`, `-2147483648`},
		{"int64 max", `{"type":"int64"}`, `9223372036854775807`, `9223372036854775807`},
		{"int64 min", `{"type":"int64"}`, `-9223372036854775808`, `-9223372036854775808`},
		{"float32", `{"type":"float"}`, `0.1`, `0.1`},
		{"float32 name", `{"type":"float32"}`, `1.5e10`, `1.5e+10`},
		{"float64", `{"type":"double"}`, `0.30000000000000004`, `0.30000000000000004`},
		{"float64 NaN", `{"type":"double"}`, `"NaN"`, `"NaN"`},
		{"float64 -Infinity", `{"type":"double"}`, `"-Infinity"`, `"-Infinity"`},
		{"boolean", `{"type":"boolean"}`, `false`, `false`},
		{"string", `{"type":"string"}`, `"héllo \"q\""`, `"héllo \"q\""`},
		{"string escapes", `{"type":"string"}`, `"a\u00e9\n"`, `"aé\n"`},
		{"bytes", `{"type":"bytes"}`, `"AQL/"`, `"\\x0102ff"`},
		{"bytes empty", `{"type":"bytes"}`, `""`, `"\\x"`},
		{"decimal", decimal2, `"MDk="`, `123.45`},
		{"decimal negative", decimal2, `"/zk="`, `-1.99`},
		{"decimal minus one cent", decimal2, `"/w=="`, `-0.01`},
		{"decimal zero", decimal2, `"AA=="`, `0.00`},
		{"decimal numeric format", decimal2, `-12345.67`, `-12345.67`},
		{"decimal scale 0", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}}`, `"AQAAAAAAAAAAAA=="`, `4722366482869645213696`},
		{"date", `{"type":"int32","name":"org.apache.kafka.connect.data.Date"}`, `19000`, `"2022-01-08"`},
		{"date before epoch", `{"type":"int32","name":"org.apache.kafka.connect.data.Date"}`, `-1`, `"1969-12-31"`},
		{"time", `{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `45296789`, `"12:34:56.789"`},
		{"time midnight", `{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `0`, `"00:00:00"`},
		{"timestamp", `{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `1641651296789`, `"2022-01-08T14:14:56.789Z"`},
		{"timestamp before epoch", `{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `-1`, `"1969-12-31T23:59:59.999Z"`},
		{"array", `{"type":"array","items":{"type":"int32"}}`, `[1, 2 ,3]`, `[1,2,3]`},
		{"array empty", `{"type":"array","items":{"type":"string"}}`, `[]`, `[]`},
		{"array optional items", `{"type":"array","items":{"type":"string","optional":true}}`, `["a",null]`, `["a",null]`},
		{"map string keys", `{"type":"map","keys":{"type":"string"},"values":{"type":"int64"}}`, `{"a":1,"b\"":2}`, `{"a":1,"b\"":2}`},
		{"map int keys as pairs", `{"type":"map","keys":{"type":"int32"},"values":{"type":"string"}}`, `[[1,"x"],[-2,"y"]]`, `{"1":"x","-2":"y"}`},
		{"map struct keys as pairs", `{"type":"map","keys":{"type":"struct","fields":[{"field":"k","type":"int32"}]},"values":{"type":"boolean"}}`, `[[{"k":7},true]]`, `{"{\"k\":7}":true}`},
		{"map string keys as pairs", `{"type":"map","keys":{"type":"string"},"values":{"type":"int8"}}`, `[["a",1]]`, `{"a":1}`},
		{"map empty", `{"type":"map","keys":{"type":"string"},"values":{"type":"int8"}}`, `{}`, `{}`},
		{"payload null", `{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `null`, `null`},
		{"struct in schema order", `{"type":"struct","fields":[{"field":"b","type":"string"},{"field":"a","type":"int32"}]}`, `{"a":1,"extra":{"x":[1,{"y":"}"}]},"b":"x"}`, `{"b":"x","a":1}`},
		{"struct optional absent", `{"type":"struct","fields":[{"field":"a","type":"int32","optional":true}]}`, `{}`, `{"a":null}`},
		{"struct optional null", `{"type":"struct","fields":[{"field":"a","type":"int32","optional":true}]}`, `{"a":null}`, `{"a":null}`},
		{"struct default when absent", `{"type":"struct","fields":[{"field":"a","type":"int32","optional":true,"default":42}]}`, `{}`, `{"a":42}`},
		{"struct default when null", `{"type":"struct","fields":[{"field":"a","type":"string","default":"x"}]}`, `{"a":null}`, `{"a":"x"}`},
		{"struct default decimal", `{"type":"struct","fields":[{"field":"a","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"default":"MDk="}]}`, `{}`, `{"a":123.45}`},
		{"struct escaped key", `{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{"\u0061":5}`, `{"a":5}`},
		{"struct duplicate key last wins", `{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{"a":1,"a":2}`, `{"a":2}`},
		{"nested", `{"type":"struct","fields":[{"field":"s","type":"struct","fields":[{"field":"xs","type":"array","items":{"type":"map","keys":{"type":"string"},"values":{"type":"bytes"}}}]}]}`,
			`{"s":{"xs":[{"k":"AQ=="},{}]}}`, `{"s":{"xs":[{"k":"\\x01"},{}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := cjDecode(t, tt.schema, tt.payload)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConnectJSONBadInput(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"not JSON", `{"schema":`, ErrCorrupt},
		{"not an object", `[1,2]`, ErrCorrupt},
		{"empty", ``, ErrCorrupt},
		{"empty object", `{}`, ErrCorrupt},
		{"trailing data", `{"schema":{"type":"int32"},"payload":1} x`, ErrCorrupt},
		{"missing comma", `{"schema":{"type":"int32"} "payload":1}`, ErrCorrupt},
		{"missing colon", `{"schema" {"type":"int32"},"payload":1}`, ErrCorrupt},
		{"bad payload", `{"schema":{"type":"int32"},"payload":[1}`, ErrCorrupt},
		{"bad schema", `{"schema":{"type":"int32",},"payload":1}`, ErrCorrupt},
		{"bad other value", `{"schema":{"type":"int32"},"payload":1,"x":[,]}`, ErrCorrupt},
		{"bad hidden payload", `{"schema":{"type":"int32"},"payload":[,],"payload":1}`, ErrCorrupt},
		{"control char in key", "{\"sch\x01\":1,\"schema\":{\"type\":\"int32\"},\"payload\":1}", ErrCorrupt},
		{"no payload", `{"schema":{"type":"int32"}}`, ErrCorrupt},
		{"no schema", `{"payload":1}`, ErrCorrupt},
		{"null schema", `{"schema":null,"payload":1}`, ErrCorrupt},
		{"invalid UTF-8", "{\"schema\":{\"type\":\"string\"},\"payload\":\"\xff\"}", ErrCorrupt},
		{"unknown type", string(cjEnvelope(`{"type":"int128"}`, `1`)), ErrSchema},
		{"schema not an object", string(cjEnvelope(`"int32"`, `1`)), ErrSchema},
		{"array without items", string(cjEnvelope(`{"type":"array"}`, `[]`)), ErrSchema},
		{"decimal without scale", string(cjEnvelope(`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal"}`, `"AA=="`)), ErrSchema},
		{"date on a string", string(cjEnvelope(`{"type":"string","name":"org.apache.kafka.connect.data.Date"}`, `"x"`)), ErrSchema},
		{"bad default", string(cjEnvelope(`{"type":"int32","default":"x"}`, `1`)), ErrSchema},
		{"string for int32", string(cjEnvelope(`{"type":"int32"}`, `"1"`)), ErrSchema},
		{"fraction for int64", string(cjEnvelope(`{"type":"int64"}`, `1.5`)), ErrSchema},
		{"exponent for int64", string(cjEnvelope(`{"type":"int64"}`, `1e3`)), ErrSchema},
		{"int8 out of range", string(cjEnvelope(`{"type":"int8"}`, `128`)), ErrSchema},
		{"int16 out of range", string(cjEnvelope(`{"type":"int16"}`, `-32769`)), ErrSchema},
		{"int32 out of range", string(cjEnvelope(`{"type":"int32"}`, `2147483648`)), ErrSchema},
		{"int64 out of range", string(cjEnvelope(`{"type":"int64"}`, `9223372036854775808`)), ErrSchema},
		{"float32 out of range", string(cjEnvelope(`{"type":"float"}`, `1e39`)), ErrSchema},
		{"string for float", string(cjEnvelope(`{"type":"double"}`, `"1.5"`)), ErrSchema},
		{"number for boolean", string(cjEnvelope(`{"type":"boolean"}`, `1`)), ErrSchema},
		{"number for string", string(cjEnvelope(`{"type":"string"}`, `1`)), ErrSchema},
		{"bad base64", string(cjEnvelope(`{"type":"bytes"}`, `"!!"`)), ErrSchema},
		{"time out of day", string(cjEnvelope(`{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`, `86400000`)), ErrSchema},
		{"timestamp out of range", string(cjEnvelope(`{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `-62135596800001`)), ErrSchema},
		{"missing required field", string(cjEnvelope(`{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{}`)), ErrSchema},
		{"null required field", string(cjEnvelope(`{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{"a":null}`)), ErrSchema},
		{"array for struct", string(cjEnvelope(`{"type":"struct","fields":[]}`, `[]`)), ErrSchema},
		{"object for array", string(cjEnvelope(`{"type":"array","items":{"type":"int32"}}`, `{}`)), ErrSchema},
		{"null element", string(cjEnvelope(`{"type":"array","items":{"type":"int32"}}`, `[1,null]`)), ErrSchema},
		{"bad pair", string(cjEnvelope(`{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}}`, `[[1]]`)), ErrSchema},
		{"string for map", string(cjEnvelope(`{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}}`, `"x"`)), ErrSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, shape, err := NewConnectJSON().AppendJSON([]byte("kept"), []byte(tt.body))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			other := ErrSchema
			if tt.want == ErrSchema {
				other = ErrCorrupt
			}
			assert.False(t, errors.Is(err, other), "%v is both classes", err)
			assert.Equal(t, "kept", string(out))
			assert.Nil(t, shape)
		})
	}
}

func TestConnectJSONNoPayloadReason(t *testing.T) {
	_, _, err := NewConnectJSON().AppendJSON(nil, []byte(`{"schema":{"type":"string"}}`))
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "Connect envelope has no payload")
}

func TestConnectJSONErrorNamesFieldNotValue(t *testing.T) {
	schema := `{"type":"struct","fields":[{"field":"outer","type":"array","items":{"type":"struct","fields":[{"field":"n","type":"int32"}]}}]}`
	_, _, err := cjDecode(t, schema, `{"outer":[{"n":1},{"n":"secret-value"}]}`)
	require.ErrorIs(t, err, ErrSchema)
	assert.Contains(t, err.Error(), "/outer/1/n")
	assert.NotContains(t, err.Error(), "secret-value")
}

func TestConnectJSONShape(t *testing.T) {
	schema := `{"type":"struct","name":"row","optional":false,"fields":[
		{"field":"id","type":"int64","optional":false},
		{"field":"i8","type":"int8","optional":true},
		{"field":"i16","type":"int16"},
		{"field":"i32","type":"int32"},
		{"field":"f32","type":"float"},
		{"field":"f64","type":"double"},
		{"field":"ok","type":"boolean"},
		{"field":"s","type":"string","optional":true},
		{"field":"raw","type":"bytes"},
		{"field":"price","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"}},
		{"field":"amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"3"}},
		{"field":"day","type":"int32","name":"org.apache.kafka.connect.data.Date"},
		{"field":"at","type":"int32","name":"org.apache.kafka.connect.data.Time"},
		{"field":"ts","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","optional":true},
		{"field":"tags","type":"array","items":{"type":"string"}},
		{"field":"days","type":"array","items":{"type":"int32","name":"org.apache.kafka.connect.data.Date"}},
		{"field":"grid","type":"array","items":{"type":"array","items":{"type":"int32"}}},
		{"field":"m","type":"map","keys":{"type":"string"},"values":{"type":"string"}},
		{"field":"sub","type":"struct","fields":[]}]}`
	want := []Column{
		{Name: "id", Type: "bigint", Nullable: false}, {Name: "i8", Type: "smallint", Nullable: true}, {Name: "i16", Type: "smallint", Nullable: false},
		{Name: "i32", Type: "integer", Nullable: false}, {Name: "f32", Type: "real", Nullable: false}, {Name: "f64", Type: "double precision", Nullable: false},
		{Name: "ok", Type: "boolean", Nullable: false}, {Name: "s", Type: "text", Nullable: true}, {Name: "raw", Type: "bytea", Nullable: false},
		{Name: "price", Type: "numeric(10,2)", Nullable: false}, {Name: "amount", Type: "numeric", Nullable: false}, {Name: "day", Type: "date", Nullable: false},
		{Name: "at", Type: "time", Nullable: false}, {Name: "ts", Type: "timestamptz", Nullable: true}, {Name: "tags", Type: "text[]", Nullable: false},
		{Name: "days", Type: "date[]", Nullable: false}, {Name: "grid", Type: "jsonb", Nullable: false}, {Name: "m", Type: "jsonb", Nullable: false}, {Name: "sub", Type: "jsonb", Nullable: false, Record: &Shape{Columns: []Column{}}},
	}
	d := NewConnectJSON()
	_, s1, err := d.AppendJSON(nil, cjEnvelope(schema, `null`))
	require.NoError(t, err)
	require.NotNil(t, s1)
	assert.Equal(t, want, s1.Columns)

	_, s2, err := d.AppendJSON(nil, cjEnvelope(schema, `null`))
	require.NoError(t, err)
	assert.Same(t, s1, s2, "one schema text, one Shape")

	_, s3, err := d.AppendJSON(nil, cjEnvelope(`{"type":"int32"}`, `1`))
	require.NoError(t, err)
	assert.Nil(t, s3, "a non-struct root has no Shape")
}

func TestConnectJSONCacheBounded(t *testing.T) {
	d := NewConnectJSON().(*connectJSON)
	for i := range connectCacheSize + 10 {
		_, _, err := d.AppendJSON(nil, cjEnvelope(fmt.Sprintf(`{"type":"int32","doc":"v%d"}`, i), `1`))
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, len(d.cache), connectCacheSize)
	assert.Positive(t, len(d.cache))
}

func TestConnectJSONConcurrent(t *testing.T) {
	d := NewConnectJSON()
	schema := `{"type":"struct","fields":[{"field":"a","type":"int32"},{"field":"b","type":"string","optional":true}]}`
	shapes := make([]*Shape, 8)
	var wg sync.WaitGroup
	for g := range shapes {
		wg.Go(func() {
			for i := range 200 {
				out, shape, err := d.AppendJSON(nil, cjEnvelope(schema, fmt.Sprintf(`{"a":%d}`, i)))
				if err != nil || string(out) != fmt.Sprintf(`{"a":%d,"b":null}`, i) {
					t.Errorf("goroutine %d record %d: %s, %v", g, i, out, err)
					return
				}
				shapes[g] = shape
			}
		})
	}
	wg.Wait()
	for _, s := range shapes {
		assert.Same(t, shapes[0], s)
	}
}

func TestConnectJSONAppends(t *testing.T) {
	out, _, err := NewConnectJSON().AppendJSON([]byte("x"), cjEnvelope(`{"type":"string"}`, `"y"`))
	require.NoError(t, err)
	assert.Equal(t, `x"y"`, string(out))
}

func FuzzConnectJSON(f *testing.F) {
	schemas := []string{
		`{"type":"struct","fields":[{"field":"a","type":"int32"},{"field":"b","type":"string","optional":true,"default":"d"},{"field":"c","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"optional":true}]}`,
		`{"type":"map","keys":{"type":"int64"},"values":{"type":"array","items":{"type":"double"}}}`,
		`{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`,
		`{"type":"int32","name":"org.apache.kafka.connect.data.Time"}`,
		`{"type":"bytes"}`,
	}
	payloads := []string{`{"a":1,"b":"x","c":"MDk="}`, `[[1,[1.5,"NaN"]],[2,[]]]`, `1641651296789`, `45296789`, `"AQID"`, `null`, `{"a":1}`, `[]`}
	for _, s := range schemas {
		for _, p := range payloads {
			f.Add(string(cjEnvelope(s, p)))
		}
	}
	f.Add(`{"schema":{"type":"string"}}`)
	d := NewConnectJSON()
	f.Fuzz(func(t *testing.T, body string) {
		// A new decoder reads the envelope the general way; a decoder
		// whose last envelope had this schema may take the short cut
		// (sameAsLast): both must say the same.
		general, _, gerr := NewConnectJSON().AppendJSON(nil, []byte(body))
		out, _, err := d.AppendJSON(nil, []byte(body))
		again, _, aerr := d.AppendJSON(nil, []byte(body))
		for _, x := range []struct {
			out []byte
			err error
		}{{out, err}, {again, aerr}} {
			if (x.err == nil) != (gerr == nil) || string(x.out) != string(general) {
				t.Fatalf("%q: %q, %v; the general path: %q, %v", body, x.out, x.err, general, gerr)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %q", out)
		}
		if !json.Valid([]byte(body)) {
			t.Fatalf("accepted an envelope that is not JSON: %q", body)
		}
	})
}
