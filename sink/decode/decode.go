// Package decode is the stage in front of the database: it turns each
// fetched record into a Row (its canonical key, the value to store, and the
// operation: write, delete or skip) or a Rejection (the dead-letter class
// and reason). It speaks neither SQL nor Kafka's client: it runs in the
// partition goroutine before a connection is acquired, so nothing it does
// holds a database lock.
//
// Keys and values are read in their SINK_KEY_FORMAT / SINK_VALUE_FORMAT:
// schemaless JSON, text, Kafka Connect's JSON envelope, or Avro, Protobuf
// and JSON Schema in Confluent's wire format with schemas from a registry
// (Registry); package format turns each into JSON text and the table
// shape its schema describes.
//
// Use: c := decode.Config{...}; rows, rejected, err := c.Decode(ctx,
// records). Both come back in the records' order; every record is in
// exactly one of them unless err (a registry that did not answer) is set.
package decode

import (
	"context"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// Mode is SINK_MODE: how records become rows.
type Mode string

// Modes of SINK_MODE.
const (
	ModeUpsert Mode = "upsert" // one row per record key, the highest offset wins
	ModeInsert Mode = "insert" // one row per record, keyed by topic, partition, offset
)

// Mapping is SINK_MAPPING: how a value becomes a row's columns.
type Mapping string

// Mappings of SINK_MAPPING.
const (
	MappingJSONB   Mapping = "jsonb"   // the whole value in one jsonb column
	MappingColumns Mapping = "columns" // JSON object fields onto the table's columns
)

// Dead-letter classes of a rejected record, in its
// __connect.errors.exception.class.name header. Decode gives the first
// three; the database's rejections (package postgres) the others.
const (
	ClassDecode     = "decode"     // the value is not JSON the table can take, or the key is not text
	ClassKey        = "key"        // no key where the mode needs one
	ClassTooLarge   = "too_large"  // over SINK_MAX_RECORD_BYTES, or too big for the database
	ClassData       = "data"       // the database rejected a value (SQLSTATE classes 21, 22)
	ClassConstraint = "constraint" // the database rejected a row (SQLSTATE class 23, a view's check option 44000)
	ClassRejected   = "rejected"   // a trigger or function refused the row (RAISE P0001, classes 2F, 38, 39, 27, 09, others)
)

// Op is what a Row does to its table.
type Op int

const (
	// OpWrite writes the value: upserts the key's row, or inserts a row in
	// insert mode (where a tombstone is written too, with a null value).
	OpWrite Op = iota
	// OpDelete deletes the key's row: a tombstone in upsert mode with
	// SINK_DELETE_ON_TOMBSTONE=true.
	OpDelete
	// OpSkip leaves the table alone, counted by its Row.Skip: a tombstone
	// in upsert mode with SINK_DELETE_ON_TOMBSTONE=false, or a Debezium
	// record that changes no row.
	OpSkip
	// OpTruncate empties the table: a Debezium truncate with
	// SINK_TRUNCATE=true.
	OpTruncate
)

// Row is a record that decoded: what the writer applies.
type Row struct {
	// Record is the source record: its coordinates and timestamp go to
	// the row, and the record itself to the dead-letter topic if the
	// database rejects the row.
	Record *kgo.Record
	// Key names the row the record writes, for de-duplication: the key
	// bytes as text in SINK_MAPPING=jsonb; in columns mapping the decoded
	// primary key, where "42" and 42, or a composite key's fields in
	// another order, are the same row (see CanonicalKey). It shares the
	// record's bytes: a fetched record is never modified.
	Key string
	// KeyText is what a text key column takes: the key's bytes in the
	// json and string formats; else the decoded key's JSON text, a string
	// unquoted. nil without a key.
	KeyText []byte
	// KeyObject is, for a typed format (or SINK_PRIMARY_KEY) in
	// SINK_MAPPING=columns and upsert mode, the JSON object of the primary
	// key columns; nil otherwise (the writer reads the key with KeyObject).
	KeyObject []byte
	// Value is the JSON text to store (text in SINK_VALUE_FORMAT=string);
	// nil for a tombstone.
	Value []byte
	// Shape and KeyShape are the table shapes of the value's and the
	// key's schemas (typed formats, record schemas only), else nil: a
	// missing table is created from them and new fields become columns.
	Shape, KeyShape *format.Shape
	// Op is what the row does; Skip why, for OpSkip.
	Op   Op
	Skip Skip
	// Keep names the columns an upsert leaves as they are: the fields a
	// Debezium event carries as its TOAST placeholder (a value the source
	// did not send because it did not change).
	Keep []string
}

// Rejection is a record that cannot be written, with why: found by Decode,
// or by the database (then Code is its SQLSTATE).
type Rejection struct {
	Record *kgo.Record
	Class  string // the dead-letter class: one of the Class constants
	Reason string // for the dead-letter header only: it may quote the record
	Code   string // the SQLSTATE of a database rejection, "" for one found by Decode
}

// LogReason is what a log line may say of why the record failed: the
// reason of a rejection found by Decode (it names the problem, not the
// data), the SQLSTATE of a database rejection (whose message may quote the
// row).
func (r Rejection) LogReason() string {
	if r.Code == "" {
		return r.Reason
	}
	return "SQLSTATE " + r.Code
}

// Config is how records decode. The zero value is not usable: set Mode,
// Mapping and MaxRecordBytes.
type Config struct {
	// Mode is SINK_MODE: upsert needs a key on every record.
	Mode Mode
	// Mapping is SINK_MAPPING: columns needs a JSON object value.
	Mapping Mapping
	// MaxRecordBytes rejects (ClassTooLarge) a record whose key and value
	// together exceed it: SINK_MAX_RECORD_BYTES.
	MaxRecordBytes int
	// DeleteOnTombstone makes a tombstone delete its key's row in upsert
	// mode (OpDelete); when false it is skipped (OpSkip).
	DeleteOnTombstone bool
	// PrimaryKey returns the primary key columns of the topic's table, in
	// key order, in SINK_MAPPING=columns (the caller reads them from the
	// catalog and may read them again); nil in jsonb mapping. It is called
	// once per Decode.
	PrimaryKey func() []string
	// KeyFormat and ValueFormat are SINK_KEY_FORMAT and SINK_VALUE_FORMAT
	// ("" is json).
	KeyFormat, ValueFormat Format
	// Registry gives the schemas of the avro, protobuf and json-schema
	// formats (SCHEMA_REGISTRY_URL); nil when neither format uses one.
	Registry *Registry
	// ValuePrimaryKey is SINK_PRIMARY_KEY: the value fields that name a
	// row in upsert mode, instead of the record key.
	ValuePrimaryKey []string
	// Envelope is SINK_ENVELOPE ("" is none); Truncate is SINK_TRUNCATE:
	// in upsert mode a Debezium truncate empties the table instead of being
	// skipped (insert mode logs it as a row either way).
	Envelope Envelope
	Truncate bool
}

// typed reports whether records take the typed path: a format other than
// json, or the primary key taken from the value.
func (c Config) typed() bool {
	return (c.KeyFormat != "" && c.KeyFormat != FormatJSON) ||
		(c.ValueFormat != "" && c.ValueFormat != FormatJSON) || len(c.ValuePrimaryKey) > 0 ||
		c.Envelope == EnvelopeDebezium
}

// Decode splits records, in offset order, into rows and rejections, each
// in the same order. It never modifies a record and is safe for concurrent
// use. An error is a schema registry that did not answer (a
// *RegistryError): nothing is decoded, and the caller retries.
func (c Config) Decode(ctx context.Context, records []*kgo.Record) (rows []Row, rejected []Rejection, err error) {
	var pk []string
	if c.PrimaryKey != nil {
		pk = c.PrimaryKey()
	}
	rows = make([]Row, 0, len(records))
	for _, r := range records {
		if bad, ok := c.check(r); !ok {
			rejected = append(rejected, bad)
			continue
		}
		if c.typed() {
			row, bad, err := c.typedRecord(ctx, r, pk)
			switch {
			case err != nil:
				return nil, nil, err
			case bad != nil:
				bad.Record = r
				rejected = append(rejected, *bad)
			default:
				rows = append(rows, row)
			}
			continue
		}
		row, bad, ok := c.record(r, pk)
		if !ok {
			rejected = append(rejected, bad)
			continue
		}
		rows = append(rows, row)
	}
	return rows, rejected, nil
}

// record decodes one schemaless record, checked already, with the table's
// primary key pk (nil in jsonb mapping); ok is false for a rejection.
func (c Config) record(r *kgo.Record, pk []string) (row Row, bad Rejection, ok bool) {
	row = Row{Record: r, Key: bytesText(r.Key), KeyText: r.Key, Value: r.Value}
	if c.PrimaryKey != nil && r.Key != nil && c.Mode == ModeUpsert {
		key, err := CanonicalKey(r.Key, pk)
		if err != nil {
			return Row{}, Rejection{Record: r, Class: ClassKey, Reason: err.Error()}, false
		}
		row.Key = key
	}
	if r.Value == nil && c.Mode == ModeUpsert {
		row.Op = OpSkip
		if c.DeleteOnTombstone {
			row.Op = OpDelete
		}
	}
	return row, Rejection{}, true
}

// bytesText views b as a string without copying; b must not change while
// the string is in use.
func bytesText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
