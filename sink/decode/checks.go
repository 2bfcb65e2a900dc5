package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sinkworker/sinkworker/sink/decode/format"
	"github.com/twmb/franz-go/pkg/kgo"
)

// check validates in Go what needs no database: size, key, UTF-8, JSON and
// the NUL character jsonb refuses. ok is false for a bad record.
func (c Config) check(r *kgo.Record) (bad Rejection, ok bool) {
	fail := func(class, format string, args ...any) (Rejection, bool) {
		return Rejection{Record: r, Class: class, Reason: fmt.Sprintf(format, args...)}, false
	}
	if n := len(r.Key) + len(r.Value); n > c.MaxRecordBytes {
		return fail(ClassTooLarge, "record is %d bytes, over SINK_MAX_RECORD_BYTES=%d", n, c.MaxRecordBytes)
	}
	if r.Key == nil && c.Mode == ModeUpsert && len(c.ValuePrimaryKey) == 0 && c.Envelope != EnvelopeDebezium {
		return fail(ClassKey, "record has no key; SINK_MODE=upsert writes by key")
	}
	if c.typed() {
		return Rejection{}, true // typedRecord reads the rest
	}
	if msg := textProblem(r.Key); msg != "" {
		return fail(ClassDecode, "key %s", msg)
	}
	if r.Value == nil {
		return Rejection{}, true // a tombstone
	}
	if msg, ok := jsonValueProblem(r.Value); !ok {
		return fail(ClassDecode, "%s", msg)
	}
	if c.Mapping == MappingColumns && r.Value[firstNonSpace(r.Value)] != '{' {
		return fail(ClassDecode, "value is not a JSON object; SINK_MAPPING=columns maps object fields onto columns")
	}
	return Rejection{}, true
}

// jsonValueProblem says why a value is not JSON that jsonb can store; ok
// is false then.
func jsonValueProblem(v []byte) (msg string, ok bool) {
	if msg := textProblem(v); msg != "" {
		return "value " + msg, false
	}
	if len(v) == 0 {
		return "value is empty (neither JSON nor a tombstone)", false
	}
	if !format.ValidJSON(v) {
		return "value is not valid JSON: " + jsonProblem(v), false
	}
	if hasNULEscape(v) {
		return `value contains \u0000, which PostgreSQL jsonb cannot store`, false
	}
	return "", true
}

// textProblem says why b cannot be PostgreSQL text, or "".
func textProblem(b []byte) string {
	switch {
	case !utf8.Valid(b):
		return "is not valid UTF-8"
	case bytes.IndexByte(b, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

// jsonProblem is the decoder's description of invalid JSON (no input echoed).
func jsonProblem(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
		}
		return err.Error()
	}
	return "invalid"
}

// hasNULEscape reports whether valid JSON holds the escape \u0000 (an
// escaped backslash followed by "u0000" does not count).
func hasNULEscape(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		j += i
		slashes := 0
		for k := j - 1; k >= 0 && b[k] == '\\'; k-- {
			slashes++
		}
		if slashes%2 == 0 {
			return true
		}
		i = j + 1
	}
}

func firstNonSpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
}

// KeyObject is the record key as a JSON object of the primary key columns:
// for a one-column key the key text itself (a JSON string literal is
// unquoted), for a composite key a JSON object holding every key column:
// the form ON CONFLICT and DELETE read the key columns from. An error is a
// key the table cannot use (Decode rejects it with ClassKey).
func KeyObject(key []byte, pk []string) (string, error) {
	switch {
	case len(pk) == 0 || key == nil:
		return "{}", nil
	case len(pk) == 1:
		text := string(key)
		var s string
		if json.Unmarshal(key, &s) == nil {
			text = s
		}
		b, _ := json.Marshal(map[string]string{pk[0]: text})
		return string(b), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(key, &obj); err != nil {
		return "", &keyError{fmt.Sprintf("the table's primary key has %d columns (%s): the record key must be a JSON object holding them", len(pk), strings.Join(pk, ", "))}
	}
	for _, c := range pk {
		if _, ok := obj[c]; !ok {
			return "", &keyError{fmt.Sprintf("the record key has no field %q of the table's primary key", c)}
		}
	}
	return string(key), nil
}

// CanonicalKey names the row key's primary key selects, whatever the key's
// spelling: each key column's value as text (a JSON string unquoted,
// anything else compacted), in key order. The JSON keys "42" and 42, and a
// composite key's fields in any order, are the same row, as PostgreSQL
// reads them through jsonb_populate_record.
func CanonicalKey(key []byte, pk []string) (string, error) {
	if len(pk) <= 1 || key == nil {
		text := string(key)
		var s string
		if json.Unmarshal(key, &s) == nil {
			text = s
		}
		return text, nil
	}
	if _, err := KeyObject(key, pk); err != nil {
		return "", err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(key, &obj); err != nil {
		return "", err
	}
	parts := make([]string, len(pk))
	for i, c := range pk {
		var s string
		if json.Unmarshal(obj[c], &s) == nil {
			parts[i] = s
			continue
		}
		var b bytes.Buffer
		if err := json.Compact(&b, obj[c]); err != nil {
			return "", err
		}
		parts[i] = b.String()
	}
	out, err := json.Marshal(parts)
	return string(out), err
}

// keyError is a record key the columns mapping cannot use.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }
