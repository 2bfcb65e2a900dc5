package sink

// Security at start-up: TLS and SASL options for the brokers, a probe that
// turns a rejected login or an untrusted certificate into a clear fatal
// error (franz-go would otherwise retry it in the background for ever), and
// a check that the database role may do what the sink does to its tables,
// before anything is consumed. Errors name settings, users, tables and
// files, never a password.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaProbeTimeout bounds the start-up probe of the brokers.
const kafkaProbeTimeout = 15 * time.Second

// securityOpts turns the SASL and TLS settings into client options. Errors
// wrap ErrConfig and name files, never secrets.
func securityOpts(c Config) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch c.SASL.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	if !c.TLS.Enabled {
		return opts, nil
	}
	// franz-go sets ServerName to each broker's host, so the certificate is
	// verified against the address dialled (an IP needs an IP SAN).
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: KAFKA_TLS_CA_FILE: %w", ErrConfig, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: KAFKA_TLS_CA_FILE: no PEM certificate in %s", ErrConfig, c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE: %w", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return append(opts, kgo.DialTLSConfig(tc)), nil
}

// probeKafka asks the brokers for metadata, within kafkaProbeTimeout, so
// that a rejected SASL login, an untrusted broker certificate, or brokers
// that drop every connection at once (TLS or SASL not matching the
// listener) stop start-up with an error naming the setting to fix (see
// kafkaAccessError). Brokers that are merely unreachable are logged and
// left to the client's own retries, so a worker may start before them.
func probeKafka(ctx context.Context, cl *kgo.Client, c Config, log *slog.Logger) error {
	if c.SASL.Mechanism == "PLAIN" && !c.TLS.Enabled {
		log.Warn("KAFKA_SASL_MECHANISM=PLAIN without KAFKA_TLS_ENABLED sends the password in clear text")
	}
	pctx, cancel := context.WithTimeout(ctx, kafkaProbeTimeout)
	defer cancel()
	for closedAtOnce := 0; ; {
		err := cl.Ping(pctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if ferr := kafkaAccessError(err, c); ferr != nil {
			return ferr
		}
		var firstRead *kgo.ErrFirstReadEOF
		if !errors.As(err, &firstRead) || pctx.Err() != nil {
			log.Warn("kafka brokers not reachable yet, the client keeps trying", "err", err)
			return nil
		}
		// Once may be a broker shutting down; every time is a mismatch.
		if closedAtOnce++; closedAtOnce == 3 {
			return fmt.Errorf("kafka: the brokers close every connection at once: KAFKA_TLS_ENABLED or "+
				"KAFKA_SASL_MECHANISM does not match the listener in KAFKA_BROKERS: %w", err)
		}
		select {
		case <-pctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// kafkaAccessError maps an error of a request to the brokers to a fatal
// start-up error when retrying cannot help: the login was rejected, the
// mechanism is not enabled, or the brokers' certificate is not trusted.
// Anything else (an outage) gives nil. The error names the mechanism, the
// user and the settings, never the password.
func kafkaAccessError(err error, c Config) error {
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafka: the brokers rejected the SASL %s login of user %q "+
			"(check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD): %w", c.SASL.Mechanism, c.SASL.Username, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka: the brokers do not accept KAFKA_SASL_MECHANISM=%s on this listener: %w",
			c.SASL.Mechanism, err)
	case certificateError(err):
		return fmt.Errorf("kafka: the brokers' TLS certificate is not trusted "+
			"(check KAFKA_TLS_CA_FILE and that the certificate names the host in KAFKA_BROKERS): %w", err)
	case tlsRefused(err):
		return fmt.Errorf("kafka: the brokers refused the TLS connection (a listener that requires a client "+
			"certificate: check KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE, signed by a CA the brokers trust): %w", err)
	}
	return nil
}

// tlsRefused reports whether the peer ended the TLS connection with an
// alert (crypto/tls reports it as a *net.OpError with Op "remote error"):
// a client certificate missing, from an unknown CA or expired, or a
// protocol the listener does not speak, which no retry fixes.
func tlsRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// certificateError reports whether err is a TLS peer certificate that
// failed verification: a wrong CA, host name or validity, which no retry
// fixes.
func certificateError(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

// errPrivilege marks a missing table privilege found at start-up.
var errPrivilege = errors.New("insufficient privilege (SQLSTATE 42501)")

// fatalAtStart reports whether a start-up database error cannot be cured
// by waiting: a fatal SQLSTATE (privilege, authentication, schema), a
// missing privilege, or a server certificate that fails verification.
func fatalAtStart(err error) bool {
	return Classify(err) != Transient || errors.Is(err, errPrivilege) || certificateError(err)
}

// tablesDB is what prepareTables needs of a pool.
type tablesDB interface {
	Begin(context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// prepareTables creates the tables that are missing (EnsureTables) and
// then checks the role's privileges on every table the sink writes.
// EnsureTables runs only when a table is missing: CREATE TABLE IF NOT
// EXISTS needs CREATE on the schema even when the table exists, and a
// least-privilege role has no CREATE once its tables are made.
func prepareTables(ctx context.Context, db tablesDB, c Config) error {
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
	if err != nil && certificateError(err) {
		return fmt.Errorf("database: the server's TLS certificate is not trusted "+
			"(check sslrootcert and the host in DATABASE_URL): %w", err)
	}
	return err
}

// missingTables reports whether a table EnsureTables creates is missing.
func missingTables(ctx context.Context, db tablesDB, c Config) (bool, error) {
	names := []string{c.offsetsTable().Sanitize()}
	if c.Mapping != MappingColumns {
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
	out := []tableNeeds{{c.offsetsTable(), []string{"SELECT", "INSERT", "UPDATE"}}}
	want := []string{"INSERT"}
	if c.Mode == ModeUpsert {
		want = []string{"SELECT", "INSERT", "UPDATE"}
		if c.DeleteOnTombstone {
			want = append(want, "DELETE")
		}
	}
	seen := map[string]bool{c.offsetsTable().Sanitize(): true}
	for _, topic := range c.Topics {
		if id := c.Table(topic); !seen[id.Sanitize()] {
			seen[id.Sanitize()] = true
			out = append(out, tableNeeds{id, want})
		}
	}
	return out
}

// checkPrivileges fails with errPrivilege, naming the role, the tables and
// the privileges it lacks on them (neededPrivileges). Column-level grants
// count for SELECT, INSERT and UPDATE. A table that does not exist is left
// to the caller (loadColumns reports it in SINK_MAPPING=columns).
func checkPrivileges(ctx context.Context, db tablesDB, c Config) error {
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
		errPrivilege, role, strings.Join(problems, "; "))
}
