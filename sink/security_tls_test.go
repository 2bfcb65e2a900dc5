package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The TLS client side of the Kafka settings: what securityOpts builds, and
// a real listener that requires client certificates.

// assertBuiltTLS checks the client options securityOpts built for tc: the
// SASL mechanism, and a tls.Config that verifies the brokers (no
// InsecureSkipVerify, TLS 1.2 at least) against exactly the CA file's
// certificates (the system roots without one), presenting exactly the
// client certificate of the cert file, if any.
func assertBuiltTLS(t *testing.T, opts []kgo.Opt, tc TLSConfig) {
	t.Helper()
	cl, err := kgo.NewClient(opts...) // connects to nothing until used
	require.NoError(t, err)
	defer cl.Close()
	mechs, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism)
	require.Len(t, mechs, 1)
	assert.Equal(t, "SCRAM-SHA-512", mechs[0].Name())
	got, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
	require.NotNil(t, got, "a TLS dial config")
	assert.False(t, got.InsecureSkipVerify, "the brokers' certificate is verified")
	assert.GreaterOrEqual(t, got.MinVersion, uint16(tls.VersionTLS12))
	if tc.CAFile == "" {
		assert.Nil(t, got.RootCAs, "no CA file: the system roots")
	} else {
		want := x509.NewCertPool()
		require.True(t, want.AppendCertsFromPEM(readFile(t, tc.CAFile)))
		require.NotNil(t, got.RootCAs, "the CA file's roots")
		assert.True(t, want.Equal(got.RootCAs), "the roots are exactly the CA file's certificates")
	}
	if tc.CertFile == "" {
		assert.Empty(t, got.Certificates, "no client certificate")
		return
	}
	require.Len(t, got.Certificates, 1, "the client certificate")
	block, _ := pem.Decode(readFile(t, tc.CertFile))
	require.NotNil(t, block)
	require.NotEmpty(t, got.Certificates[0].Certificate)
	assert.Equal(t, block.Bytes, got.Certificates[0].Certificate[0], "the certificate of KAFKA_TLS_CERT_FILE")
	assert.NotNil(t, got.Certificates[0].PrivateKey, "with its key")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestSecurityKafkaClientCertificate runs the built options against the
// real broker's listener that requires a client certificate
// (KAFKA_MTLS_BROKERS, from `scripts/services env`): the test CA's client
// certificate is accepted; none, or one from another CA, is refused.
func TestSecurityKafkaClientCertificate(t *testing.T) {
	vars := map[string]string{}
	for _, name := range []string{"KAFKA_MTLS_BROKERS", "SINKWORKER_TEST_CA", "SINKWORKER_TEST_CLIENT_CERT",
		"SINKWORKER_TEST_CLIENT_KEY", "SINKWORKER_TEST_OTHER_CLIENT_CERT", "SINKWORKER_TEST_OTHER_CLIENT_KEY"} {
		vars[name] = os.Getenv(name)
		require.NotEmpty(t, vars[name], "%s: the listener requiring client certificates; %s", name, testenv.Hint)
	}
	tests := []struct {
		name         string
		cert, key    string
		wantAccepted bool
	}{
		{name: "the test CA's client certificate", cert: vars["SINKWORKER_TEST_CLIENT_CERT"], key: vars["SINKWORKER_TEST_CLIENT_KEY"],
			wantAccepted: true},
		{name: "no client certificate"},
		{name: "a client certificate from another CA", cert: vars["SINKWORKER_TEST_OTHER_CLIENT_CERT"], key: vars["SINKWORKER_TEST_OTHER_CLIENT_KEY"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Config{Brokers: []string{vars["KAFKA_MTLS_BROKERS"]}, TLS: TLSConfig{Enabled: true,
				CAFile: vars["SINKWORKER_TEST_CA"], CertFile: tt.cert, KeyFile: tt.key}}
			opts, err := securityOpts(c)
			require.NoError(t, err)
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(c.Brokers...))...)
			require.NoError(t, err)
			t.Cleanup(cl.Close)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err = cl.Ping(ctx)
			if tt.wantAccepted {
				require.NoError(t, err, "the broker accepts the test CA's client certificate")
				return
			}
			require.Error(t, err, "the broker must refuse the connection")
			t.Logf("refused: %v", err)
			perr := probeKafka(t.Context(), cl, c, slog.New(slog.DiscardHandler))
			require.Error(t, perr, "a refused client certificate stops start-up, it is no outage to wait out")
			assert.Contains(t, perr.Error(), "KAFKA_TLS_CERT_FILE")
		})
	}
}
