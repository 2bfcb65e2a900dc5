package decode

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

const (
	testKeySchema   = `{"type":"record","name":"K","fields":[{"name":"id","type":"long"}]}`
	testValueSchema = `{"type":"record","name":"V","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},
{"name":"note","type":["null","string"],"default":null}]}`
)

// frame is Confluent's wire format: byte 0, the schema id, the body.
func frame(id int, body []byte) []byte {
	out := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	return append(out, body...)
}

// avroRegistry is an srfake registry with the key and value schemas, and
// a Config that reads both as avro through it.
func avroRegistry(t *testing.T, mode Mode, mapping Mapping) (*srfake.Registry, Config, int, int) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	kid, _, err := reg.RegisterSchema("t-key", sr.Schema{Schema: testKeySchema, Type: sr.TypeAvro})
	require.NoError(t, err)
	vid, _, err := reg.RegisterSchema("t-value", sr.Schema{Schema: testValueSchema, Type: sr.TypeAvro})
	require.NoError(t, err)
	r, err := NewRegistry(RegistryConfig{URL: reg.URL()})
	require.NoError(t, err)
	return reg, Config{Mode: mode, Mapping: mapping, MaxRecordBytes: 1 << 20, DeleteOnTombstone: true,
		KeyFormat: FormatAvro, ValueFormat: FormatAvro, Registry: r}, kid, vid
}

func encode(t *testing.T, schema string, v any) []byte {
	t.Helper()
	b, err := avro.MustParse(schema).Encode(v)
	require.NoError(t, err)
	return b
}

// TestDecodeAvro: keys and values in Confluent's wire format become JSON
// with their shapes; in columns mapping the key object comes from the key
// schema's fields, and a tombstone deletes by it.
func TestDecodeAvro(t *testing.T) {
	_, c, kid, vid := avroRegistry(t, ModeUpsert, MappingColumns)
	key := frame(kid, encode(t, testKeySchema, map[string]any{"id": int64(7)}))
	val := frame(vid, encode(t, testValueSchema, map[string]any{"id": int64(7), "name": "a\"b", "note": nil}))
	rows, bad, err := c.Decode(t.Context(), []*kgo.Record{
		{Key: key, Value: val, Offset: 1},
		{Key: key, Value: nil, Offset: 2},
	})
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, rows, 2)
	assert.JSONEq(t, `{"id":7,"name":"a\"b","note":null}`, string(rows[0].Value))
	assert.JSONEq(t, `{"id":7}`, string(rows[0].KeyObject))
	assert.Equal(t, rows[0].Key, rows[1].Key, "the write and the tombstone name one row")
	assert.Equal(t, OpWrite, rows[0].Op)
	assert.Equal(t, OpDelete, rows[1].Op)
	require.NotNil(t, rows[0].Shape)
	assert.Equal(t, []string{"id", "name", "note"}, columnNames(rows[0].Shape.Columns))
	require.NotNil(t, rows[0].KeyShape)
	assert.Equal(t, []string{"id"}, columnNames(rows[0].KeyShape.Columns))
}

