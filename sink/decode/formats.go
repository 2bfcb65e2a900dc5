package decode

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// Format is SINK_KEY_FORMAT or SINK_VALUE_FORMAT: how a key's or a value's
// bytes are read.
type Format string

// Formats of SINK_KEY_FORMAT and SINK_VALUE_FORMAT.
const (
	FormatJSON        Format = "json"         // schemaless JSON (a key may be any text)
	FormatString      Format = "string"       // UTF-8 text, stored as text
	FormatConnectJSON Format = "connect-json" // Kafka Connect's JsonConverter, schemas.enable=true
	FormatAvro        Format = "avro"         // Confluent wire format, schema from the registry
	FormatProtobuf    Format = "protobuf"     // Confluent wire format, schema from the registry
	FormatJSONSchema  Format = "json-schema"  // Confluent wire format, schema from the registry
)

// Formats lists every Format, in the README's order.
var Formats = []Format{FormatJSON, FormatString, FormatConnectJSON, FormatAvro, FormatProtobuf, FormatJSONSchema}

// UsesRegistry reports whether records of f carry a registry schema id.
func (f Format) UsesRegistry() bool {
	return f == FormatAvro || f == FormatProtobuf || f == FormatJSONSchema
}

// Typed reports whether f's records carry a schema (in the record or in
// the registry) that a table can be created and evolved from.
func (f Format) Typed() bool { return f == FormatConnectJSON || f.UsesRegistry() }

func (f Format) schemaType() sr.SchemaType {
	switch f {
	case FormatProtobuf:
		return sr.TypeProtobuf
	case FormatJSONSchema:
		return sr.TypeJSON
	}
	return sr.TypeAvro
}

// ClassSchema is the dead-letter class of a record whose schema is
// unknown to the registry, does not compile, is of another format, or
// rejects the record (a Protobuf message index that does not exist, a
// payload that fails its JSON Schema).
const ClassSchema = "schema"

// connectJSON reads Kafka Connect's JSON envelope; it keeps the shapes of
// the schemas it has seen, so one is shared by every Config.
var connectJSON = format.NewConnectJSON()

// decoded is one key or value read in its format.
type decoded struct {
	json  []byte        // the JSON text; nil for a null
	text  []byte        // the text a text column takes: the bytes (json, string), else json with a string unquoted
	shape *format.Shape // of a record schema, else nil
}

// read decodes b (a record's key or value; nil is null) in format f. The
// error is a Rejection's (class, reason) or a *RegistryError.
func (c Config) read(ctx context.Context, f Format, b []byte, what string) (decoded, *Rejection, error) {
	if b == nil {
		return decoded{}, nil, nil
	}
	fail := func(class, format string, args ...any) (decoded, *Rejection, error) {
		return decoded{}, &Rejection{Class: class, Reason: what + " " + fmt.Sprintf(format, args...)}, nil
	}
	switch f {
	case "", FormatString:
		return decoded{json: b, text: b}, nil, nil
	case FormatJSON:
		if what == "value" {
			if bad, ok := jsonValueProblem(b); !ok {
				return fail(ClassDecode, "%s", bad)
			}
		}
		return decoded{json: b, text: b}, nil, nil
	case FormatConnectJSON:
		out, shape, err := connectJSON.AppendJSON(nil, b)
		if err != nil {
			return fail(formatClass(err), "%v", err)
		}
		return c.readDone(out, shape), nil, nil
	}
	if c.Registry == nil {
		return decoded{}, nil, fmt.Errorf("SINK_*_FORMAT=%s needs SCHEMA_REGISTRY_URL", f)
	}
	if len(b) < 5 {
		return fail(ClassDecode, "is %d bytes, shorter than the 5-byte header of Confluent's wire format (%s)", len(b), f)
	}
	if b[0] != 0 {
		return fail(ClassDecode, "does not start with the magic byte 0 of Confluent's wire format (%s)", f)
	}
	id := int(binary.BigEndian.Uint32(b[1:5]))
	dec, err := c.Registry.decoder(ctx, id, f)
	var se *schemaError
	switch {
	case errors.As(err, &se):
		return fail(ClassSchema, "%s", se.msg)
	case err != nil:
		return decoded{}, nil, err
	}
	out, shape, err := dec.AppendJSON(nil, b[5:])
	if err != nil {
		return fail(formatClass(err), "(schema id %d): %v", id, err)
	}
	return c.readDone(out, shape), nil, nil
}

func (c Config) readDone(out []byte, shape *format.Shape) decoded {
	d := decoded{json: out, text: out, shape: shape}
	if len(out) > 0 && out[0] == '"' {
		var s string
		if json.Unmarshal(out, &s) == nil {
			d.text = []byte(s)
		}
	}
	if string(out) == "null" {
		d.json, d.text = nil, nil
	}
	return d
}

// formatClass is the dead-letter class of a package format error.
func formatClass(err error) string {
	if errors.Is(err, format.ErrSchema) {
		return ClassSchema
	}
	return ClassDecode
}

