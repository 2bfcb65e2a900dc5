package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Error classes of a dead-lettered record, in its
// __connect.errors.exception.class.name header.
const (
	ClassDecode     = "decode"     // the value is not JSON the table can take, or the key is not text
	ClassKey        = "key"        // no key where the mode needs one
	ClassTooLarge   = "too_large"  // over SINK_MAX_RECORD_BYTES, or too big for the database
	ClassData       = "data"       // the database rejected a value (SQLSTATE classes 21, 22)
	ClassConstraint = "constraint" // the database rejected a row (SQLSTATE class 23, a view's check option 44000)
	ClassRejected   = "rejected"   // a trigger or function refused the row (RAISE P0001, classes 2F, 38, 39, 27, 09, others)
)

// badRecord is a record that failed on its own, with why.
type badRecord struct {
	rec    *kgo.Record
	class  string
	reason string // for the dead-letter header only: it may quote the record
	code   string // the SQLSTATE of a database rejection, "" for one found in Go
	err    error  // the database's rejection, nil for one found in Go
}

// logReason is what a log line may say of why b failed: the reason of a
// rejection found in Go (it names the problem, not the data), the SQLSTATE
// and constraint of a database rejection (whose message may quote the row).
func (b badRecord) logReason() string {
	if b.code == "" {
		return b.reason
	}
	return "SQLSTATE " + b.code
}

// check validates in Go what needs no database: size, key, UTF-8, JSON and
// the NUL character jsonb refuses. ok is false for a bad record.
func (w *writer) check(r *kgo.Record) (bad badRecord, ok bool) {
	fail := func(class, format string, args ...any) (badRecord, bool) {
		return badRecord{rec: r, class: class, reason: fmt.Sprintf(format, args...)}, false
	}
	if n := len(r.Key) + len(r.Value); n > w.maxRecordBytes {
		return fail(ClassTooLarge, "record is %d bytes, over SINK_MAX_RECORD_BYTES=%d", n, w.maxRecordBytes)
	}
	if r.Key == nil && w.mode == ModeUpsert {
		return fail(ClassKey, "record has no key; SINK_MODE=upsert writes by key")
	}
	if msg := textProblem(r.Key); msg != "" {
		return fail(ClassDecode, "key %s", msg)
	}
	if r.Value == nil {
		return badRecord{}, true // a tombstone
	}
	if msg := textProblem(r.Value); msg != "" {
		return fail(ClassDecode, "value %s", msg)
	}
	if len(r.Value) == 0 {
		return fail(ClassDecode, "value is empty (neither JSON nor a tombstone)")
	}
	if !json.Valid(r.Value) {
		return fail(ClassDecode, "value is not valid JSON: %s", jsonProblem(r.Value))
	}
	if hasNULEscape(r.Value) {
		return fail(ClassDecode, `value contains \u0000, which PostgreSQL jsonb cannot store`)
	}
	if w.mapping == MappingColumns && r.Value[firstNonSpace(r.Value)] != '{' {
		return fail(ClassDecode, "value is not a JSON object; SINK_MAPPING=columns maps object fields onto columns")
	}
	return badRecord{}, true
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

// dbClass is the dead-letter class of a database rejection.
func dbClass(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ClassData
	}
	switch code := pgErr.Code; {
	case strings.HasPrefix(code, "23"), code == "44000":
		return ClassConstraint
	case strings.HasPrefix(code, "54"):
		return ClassTooLarge
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "21"):
		return ClassData
	}
	return ClassRejected
}

// dbRejection is a record the database rejected on its own with err.
func dbRejection(r *kgo.Record, err error) badRecord {
	b := badRecord{rec: r, class: dbClass(err), reason: dbReason(err), err: err}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		b.code = pgErr.Code
	}
	return b
}

// dbReason is the database's own message and detail, without the SQL.
func dbReason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
		if pgErr.Detail != "" {
			msg += ": " + pgErr.Detail
		}
		return msg
	}
	return err.Error()
}
