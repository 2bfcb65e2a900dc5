package sink

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/pool"
)

// minimalEnv is the smallest valid environment: only the required variables.
func minimalEnv() map[string]string {
	return map[string]string{
		"KAFKA_BROKERS": "127.0.0.1:9092",
		"KAFKA_TOPICS":  "orders",
		"DATABASE_URL":  "postgres://sink:pw@127.0.0.1:5432/sinkworker?sslmode=disable",
	}
}

// withEnv returns minimalEnv with overrides applied; a "-" value removes the
// variable.
func withEnv(overrides map[string]string) map[string]string {
	env := minimalEnv()
	for k, v := range overrides {
		if v == "-" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return env
}

// namedVars returns the environment variables an error from LoadConfig
// names: every line of it reads "VAR: problem" or "VAR1, VAR2: problem".
func namedVars(t *testing.T, err error) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, line := range strings.Split(err.Error(), "\n") {
		prefix, _, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		for _, v := range strings.Split(prefix, ", ") {
			if v != "" && strings.ToUpper(v) == v && !strings.ContainsAny(v, " \"") {
				seen[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(minimalEnv()))
	require.NoError(t, err)

	tests := []struct {
		variable string
		got      any
		want     any
	}{
		{variable: "KAFKA_BROKERS", got: cfg.Brokers, want: []string{"127.0.0.1:9092"}},
		{variable: "KAFKA_TOPICS", got: cfg.Topics, want: []string{"orders"}},
		{variable: "DATABASE_URL", got: cfg.DatabaseURL, want: "postgres://sink:pw@127.0.0.1:5432/sinkworker?sslmode=disable"},
		{variable: "KAFKA_GROUP", got: cfg.Group, want: "sinkworker"},
		{variable: "KAFKA_START_OFFSET", got: cfg.StartOffset, want: "earliest"},
		{variable: "KAFKA_ISOLATION_LEVEL", got: cfg.IsolationLevel, want: IsolationReadCommitted},
		{variable: "KAFKA_SESSION_TIMEOUT", got: cfg.SessionTimeout, want: 45 * time.Second},
		{variable: "KAFKA_SASL_MECHANISM", got: cfg.SASL.Mechanism, want: ""},
		{variable: "KAFKA_SASL_USERNAME", got: cfg.SASL.Username, want: ""},
		{variable: "KAFKA_SASL_PASSWORD", got: cfg.SASL.Password, want: ""},
		{variable: "KAFKA_TLS_ENABLED", got: cfg.TLS.Enabled, want: false},
		{variable: "KAFKA_TLS_CA_FILE", got: cfg.TLS.CAFile, want: ""},
		{variable: "KAFKA_TLS_CERT_FILE", got: cfg.TLS.CertFile, want: ""},
		{variable: "KAFKA_TLS_KEY_FILE", got: cfg.TLS.KeyFile, want: ""},
		{variable: "SINK_TABLE_MAP", got: len(cfg.TableMap), want: 0},
		{variable: "SINK_MODE", got: cfg.Mode, want: ModeUpsert},
		{variable: "SINK_MAPPING", got: cfg.Mapping, want: "jsonb"},
		{variable: "SINK_DELETE_ON_TOMBSTONE", got: cfg.DeleteOnTombstone, want: true},
		{variable: "SINK_MAX_RECORD_BYTES", got: cfg.MaxRecordBytes, want: 4194304},
		{variable: "SINK_BUFFER_MAX_BYTES", got: cfg.BufferMaxBytes, want: 64 << 20},
		{variable: "KAFKA_FETCH_MAX_PARTITION_BYTES", got: cfg.FetchMaxPartitionBytes, want: int32(256 << 10)},
		{variable: "HTTP_PPROF", got: cfg.HTTPPprof, want: false},
		{variable: "SINK_OFFSETS_TABLE", got: cfg.OffsetsTable, want: "sink_offsets"},
		{variable: "SINK_MEMBER", got: cfg.Member, want: ""},
		{variable: "BATCH_MAX_RECORDS", got: cfg.Batch.MaxRecords, want: 5000},
		{variable: "BATCH_MAX_BYTES", got: cfg.Batch.MaxBytes, want: 4194304},
		{variable: "BATCH_LINGER", got: cfg.Batch.Linger, want: 100 * time.Millisecond},
		{variable: "POOL_MAX_CONNS", got: cfg.Pool.MaxConns, want: pool.Auto},
		{variable: "ERROR_POLICY", got: cfg.ErrorPolicy, want: "dlq"},
		{variable: "DLQ_TOPIC", got: cfg.DLQTopic, want: ""},
		{variable: "HTTP_ADDR", got: cfg.HTTPAddr, want: ":9090"},
		{variable: "SHUTDOWN_TIMEOUT", got: cfg.ShutdownTimeout, want: 30 * time.Second},
		{variable: "KAFKA_GROUP_PROTOCOL", got: cfg.GroupProtocol, want: "classic"},
		{variable: "SINK_TX_IDLE_TIMEOUT", got: cfg.TxIdleTimeout, want: 60 * time.Second},
		{variable: "SINK_TX_TIMEOUT", got: cfg.TxTimeout, want: 60 * time.Second},
		{variable: "LOG_LEVEL", got: cfg.LogLevel, want: "info"},
		{variable: "LOG_FORMAT", got: cfg.LogFormat, want: "json"},
	}
	for _, tt := range tests {
		t.Run(tt.variable, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
	t.Run("unmapped topic table", func(t *testing.T) {
		assert.Equal(t, pgx.Identifier{"orders"}, cfg.Table("orders"))
	})
	t.Run("offsets table", func(t *testing.T) {
		assert.Equal(t, pgx.Identifier{"sink_offsets"}, cfg.offsetsTable())
	})
}

func TestLoadConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, cfg Config)
	}{
		{
			name: "table map",
			env:  map[string]string{"KAFKA_TOPICS": "a,b,c", "SINK_TABLE_MAP": "a=x,b=s.y"},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, map[string]string{"a": "x", "b": "s.y"}, cfg.TableMap)
				assert.Equal(t, pgx.Identifier{"x"}, cfg.Table("a"))
				assert.Equal(t, pgx.Identifier{"s", "y"}, cfg.Table("b"))
				assert.Equal(t, pgx.Identifier{"c"}, cfg.Table("c"), "unlisted topic uses its own name")
			},
		},
		{
			name: "table map with a hostile name",
			env:  map[string]string{"KAFKA_TOPICS": "a", "SINK_TABLE_MAP": `a=we"ird; DROP TABLE x;--`},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, `"we""ird; DROP TABLE x;--"`, cfg.Table("a").Sanitize())
			},
		},
		{
			name: "unmapped topic sanitised",
			env:  map[string]string{"KAFKA_TOPICS": "Orders.v1,9-lives"},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, pgx.Identifier{"orders_v1"}, cfg.Table("Orders.v1"))
				assert.Equal(t, pgx.Identifier{"t_9_lives"}, cfg.Table("9-lives"))
			},
		},
		{
			name: "consumer group protocol",
			env:  map[string]string{"KAFKA_GROUP_PROTOCOL": "consumer"},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, GroupProtocolConsumer, cfg.GroupProtocol)
			},
		},
		{
			name: "adaptive pool",
			env:  map[string]string{"POOL_MAX_CONNS": "auto"},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, pool.Auto, cfg.Pool.MaxConns)
			},
		},
		{
			name: "lists",
			env:  map[string]string{"KAFKA_BROKERS": "a:1,b:2", "KAFKA_TOPICS": "t1,t2"},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, []string{"a:1", "b:2"}, cfg.Brokers)
				assert.Equal(t, []string{"t1", "t2"}, cfg.Topics)
			},
		},
		{
			name: "every setting",
			env: map[string]string{
				"KAFKA_GROUP": "g1", "KAFKA_START_OFFSET": "latest", "KAFKA_SESSION_TIMEOUT": "10s",
				"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
				"KAFKA_TLS_ENABLED": "true", "KAFKA_TLS_CA_FILE": "/ca.pem",
				"KAFKA_TLS_CERT_FILE": "/c.pem", "KAFKA_TLS_KEY_FILE": "/k.pem",
				"SINK_MODE": "insert", "SINK_MAPPING": "columns", "SINK_DELETE_ON_TOMBSTONE": "false",
				"SINK_MAX_RECORD_BYTES": "1024", "SINK_OFFSETS_TABLE": "ops.offsets", "SINK_BUFFER_MAX_BYTES": "2097152",
				"HTTP_PPROF": "true", "KAFKA_FETCH_MAX_PARTITION_BYTES": "65536",
				"SINK_MEMBER": "pod-1", "BATCH_MAX_RECORDS": "10", "BATCH_MAX_BYTES": "2048", "BATCH_LINGER": "0s",
				"POOL_MAX_CONNS": "3", "ERROR_POLICY": "stop", "DLQ_TOPIC": "dead", "HTTP_ADDR": "",
				"SHUTDOWN_TIMEOUT": "5s", "LOG_LEVEL": "debug", "LOG_FORMAT": "text", "SINK_TX_IDLE_TIMEOUT": "0s",
			},
			check: func(t *testing.T, cfg Config) {
				assert.Equal(t, "g1", cfg.Group)
				assert.Zero(t, cfg.TxIdleTimeout, "0 leaves the server's setting")
				assert.Equal(t, "latest", cfg.StartOffset)
				assert.Equal(t, 10*time.Second, cfg.SessionTimeout)
				assert.Equal(t, SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}, cfg.SASL)
				assert.Equal(t, TLSConfig{Enabled: true, CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"}, cfg.TLS)
				assert.Equal(t, ModeInsert, cfg.Mode)
				assert.Equal(t, MappingColumns, cfg.Mapping)
				assert.False(t, cfg.DeleteOnTombstone)
				assert.Equal(t, 1024, cfg.MaxRecordBytes)
				assert.Equal(t, 2<<20, cfg.BufferMaxBytes)
				assert.True(t, cfg.HTTPPprof)
				assert.Equal(t, int32(65536), cfg.FetchMaxPartitionBytes)
				assert.Equal(t, pgx.Identifier{"ops", "offsets"}, cfg.offsetsTable())
				assert.Equal(t, "pod-1", cfg.Member)
				assert.Equal(t, 10, cfg.Batch.MaxRecords)
				assert.Equal(t, 2048, cfg.Batch.MaxBytes)
				assert.Zero(t, cfg.Batch.Linger)
				assert.Equal(t, pool.Conns(3), cfg.Pool.MaxConns)
				assert.Equal(t, "stop", cfg.ErrorPolicy)
				assert.Equal(t, "dead", cfg.DLQTopic)
				assert.Empty(t, cfg.HTTPAddr, "an empty HTTP_ADDR disables HTTP")
				assert.Equal(t, 5*time.Second, cfg.ShutdownTimeout)
				assert.Equal(t, "debug", cfg.LogLevel)
				assert.Equal(t, "text", cfg.LogFormat)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string // overrides of minimalEnv; "-" removes
		wantBad []string          // exactly the variables the error names
	}{
		{
			name:    "nothing set",
			env:     map[string]string{"KAFKA_BROKERS": "-", "KAFKA_TOPICS": "-", "DATABASE_URL": "-"},
			wantBad: []string{"DATABASE_URL", "KAFKA_BROKERS", "KAFKA_TOPICS"},
		},
		{
			name: "many bad values at once",
			env: map[string]string{
				"KAFKA_BROKERS":                   "localhost",
				"KAFKA_TOPICS":                    "bad topic!",
				"KAFKA_GROUP":                     "",
				"KAFKA_START_OFFSET":              "middle",
				"KAFKA_ISOLATION_LEVEL":           "dirty",
				"KAFKA_SESSION_TIMEOUT":           "10ms",
				"KAFKA_GROUP_PROTOCOL":            "eager",
				"KAFKA_SASL_MECHANISM":            "GSSAPI",
				"DATABASE_URL":                    "postgres://sink:pw@127.0.0.1:notaport/db",
				"SINK_TABLE_MAP":                  "elsewhere=x",
				"SINK_MODE":                       "merge",
				"SINK_MAPPING":                    "rows",
				"SINK_MAX_RECORD_BYTES":           "0",
				"SINK_BUFFER_MAX_BYTES":           "1000",
				"KAFKA_FETCH_MAX_PARTITION_BYTES": "10",
				"SINK_OFFSETS_TABLE":              "a.b.c",
				"SINK_MEMBER":                     strings.Repeat("m", 33),
				"BATCH_MAX_RECORDS":               "0",
				"BATCH_MAX_BYTES":                 "-1",
				"BATCH_LINGER":                    "-1s",
				"POOL_MAX_CONNS":                  "0",
				"ERROR_POLICY":                    "ignore",
				"DLQ_TOPIC":                       "bad dlq!",
				"HTTP_ADDR":                       "9090",
				"SHUTDOWN_TIMEOUT":                "0s",
				"SINK_TX_IDLE_TIMEOUT":            "30s",
				"LOG_LEVEL":                       "loud",
				"LOG_FORMAT":                      "xml",
			},
			wantBad: []string{
				"BATCH_LINGER", "BATCH_MAX_BYTES", "BATCH_MAX_RECORDS", "DATABASE_URL", "DLQ_TOPIC",
				"ERROR_POLICY", "HTTP_ADDR", "KAFKA_BROKERS", "KAFKA_FETCH_MAX_PARTITION_BYTES", "KAFKA_GROUP", "KAFKA_GROUP_PROTOCOL", "KAFKA_ISOLATION_LEVEL",
				"KAFKA_SASL_MECHANISM", "KAFKA_SESSION_TIMEOUT", "KAFKA_START_OFFSET", "KAFKA_TOPICS", "LOG_FORMAT", "LOG_LEVEL",
				"POOL_MAX_CONNS", "SHUTDOWN_TIMEOUT", "SINK_BUFFER_MAX_BYTES", "SINK_MAPPING", "SINK_MAX_RECORD_BYTES", "SINK_MEMBER",
				"SINK_MODE", "SINK_OFFSETS_TABLE", "SINK_TABLE_MAP", "SINK_TX_IDLE_TIMEOUT",
			},
		},
		{
			name: "unparsable values reported together",
			env: map[string]string{
				"BATCH_MAX_RECORDS": "abc",
				"SHUTDOWN_TIMEOUT":  "x",
				"KAFKA_TLS_ENABLED": "maybe",
			},
			wantBad: []string{"BATCH_MAX_RECORDS", "KAFKA_TLS_ENABLED", "SHUTDOWN_TIMEOUT"},
		},
		{
			name:    "a negative pool size is not auto",
			env:     map[string]string{"POOL_MAX_CONNS": "-1"},
			wantBad: []string{"POOL_MAX_CONNS"},
		},
		{
			name: "every kind of unparsable value",
			env: map[string]string{
				"KAFKA_SESSION_TIMEOUT":    "forever",
				"KAFKA_TLS_ENABLED":        "maybe",
				"SINK_TABLE_MAP":           "orders",
				"SINK_DELETE_ON_TOMBSTONE": "perhaps",
				"SINK_MAX_RECORD_BYTES":    "4M",
				"BATCH_MAX_RECORDS":        "abc",
				"BATCH_MAX_BYTES":          "4MiB",
				"BATCH_LINGER":             "soon",
				"POOL_MAX_CONNS":           "lots",
				"SHUTDOWN_TIMEOUT":         "x",
			},
			wantBad: []string{
				"BATCH_LINGER", "BATCH_MAX_BYTES", "BATCH_MAX_RECORDS", "KAFKA_SESSION_TIMEOUT",
				"KAFKA_TLS_ENABLED", "POOL_MAX_CONNS", "SHUTDOWN_TIMEOUT", "SINK_DELETE_ON_TOMBSTONE",
				"SINK_MAX_RECORD_BYTES", "SINK_TABLE_MAP",
			},
		},
		{
			name: "unparsable and invalid together",
			env: map[string]string{
				"BATCH_MAX_RECORDS": "abc",
				"SINK_MODE":         "merge",
				"KAFKA_TOPICS":      "-",
			},
			wantBad: []string{"BATCH_MAX_RECORDS", "KAFKA_TOPICS", "SINK_MODE"},
		},
		{
			name:    "session timeout under the consumer protocol",
			env:     map[string]string{"KAFKA_GROUP_PROTOCOL": "consumer", "KAFKA_SESSION_TIMEOUT": "45s"},
			wantBad: []string{"KAFKA_SESSION_TIMEOUT"},
		},
		{
			name:    "TLS files without TLS and a cert without a key",
			env:     map[string]string{"KAFKA_TLS_CERT_FILE": "/c.pem"},
			wantBad: []string{"KAFKA_TLS_CERT_FILE", "KAFKA_TLS_ENABLED", "KAFKA_TLS_KEY_FILE"},
		},
		{
			name:    "SASL mechanism without credentials",
			env:     map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN"},
			wantBad: []string{"KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME"},
		},
		{
			name:    "table map entry with too many dots",
			env:     map[string]string{"SINK_TABLE_MAP": "orders=a.b.c"},
			wantBad: []string{"SINK_TABLE_MAP"},
		},
		{
			name:    "offsets table with an empty part",
			env:     map[string]string{"SINK_OFFSETS_TABLE": "ops."},
			wantBad: []string{"SINK_OFFSETS_TABLE"},
		},
		{
			name:    "topics and a pattern both, a bad table format",
			env:     map[string]string{"KAFKA_TOPICS_REGEX": "a.*", "SINK_TABLE_FORMAT": "x_${source.db}"},
			wantBad: []string{"KAFKA_TOPICS", "KAFKA_TOPICS_REGEX", "SINK_TABLE_FORMAT"},
		},
		{
			name:    "a pattern that does not compile, a truncate without the envelope, an unknown envelope",
			env:     map[string]string{"KAFKA_TOPICS": "-", "KAFKA_TOPICS_REGEX": "a(", "SINK_TRUNCATE": "true"},
			wantBad: []string{"KAFKA_TOPICS_REGEX", "SINK_TRUNCATE"},
		},
		{
			name:    "an unknown envelope",
			env:     map[string]string{"SINK_ENVELOPE": "maxwell"},
			wantBad: []string{"SINK_ENVELOPE"},
		},
		{
			name: "formats: unknown names and a bad evolution",
			env: map[string]string{"SINK_KEY_FORMAT": "xml", "SINK_VALUE_FORMAT": "thrift",
				"SINK_SCHEMA_EVOLUTION": "drop-columns"},
			wantBad: []string{"SINK_KEY_FORMAT", "SINK_SCHEMA_EVOLUTION", "SINK_VALUE_FORMAT"},
		},
		{
			name:    "a registry format without a registry",
			env:     map[string]string{"SINK_VALUE_FORMAT": "avro"},
			wantBad: []string{"SCHEMA_REGISTRY_URL"},
		},
		{
			name:    "half the registry's credentials",
			env:     map[string]string{"SCHEMA_REGISTRY_URL": "http://r:8081", "SCHEMA_REGISTRY_USERNAME": "u"},
			wantBad: []string{"SCHEMA_REGISTRY_PASSWORD", "SCHEMA_REGISTRY_USERNAME"},
		},
		{
			name: "registry URL that is not http, a CA file that does not exist",
			env: map[string]string{"SINK_VALUE_FORMAT": "protobuf", "SCHEMA_REGISTRY_URL": "ftp://r",
				"SCHEMA_REGISTRY_TLS_CA_FILE": "/nonexistent/ca.pem"},
			wantBad: []string{"SCHEMA_REGISTRY_TLS_CA_FILE", "SCHEMA_REGISTRY_URL"},
		},
		{
			name: "add-columns and SINK_PRIMARY_KEY outside columns mapping; string values in columns mapping",
			env: map[string]string{"SINK_SCHEMA_EVOLUTION": "add-columns", "SINK_PRIMARY_KEY": "id",
				"SINK_VALUE_FORMAT": "string", "SINK_MAPPING": "columns", "SINK_MODE": "insert"},
			wantBad: []string{"SINK_PRIMARY_KEY", "SINK_SCHEMA_EVOLUTION", "SINK_VALUE_FORMAT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrConfig)
			assert.Equal(t, tt.wantBad, namedVars(t, err), "variables named in:\n%v", err)
			assert.Equal(t, Config{}, cfg, "no partial config on error")
		})
	}
}

func TestLoadConfigErrorsHideSecrets(t *testing.T) {
	const (
		dbSecret   = "Hunter2-db-Secret"
		saslSecret = "Hunter2-sasl-Secret"
	)
	tests := []struct {
		name    string
		env     map[string]string
		wantBad []string
	}{
		{
			name:    "invalid url with a password",
			env:     map[string]string{"DATABASE_URL": "postgres://sink:" + dbSecret + "@127.0.0.1:notaport/db"},
			wantBad: []string{"DATABASE_URL"},
		},
		{
			name:    "invalid keyword DSN with a password",
			env:     map[string]string{"DATABASE_URL": "host=127.0.0.1 port=notaport password=" + dbSecret},
			wantBad: []string{"DATABASE_URL"},
		},
		{
			name:    "invalid DSN with an unterminated quoted password",
			env:     map[string]string{"DATABASE_URL": "host=127.0.0.1 password='" + dbSecret},
			wantBad: []string{"DATABASE_URL"},
		},
		{
			name: "registry credentials in the URL",
			env: map[string]string{"SINK_VALUE_FORMAT": "avro",
				"SCHEMA_REGISTRY_URL": "https://sink:" + dbSecret + "@registry:8081"},
			wantBad: []string{"SCHEMA_REGISTRY_URL"},
		},
		{
			name: "registry password with a bad URL",
			env: map[string]string{"SINK_VALUE_FORMAT": "avro", "SCHEMA_REGISTRY_URL": "registry:8081/" + dbSecret,
				"SCHEMA_REGISTRY_USERNAME": "u", "SCHEMA_REGISTRY_PASSWORD": saslSecret},
			wantBad: []string{"SCHEMA_REGISTRY_URL"},
		},
		{
			name: "SASL password with an unknown mechanism",
			env: map[string]string{
				"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": saslSecret,
			},
			wantBad: []string{"KAFKA_SASL_MECHANISM"},
		},
		{
			name:    "SASL password without a username",
			env:     map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_PASSWORD": saslSecret},
			wantBad: []string{"KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME"},
		},
		{
			name: "both secrets among unparsable values",
			env: map[string]string{
				"DATABASE_URL":         "postgres://sink:" + dbSecret + "@127.0.0.1:notaport/db",
				"KAFKA_SASL_MECHANISM": "SCRAM-SHA-1", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": saslSecret,
				"SHUTDOWN_TIMEOUT": "x", "KAFKA_TLS_ENABLED": "maybe",
			},
			wantBad: []string{"DATABASE_URL", "KAFKA_SASL_MECHANISM", "KAFKA_TLS_ENABLED", "SHUTDOWN_TIMEOUT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrConfig)
			assert.Equal(t, tt.wantBad, namedVars(t, err), "variables named in:\n%v", err)
			assert.NotContains(t, err.Error(), dbSecret)
			assert.NotContains(t, err.Error(), saslSecret)
			if dsn, ok := tt.env["DATABASE_URL"]; ok {
				assert.NotContains(t, err.Error(), dsn, "the DSN itself is never echoed")
			}
		})
	}
}

// TestTableFormat: SINK_TABLE_FORMAT's variables take sanitised parts of
// the topic name; SINK_TABLE_MAP still wins.
func TestTableFormat(t *testing.T) {
	cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(map[string]string{
		"KAFKA_TOPICS": "-", "KAFKA_TOPICS_REGEX": `src\..*`, "SINK_TABLE_FORMAT": "${source.schema}.cdc_${source.table}",
		"SINK_TABLE_MAP": "src.public.special=elsewhere",
	})))
	require.NoError(t, err)
	assert.Equal(t, pgx.Identifier{"public", "cdc_order_items"}, cfg.Table("src.public.Order-Items"))
	assert.Equal(t, pgx.Identifier{"elsewhere"}, cfg.Table("src.public.special"))
	assert.Equal(t, "^(?:src\\..*)$", cfg.TopicsPattern())
	assert.Equal(t, "t_x", expandTableFormat("t_${topic}", "X"))
	assert.Equal(t, "_x", expandTableFormat("${source.schema}_${source.table}", "x"), "a topic without dots has no schema")
}
