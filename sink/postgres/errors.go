package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// Kind says how the worker responds to an error.
type Kind int

const (
	// Transient errors (database or broker unavailable, serialization
	// failures, lock waits, timeouts) are retried, whole transaction, with
	// backoff, however long they last. Nothing is skipped for them.
	Transient Kind = iota
	// Permanent errors are the server's answer to the data of a batch:
	// retrying the same records fails the same way. The writer isolates
	// them to records by bisection; a rejection that does not isolate is
	// systemic and halts the partition (see SystemicError).
	Permanent
	// Fatal errors are configuration problems (SQLSTATE class 42: missing
	// table or privilege): the worker stops with the message.
	Fatal
)

// String is the kind's name, as the retries metric labels it.
func (c Kind) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	default:
		return "fatal"
	}
}

// Classify maps err to a Kind by type and SQLSTATE, never by message
// text.
//
// An error that did not come from the server (connection refused or reset,
// "conn closed", a deadline, a broker error) is Transient: mistaking an
// outage for a bad record loses data, while the opposite only waits. When
// the server did answer, only the SQLSTATEs known to mean "not now" are
// Transient (outageClass); schema, privilege and login problems are Fatal;
// everything else, including what a trigger or a function raises
// (P0001, 2F, 38, 39), a view's check option (44000) and codes this code
// does not know, is Permanent: the writer isolates it to the records that
// cause it, and halts the partition when it does not isolate.
func Classify(err error) Kind {
	if errors.Is(err, ErrNoTable) || errors.Is(err, ErrNoPrimaryKey) {
		return Fatal
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return Transient
	}
	switch code := pgErr.Code; {
	case outageClass(code):
		return Transient
	case strings.HasPrefix(code, "42"), strings.HasPrefix(code, "28"),
		strings.HasPrefix(code, "3D"), strings.HasPrefix(code, "3F"):
		return Fatal // schema, privilege, authentication, missing database or schema
	}
	return Permanent
}

// outageClass reports whether a SQLSTATE says the server cannot take the
// statement now, whatever its data: retried, never dead-lettered.
func outageClass(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"), // insufficient resources: disk full, too many connections
		strings.HasPrefix(code, "57"), // operator intervention: shutdown, cancel, statement timeout
		strings.HasPrefix(code, "58"), // system error (I/O)
		strings.HasPrefix(code, "XX"), // internal error, data corrupted
		strings.HasPrefix(code, "40"), // serialization failure, deadlock, commit outcome unknown
		code == "55P03",               // lock not available (lock_timeout)
		code == "55006",               // object in use
		code == "25P03",               // idle_in_transaction_session_timeout ended the session
		code == "25006":               // read-only transaction: a standby after a failover
		return true
	}
	return false
}

// StatementTimeout reports whether err is a statement cancelled by the
// server's statement_timeout (SQLSTATE 57014) rather than by ctx ending
// (a cancel the worker sent has the same SQLSTATE). The writer answers it
// by writing smaller statements.
func StatementTimeout(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	return ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "57014"
}

// dataClass reports whether a SQLSTATE describes the value itself, so that
// the server's message may quote it (22P02 "invalid input syntax for type
// integer: ...") and a RAISE may carry anything: such messages go only to
// the dead-letter headers, never to a log line.
func dataClass(code string) bool {
	for _, p := range []string{"21", "22", "23", "27", "2F", "38", "39", "44", "54", "P0", "09"} {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// Loggable is err as a log line may show it: for a server error whose
// message may quote row data (see dataClass) the SQLSTATE, the constraint,
// table and column it names and the error's context, never the message or
// detail; other errors as they are (they hold no row data, and DSNs and
// passwords never reach them).
func Loggable(err error) string {
	if err == nil {
		return ""
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !dataClass(pgErr.Code) {
		return err.Error()
	}
	var b strings.Builder
	if full := err.Error(); strings.HasSuffix(full, pgErr.Error()) {
		b.WriteString(strings.TrimSuffix(full, pgErr.Error())) // the wrapping's coordinates
	}
	fmt.Fprintf(&b, "SQLSTATE %s", pgErr.Code)
	for _, f := range [][2]string{{"constraint", pgErr.ConstraintName}, {"schema", pgErr.SchemaName},
		{"table", pgErr.TableName}, {"column", pgErr.ColumnName}, {"routine", pgErr.Routine}} {
		if f[1] != "" {
			fmt.Fprintf(&b, " %s=%s", f[0], f[1])
		}
	}
	b.WriteString(" (message and detail withheld: they may quote row data; the dead-letter headers carry them)")
	return b.String()
}

// dbClass is the dead-letter class of a database rejection.
func dbClass(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return decode.ClassData
	}
	switch code := pgErr.Code; {
	case strings.HasPrefix(code, "23"), code == "44000":
		return decode.ClassConstraint
	case strings.HasPrefix(code, "54"):
		return decode.ClassTooLarge
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "21"):
		return decode.ClassData
	}
	return decode.ClassRejected
}

// Rejected is r, which the database rejected on its own with err, as a
// rejection to dead-letter: the class by SQLSTATE, the server's message and
// detail as the reason (dead-letter header only), the SQLSTATE as Code.
func Rejected(r *kgo.Record, err error) decode.Rejection {
	return decode.Rejection{Record: r, Class: dbClass(err), Reason: dbReason(err), Code: sqlstate(err)}
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
