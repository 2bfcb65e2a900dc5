package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode"
)

// loginRole creates a LOGIN role with a password (dropped, with its
// grants, when the test ends) and returns a pool connected as it.
func loginRole(t *testing.T, admin *pgxpool.Pool, name string) *pgxpool.Pool {
	t.Helper()
	password := "pw-" + testenv.Suffix()
	_, err := admin.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{name}.Sanitize(), password))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := admin.Exec(ctx, "DROP OWNED BY "+pgx.Identifier{name}.Sanitize())
		assert.NoError(t, err)
		_, err = admin.Exec(ctx, "DROP ROLE "+pgx.Identifier{name}.Sanitize())
		assert.NoError(t, err)
	})
	u, err := url.Parse(testenv.DatabaseURL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(name, password)
	p, err := pgxpool.New(t.Context(), u.String())
	require.NoError(t, err)
	t.Cleanup(p.Close) // before the role is dropped
	return p
}

// TestSecurityPrepareTablesLeastPrivilege: a role with USAGE on the schema and the
// documented table privileges, but no CREATE, gets through start-up once
// the tables exist; each missing privilege is a fatal error naming the
// role, the table and the privilege, before anything is consumed.
func TestSecurityPrepareTablesLeastPrivilege(t *testing.T) {
	admin := testPool(t)
	sfx := testenv.Suffix()
	schema := "sec_" + sfx
	createSchema(t, admin, schema)
	roleName := "sec_role_" + sfx
	role := loginRole(t, admin, roleName)
	table := pgx.Identifier{schema, "events"}.Sanitize()
	offsets := pgx.Identifier{schema, "offsets"}.Sanitize()
	exec := func(sql string) {
		t.Helper()
		_, err := admin.Exec(t.Context(), sql)
		require.NoError(t, err, sql)
	}
	upsert := testConfig(t, decode.ModeUpsert, schema+".offsets", map[string]string{"events": schema + ".events"}, "events")
	require.NoError(t, EnsureTables(t.Context(), admin, upsert), "the tables are made by an administrator")

	// No USAGE on the schema: the catalog itself refuses (42501).
	err := PrepareTables(t.Context(), role, upsert)
	require.Error(t, err)
	assert.True(t, FatalAtStart(err), "fatal: %v", err)
	assert.Equal(t, Fatal, Classify(err))

	exec("GRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + pgx.Identifier{roleName}.Sanitize())
	err = PrepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, ErrPrivilege, "USAGE alone")
	assert.True(t, FatalAtStart(err))
	assert.Contains(t, err.Error(), "42501")
	assert.Contains(t, err.Error(), `role "`+roleName+`"`)
	assert.Contains(t, err.Error(), "DELETE, INSERT, SELECT, UPDATE on table "+table)
	assert.Contains(t, err.Error(), "INSERT, SELECT, UPDATE on table "+offsets)

	exec("GRANT SELECT, INSERT, UPDATE, DELETE ON " + table + ", " + offsets + " TO " + pgx.Identifier{roleName}.Sanitize())
	require.NoError(t, PrepareTables(t.Context(), role, upsert), "the documented grants, no CREATE")

	exec("REVOKE INSERT ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	err = PrepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, ErrPrivilege)
	assert.Contains(t, err.Error(), "lacks INSERT on table "+table)
	assert.NotContains(t, err.Error(), offsets)

	exec("GRANT INSERT ON " + table + " TO " + pgx.Identifier{roleName}.Sanitize())
	exec("REVOKE DELETE ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	err = PrepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, ErrPrivilege, "tombstones delete")
	assert.Contains(t, err.Error(), "lacks DELETE on table "+table)
	keep := upsert
	keep.DeleteOnTombstone = false
	assert.NoError(t, PrepareTables(t.Context(), role, keep), "no DELETE needed when tombstones are skipped")

	exec("REVOKE SELECT, UPDATE ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	insert := upsert
	insert.Mode = decode.ModeInsert
	assert.NoError(t, PrepareTables(t.Context(), role, insert), "insert mode needs only INSERT on the table")

	// A missing table needs CREATE on the schema, which the role lacks.
	more := testConfig(t, decode.ModeUpsert, schema+".offsets", map[string]string{"more": schema + ".more"}, "more")
	err = PrepareTables(t.Context(), role, more)
	require.Error(t, err)
	assert.True(t, FatalAtStart(err))
	assert.Equal(t, Fatal, Classify(err), "42501 from CREATE TABLE: %v", err)
}

// TestSecurityPostgresServerCertificate: sslmode=verify-full with the test CA
// works; with another CA the start-up check fails at once (no retry loop)
// and says what to check.
func TestSecurityPostgresServerCertificate(t *testing.T) {
	ca := os.Getenv("SINKWORKER_TEST_CA")
	require.NotEmpty(t, ca, "SINKWORKER_TEST_CA must be set: %s", testenv.Hint)
	otherCA, _ := testenv.WriteSelfSigned(t, t.TempDir(), "other-ca", true)
	withCA := func(file string) string {
		u, err := url.Parse(testenv.DatabaseURL(t))
		require.NoError(t, err)
		q := u.Query()
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", file)
		u.RawQuery = q.Encode()
		return u.String()
	}
	cfg := testConfig(t, decode.ModeUpsert, "sink_offsets", nil, "sec_cert_"+testenv.Suffix())

	good, err := pgxpool.New(t.Context(), withCA(ca))
	require.NoError(t, err)
	t.Cleanup(good.Close)
	var ssl bool
	require.NoError(t, good.QueryRow(t.Context(), `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl))
	assert.True(t, ssl, "the connection is encrypted")
	require.NoError(t, checkPrivileges(t.Context(), good, cfg))

	bad, err := pgxpool.New(t.Context(), withCA(otherCA))
	require.NoError(t, err)
	t.Cleanup(bad.Close)
	err = PrepareTables(t.Context(), bad, cfg)
	require.Error(t, err)
	assert.True(t, CertificateError(err), "%v", err)
	assert.True(t, FatalAtStart(err), "a wrong CA is not an outage")
	assert.Contains(t, err.Error(), "sslrootcert")
	var verr *tls.CertificateVerificationError
	assert.True(t, errors.As(err, &verr), "%T", err)
}
