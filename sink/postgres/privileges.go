package postgres

// The database half of security at start-up: the tables are created when
// missing, and the role's privileges on every table the sink writes are
// checked before anything is consumed. Errors name users, tables and
// privileges, never a password.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// ErrPrivilege marks a missing table privilege found at start-up.
var ErrPrivilege = errors.New("insufficient privilege (SQLSTATE 42501)")

// FatalAtStart reports whether a start-up database error cannot be cured
// by waiting: a fatal SQLSTATE (privilege, authentication, schema), a
// missing privilege, or a server certificate that fails verification.
func FatalAtStart(err error) bool {
	return Classify(err) != Transient || errors.Is(err, ErrPrivilege) || CertificateError(err)
}

// TablesDB is what PrepareTables needs of a pool.
type TablesDB interface {
	Begin(context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PrepareTables creates the tables that are missing (EnsureTables) and
// then checks the role's privileges on every table the sink writes.
// EnsureTables runs only when a table is missing: CREATE TABLE IF NOT
// EXISTS needs CREATE on the schema even when the table exists, and a
// least-privilege role has no CREATE once its tables are made.
func PrepareTables(ctx context.Context, db TablesDB, c Config) error {
	err := func() error {
		missing, err := missingTables(ctx, db, c)
		if err != nil {
			return err
		}
		if missing {
			if err := EnsureTables(ctx, db, c); err != nil {
				return err
			}
		}
		return checkPrivileges(ctx, db, c)
	}()
	if err != nil && CertificateError(err) {
		return fmt.Errorf("database: the server's TLS certificate is not trusted "+
			"(check sslrootcert and the host in DATABASE_URL): %w", err)
	}
	return err
}

// missingTables reports whether a table EnsureTables creates is missing.
func missingTables(ctx context.Context, db TablesDB, c Config) (bool, error) {
	names := []string{c.OffsetsTable.Sanitize()}
	if c.Mapping != decode.MappingColumns {
		for _, topic := range c.Topics {
			names = append(names, c.Table(topic).Sanitize())
		}
	}
	// to_regclass parses the quoted name itself: nothing is spliced into SQL.
	rows, err := db.Query(ctx, `SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL`, names)
	if err != nil {
		return false, fmt.Errorf("check tables: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("check tables: %w", err)
	}
	return len(missing) > 0, nil
}

// tableNeeds is what the sink does to one of its tables.
type tableNeeds struct {
	table pgx.Identifier
	privs []string // SELECT, INSERT, UPDATE, DELETE
}

// neededPrivileges lists the privileges the sink uses, by table: on the
// offsets table SELECT, INSERT, UPDATE (read, lock with INSERT .. ON
// CONFLICT DO UPDATE, advance); on a topic's table INSERT in insert mode
// (INSERT .. ON CONFLICT DO NOTHING), and SELECT, INSERT, UPDATE in upsert
// mode, plus DELETE when tombstones delete.
func neededPrivileges(c Config) []tableNeeds {
	out := []tableNeeds{{c.OffsetsTable, []string{"SELECT", "INSERT", "UPDATE"}}}
	want := []string{"INSERT"}
	if c.Mode == decode.ModeUpsert {
		want = []string{"SELECT", "INSERT", "UPDATE"}
		if c.DeleteOnTombstone {
			want = append(want, "DELETE")
		}
	}
	seen := map[string]bool{c.OffsetsTable.Sanitize(): true}
	for _, topic := range c.Topics {
		if id := c.Table(topic); !seen[id.Sanitize()] {
			seen[id.Sanitize()] = true
			out = append(out, tableNeeds{id, want})
		}
	}
	return out
}

// checkPrivileges fails with ErrPrivilege, naming the role, the tables and
// the privileges it lacks on them (neededPrivileges). Column-level grants
// count for SELECT, INSERT and UPDATE. A table that does not exist is left
// to the caller (LoadColumns reports it in SINK_MAPPING=columns).
func checkPrivileges(ctx context.Context, db TablesDB, c Config) error {
	var role string
	if err := db.QueryRow(ctx, `SELECT current_user::text`).Scan(&role); err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	var problems []string
	for _, tn := range neededPrivileges(c) {
		name := tn.table.Sanitize()
		rows, err := db.Query(ctx, `SELECT p FROM unnest($2::text[]) AS p
WHERE to_regclass($1) IS NOT NULL AND NOT CASE p
	WHEN 'DELETE' THEN has_table_privilege(to_regclass($1), p)
	ELSE has_any_column_privilege(to_regclass($1), p) END`, name, tn.privs)
		if err != nil {
			return fmt.Errorf("check privileges on %s: %w", name, err)
		}
		lacking, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check privileges on %s: %w", name, err)
		}
		if len(lacking) > 0 {
			slices.Sort(lacking)
			problems = append(problems, strings.Join(lacking, ", ")+" on table "+name)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: database role %q lacks %s (grant them to the role: see the README's Security section)",
		ErrPrivilege, role, strings.Join(problems, "; "))
}

// CertificateError reports whether err is a TLS peer certificate that
// failed verification: a wrong CA, host name or validity, which no retry
// fixes. The Kafka side of the worker asks the same of the brokers'.
func CertificateError(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
