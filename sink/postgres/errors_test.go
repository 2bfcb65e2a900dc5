package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "from the server"} }
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		// The data's fault: retrying the same records fails the same way.
		{name: "invalid text representation 22P02", err: pg("22P02"), want: Permanent},
		{name: "untranslatable character 22P05", err: pg("22P05"), want: Permanent},
		{name: "character not in repertoire 22021", err: pg("22021"), want: Permanent},
		{name: "not null violation 23502", err: pg("23502"), want: Permanent},
		{name: "unique violation 23505", err: pg("23505"), want: Permanent},
		{name: "cardinality violation 21000", err: pg("21000"), want: Permanent},
		{name: "program limit exceeded 54000", err: pg("54000"), want: Permanent},
		// What a trigger, a function or a view refuses is the row's: isolated, not retried forever.
		{name: "raise exception P0001", err: pg("P0001"), want: Permanent},
		{name: "assert failure P0004", err: pg("P0004"), want: Permanent},
		{name: "with check option violation 44000", err: pg("44000"), want: Permanent},
		{name: "SQL routine exception 2F005", err: pg("2F005"), want: Permanent},
		{name: "external routine exception 38001", err: pg("38001"), want: Permanent},
		{name: "external routine invocation 39001", err: pg("39001"), want: Permanent},
		{name: "triggered data change violation 27000", err: pg("27000"), want: Permanent},
		{name: "a code not known here", err: pg("HV000"), want: Permanent},
		// The configuration's fault: stop with the message.
		{name: "undefined table 42P01", err: pg("42P01"), want: Fatal},
		{name: "insufficient privilege 42501", err: pg("42501"), want: Fatal},
		{name: "invalid password 28P01", err: pg("28P01"), want: Fatal},
		{name: "invalid catalog name 3D000", err: pg("3D000"), want: Fatal},
		{name: "invalid schema name 3F000", err: pg("3F000"), want: Fatal},
		// Outages: retry, never dead-letter.
		{name: "serialization failure 40001", err: pg("40001"), want: Transient},
		{name: "deadlock detected 40P01", err: pg("40P01"), want: Transient},
		{name: "admin shutdown 57P01", err: pg("57P01"), want: Transient},
		{name: "too many connections 53300", err: pg("53300"), want: Transient},
		{name: "connection failure 08006", err: pg("08006"), want: Transient},
		{name: "lock not available 55P03", err: pg("55P03"), want: Transient},
		{name: "internal error XX000", err: pg("XX000"), want: Transient},
		{name: "statement timeout 57014", err: pg("57014"), want: Transient},
		{name: "crash shutdown 57P02", err: pg("57P02"), want: Transient},
		{name: "disk full 53100", err: pg("53100"), want: Transient},
		{name: "I/O error 58030", err: pg("58030"), want: Transient},
		{name: "idle in transaction timeout 25P03", err: pg("25P03"), want: Transient},
		{name: "read-only transaction 25006", err: pg("25006"), want: Transient},
		{name: "commit outcome unknown 40003", err: pg("40003"), want: Transient},
		// Wrapping does not change the class.
		{name: "wrapped permanent", err: fmt.Errorf("upsert t[0] offsets 1-2: %w", pg("22P02")), want: Permanent},
		{name: "wrapped fatal", err: fmt.Errorf("lock offsets row t[0]: %w", pg("42P01")), want: Fatal},
		{name: "wrapped transient", err: fmt.Errorf("commit t[0]: %w", pg("40001")), want: Transient},
		{name: "doubly wrapped permanent", err: fmt.Errorf("flush: %w", fmt.Errorf("insert: %w", pg("23505"))), want: Permanent},
		{name: "joined with a plain error", err: errors.Join(errors.New("x"), pg("23502")), want: Permanent},
		// Not from the server at all: outages.
		{name: "deadline exceeded", err: context.DeadlineExceeded, want: Transient},
		{name: "wrapped deadline exceeded", err: fmt.Errorf("begin t[0]: %w", context.DeadlineExceeded), want: Transient},
		{name: "canceled", err: context.Canceled, want: Transient},
		{name: "unexpected EOF", err: io.ErrUnexpectedEOF, want: Transient},
		{name: "connection refused", err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, want: Transient},
		{name: "plain error", err: errors.New("something went wrong"), want: Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Classify(tt.err))
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		name  string
		class Kind
		want  string
	}{
		{name: "transient", class: Transient, want: "transient"},
		{name: "permanent", class: Permanent, want: "permanent"},
		{name: "fatal", class: Fatal, want: "fatal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.class.String())
		})
	}
}

// TestClassifyRealErrors provokes errors on the real server, so the codes
// Classify relies on are the ones PostgreSQL actually sends.
func TestClassifyRealErrors(t *testing.T) {
	t.Parallel()
	db := testPool(t)
	tests := []struct {
		name     string
		sql      string
		wantCode string
		want     Kind
	}{
		{name: "invalid JSON", sql: `SELECT 'x'::jsonb`, wantCode: "22P02", want: Permanent},
		{name: "truncated JSON", sql: `SELECT '{"a":'::jsonb`, wantCode: "22P02", want: Permanent},
		{name: "NUL escape in jsonb", sql: `SELECT '"\u0000"'::jsonb`, wantCode: "22P05", want: Permanent},
		{name: "division by zero", sql: `SELECT 1/0`, wantCode: "22012", want: Permanent},
		{
			name:     "NOT NULL violation",
			sql:      `DO $$BEGIN CREATE TEMP TABLE sw_nn (v int NOT NULL) ON COMMIT DROP; INSERT INTO sw_nn VALUES (NULL); END$$`,
			wantCode: "23502", want: Permanent,
		},
		{name: "missing table", sql: `SELECT * FROM sw_no_such_table_` + testenv.Suffix(), wantCode: "42P01", want: Fatal},
		{name: "missing schema", sql: `CREATE TABLE sw_no_such_schema_` + testenv.Suffix() + `.t (id int)`, wantCode: "3F000", want: Fatal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := db.Exec(t.Context(), tt.sql)
			require.Error(t, err)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, "a server error")
			assert.Equal(t, tt.wantCode, pgErr.Code, "SQLSTATE: %s", pgErr.Message)
			assert.Equal(t, tt.want, Classify(err))
			assert.Equal(t, tt.want, Classify(fmt.Errorf("write t[0]: %w", err)), "wrapped")
		})
	}
}
