package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

func TestSecurityOptsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca, _ := testenv.WriteSelfSigned(t, dir, "ca", true)
	cert, key := testenv.WriteSelfSigned(t, dir, "client", false)
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
