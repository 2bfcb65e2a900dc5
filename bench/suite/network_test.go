package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []time.Duration
		err  string
	}{
		{name: "default", in: "1ms,5ms", want: []time.Duration{time.Millisecond, 5 * time.Millisecond}},
		{name: "spaces and empty fields", in: " 500us, ,2ms ", want: []time.Duration{500 * time.Microsecond, 2 * time.Millisecond}},
		{name: "zero", in: "0,1ms", err: `"0" is not a positive duration`},
		{name: "no unit", in: "5", err: `"5" is not a positive duration`},
		{name: "twice", in: "1ms,1000us", err: "1ms twice"},
		{name: "empty", in: " , ", err: "want at least one duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := durations(tc.in)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestProxyDSN(t *testing.T) {
	for _, tc := range []struct {
		name, dsn, addr string
		wantHost        string
		wantPort        uint16
		wantPassword    string
	}{
		{name: "URL", dsn: "postgres://postgres:postgres@127.0.0.1:5432/sinkworker?sslmode=disable", addr: "127.0.0.1:40001",
			wantHost: "127.0.0.1", wantPort: 40001, wantPassword: "postgres"},
		{name: "URL with host parameters and an odd password", dsn: "postgresql://u:p%40ss%2Fw@db.example:6543/sinkworker?host=other&port=1&sslmode=disable&application_name=x",
			addr: "127.0.0.1:40002", wantHost: "127.0.0.1", wantPort: 40002, wantPassword: "p@ss/w"},
		{name: "URL with several hosts", dsn: "postgres://u:pw@h1:5432,h2:5433/sinkworker?sslmode=disable", addr: "127.0.0.1:40003",
			wantHost: "127.0.0.1", wantPort: 40003, wantPassword: "pw"},
		{name: "keyword/value", dsn: "host=db.example port=6543 user=u password='a b' dbname=sinkworker sslmode=disable", addr: "127.0.0.1:40004",
			wantHost: "127.0.0.1", wantPort: 40004, wantPassword: "a b"},
		{name: "IPv6 proxy", dsn: "postgres://u:pw@127.0.0.1:5432/sinkworker?sslmode=disable", addr: "[::1]:40005",
			wantHost: "::1", wantPort: 40005, wantPassword: "pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := pgx.ParseConfig(tc.dsn)
			require.NoError(t, err)
			got, err := proxyDSN(tc.dsn, tc.addr)
			require.NoError(t, err)
			cfg, err := pgx.ParseConfig(got)
			require.NoError(t, err, "the rewritten DSN parses")
			assert.Equal(t, tc.wantHost, cfg.Host)
			assert.Equal(t, tc.wantPort, cfg.Port)
			assert.Empty(t, cfg.Fallbacks, "only the proxy")
			assert.Equal(t, orig.User, cfg.User)
			assert.Equal(t, tc.wantPassword, cfg.Password)
			assert.Equal(t, orig.Database, cfg.Database)
			assert.Equal(t, orig.RuntimeParams, cfg.RuntimeParams)
			assert.Nil(t, cfg.TLSConfig, "sslmode=disable kept")
		})
	}
}

func TestProxyDSNErrorsHideThePassword(t *testing.T) {
	for _, tc := range []struct{ name, dsn, addr string }{
		{name: "bad URL", dsn: "postgres://u:s3cret@bad host:5432/db", addr: "127.0.0.1:1"},
		{name: "bad proxy address", dsn: "postgres://u:s3cret@h:5432/db", addr: "no-port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proxyDSN(tc.dsn, tc.addr)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "s3cret")
		})
	}
	_, err := pgTarget("postgres://u:s3cret@h:notaport/db")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestPgTarget(t *testing.T) {
	for _, tc := range []struct{ name, dsn, want, err string }{
		{name: "URL", dsn: "postgres://u:pw@127.0.0.1:5432/db?sslmode=disable", want: "127.0.0.1:5432"},
		{name: "default port", dsn: "postgres://u:pw@db.example/db", want: "db.example:5432"},
		{name: "first of several hosts", dsn: "postgres://u:pw@h1:5433,h2:5434/db", want: "h1:5433"},
		{name: "unix socket", dsn: "host=/var/run/postgresql user=u dbname=db", err: "needs PostgreSQL over TCP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pgTarget(tc.dsn)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestNetworkValidate(t *testing.T) {
	tree := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(tree, "go.mod"), []byte("module x\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "cmd", "sinkworker"), 0o755))
	noWorker := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(noWorker, "go.mod"), []byte("module x\n"), 0o644))
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o644))

	ok := networkOptions{rttArg: "1ms,5ms", parts: 8, pairs: 2, batch: 5000}
	for _, tc := range []struct {
		name     string
		edit     func(*networkOptions)
		selected bool
		err      string // "" for none
	}{
		{name: "not selected needs no tree", edit: func(*networkOptions) {}},
		{name: "tree", edit: func(n *networkOptions) { n.baseline = tree }, selected: true},
		{name: "missing", edit: func(*networkOptions) {}, selected: true, err: "-network-baseline-root is required with -scenarios network"},
		{name: "nonexistent", edit: func(n *networkOptions) { n.baseline = filepath.Join(tree, "nope") }, selected: true, err: "nope: no such directory"},
		{name: "a file", edit: func(n *networkOptions) { n.baseline = file }, selected: true, err: "no such directory"},
		{name: "no worker", edit: func(n *networkOptions) { n.baseline = noWorker }, selected: true, err: "no cmd/sinkworker in it"},
		{name: "bad rtt", edit: func(n *networkOptions) { n.rttArg = "fast" }, err: "-network-rtt:"},
		{name: "no pairs", edit: func(n *networkOptions) { n.pairs = 0 }, err: "-network-pairs and -network-batch must be at least 1"},
		{name: "no batch", edit: func(n *networkOptions) { n.batch = 0 }, err: "-network-batch must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := ok
			tc.edit(&n)
			err := n.validate(tc.selected)
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, []time.Duration{time.Millisecond, 5 * time.Millisecond}, n.rtts)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func TestNetworkSummary(t *testing.T) {
	n := &networkResult{parts: 8, steps: []networkStep{
		{rtt: 0, measured: 60 * time.Microsecond, steadyRatios: []float64{1.01}, ratios: []float64{1}},
		{rtt: time.Millisecond, measured: 2390 * time.Microsecond, steadyRatios: []float64{1.2, 1.1, 1.4}, ratios: []float64{1, 1, 1}},
		{rtt: 5 * time.Millisecond},
	}}
	assert.Equal(t, "**network, new / old** records/s after start-up at 8 partitions (median): direct (SELECT 1 0.06 ms) **1.01** (1 pair); RTT 1ms (SELECT 1 2.39 ms) **1.20** (3 pairs)", n.summary())
}