// typedRecord decodes a record whose key or value format is not json:
// sizes and the key were checked already.
func (c Config) typedRecord(ctx context.Context, r *kgo.Record, pk []string) (Row, *Rejection, error) {
	key, bad, err := c.read(ctx, c.KeyFormat, r.Key, "key")
	if bad != nil || err != nil {
		return Row{}, bad, err
	}
	val, bad, err := c.read(ctx, c.ValueFormat, r.Value, "value")
	if bad != nil || err != nil {
		return Row{}, bad, err
	}
	reject := func(class, reason string) (Row, *Rejection, error) {
		return Row{}, &Rejection{Class: class, Reason: reason}, nil
	}
	if msg := textProblem(key.text); msg != "" {
		return reject(ClassDecode, "key "+msg)
	}
	var ch change
	if c.Envelope == EnvelopeDebezium {
		if ch = c.debezium(val); ch.bad != "" {
			return reject(ClassDecode, ch.bad)
		}
		if ch.op == OpSkip || ch.op == OpTruncate {
			return Row{Record: r, Key: bytesText(key.text), KeyText: key.text, Op: ch.op, Skip: ch.skip}, nil, nil
		}
		if r.Key == nil && c.Mode == ModeUpsert && len(c.ValuePrimaryKey) == 0 {
			return reject(ClassKey, "Debezium change event has no key; SINK_MODE=upsert writes by key (a table without a primary key?)")
		}
		val = ch.value
	}
	// A value whose format decodes it to null (a Connect envelope with
	// "payload": null) is a tombstone, as Connect treats it.
	row := Row{Record: r, Key: bytesText(key.text), KeyText: key.text, Value: val.json, Shape: val.shape, KeyShape: key.shape}
	if val.json != nil {
		if c.ValueFormat == FormatString {
			if msg := textProblem(val.json); msg != "" {
				return reject(ClassDecode, "value "+msg)
			}
		} else if hasNULEscape(val.json) {
			return reject(ClassDecode, `value contains \u0000, which PostgreSQL jsonb cannot store`)
		}
		if c.Mapping == MappingColumns && val.json[firstNonSpace(val.json)] != '{' {
			return reject(ClassDecode, "value is not a record (an object); SINK_MAPPING=columns maps its fields onto columns")
		}
	}
	if c.Mapping == MappingColumns && c.Mode == ModeUpsert {
		obj, name, err := c.keyObject(r.Key, key, val, pk)
		if err != nil {
			return reject(ClassKey, err.Error())
		}
		row.KeyObject, row.Key = obj, name
	}
	switch {
	case c.Envelope == EnvelopeDebezium:
		row.Op, row.Keep = ch.op, ch.keep
	case val.json == nil && c.Mode == ModeUpsert:
		row.Op = OpSkip
		if c.DeleteOnTombstone {
			row.Op = OpDelete
		}
	}
	return row, nil, nil
}

// keyObject is the JSON object of the primary key columns a typed record
// names, and the canonical name of that row (Row.Key): SINK_PRIMARY_KEY's
// fields of the value (of the key, for a tombstone); else, for a json or
// string key, the key read as the schemaless path reads it (KeyObject);
// else the key's fields when it is a record; else the key as the one key
// column (the table's, or "key" for a table still to be created).
func (c Config) keyObject(raw []byte, key, val decoded, pk []string) (obj []byte, name string, err error) {
	if len(c.ValuePrimaryKey) > 0 {
		src, what := val.json, "value"
		if src == nil {
			src, what = key.json, "key of the tombstone"
		}
		obj, err = pickFields(src, c.ValuePrimaryKey, what)
		return obj, canonicalObject(obj), err
	}
	if key.json == nil {
		return nil, "", errors.New("record has no key; SINK_MODE=upsert writes by key")
	}
	cols := pk
	if len(cols) == 0 {
		cols = []string{"key"}
	}
	switch c.KeyFormat {
	case "", FormatJSON:
		text, err := KeyObject(raw, cols)
		if err != nil {
			return nil, "", err
		}
		name, err := CanonicalKey(raw, cols)
		return []byte(text), name, err
	case FormatString:
		if len(cols) > 1 {
			return nil, "", fmt.Errorf("the table's primary key has %d columns (%s): a string key gives one", len(cols), strings.Join(cols, ", "))
		}
		obj, err = json.Marshal(map[string]string{cols[0]: string(raw)})
		return obj, string(raw), err
	}
	if key.json[0] == '{' {
		if len(pk) > 0 {
			obj, err = pickFields(key.json, pk, "key")
			return obj, canonicalObject(obj), err
		}
		return key.json, canonicalObject(key.json), nil
	}
	if len(cols) > 1 {
		return nil, "", fmt.Errorf("the table's primary key has %d columns (%s): the record key must be a record holding them", len(cols), strings.Join(cols, ", "))
	}
	obj, err = json.Marshal(map[string]json.RawMessage{cols[0]: key.json})
	return obj, canonicalObject(obj), err
}

// pickFields is the object of fields of the JSON object src.
func pickFields(src []byte, fields []string, what string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(src, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("the %s is not a record, so it has no primary key fields (%s)", what, strings.Join(fields, ", "))
	}
	out := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		v, ok := obj[f]
		if !ok || string(v) == "null" {
			return nil, fmt.Errorf("the %s has no value for the primary key field %q", what, f)
		}
		out[f] = v
	}
	return json.Marshal(out)
}

// canonicalObject names the row a key object selects: its fields sorted,
// each value as its JSON text (json.Marshal sorts a map's keys).
func canonicalObject(obj []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return string(obj)
	}
	b, _ := json.Marshal(m)
	return string(b)
}
