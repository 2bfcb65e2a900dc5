package decode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// Envelope is SINK_ENVELOPE: how a decoded value is read.
type Envelope string

// Envelopes of SINK_ENVELOPE.
const (
	EnvelopeNone     Envelope = "none"     // the value is the row
	EnvelopeDebezium Envelope = "debezium" // a Debezium change event: op, before, after, source
)

// Skip says why a row with OpSkip leaves the table alone.
type Skip int

// Reasons of OpSkip, each counted under its own outcome.
const (
	// SkipTombstone: a tombstone in upsert mode with
	// SINK_DELETE_ON_TOMBSTONE=false, or the tombstone Debezium sends
	// after a delete (the delete did the work).
	SkipTombstone Skip = iota
	// SkipNotChange: a Debezium record that is not a row change: a
	// heartbeat, a schema change, a transaction boundary, a logical
	// decoding message.
	SkipNotChange
	// SkipTruncate: a Debezium truncate in upsert mode with
	// SINK_TRUNCATE=false.
	SkipTruncate
)

// toastPlaceholder is what Debezium writes for a column it did not
// receive: an unchanged TOASTed value under REPLICA IDENTITY DEFAULT
// (its unavailable.value.placeholder default).
const toastPlaceholder = "__debezium_unavailable_value"

var (
	toastJSON  = []byte(`"` + toastPlaceholder + `"`)
	toastBytea = []byte(`"\\x` + hex.EncodeToString([]byte(toastPlaceholder)) + `"`)
	toastArray = []byte(`["` + toastPlaceholder + `"]`)
)

// change is a Debezium event read: what it does and the value it writes.
type change struct {
	op    Op
	skip  Skip
	value decoded  // after, without the fields of keep (upserts); the event (insert mode)
	keep  []string // fields Debezium did not receive (TOAST): the row keeps its columns
	bad   string   // a reason to reject the record, or ""
}

// debezium reads the decoded value of a Debezium change event. In upsert
// mode c, r and u upsert the after image, d deletes by key, t truncates
// (with SINK_TRUNCATE) and the tombstone after a delete does nothing; in
// insert mode every change, t included, is written whole, one row per
// event (a change log), whatever SINK_TRUNCATE says. Heartbeats, schema
// changes, transaction boundaries and messages are not row changes:
// skipped and counted, never dead-lettered.
func (c Config) debezium(val decoded) change {
	if val.json == nil {
		return change{op: OpSkip, skip: SkipTombstone}
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(val.json, &ev) != nil || ev == nil {
		return change{bad: "value is not a Debezium change event (not an object)"}
	}
	rawOp, ok := ev["op"]
	if !ok || string(rawOp) == "null" {
		return change{op: OpSkip, skip: SkipNotChange} // heartbeat, schema change, transaction
	}
	var op string
	if json.Unmarshal(rawOp, &op) != nil {
		return change{bad: `value is not a Debezium change event ("op" is not a string)`}
	}
	switch op {
	case "m":
		return change{op: OpSkip, skip: SkipNotChange}
	case "c", "r", "u", "d", "t":
	default:
		return change{bad: `value is a Debezium change event of unknown op "` + op + `"`}
	}
	if c.Mode == ModeInsert {
		// A change log: a truncate is one more change, logged like the
		// others; SINK_TRUNCATE never empties the log.
		return change{op: OpWrite, value: val}
	}
	switch op {
	case "t":
		if !c.Truncate {
			return change{op: OpSkip, skip: SkipTruncate}
		}
		return change{op: OpTruncate}
	case "d":
		return change{op: OpDelete}
	}
	after := ev["after"]
	if len(after) == 0 || after[0] != '{' {
		return change{bad: `Debezium change event "` + op + `" has no after image`}
	}
	var shape *format.Shape
	if col, ok := val.shape.Column("after"); ok {
		shape = col.Record
	}
	out, keep := withoutPlaceholders(after)
	return change{op: OpWrite, value: decoded{json: out, text: out, shape: shape}, keep: keep}
}

// withoutPlaceholders removes from the JSON object obj the fields whose
// value is Debezium's TOAST placeholder (as text, as bytea, or as an
// array's one element), and returns their names.
func withoutPlaceholders(obj []byte) ([]byte, []string) {
	if !bytes.Contains(obj, []byte(toastPlaceholder)) && !bytes.Contains(obj, toastBytea[4:len(toastBytea)-1]) {
		return obj, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(obj, &fields) != nil {
		return obj, nil
	}
	var keep []string
	for name, v := range fields {
		if bytes.Equal(v, toastJSON) || bytes.Equal(v, toastBytea) || bytes.Equal(v, toastArray) {
			keep = append(keep, name)
			delete(fields, name)
		}
	}
	if len(keep) == 0 {
		return obj, nil
	}
	slices.Sort(keep)
	out, err := json.Marshal(fields)
	if err != nil {
		return obj, nil
	}
	return out, keep
}
