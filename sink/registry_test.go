package sink

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// TestRegistryTLSAndAuth: an https registry is trusted through
// SCHEMA_REGISTRY_TLS_CA_FILE and answers with basic auth; without the CA
// it is not reachable (an outage, retried), with a wrong password it is a
// bad setting, and no error carries the password.
func TestRegistryTLSAndAuth(t *testing.T) {
	const secret = "Hunter2-registry-Secret"
	fake := srfake.NewRegistry(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("sink:"+secret))))
	srv := httptest.NewTLSServer(fake.Handler())
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	registry := func(env map[string]string) *decode.Registry {
		t.Helper()
		base := map[string]string{"SINK_VALUE_FORMAT": "avro", "SCHEMA_REGISTRY_URL": srv.URL,
			"SCHEMA_REGISTRY_USERNAME": "sink", "SCHEMA_REGISTRY_PASSWORD": secret, "SCHEMA_REGISTRY_TLS_CA_FILE": ca}
		for k, v := range env {
			base[k] = v
		}
		for k, v := range base {
			if v == "-" {
				delete(base, k)
			}
		}
		cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(base)))
		require.NoError(t, err)
		r, err := cfg.NewRegistry()
		require.NoError(t, err)
		return r
	}

	require.NoError(t, registry(nil).Probe(t.Context()), "trusted CA and the right password")

	err := registry(map[string]string{"SCHEMA_REGISTRY_TLS_CA_FILE": "-"}).Probe(t.Context())
	var re *decode.RegistryError
	require.True(t, errors.As(err, &re), "an untrusted certificate is the registry not answering: %v", err)
	assert.NotContains(t, err.Error(), secret)

	err = registry(map[string]string{"SCHEMA_REGISTRY_PASSWORD": "wrong-" + secret}).Probe(t.Context())
	require.ErrorIs(t, err, decode.ErrRegistryRefused)
	assert.NotContains(t, err.Error(), secret)
}
