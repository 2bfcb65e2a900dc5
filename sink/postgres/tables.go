package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// MaxIdentLen is PostgreSQL's NAMEDATALEN-1, in bytes: longer names are
// truncated by the server, so two long names could silently become one
// table.
const MaxIdentLen = 63

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// TableName is the table an unmapped topic sinks into: the topic lower-cased
// with every run of characters outside [a-z0-9_] turned into "_", prefixed
// with "t_" when it does not start with a letter or "_", and cut to 63 bytes.
// "orders.v1" becomes orders_v1.
func TableName(topic string) string {
	name := nonIdent.ReplaceAllString(strings.ToLower(topic), "_")
	if name == "" || !(name[0] == '_' || name[0] >= 'a' && name[0] <= 'z') {
		name = "t_" + name
	}
	if len(name) > MaxIdentLen {
		name = name[:MaxIdentLen]
	}
	return name
}

// ParseIdentifier reads a table name as given in SINK_TABLE_MAP or
// SINK_OFFSETS_TABLE: "table" or "schema.table". Parts are taken literally
// (case and all) and always quoted when used, so any name is safe in SQL; a
// part must be 1-63 bytes of valid UTF-8 without NUL.
func ParseIdentifier(s string) (pgx.Identifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%q: want table or schema.table", s)
	}
	for _, p := range parts {
		switch {
		case p == "":
			return nil, fmt.Errorf("%q: empty name", s)
		case len(p) > MaxIdentLen:
			return nil, fmt.Errorf("%q: a name is longer than %d bytes", s, MaxIdentLen)
		case !utf8.ValidString(p) || strings.ContainsRune(p, 0):
			return nil, errors.New("a name is not valid UTF-8 text")
		}
	}
	return pgx.Identifier(parts), nil
}

// ddlLockKey serialises table creation across workers starting together:
// concurrent CREATE TABLE IF NOT EXISTS can fail on pg_type's unique index.
const ddlLockKey = 0x73696e6b // "sink"

// EnsureTables creates, if missing, the offsets table and, in
// SINK_MAPPING=jsonb, each topic's table in the shape of the configured mode
// (README, "Tables"), in one transaction. In SINK_MAPPING=columns the tables are
// the user's and must exist.
func EnsureTables(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, c Config) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	stmts := []string{
		fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", ddlLockKey),
		createOffsetsTable(c.OffsetsTable),
	}
	for _, topic := range c.Topics {
		if c.Mapping != decode.MappingColumns {
			stmts = append(stmts, createTable(c.Table(topic), c.Mode, c.valueType()))
		}
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	return nil
}

// valueType is the type of a jsonb-mapped table's value column: text for
// SINK_VALUE_FORMAT=string, else jsonb.
func (c Config) valueType() string {
	if c.TextValues {
		return "text"
	}
	return "jsonb"
}

func createTable(table pgx.Identifier, mode decode.Mode, valueType string) string {
	if mode == decode.ModeInsert {
		return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	kafka_topic text NOT NULL,
	kafka_partition int NOT NULL,
	kafka_offset bigint NOT NULL,
	key text,
	value %s,
	kafka_timestamp timestamptz,
	PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset))`, table.Sanitize(), valueType)
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	key text PRIMARY KEY,
	value %s NOT NULL,
	kafka_partition int,
	kafka_offset bigint,
	kafka_timestamp timestamptz,
	updated_at timestamptz)`, table.Sanitize(), valueType)
}
