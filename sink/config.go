package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// Mapping values of SINK_MAPPING (decode.Mapping).
const (
	MappingJSONB   = string(decode.MappingJSONB)   // the whole value in one jsonb column
	MappingColumns = string(decode.MappingColumns) // JSON object fields onto the table's columns
)

// Mode values of SINK_MODE (decode.Mode).
const (
	ModeUpsert = string(decode.ModeUpsert) // one row per record key, the highest offset wins
	ModeInsert = string(decode.ModeInsert) // one row per record, keyed by topic, partition, offset
)

// Group protocols of KAFKA_GROUP_PROTOCOL.
const (
	GroupProtocolClassic  = "classic"  // JoinGroup/SyncGroup, cooperative-sticky
	GroupProtocolConsumer = "consumer" // KIP-848, the broker assigns
)

// Isolation levels of KAFKA_ISOLATION_LEVEL.
const (
	// IsolationReadCommitted reads only records of committed transactions
	// (and non-transactional ones), up to the last stable offset.
	IsolationReadCommitted = "read_committed"
	// IsolationReadUncommitted also reads records of open and aborted
	// transactions: unsafe, aborted records land in the table.
	IsolationReadUncommitted = "read_uncommitted"
)

// Config is the whole worker's configuration. go-envconfig fills it from the
// environment names in the tags (see the README, "Settings"); tests build it
// directly. Validate names every problem at once.
type Config struct {
	// Brokers are the Kafka seed brokers, host:port. Required.
	Brokers []string `env:"KAFKA_BROKERS"`
	// Topics are the topics to sink; TopicsRegex instead subscribes to
	// every topic whose whole name matches it (new ones included). One of
	// the two is required.
	Topics      []string `env:"KAFKA_TOPICS"`
	TopicsRegex string   `env:"KAFKA_TOPICS_REGEX"`
	// TableFormat names the table of a topic SINK_TABLE_MAP does not list:
	// ${topic}, ${source.schema} and ${source.table} (Debezium's
	// <prefix>.<schema>.<table> topic names) are replaced by their
	// sanitised values. Empty: postgres.TableName(topic).
	TableFormat string `env:"SINK_TABLE_FORMAT"`
	// Group is the consumer group id, also the key of the offsets rows.
	Group string `env:"KAFKA_GROUP, default=sinkworker"`
	// StartOffset is where a partition starts when neither the database
	// nor Kafka has an offset for it: "earliest" or "latest".
	StartOffset string `env:"KAFKA_START_OFFSET, default=earliest"`
	// IsolationLevel is IsolationReadCommitted (the default: records of
	// aborted transactions are never applied) or IsolationReadUncommitted
	// (unsafe: they are).
	IsolationLevel string `env:"KAFKA_ISOLATION_LEVEL, default=read_committed"`
	// SessionTimeout is how long the group waits for a silent member
	// (a crashed or frozen process) before moving its partitions. Kafka
	// bounds it with group.min/max.session.timeout.ms (6s-30m by default).
	SessionTimeout time.Duration `env:"KAFKA_SESSION_TIMEOUT, default=45s"`
	// GroupProtocol is the consumer-group protocol: "classic" (JoinGroup
	// and SyncGroup, the cooperative-sticky balancer run by the members) or
	// "consumer" (KIP-848, Kafka 4.0+: the broker assigns partitions
	// incrementally and no rebalance stops the whole group). Under
	// "consumer" the group's session timeout is the broker's group config
	// consumer.session.timeout.ms, so KAFKA_SESSION_TIMEOUT must not be set,
	// as Kafka's Java client refuses session.timeout.ms there. A broker
	// without KIP-848 gets the classic protocol.
	GroupProtocol string `env:"KAFKA_GROUP_PROTOCOL, default=classic"`
	// FetchMaxPartitionBytes caps what one fetch returns for one partition
	// (Kafka's max.partition.fetch.bytes; 1 MiB there). A partition may
	// overshoot its share of SINK_BUFFER_MAX_BYTES by one such fetch,
	// decompressed, so the default is smaller: 256 KiB.
	FetchMaxPartitionBytes int32 `env:"KAFKA_FETCH_MAX_PARTITION_BYTES, default=262144"`
	// SASL and TLS settings for the brokers.
	SASL SASLConfig
	TLS  TLSConfig

	// DatabaseURL is the pgx connection string. Required. Never logged.
	DatabaseURL string `env:"DATABASE_URL"`
	// TableMap maps topics to tables ("topic=table,..."; a table may be
	// schema-qualified). Unlisted topics use postgres.TableName(topic).
	TableMap map[string]string `env:"SINK_TABLE_MAP, separator=="`
	// Mode is ModeUpsert or ModeInsert.
	Mode string `env:"SINK_MODE, default=upsert"`
	// Mapping is "jsonb" (the whole value in one column) or "columns".
	Mapping string `env:"SINK_MAPPING, default=jsonb"`
	// KeyFormat and ValueFormat say how keys and values are read
	// (decode.Format): json, string, connect-json, avro, protobuf or
	// json-schema.
	KeyFormat   string `env:"SINK_KEY_FORMAT, default=json"`
	ValueFormat string `env:"SINK_VALUE_FORMAT, default=json"`
	// Registry is the schema registry of the avro, protobuf and json-schema
	// formats.
	Registry RegistrySettings
	// SchemaEvolution is "none" (fields no column takes are ignored and
	// counted) or "add-columns" (a field new to a typed format's schema adds
	// a nullable column).
	SchemaEvolution string `env:"SINK_SCHEMA_EVOLUTION, default=none"`
	// PrimaryKey names the value fields that make a row's primary key in
	// upsert mode (Connect's pk.mode=record_value); empty: the record key.
	PrimaryKey []string `env:"SINK_PRIMARY_KEY"`
	// Envelope is "none" (the value is the row) or "debezium" (a change
	// event: op, before, after, source).
	Envelope string `env:"SINK_ENVELOPE, default=none"`
	// Truncate applies a Debezium truncate as TRUNCATE of the table in
	// upsert mode; when false truncates are counted and skipped. Insert
	// mode (a change log) writes a truncate as a row whatever it says.
	Truncate bool `env:"SINK_TRUNCATE, default=false"`
	// DeleteOnTombstone makes a null value delete its key's row in upsert
	// mode; when false tombstones are skipped and counted.
	DeleteOnTombstone bool `env:"SINK_DELETE_ON_TOMBSTONE, default=true"`
	// MaxRecordBytes dead-letters (class too_large) a record whose key and
	// value exceed it. Default 4 MiB.
	MaxRecordBytes int `env:"SINK_MAX_RECORD_BYTES, default=4194304"`
	// BufferMaxBytes bounds the memory of records fetched and not yet
	// written, across all assigned partitions: each partition gets an equal
	// share and pauses its fetching when it holds more (records count for
	// their key, value and a fixed overhead, see heldSize). Default 64 MiB.
	BufferMaxBytes int `env:"SINK_BUFFER_MAX_BYTES, default=67108864"`
	// OffsetsTable is where consumed offsets live (may be schema-qualified).
	OffsetsTable string `env:"SINK_OFFSETS_TABLE, default=sink_offsets"`
	// Member names this process in application_name and the Kafka client
	// id: short, at most 32 bytes. Empty means the host (pod) name, else a
	// random 8-character id (main fills it in).
	Member string `env:"SINK_MEMBER"`

	Batch batch.Policy
	Pool  pool.Config

	// ErrorPolicy is "dlq" or "stop".
	ErrorPolicy string `env:"ERROR_POLICY, default=dlq"`
	// SystemicRejects is when database rejections stop being dead-lettered
	// and halt the partition as systemic (postgres.SystemicError): this many records
	// of a partition rejected in a row with one SQLSTATE, or more than half
	// of a batch and at least this many. 0 never halts. Default 100.
	SystemicRejects int `env:"ERROR_SYSTEMIC_REJECTS, default=100"`
	// DLQTopic is the dead-letter topic; empty means "<topic>.dlq".
	DLQTopic string `env:"DLQ_TOPIC"`
	// HTTPAddr serves /metrics, /healthz and /readyz; empty disables it.
	HTTPAddr string `env:"HTTP_ADDR, default=:9090"`
	// HTTPPprof adds Go's /debug/pprof/ profiles to the HTTP server (off by
	// default: profiles reveal internals and cost CPU while taken).
	HTTPPprof bool `env:"HTTP_PPROF, default=false"`
	// ShutdownTimeout bounds the drain on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=30s"`
	// TxIdleTimeout ends a batch transaction whose worker stops talking to
	// the database mid-batch (frozen, or cut off by the network), which
	// would otherwise hold its partition's offsets row lock, and stall the
	// partition's new owner, until the server's TCP keepalive notices: two
	// hours by default. PostgreSQL's idle_in_transaction_session_timeout,
	// set for each batch transaction (so PgBouncer in transaction mode
	// passes it); 0 leaves the server's setting. A batch is idle in its
	// transaction only while it waits for the dead-letter topic, so it must
	// exceed dlq.DeliveryTimeout.
	TxIdleTimeout time.Duration `env:"SINK_TX_IDLE_TIMEOUT, default=60s"`
	// TxTimeout bounds one attempt at a batch: acquiring a connection, the
	// transaction with every statement (bisection included), the wait for
	// dead-letter acknowledgements and the commit; it also bounds each
	// read of the start offsets. An attempt past it is abandoned: its
	// connection is destroyed and the batch retried with backoff on a new
	// one, which fencing makes safe even when the commit's outcome is
	// unknown. The retry waits for the abandoned session's offsets row lock
	// until the server ends that session (SINK_TX_IDLE_TIMEOUT), so a hang
	// costs the partition about the longer of the two. It must exceed
	// dlq.DeliveryTimeout, which a batch may spend waiting inside its
	// transaction. Default 60s.
	TxTimeout time.Duration `env:"SINK_TX_TIMEOUT, default=60s"`
	// LogLevel is debug, info, warn or error; LogFormat json or text.
	LogLevel  string `env:"LOG_LEVEL, default=info"`
	LogFormat string `env:"LOG_FORMAT, default=json"`
}

