package sink

import (
	"testing"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTxTimeoutRule: SINK_TX_TIMEOUT must exceed the dead-letter delivery
// timeout (30 s), which a batch may spend waiting inside its transaction;
// a shorter one would abandon, and dead-letter again, every batch whose
// dead letters take that long. SINK_TX_IDLE_TIMEOUT keeps its own rule,
// and either may be the longer.
func TestTxTimeoutRule(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantBad []string // nil: valid
		why     string   // in the message; default: the dead-letter rule
	}{
		{name: "defaults", env: nil},
		{name: "just over the dead-letter delivery timeout", env: map[string]string{"SINK_TX_TIMEOUT": "31s"}},
		{name: "shorter than the idle timeout", env: map[string]string{"SINK_TX_TIMEOUT": "40s", "SINK_TX_IDLE_TIMEOUT": "5m"}},
		{name: "longer than the idle timeout", env: map[string]string{"SINK_TX_TIMEOUT": "5m", "SINK_TX_IDLE_TIMEOUT": "31s"}},
		{name: "server's idle timeout", env: map[string]string{"SINK_TX_TIMEOUT": "45s", "SINK_TX_IDLE_TIMEOUT": "0s"}},
		{name: "equal to the dead-letter delivery timeout", env: map[string]string{"SINK_TX_TIMEOUT": "30s"},
			wantBad: []string{"SINK_TX_TIMEOUT"}},
		{name: "zero", env: map[string]string{"SINK_TX_TIMEOUT": "0s"}, wantBad: []string{"SINK_TX_TIMEOUT"}},
		{name: "negative", env: map[string]string{"SINK_TX_TIMEOUT": "-1m"}, wantBad: []string{"SINK_TX_TIMEOUT"}},
		{name: "both too short", env: map[string]string{"SINK_TX_TIMEOUT": "10s", "SINK_TX_IDLE_TIMEOUT": "10s"},
			wantBad: []string{"SINK_TX_IDLE_TIMEOUT", "SINK_TX_TIMEOUT"}},
		{name: "unparsable", env: map[string]string{"SINK_TX_TIMEOUT": "a minute"}, wantBad: []string{"SINK_TX_TIMEOUT"},
			why: "cannot parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			if tt.wantBad == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
			assert.Equal(t, tt.wantBad, namedVars(t, err), "variables named in:\n%v", err)
			if tt.why == "" {
				tt.why = "dead-letter delivery timeout 30s"
			}
			assert.Contains(t, err.Error(), tt.why, "the message says why")
		})
	}
}
