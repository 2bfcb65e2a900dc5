package decode

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	dbzKeySchema = `{"type":"struct","name":"src.public.users.Key","optional":false,"fields":[{"field":"id","type":"int32","optional":false}]}`
	dbzRowSchema = `{"type":"struct","name":"src.public.users.Value","optional":true,"fields":[
{"field":"id","type":"int32","optional":false},{"field":"name","type":"string","optional":true},{"field":"bio","type":"string","optional":true}]}`
	dbzValueSchema = `{"type":"struct","name":"src.public.users.Envelope","optional":false,"fields":[
{"field":"before","type":"struct","optional":true,"fields":[{"field":"id","type":"int32","optional":false},{"field":"name","type":"string","optional":true},{"field":"bio","type":"string","optional":true}]},
{"field":"after","type":"struct","optional":true,"fields":[{"field":"id","type":"int32","optional":false},{"field":"name","type":"string","optional":true},{"field":"bio","type":"string","optional":true}]},
{"field":"source","type":"struct","optional":false,"fields":[{"field":"lsn","type":"int64","optional":true}]},
{"field":"op","type":"string","optional":false},{"field":"ts_ms","type":"int64","optional":true}]}`
)

func dbzKey(id string) []byte {
	return []byte(`{"schema":` + dbzKeySchema + `,"payload":{"id":` + id + `}}`)
}

func dbzEvent(op, before, after string) []byte {
	return []byte(`{"schema":` + dbzValueSchema + `,"payload":{"before":` + before + `,"after":` + after +
		`,"source":{"lsn":1},"op":"` + op + `","ts_ms":1}}`)
}

// TestDebeziumEnvelope: each kind of Debezium record does what the issue
// says, in upsert mode with the columns mapping: c, r and u upsert the
// after image (a TOAST placeholder keeps its column), d deletes by key,
// the tombstone after a delete and records that change no row are skipped
// by their reason, t truncates only with SINK_TRUNCATE; in insert mode
// every change, t included, is a row of the change log.
func TestDebeziumEnvelope(t *testing.T) {
	c := Config{Mode: ModeUpsert, Mapping: MappingColumns, MaxRecordBytes: 1 << 20, DeleteOnTombstone: true,
		KeyFormat: FormatConnectJSON, ValueFormat: FormatConnectJSON, Envelope: EnvelopeDebezium}
	heartbeat := []byte(`{"schema":{"type":"struct","name":"io.debezium.connector.common.Heartbeat","fields":[{"field":"ts_ms","type":"int64","optional":false}]},"payload":{"ts_ms":5}}`)
	records := []*kgo.Record{
		{Key: dbzKey("1"), Value: dbzEvent("c", "null", `{"id":1,"name":"a","bio":"long"}`), Offset: 0},
		{Key: dbzKey("1"), Value: dbzEvent("u", "null", `{"id":1,"name":"b","bio":"__debezium_unavailable_value"}`), Offset: 1},
		{Key: dbzKey("2"), Value: dbzEvent("r", "null", `{"id":2,"name":"c","bio":null}`), Offset: 2},
		{Key: dbzKey("2"), Value: dbzEvent("d", `{"id":2,"name":"c","bio":null}`, "null"), Offset: 3},
		{Key: dbzKey("2"), Value: nil, Offset: 4},
		{Key: nil, Value: dbzEvent("t", "null", "null"), Offset: 5},
		{Key: []byte(`{"schema":{"type":"string","optional":false},"payload":"srv"}`), Value: heartbeat, Offset: 6},
		{Key: dbzKey("3"), Value: dbzEvent("x", "null", `{"id":3}`), Offset: 7},
		{Key: dbzKey("4"), Value: dbzEvent("u", "null", "null"), Offset: 8},
	}
	rows, bad, err := c.Decode(t.Context(), records)
	require.NoError(t, err)
	require.Len(t, bad, 2)
	assert.Equal(t, int64(7), bad[0].Record.Offset)
	assert.Contains(t, bad[0].Reason, `unknown op "x"`)
	assert.Contains(t, bad[1].Reason, "no after image")
	require.Len(t, rows, 7)

	assert.Equal(t, OpWrite, rows[0].Op)
	assert.JSONEq(t, `{"id":1,"name":"a","bio":"long"}`, string(rows[0].Value))
	assert.JSONEq(t, `{"id":1}`, string(rows[0].KeyObject))
	assert.Empty(t, rows[0].Keep)
	require.NotNil(t, rows[0].Shape, "the after image's schema: a table can be created from it")
	assert.Equal(t, []string{"id", "name", "bio"}, columnNames(rows[0].Shape.Columns))

	assert.Equal(t, OpWrite, rows[1].Op)
	assert.JSONEq(t, `{"id":1,"name":"b"}`, string(rows[1].Value), "the placeholder is left out")
	assert.Equal(t, []string{"bio"}, rows[1].Keep)
	assert.Equal(t, rows[0].Key, rows[1].Key)

	assert.Equal(t, OpWrite, rows[2].Op, "a snapshot read upserts")
	assert.Equal(t, OpDelete, rows[3].Op)
	assert.JSONEq(t, `{"id":2}`, string(rows[3].KeyObject))
	assert.Equal(t, OpSkip, rows[4].Op)
	assert.Equal(t, SkipTombstone, rows[4].Skip, "the tombstone after a delete does nothing")
	assert.Equal(t, OpSkip, rows[5].Op)
	assert.Equal(t, SkipTruncate, rows[5].Skip, "a truncate without SINK_TRUNCATE")
	assert.Equal(t, OpSkip, rows[6].Op)
	assert.Equal(t, SkipNotChange, rows[6].Skip, "a heartbeat")

	c.Truncate = true
	rows, bad, err = c.Decode(t.Context(), records[5:6])
	require.NoError(t, err)
	require.Empty(t, bad)
	assert.Equal(t, OpTruncate, rows[0].Op)

	// Insert mode: a change log, one row per event, the event whole; a
	// truncate is logged like any change, with or without SINK_TRUNCATE.
	c.Mode = ModeInsert
	changes := append(records[:4:4], records[5])
	for _, truncate := range []bool{true, false} {
		c.Truncate = truncate
		rows, bad, err = c.Decode(t.Context(), changes)
		require.NoError(t, err)
		require.Empty(t, bad)
		require.Len(t, rows, 5)
		for i, op := range []string{"c", "u", "r", "d", "t"} {
			assert.Equal(t, OpWrite, rows[i].Op, "SINK_TRUNCATE=%v, op %s", truncate, op)
			assert.Contains(t, string(rows[i].Value), `"op":"`+op+`"`)
		}
	}
}

// TestWithoutPlaceholders: the placeholder as text, as bytea and as an
// array's one element is left out; a value that merely contains it stays.
func TestWithoutPlaceholders(t *testing.T) {
	out, keep := withoutPlaceholders([]byte(`{"a":"__debezium_unavailable_value","b":"\\x5f5f646562657a69756d5f756e617661696c61626c655f76616c7565",` +
		`"c":["__debezium_unavailable_value"],"d":"x __debezium_unavailable_value","e":1}`))
	assert.Equal(t, []string{"a", "b", "c"}, keep)
	assert.JSONEq(t, `{"d":"x __debezium_unavailable_value","e":1}`, string(out))
	same := []byte(`{"a":1}`)
	out, keep = withoutPlaceholders(same)
	assert.Nil(t, keep)
	assert.Equal(t, same, out)
}