// RegistrySettings reach a Confluent-API schema registry.
type RegistrySettings struct {
	URL      string `env:"SCHEMA_REGISTRY_URL"`
	Username string `env:"SCHEMA_REGISTRY_USERNAME"`
	// Password is never logged.
	Password string `env:"SCHEMA_REGISTRY_PASSWORD"`
	// CAFile is a PEM file of the CA that signed an https registry's
	// certificate, trusted besides the system's roots.
	CAFile string `env:"SCHEMA_REGISTRY_TLS_CA_FILE"`
}

// Schema evolution values of SINK_SCHEMA_EVOLUTION.
const (
	EvolutionNone       = "none"
	EvolutionAddColumns = "add-columns"
)

// SASLConfig authenticates to the brokers; an empty Mechanism means none.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `env:"KAFKA_SASL_MECHANISM"`
	Username  string `env:"KAFKA_SASL_USERNAME"`
	// Password is never logged.
	Password string `env:"KAFKA_SASL_PASSWORD"`
}

// TLSConfig enables TLS to the brokers. Files are PEM.
type TLSConfig struct {
	Enabled  bool   `env:"KAFKA_TLS_ENABLED, default=false"`
	CAFile   string `env:"KAFKA_TLS_CA_FILE"`
	CertFile string `env:"KAFKA_TLS_CERT_FILE"`
	KeyFile  string `env:"KAFKA_TLS_KEY_FILE"`
}

