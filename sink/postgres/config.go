// Package postgres is everything of sinkworker that speaks SQL: the writer
// (one batch is one transaction that locks and advances the partition's
// row in the offsets table, isolates bad records by bisection and halts on
// systemic rejections), the tables and their DDL, the columns mapping, the
// role's privileges, the SQLSTATE classification, and the offsets table,
// whose schema and statements live in offsets.go only.
//
// Use: PrepareTables at start-up, LoadColumns per topic in SINK_MAPPING=
// columns, then one NewWriter per assigned partition, fed decode.Rows.
// It knows nothing of Kafka's client or of the pool: callers pass a
// connection (or anything with the few methods a function names).
package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// Config is the database side's configuration, built by the caller from
// its settings (sink.Config.Postgres); identifiers are parsed already.
type Config struct {
	// Group is the consumer group, the first key of the offsets rows.
	Group string
	// OffsetsTable is the offsets table (SINK_OFFSETS_TABLE).
	OffsetsTable pgx.Identifier
	// Topics are the consumed topics, in a stable order; Tables gives
	// each one's table.
	Topics []string
	Tables map[string]pgx.Identifier
	// Mode and Mapping are SINK_MODE and SINK_MAPPING.
	Mode    decode.Mode
	Mapping decode.Mapping
	// DeleteOnTombstone (SINK_DELETE_ON_TOMBSTONE) makes upsert tables
	// need DELETE.
	DeleteOnTombstone bool
	// StopOnReject is ERROR_POLICY=stop: a rejected record ends the batch
	// before it (HaltError) instead of being dead-lettered.
	StopOnReject bool
	// SystemicRejects is ERROR_SYSTEMIC_REJECTS (see SystemicError); 0
	// never halts.
	SystemicRejects int
	// CreateTables (a typed SINK_VALUE_FORMAT in SINK_MAPPING=columns)
	// lets a topic's table be missing: it is created from the first record
	// schema (Columns.Ensure).
	CreateTables bool
	// Evolve is SINK_SCHEMA_EVOLUTION=add-columns.
	Evolve bool
	// ValueKey is SINK_PRIMARY_KEY.
	ValueKey []string
	// TextValues (SINK_VALUE_FORMAT=string) stores values in a text column
	// instead of jsonb.
	TextValues bool
	// TxIdleTimeout is SINK_TX_IDLE_TIMEOUT, set for each batch
	// transaction (see beginLocked); 0 leaves the server's setting.
	TxIdleTimeout time.Duration
	// CountGroup, when set (POOL_MAX_CONNS=auto), is the application_name
	// prefix of the group's connections: each batch transaction counts the
	// group's open transactions as it begins (Result.GroupTransactions),
	// the adaptive limit's measure of the group's concurrency.
	CountGroup string
}

// Table is topic's table.
func (c Config) Table(topic string) pgx.Identifier {
	if id, ok := c.Tables[topic]; ok {
		return id
	}
	return pgx.Identifier{TableName(topic)}
}

// Offsets is the group's rows of the offsets table.
func (c Config) Offsets() Offsets { return Offsets{Table: c.OffsetsTable, Group: c.Group} }
