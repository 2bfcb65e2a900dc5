package sink

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class says how the worker responds to an error.
type Class int

const (
	// Transient errors (database or broker unavailable, serialization
	// failures, timeouts) are retried, whole transaction, with backoff,
	// however long they last. Nothing is skipped for them.
	Transient Class = iota
	// Permanent errors belong to the data of a batch (SQLSTATE classes 22
	// and 23, and the like): retrying the same records fails the same way.
	Permanent
	// Fatal errors are configuration problems (SQLSTATE class 42: missing
	// table or privilege): the worker stops with the message.
	Fatal
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	default:
		return "fatal"
	}
}

// Classify maps err to a Class by type and SQLSTATE, never by message
// text. Anything not known to be the data's or the configuration's fault is
// Transient: mistaking an outage for a bad record loses data, while the
// opposite only waits.
func Classify(err error) Class {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"),
			pgErr.Code == "21000",               // cardinality violation: ON CONFLICT hit one key twice
			strings.HasPrefix(pgErr.Code, "54"): // program limit exceeded: a row too big for an index, JSON nested too deep
			return Permanent
		case strings.HasPrefix(pgErr.Code, "42"), strings.HasPrefix(pgErr.Code, "28"),
			strings.HasPrefix(pgErr.Code, "3D"), strings.HasPrefix(pgErr.Code, "3F"):
			return Fatal // schema, privilege, authentication, missing database or schema
		}
		return Transient // 08, 40, 53, 55, 57 and anything unknown
	}
	// Connection refused or reset, "conn closed", timeouts, broker errors:
	// all outages.
	return Transient
}
