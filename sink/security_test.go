package sink

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// writeSelfSigned writes a new self-signed certificate (a CA when isCA)
// and its key as PEM files in dir, named name.crt and name.key.
func writeSelfSigned(t *testing.T, dir, name string, isCA bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "sinkworker " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

func TestSecurityOptsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writeSelfSigned(t, dir, "ca", true)
	cert, key := writeSelfSigned(t, dir, "client", false)
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o644))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		tls     TLSConfig
		wantVar string // "" means no error
	}{
		{name: "system roots", tls: TLSConfig{Enabled: true}},
		{name: "CA file", tls: TLSConfig{Enabled: true, CAFile: ca}},
		{name: "CA file and client certificate", tls: TLSConfig{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: key}},
		{name: "missing CA file", tls: TLSConfig{Enabled: true, CAFile: missing}, wantVar: "KAFKA_TLS_CA_FILE"},
		{name: "CA file without PEM", tls: TLSConfig{Enabled: true, CAFile: notPEM}, wantVar: "KAFKA_TLS_CA_FILE"},
		{name: "key that is not the certificate's", tls: TLSConfig{Enabled: true, CertFile: ca, KeyFile: key}, wantVar: "KAFKA_TLS_CERT_FILE"},
		{name: "missing key file", tls: TLSConfig{Enabled: true, CertFile: cert, KeyFile: missing}, wantVar: "KAFKA_TLS_KEY_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{TLS: tt.tls, SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "Hunter2-sasl"}}
			opts, err := securityOpts(c)
			if tt.wantVar == "" {
				require.NoError(t, err)
				assertBuiltTLS(t, opts, tt.tls)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrConfig, "a bad file is a bad setting: exit status 2")
			assert.Contains(t, err.Error(), tt.wantVar)
			assert.NotContains(t, err.Error(), "Hunter2-sasl")
		})
	}
}

func TestSecurityValidateSettings(t *testing.T) {
	missingCA := filepath.Join(t.TempDir(), "no-such-ca.crt")
	tests := []struct {
		name    string
		env     map[string]string
		wantBad []string
		want    string // in the error
	}{
		{
			name:    "SASL credentials without a mechanism",
			env:     map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "Hunter2-sasl"},
			wantBad: []string{"KAFKA_SASL_MECHANISM"},
		},
		{
			name: "sslrootcert that cannot be read",
			env: map[string]string{"DATABASE_URL": "postgres://sink:Hunter2-db@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=" +
				url.QueryEscape(missingCA)},
			wantBad: []string{"DATABASE_URL"},
			want:    missingCA,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrConfig)
			assert.Equal(t, tt.wantBad, namedVars(t, err), "variables named in:\n%v", err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "Hunter2")
		})
	}
}

func TestSecurityKafkaAccessError(t *testing.T) {
	c := Config{SASL: SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "svc-sink", Password: "Hunter2-sasl"}}
	tests := []struct {
		name  string
		err   error
		fatal bool
		names []string // in the message when fatal
	}{
		{name: "wrong password", err: fmt.Errorf("sasl: %w", kerr.SaslAuthenticationFailed), fatal: true,
			names: []string{"SCRAM-SHA-256", `"svc-sink"`, "KAFKA_SASL_PASSWORD"}},
		{name: "illegal SASL state", err: kerr.IllegalSaslState, fatal: true, names: []string{"svc-sink"}},
		{name: "mechanism not enabled", err: kerr.UnsupportedSaslMechanism, fatal: true,
			names: []string{"KAFKA_SASL_MECHANISM=SCRAM-SHA-256"}},
		{name: "unknown certificate authority",
			err:   &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}},
			fatal: true, names: []string{"KAFKA_TLS_CA_FILE"}},
		{name: "certificate for another host", err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.0.0.1"},
			fatal: true, names: []string{"KAFKA_TLS_CA_FILE"}},
		{name: "connection refused", err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
		{name: "timeout", err: context.DeadlineExceeded},
		{name: "broker not available", err: kerr.BrokerNotAvailable},
		{name: "closed at once", err: &kgo.ErrFirstReadEOF{}},
		{name: "EOF", err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kafkaAccessError(tt.err, c)
			if !tt.fatal {
				assert.NoError(t, err, "an outage is left to the client's retries")
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.err)
			assert.NotErrorIs(t, err, ErrConfig, "exit status 1, not 2")
			for _, n := range tt.names {
				assert.Contains(t, err.Error(), n)
			}
			assert.NotContains(t, err.Error(), "Hunter2-sasl")
		})
	}
}