func columnNames(cols []format.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// TestDecodeWireFormatRejections: each broken record is rejected with its
// class and a reason naming the cause, the good ones decode, and no
// reason quotes the record.
func TestDecodeWireFormatRejections(t *testing.T) {
	reg, c, kid, vid := avroRegistry(t, ModeUpsert, MappingJSONB)
	pid, _, err := reg.RegisterSchema("p-value", sr.Schema{Schema: `syntax = "proto3"; message M { int64 id = 1; }`, Type: sr.TypeProtobuf})
	require.NoError(t, err)
	key := frame(kid, encode(t, testKeySchema, map[string]any{"id": int64(1)}))
	body := encode(t, testValueSchema, map[string]any{"id": int64(1), "name": "secret-name", "note": "n"})
	cases := []struct {
		name, class, reason string
		value               []byte
	}{
		{"short header", ClassDecode, "shorter than the 5-byte header", []byte{0, 0, 1}},
		{"wrong magic byte", ClassDecode, "magic byte", append([]byte{1}, frame(vid, body)[1:]...)},
		{"unknown schema id", ClassSchema, "not in the registry", frame(999999, body)},
		{"schema of another format", ClassSchema, "PROTOBUF", frame(pid, body)},
		{"truncated body", ClassDecode, "schema id", frame(vid, body[:len(body)-3])},
		{"trailing bytes", ClassDecode, "schema id", frame(vid, append(append([]byte{}, body...), 1, 2))},
	}
	records := []*kgo.Record{{Key: key, Value: frame(vid, body), Offset: 0}}
	for i, tc := range cases {
		records = append(records, &kgo.Record{Key: key, Value: tc.value, Offset: int64(i + 1)})
	}
	rows, bad, err := c.Decode(t.Context(), records)
	require.NoError(t, err)
	require.Len(t, rows, 1, "the good record decodes")
	require.Len(t, bad, len(cases))
	for i, tc := range cases {
		assert.Equal(t, tc.class, bad[i].Class, tc.name)
		assert.Contains(t, bad[i].Reason, tc.reason, tc.name)
		assert.NotContains(t, bad[i].Reason, "secret-name", "%s: a reason never quotes the record", tc.name)
		assert.Equal(t, int64(i+1), bad[i].Record.Offset, tc.name)
	}
}

// TestRegistryOutage: a registry that does not answer is a RegistryError
// (the batch waits, nothing is rejected); a schema seen before keeps
// decoding through the outage; a 404 is cached as the record's problem.
func TestRegistryOutage(t *testing.T) {
	reg, c, kid, vid := avroRegistry(t, ModeUpsert, MappingJSONB)
	var down atomic.Bool
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	key := frame(kid, encode(t, testKeySchema, map[string]any{"id": int64(1)}))
	val := frame(vid, encode(t, testValueSchema, map[string]any{"id": int64(1), "name": "x", "note": nil}))
	rows, bad, err := c.Decode(t.Context(), []*kgo.Record{{Key: key, Value: val}})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Empty(t, bad)

	down.Store(true)
	rows, _, err = c.Decode(t.Context(), []*kgo.Record{{Key: key, Value: val}})
	require.NoError(t, err, "known schemas decode while the registry is down")
	require.Len(t, rows, 1)

	v2 := strings.Replace(testValueSchema, `"name":"V"`, `"name":"V2"`, 1)
	down.Store(false)
	id2, _, err := reg.RegisterSchema("t-value", sr.Schema{Schema: v2, Type: sr.TypeAvro})
	require.NoError(t, err)
	down.Store(true)
	val2 := frame(id2, encode(t, v2, map[string]any{"id": int64(2), "name": "y", "note": nil}))
	_, _, err = c.Decode(t.Context(), []*kgo.Record{{Key: key, Value: val2}})
	var re *RegistryError
	require.True(t, errors.As(err, &re), "a new schema id during the outage: %v", err)
	assert.Equal(t, id2, re.ID)

	down.Store(false)
	rows, bad, err = c.Decode(t.Context(), []*kgo.Record{{Key: key, Value: val2}})
	require.NoError(t, err, "after the outage the new schema is fetched")
	require.Empty(t, bad)
	assert.JSONEq(t, `{"id":2,"name":"y","note":null}`, string(rows[0].Value))
}

// TestDecodePrimaryKeyFromValue: SINK_PRIMARY_KEY takes the key object from
// value fields, with no record key needed.
func TestDecodePrimaryKeyFromValue(t *testing.T) {
	_, c, _, vid := avroRegistry(t, ModeUpsert, MappingColumns)
	c.KeyFormat, c.ValuePrimaryKey = FormatString, []string{"id", "name"}
	val := frame(vid, encode(t, testValueSchema, map[string]any{"id": int64(3), "name": "n", "note": "x"}))
	rows, bad, err := c.Decode(t.Context(), []*kgo.Record{{Value: val}})
	require.NoError(t, err)
	require.Empty(t, bad)
	assert.JSONEq(t, `{"id":3,"name":"n"}`, string(rows[0].KeyObject))
}

// TestDecodeConnectJSON: the envelope's payload is the value; a null
// payload is a tombstone; an envelope without payload is a decode
// rejection.
func TestDecodeConnectJSON(t *testing.T) {
	c := Config{Mode: ModeUpsert, Mapping: MappingJSONB, MaxRecordBytes: 1 << 20, DeleteOnTombstone: true,
		ValueFormat: FormatConnectJSON}
	schema := `{"type":"struct","fields":[{"field":"id","type":"int64","optional":false}],"optional":true}`
	rows, bad, err := c.Decode(context.Background(), []*kgo.Record{
		{Key: []byte("k"), Value: []byte(`{"schema":` + schema + `,"payload":{"id":5}}`)},
		{Key: []byte("k"), Value: []byte(`{"schema":` + schema + `,"payload":null}`)},
		{Key: []byte("k"), Value: []byte(`{"schema":` + schema + `}`)},
	})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.JSONEq(t, `{"id":5}`, string(rows[0].Value))
	assert.Equal(t, OpDelete, rows[1].Op, "a null payload is a tombstone")
	require.Len(t, bad, 1)
	assert.Equal(t, ClassDecode, bad[0].Class)
	assert.Contains(t, bad[0].Reason, "payload")
}

// TestDecodeSchemalessKeyTypedValue: a json or string key with a typed
// value (Connect's StringConverter or JsonConverter keys with Avro values)
// names its row as the schemaless path does: "42" and 42 are one row.
func TestDecodeSchemalessKeyTypedValue(t *testing.T) {
	_, c, _, vid := avroRegistry(t, ModeUpsert, MappingColumns)
	c.KeyFormat = FormatJSON
	c.PrimaryKey = func() []string { return []string{"id"} }
	val := frame(vid, encode(t, testValueSchema, map[string]any{"id": int64(42), "name": "n", "note": nil}))
	rows, bad, err := c.Decode(t.Context(), []*kgo.Record{{Key: []byte(`"42"`), Value: val}, {Key: []byte(`42`), Value: val}})
	require.NoError(t, err)
	require.Empty(t, bad)
	assert.Equal(t, rows[0].Key, rows[1].Key)
	assert.JSONEq(t, `{"id":"42"}`, string(rows[0].KeyObject))

	c.KeyFormat = FormatString
	rows, bad, err = c.Decode(t.Context(), []*kgo.Record{{Key: []byte(`k-1`), Value: val}})
	require.NoError(t, err)
	require.Empty(t, bad)
	assert.Equal(t, "k-1", rows[0].Key)
	assert.JSONEq(t, `{"id":"k-1"}`, string(rows[0].KeyObject))
	assert.Equal(t, "k-1", string(rows[0].KeyText))
}
