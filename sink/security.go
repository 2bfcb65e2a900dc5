package sink

// Security at start-up, the Kafka half (the database's is
// postgres.PrepareTables): TLS and SASL options for the brokers, and a
// probe that turns a rejected login or an untrusted certificate into a
// clear fatal error (franz-go would otherwise retry it in the background
// for ever). Errors name settings, users and files, never a password.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sinkworker/sinkworker/sink/postgres"
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
	case postgres.CertificateError(err):
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