// ErrConfig marks an error as a bad configuration: main exits 2 for it.
var ErrConfig = errors.New("invalid configuration")

// LoadConfig fills a Config from l (envconfig.OsLookuper() in main, a
// MapLookuper in tests) and validates it. Every problem is reported in one
// error that wraps ErrConfig, one line per variable, never with a secret's
// value.
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var (
		cfg    Config
		errs   []error
		masked = map[string]bool{}
	)
	// go-envconfig stops at the first value it cannot decode. To report all
	// of them, note which variable failed (the last one looked up), hide it
	// so its default applies, and decode again until nothing fails.
	for {
		var last string
		lookup := envconfig.LookuperFunc(func(key string) (string, bool) {
			last = key
			if masked[key] {
				return "", false
			}
			return l.Lookup(key)
		})
		cfg = Config{}
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: lookup})
		if err == nil {
			break
		}
		if last == "" || masked[last] {
			return Config{}, fmt.Errorf("%w: %w", ErrConfig, err) // a bug in the tags, not the input
		}
		masked[last] = true
		errs = append(errs, fmt.Errorf("%s: cannot parse this value", last))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, set := l.Lookup("KAFKA_SESSION_TIMEOUT"); set && cfg.GroupProtocol == GroupProtocolConsumer {
		errs = append(errs, errors.New("KAFKA_SESSION_TIMEOUT: not used with KAFKA_GROUP_PROTOCOL=consumer: "+
			"the group's session timeout is the broker's group config consumer.session.timeout.ms "+
			"(kafka-configs.sh --entity-type groups); unset it"))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w:\n%w", ErrConfig, errors.Join(errs...))
	}
	return cfg, nil
}

var memberRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// Validate names every bad field at once, by its environment variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Brokers) == 0 {
		bad("KAFKA_BROKERS: required (comma-separated host:port)")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("KAFKA_BROKERS: %q is not host:port", b)
		}
	}
	switch {
	case len(c.Topics) == 0 && c.TopicsRegex == "":
		bad("KAFKA_TOPICS: required (comma-separated topic names), or KAFKA_TOPICS_REGEX")
	case len(c.Topics) > 0 && c.TopicsRegex != "":
		bad("KAFKA_TOPICS, KAFKA_TOPICS_REGEX: set one of them, not both")
	case c.TopicsRegex != "":
		if _, err := regexp.Compile(c.TopicsRegex); err != nil {
			bad("KAFKA_TOPICS_REGEX: not a regular expression (Go RE2 syntax): %v", err)
		}
	}
	if c.TableFormat != "" {
		if _, err := postgres.ParseIdentifier(expandTableFormat(c.TableFormat, "t.s.x")); err != nil {
			bad("SINK_TABLE_FORMAT: %v", err)
		}
		if rest := tableFormatVar.ReplaceAllString(c.TableFormat, ""); strings.Contains(rest, "${") {
			bad("SINK_TABLE_FORMAT: only ${topic}, ${source.schema} and ${source.table} can be replaced")
		}
	}
	for _, t := range c.Topics {
		if !validTopic(t) {
			bad("KAFKA_TOPICS: %q is not a valid topic name", t)
		}
	}
	if c.Group == "" {
		bad("KAFKA_GROUP: must not be empty")
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		bad("KAFKA_START_OFFSET: must be earliest or latest, got %q", c.StartOffset)
	}
	if c.IsolationLevel != IsolationReadCommitted && c.IsolationLevel != IsolationReadUncommitted {
		bad("KAFKA_ISOLATION_LEVEL: must be read_committed or read_uncommitted, got %q", c.IsolationLevel)
	}
	if c.FetchMaxPartitionBytes < 1024 {
		bad("KAFKA_FETCH_MAX_PARTITION_BYTES: must be at least 1024, got %d", c.FetchMaxPartitionBytes)
	}
	if c.SessionTimeout < time.Second {
		bad("KAFKA_SESSION_TIMEOUT: must be at least 1s, got %s", c.SessionTimeout)
	}
	if c.GroupProtocol != GroupProtocolClassic && c.GroupProtocol != GroupProtocolConsumer {
		bad("KAFKA_GROUP_PROTOCOL: must be classic or consumer, got %q", c.GroupProtocol)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" { // else they would be silently unused
			bad("KAFKA_SASL_MECHANISM: required (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set")
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASL.Username == "" || c.SASL.Password == "" {
			bad("KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD: both required with KAFKA_SASL_MECHANISM")
		}
	default:
		bad("KAFKA_SASL_MECHANISM: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", c.SASL.Mechanism)
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.KeyFile != "") {
		bad("KAFKA_TLS_ENABLED: must be true when a KAFKA_TLS_*_FILE is set")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE: set both or neither")
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL: required (a pgx connection string)")
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		// The value holds a password: never echo it, nor pgx's error, which
		// quotes it redacted only on a best-effort basis. A file it names
		// (sslrootcert, sslcert, sslkey) is safe to name.
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			bad("DATABASE_URL: cannot read %s (named by sslrootcert, sslcert or sslkey): %v", pathErr.Path, pathErr.Err)
		} else {
			bad("DATABASE_URL: not a valid pgx connection string")
		}
	}
	for topic, table := range c.TableMap {
		if c.TopicsRegex == "" && !slices.Contains(c.Topics, topic) {
			bad("SINK_TABLE_MAP: topic %q is not in KAFKA_TOPICS", topic)
		}
		if re, err := regexp.Compile(c.TopicsPattern()); c.TopicsRegex != "" && err == nil && !re.MatchString(topic) {
			bad("SINK_TABLE_MAP: topic %q does not match KAFKA_TOPICS_REGEX", topic)
		}
		if _, err := postgres.ParseIdentifier(table); err != nil {
			bad("SINK_TABLE_MAP: %s: %v", topic, err)
		}
	}
	if c.Mode == ModeUpsert {
		// Two topics' keys in one upsert table would overwrite each other's
		// rows, and each partition's offsets would still say "applied".
		byTable := map[string]string{}
		for _, topic := range c.Topics {
			if t, ok := c.TableMap[topic]; ok {
				if _, err := postgres.ParseIdentifier(t); err != nil {
					continue // reported above
				}
			}
			table := c.Table(topic).Sanitize()
			if other, ok := byTable[table]; ok && other != topic {
				bad("SINK_TABLE_MAP: topics %q and %q both sink into table %s with SINK_MODE=upsert, where their keys "+
					"would overwrite each other: map one of them to another table", other, topic, table)
				continue
			}
			byTable[table] = topic
		}
	}
	if c.Mode != ModeUpsert && c.Mode != ModeInsert {
		bad("SINK_MODE: must be upsert or insert, got %q", c.Mode)
	}
	if c.Mapping != MappingJSONB && c.Mapping != MappingColumns {
		bad("SINK_MAPPING: must be jsonb or columns, got %q", c.Mapping)
	}
	c.validateFormats(bad)
	if c.MaxRecordBytes < 1 {
		bad("SINK_MAX_RECORD_BYTES: must be at least 1, got %d", c.MaxRecordBytes)
	}
	if c.BufferMaxBytes < 1<<20 {
		bad("SINK_BUFFER_MAX_BYTES: must be at least 1048576 (1 MiB), got %d", c.BufferMaxBytes)
	}
	if _, err := postgres.ParseIdentifier(c.OffsetsTable); err != nil {
		bad("SINK_OFFSETS_TABLE: %v", err)
	}
	if c.Member != "" && !memberRE.MatchString(c.Member) {
		bad("SINK_MEMBER: 1-32 characters of letters, digits, '.', '_' or '-', got %q", c.Member)
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Pool.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ErrorPolicy != "dlq" && c.ErrorPolicy != "stop" {
		bad("ERROR_POLICY: must be dlq or stop, got %q", c.ErrorPolicy)
	}
	if c.SystemicRejects < 0 {
		bad("ERROR_SYSTEMIC_REJECTS: must be 0 (never halt) or a positive count, got %d", c.SystemicRejects)
	}
	if c.DLQTopic != "" && !validTopic(c.DLQTopic) {
		bad("DLQ_TOPIC: %q is not a valid topic name", c.DLQTopic)
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("HTTP_ADDR: %q is not [host]:port", c.HTTPAddr)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT: must be positive, got %s", c.ShutdownTimeout)
	}
	if c.TxTimeout <= dlq.DeliveryTimeout {
		bad("SINK_TX_TIMEOUT: must be longer than the dead-letter delivery timeout %s, which a batch may spend "+
			"waiting inside its transaction (and longer than the database needs for a batch), got %s",
			dlq.DeliveryTimeout, c.TxTimeout)
	}
	if c.TxIdleTimeout != 0 && c.TxIdleTimeout <= dlq.DeliveryTimeout {
		bad("SINK_TX_IDLE_TIMEOUT: must be 0 (the server's setting) or longer than the dead-letter delivery timeout %s, got %s",
			dlq.DeliveryTimeout, c.TxIdleTimeout)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("LOG_LEVEL: must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT: must be json or text, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// validateFormats checks the formats, the registry and the settings that
// depend on them.
func (c Config) validateFormats(bad func(string, ...any)) {
	known := func(name, f string) bool {
		if f == "" || slices.Contains(decode.Formats, decode.Format(f)) { // "": json, as in a Config literal
			return true
		}
		names := make([]string, len(decode.Formats))
		for i, f := range decode.Formats {
			names[i] = string(f)
		}
		bad("%s: must be one of %s, got %q", name, strings.Join(names, ", "), f)
		return false
	}
	keyOK, valueOK := known("SINK_KEY_FORMAT", c.KeyFormat), known("SINK_VALUE_FORMAT", c.ValueFormat)
	key, value := decode.Format(c.KeyFormat), decode.Format(c.ValueFormat)
	needs := (keyOK && key.UsesRegistry()) || (valueOK && value.UsesRegistry())
	switch {
	case needs && c.Registry.URL == "":
		bad("SCHEMA_REGISTRY_URL: required with SINK_KEY_FORMAT or SINK_VALUE_FORMAT avro, protobuf or json-schema")
	case c.Registry.URL != "":
		if u, err := url.Parse(c.Registry.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("SCHEMA_REGISTRY_URL: not an http(s) URL") // never echoed: it may hold credentials
		} else if u.User != nil {
			bad("SCHEMA_REGISTRY_URL: put credentials in SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD, not in the URL")
		}
	}
	if (c.Registry.Username == "") != (c.Registry.Password == "") {
		bad("SCHEMA_REGISTRY_USERNAME, SCHEMA_REGISTRY_PASSWORD: set both or neither")
	}
	if (c.Registry.Username != "" || c.Registry.CAFile != "") && c.Registry.URL == "" {
		bad("SCHEMA_REGISTRY_URL: required when SCHEMA_REGISTRY_USERNAME or SCHEMA_REGISTRY_TLS_CA_FILE is set")
	}
	if c.Registry.CAFile != "" {
		if _, err := c.registryTLS(); err != nil {
			bad("SCHEMA_REGISTRY_TLS_CA_FILE: %v", err)
		}
	}
	if valueOK && value == decode.FormatString && c.Mapping == MappingColumns {
		bad("SINK_VALUE_FORMAT: string values go into one text column: use SINK_MAPPING=jsonb")
	}
	switch c.SchemaEvolution {
	case EvolutionNone, "":
	case EvolutionAddColumns:
		if c.Mapping != MappingColumns || !value.Typed() {
			bad("SINK_SCHEMA_EVOLUTION: add-columns needs SINK_MAPPING=columns and a SINK_VALUE_FORMAT with a schema " +
				"(connect-json, avro, protobuf, json-schema)")
		}
	default:
		bad("SINK_SCHEMA_EVOLUTION: must be none or add-columns, got %q", c.SchemaEvolution)
	}
	switch c.Envelope {
	case "", string(decode.EnvelopeNone):
		if c.Truncate {
			bad("SINK_TRUNCATE: applies Debezium truncates: set SINK_ENVELOPE=debezium, or leave it unset")
		}
	case string(decode.EnvelopeDebezium):
		if valueOK && value == decode.FormatString {
			bad("SINK_ENVELOPE: debezium reads change events, which SINK_VALUE_FORMAT=string cannot carry")
		}
	default:
		bad("SINK_ENVELOPE: must be none or debezium, got %q", c.Envelope)
	}
	if len(c.PrimaryKey) > 0 {
		switch {
		case c.Mode != ModeUpsert || c.Mapping != MappingColumns:
			bad("SINK_PRIMARY_KEY: takes a row's key from value fields in SINK_MODE=upsert with SINK_MAPPING=columns only")
		case slices.Contains(c.PrimaryKey, ""):
			bad("SINK_PRIMARY_KEY: an empty field name")
		}
	}
}

// registryTLS is the registry's TLS configuration: the system's roots plus
// SCHEMA_REGISTRY_TLS_CA_FILE; nil without a CA file.
func (c Config) registryTLS() (*tls.Config, error) {
	if c.Registry.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.Registry.CAFile)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// TopicsPattern is KAFKA_TOPICS_REGEX anchored to match whole topic names,
// as Kafka's pattern subscription does.
func (c Config) TopicsPattern() string { return "^(?:" + c.TopicsRegex + ")$" }

var tableFormatVar = regexp.MustCompile(`\$\{(topic|source\.schema|source\.table)\}`)

// expandTableFormat is SINK_TABLE_FORMAT for topic: each variable replaced
// by its value sanitised as postgres.TableName does (lower case, runs of
// other characters than [a-z0-9_] as "_"). ${source.schema} and
// ${source.table} are the last two dot-separated parts of the topic name,
// as Debezium names its topics (<topic.prefix>.<schema>.<table>); a topic
// with fewer parts gives "" for what it lacks.
func expandTableFormat(format, topic string) string {
	parts := strings.Split(topic, ".")
	part := func(fromEnd int) string {
		if len(parts) < fromEnd {
			return ""
		}
		return parts[len(parts)-fromEnd]
	}
	clean := func(s string) string { return nonIdent.ReplaceAllString(strings.ToLower(s), "_") }
	return tableFormatVar.ReplaceAllStringFunc(format, func(v string) string {
		switch v {
		case "${topic}":
			return clean(topic)
		case "${source.schema}":
			return clean(part(2))
		}
		return clean(part(1))
	})
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// validTopic follows Kafka's rule: 1-249 of [a-zA-Z0-9._-], not "." or "..".
func validTopic(t string) bool {
	return topicRE.MatchString(t) && t != "." && t != ".."
}

// SlogLevel is LogLevel as a slog.Level (info when invalid; Validate first).
func (c Config) SlogLevel() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl
}
