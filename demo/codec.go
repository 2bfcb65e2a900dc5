package demo

import (
	"fmt"
	"strconv"
)

// Format values of Options.Format: how the demo writes its records and
// what the workers are told to read (SINK_KEY_FORMAT, SINK_VALUE_FORMAT).
const (
	FormatJSON     = "json"     // schemaless JSON into a jsonb column
	FormatAvro     = "avro"     // Avro, Confluent's wire format, typed table
	FormatProtobuf = "protobuf" // Protobuf, Confluent's wire format, typed table
)

// codec writes the story's events in one format.
type codec interface {
	// encode is the record of ev (a nil value for a delete) and the row it
	// leaves in the table.
	encode(ev *event) (record, error)
	// badKinds are the format's deliberately bad records, mixed in in this
	// order (then again from the start). Each must end up in the
	// dead-letter topic and leave the table untouched.
	badKinds() []badKind
}

// record is one event as produced, with the table's row for its key.
type record struct {
	key, value []byte // as produced; value nil for a delete
	modelKey   string // the row's primary key as text
	row        []byte // the row as JSON (for a typed table, as jsonb_populate_record reads it); nil for a delete
}

// badKind is one kind of bad record, made from a good record.
type badKind struct {
	name string
	make func(good record) (key, value []byte)
}

// jsonCodec writes schemaless JSON, the whole value stored as jsonb.
type jsonCodec struct{}

func (jsonCodec) encode(ev *event) (record, error) {
	key := ev.key()
	rec := record{key: []byte(key), modelKey: key}
	ts := ev.at.Format("2006-01-02T15:04:05.000Z07:00")
	switch ev.kind {
	case eventCreated:
		rec.value = fmt.Appendf(nil, `{"type":"user-created","user_id":%q,"name":%q,"email":"%s@example.com","points":0,"ts":%q}`,
			key, ev.name, key, ts)
	case eventChanged:
		rec.value = fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":%d,"delta":%d,"ts":%q}`,
			key, ev.points, ev.delta, ts)
	}
	rec.row = rec.value
	return rec, nil
}

func (jsonCodec) badKinds() []badKind { return jsonBadKinds }

var jsonBadKinds = []badKind{
	{"invalid JSON (truncated)", func(g record) ([]byte, []byte) {
		return g.key, fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":`, g.key)
	}},
	{`"\u0000" in a string (jsonb refuses it)`, func(g record) ([]byte, []byte) {
		return g.key, fmt.Appendf(nil, `{"type":"user-created","user_id":%q,"name":"Mallory\u0000","points":0}`, g.key)
	}},
	{"a raw NUL byte", func(g record) ([]byte, []byte) {
		return g.key, fmt.Appendf(nil, "{\"type\":\"points-changed\",\"user_id\":%q,\"note\":\"a\x00b\"}", g.key)
	}},
	{"invalid UTF-8", func(g record) ([]byte, []byte) {
		return g.key, fmt.Appendf(nil, "{\"type\":\"user-created\",\"user_id\":%q,\"name\":\"\xff\xfe\"}", g.key)
	}},
	{"no key (upsert needs one)", func(g record) ([]byte, []byte) {
		return nil, fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":1}`, g.key)
	}},
}

// wireBadKinds are the bad records of a format in Confluent's wire
// format: each breaks one rule the worker checks.
func wireBadKinds(format string) []badKind {
	return []badKind{
		{"wrong magic byte (1, not 0)", func(g record) ([]byte, []byte) {
			v := append([]byte(nil), g.value...)
			v[0] = 1
			return g.key, v
		}},
		{"schema id 4242, unknown to the registry", func(g record) ([]byte, []byte) {
			v := append([]byte(nil), g.value...)
			v[1], v[2], v[3], v[4] = 0, 0, 0x10, 0x92
			return g.key, v
		}},
		{"truncated " + format + " body", func(g record) ([]byte, []byte) {
			return g.key, append([]byte(nil), g.value[:len(g.value)-3]...)
		}},
		{"no key (upsert needs one)", func(g record) ([]byte, []byte) {
			return nil, append([]byte(nil), g.value...)
		}},
	}
}

// typedRow is the row of a typed table as JSON: the fields in order, each
// value already JSON text.
func typedRow(fields ...string) []byte {
	b := []byte{'{'}
	for i := 0; i+1 < len(fields); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, fields[i])
		b = append(b, ':')
		b = append(b, fields[i+1]...)
	}
	return append(b, '}')
}
