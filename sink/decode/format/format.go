// Package format reads the record formats that carry a schema: Avro,
// Protobuf and JSON Schema in Confluent's wire format (the schema from a
// registry), and Kafka Connect's JSON envelope (the schema in the record).
// Each turns a record's bytes into JSON text, the one form the rest of the
// sink takes (jsonb stores it; the columns mapping reads typed columns out
// of it with jsonb_populate_record), and says the table its schema
// describes (Shape), so a table can be created and evolved from it.
//
// The JSON is written so that PostgreSQL reads every value back exactly
// as the schema typed it: numbers (decimals included) as JSON number
// literals, never through a float; timestamps as RFC 3339 text with their
// zone; dates, times, intervals and UUIDs as their PostgreSQL input text;
// bytes as bytea hex text ("\\x0a0b"). See the type map in the README.
//
// It speaks neither SQL nor Kafka: package decode frames records and
// fetches schemas, and hands this package the schema text and the body.
package format

import (
	"errors"
	"fmt"
)

// Column is one top-level field of a schema as a table column.
type Column struct {
	// Name is the field's name, as the schema spells it.
	Name string
	// Type is the PostgreSQL type, by name: "bigint", "numeric(10,2)",
	// "timestamptz", "text[]", "jsonb", ...
	Type string
	// Nullable is false only where the schema says the field is always
	// present and never null.
	Nullable bool
	// Record is the Shape of a field whose type is a record (a struct, a
	// message), else nil: a Debezium event's after image is one.
	Record *Shape
}

// Shape is the table a record schema describes: its top-level fields, in
// schema order. A schema whose root is not a record (struct, message,
// object) has no Shape: its values go whole into a jsonb column.
type Shape struct {
	Columns []Column
}

// Column returns the column named name, or false.
func (s *Shape) Column(name string) (Column, bool) {
	if s == nil {
		return Column{}, false
	}
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Decoder is one schema compiled for reading.
type Decoder interface {
	// AppendJSON appends to dst the body decoded as JSON text and returns
	// it, with the Shape of the value's schema (nil when its root is not
	// a record; the same pointer for every body of one schema and message
	// type). body is what follows the schema id in Confluent's framing,
	// Protobuf's message indexes included. An error is a body this schema
	// cannot read: wrap ErrCorrupt (truncated, corrupt, trailing bytes) or
	// ErrSchema (a message index that does not exist, a value that fails
	// its JSON Schema). Safe for concurrent use.
	AppendJSON(dst, body []byte) ([]byte, *Shape, error)
}

// Schema is a registered schema, as a registry gives it.
type Schema struct {
	// Text is the schema (Avro JSON, a .proto file, a JSON Schema).
	Text string
	// References are the schemas Text refers to, by the name it uses for
	// each (an Avro full name, a .proto import path, a JSON Schema $ref
	// URL), each with its own references resolved already.
	References map[string]Schema
}

// ErrCorrupt wraps a body the schema cannot read: dead-lettered with class
// decode.
var ErrCorrupt = errors.New("corrupt body")

// ErrSchema wraps a record the schema rejects, or a schema that cannot be
// compiled: dead-lettered with class schema.
var ErrSchema = errors.New("schema")

// Corrupt returns an error wrapping ErrCorrupt.
func Corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Invalid returns an error wrapping ErrSchema.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSchema, fmt.Sprintf(format, args...))
}
