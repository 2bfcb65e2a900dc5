package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SystemicError is a database rejection that does not isolate to records: a
// broken trigger, a constraint no record can meet, a function that always
// raises. Dead-lettering would drain the topic into the dead-letter topic,
// so the batch is rolled back, nothing of it is dead-lettered, and the
// partition halts (not ready) until the cause is fixed and the partition is
// assigned again (a restart).
//
// The rule (ERROR_SYSTEMIC_REJECTS = n, 0 turns it off): the database
// rejects n records of a partition in a row, in offset order and across
// batches, with one SQLSTATE and no record landing in between; or more
// than half of one batch's writes, at least n of them, with one SQLSTATE.
type SystemicError struct {
	Topic     string
	Partition int32
	Offset    int64  // the record at which the rule tripped
	Code      string // SQLSTATE
	Rejected  int    // records rejected with Code that made the rule trip
	Err       error  // the last rejection
}

// Error names the partition, offset, SQLSTATE and count, never row data.
func (e *SystemicError) Error() string {
	return fmt.Sprintf("%s[%d] offset %d: the database rejected %d records with SQLSTATE %s, not isolated to records "+
		"(ERROR_SYSTEMIC_REJECTS): partition halted, nothing dead-lettered: %s",
		e.Topic, e.Partition, e.Offset, e.Rejected, e.Code, Loggable(e.Err))
}

// Unwrap is the last rejection.
func (e *SystemicError) Unwrap() error { return e.Err }

// rejectStreak counts the records the database rejected in a row with one
// SQLSTATE.
type rejectStreak struct {
	code string
	n    int
}

func (s *rejectStreak) reset() { *s = rejectStreak{} }

// reject counts r, rejected with err, and returns a *SystemicError once
// limit records in a row were rejected with the same SQLSTATE (limit 0:
// never).
func (s *rejectStreak) reject(r *kgo.Record, err error, limit int) error {
	code := sqlstate(err)
	if code != s.code {
		*s = rejectStreak{code: code}
	}
	s.n++
	if limit > 0 && s.n >= limit {
		return &SystemicError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Code: code, Rejected: s.n, Err: err}
	}
	return nil
}

// systemicShare returns a *SystemicError when more than half of writes
// records, and at least limit, were rejected with one SQLSTATE (limit 0:
// never).
func systemicShare(bad []rejectedRow, writes, limit int) error {
	if limit <= 0 {
		return nil
	}
	count := map[string]int{}
	for _, b := range bad {
		code := sqlstate(b.err)
		count[code]++
		if n := count[code]; n >= limit && 2*n > writes {
			r := b.row.Record
			return &SystemicError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Code: code, Rejected: n, Err: b.err}
		}
	}
	return nil
}

// sqlstate is err's SQLSTATE, or "" when the server did not send it.
func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