// TestSecurityProbeKafka runs the start-up probe against a kfake broker that
// requires SASL: a right password passes, an unreachable broker is only
// logged. (kfake drops the connection on a wrong password where Kafka
// answers SASL_AUTHENTICATION_FAILED, so that case is tested against the
// real broker: cmd/sinkworker's TestSecurityKafkaRejects.)
func TestSecurityProbeKafka(t *testing.T) {
	const password = "Hunter2-right"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "svc", password),
		kfake.Superuser("SCRAM-SHA-256", "svc", password),
		kfake.Superuser("SCRAM-SHA-512", "svc", password))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unreachable := closed.Addr().String()
	require.NoError(t, closed.Close())

	tests := []struct {
		name      string
		brokers   []string
		mechanism string
		password  string
		wantLog   string
	}{
		{name: "PLAIN right password", brokers: cluster.ListenAddrs(), mechanism: "PLAIN", password: password,
			wantLog: "clear text"},
		{name: "SCRAM-SHA-256 right password", brokers: cluster.ListenAddrs(), mechanism: "SCRAM-SHA-256", password: password},
		{name: "SCRAM-SHA-512 right password", brokers: cluster.ListenAddrs(), mechanism: "SCRAM-SHA-512", password: password},
		{name: "unreachable broker", brokers: []string{unreachable}, mechanism: "SCRAM-SHA-256", password: password,
			wantLog: "not reachable yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Brokers: tt.brokers, SASL: SASLConfig{Mechanism: tt.mechanism, Username: "svc", Password: tt.password}}
			opts, err := securityOpts(c)
			require.NoError(t, err)
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(tt.brokers...))...)
			require.NoError(t, err)
			t.Cleanup(cl.Close)
			var logs bytes.Buffer
			start := time.Now()
			err = probeKafka(t.Context(), cl, c, slog.New(slog.NewTextHandler(&logs, nil)))
			assert.Less(t, time.Since(start), kafkaProbeTimeout+time.Second, "bounded")
			assert.NotContains(t, logs.String(), "Hunter2")
			assert.Contains(t, logs.String(), tt.wantLog)
			assert.NoError(t, err)
		})
	}
}

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
	upsert := testConfig(t, ModeUpsert, schema+".offsets", map[string]string{"events": schema + ".events"}, "events")
	require.NoError(t, EnsureTables(t.Context(), admin, upsert), "the tables are made by an administrator")

	// No USAGE on the schema: the catalog itself refuses (42501).
	err := prepareTables(t.Context(), role, upsert)
	require.Error(t, err)
	assert.True(t, fatalAtStart(err), "fatal: %v", err)
	assert.Equal(t, Fatal, Classify(err))

	exec("GRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + pgx.Identifier{roleName}.Sanitize())
	err = prepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, errPrivilege, "USAGE alone")
	assert.True(t, fatalAtStart(err))
	assert.Contains(t, err.Error(), "42501")
	assert.Contains(t, err.Error(), `role "`+roleName+`"`)
	assert.Contains(t, err.Error(), "DELETE, INSERT, SELECT, UPDATE on table "+table)
	assert.Contains(t, err.Error(), "INSERT, SELECT, UPDATE on table "+offsets)

	exec("GRANT SELECT, INSERT, UPDATE, DELETE ON " + table + ", " + offsets + " TO " + pgx.Identifier{roleName}.Sanitize())
	require.NoError(t, prepareTables(t.Context(), role, upsert), "the documented grants, no CREATE")

	exec("REVOKE INSERT ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	err = prepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, errPrivilege)
	assert.Contains(t, err.Error(), "lacks INSERT on table "+table)
	assert.NotContains(t, err.Error(), offsets)

	exec("GRANT INSERT ON " + table + " TO " + pgx.Identifier{roleName}.Sanitize())
	exec("REVOKE DELETE ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	err = prepareTables(t.Context(), role, upsert)
	require.ErrorIs(t, err, errPrivilege, "tombstones delete")
	assert.Contains(t, err.Error(), "lacks DELETE on table "+table)
	keep := upsert
	keep.DeleteOnTombstone = false
	assert.NoError(t, prepareTables(t.Context(), role, keep), "no DELETE needed when tombstones are skipped")

	exec("REVOKE SELECT, UPDATE ON " + table + " FROM " + pgx.Identifier{roleName}.Sanitize())
	insert := upsert
	insert.Mode = ModeInsert
	assert.NoError(t, prepareTables(t.Context(), role, insert), "insert mode needs only INSERT on the table")

	// A missing table needs CREATE on the schema, which the role lacks.
	more := testConfig(t, ModeUpsert, schema+".offsets", map[string]string{"more": schema + ".more"}, "more")
	err = prepareTables(t.Context(), role, more)
	require.Error(t, err)
	assert.True(t, fatalAtStart(err))
	assert.Equal(t, Fatal, Classify(err), "42501 from CREATE TABLE: %v", err)
}

// TestSecurityPostgresServerCertificate: sslmode=verify-full with the test CA
// works; with another CA the start-up check fails at once (no retry loop)
// and says what to check.
func TestSecurityPostgresServerCertificate(t *testing.T) {
	ca := os.Getenv("SINKWORKER_TEST_CA")
	require.NotEmpty(t, ca, "SINKWORKER_TEST_CA must be set: %s", testenv.Hint)
	otherCA, _ := writeSelfSigned(t, t.TempDir(), "other-ca", true)
	withCA := func(file string) string {
		u, err := url.Parse(testenv.DatabaseURL(t))
		require.NoError(t, err)
		q := u.Query()
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", file)
		u.RawQuery = q.Encode()
		return u.String()
	}
	cfg := testConfig(t, ModeUpsert, "sink_offsets", nil, "sec_cert_"+testenv.Suffix())

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
	err = prepareTables(t.Context(), bad, cfg)
	require.Error(t, err)
	assert.True(t, certificateError(err), "%v", err)
	assert.True(t, fatalAtStart(err), "a wrong CA is not an outage")
	assert.Contains(t, err.Error(), "sslrootcert")
	var verr *tls.CertificateVerificationError
	assert.True(t, errors.As(err, &verr), "%T", err)
}
