package sink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// The stages' configurations, built from the flat Config that the
// environment fills: each stage package gets only what it uses.

// Table returns the quoted-ready identifier of topic's table: its
// SINK_TABLE_MAP entry, else SINK_TABLE_FORMAT expanded for it, else
// postgres.TableName(topic).
func (c Config) Table(topic string) pgx.Identifier {
	if t, ok := c.TableMap[topic]; ok {
		id, _ := postgres.ParseIdentifier(t) // Validate has checked it
		return id
	}
	if c.TableFormat != "" {
		if id, err := postgres.ParseIdentifier(expandTableFormat(c.TableFormat, topic)); err == nil {
			return id
		}
	}
	return pgx.Identifier{postgres.TableName(topic)}
}

func (c Config) offsetsTable() pgx.Identifier {
	id, _ := postgres.ParseIdentifier(c.OffsetsTable)
	return id
}

// Postgres is the database side's configuration (Validate first).
func (c Config) Postgres() postgres.Config {
	tables := make(map[string]pgx.Identifier, len(c.Topics))
	for _, t := range c.Topics {
		tables[t] = c.Table(t)
	}
	return postgres.Config{
		Group:             c.Group,
		OffsetsTable:      c.offsetsTable(),
		Topics:            c.Topics,
		Tables:            tables,
		Mode:              decode.Mode(c.Mode),
		Mapping:           decode.Mapping(c.Mapping),
		DeleteOnTombstone: c.DeleteOnTombstone,
		StopOnReject:      c.ErrorPolicy == "stop",
		SystemicRejects:   c.SystemicRejects,
		TxIdleTimeout:     c.TxIdleTimeout,
		CreateTables:      c.Mapping == MappingColumns && decode.Format(c.ValueFormat).Typed(),
		Evolve:            c.SchemaEvolution == EvolutionAddColumns,
		ValueKey:          c.PrimaryKey,
		TextValues:        c.ValueFormat == string(decode.FormatString),
	}
}

// groupPrefix is the prefix of the application_name of every member's
// connections (ApplicationName): sinkworker/<group>/, cut as the names
// are.
func (c Config) groupPrefix() string { return ApplicationName(c.Group, "") }

// Decode is the decode stage's configuration for a topic whose table has
// the primary key primaryKey returns (SINK_MAPPING=columns; nil in jsonb
// mapping), reading schemas from registry (nil when no format uses one:
// NewRegistry).
func (c Config) Decode(registry *decode.Registry, primaryKey func() []string) decode.Config {
	return decode.Config{
		Mode:              decode.Mode(c.Mode),
		Mapping:           decode.Mapping(c.Mapping),
		MaxRecordBytes:    c.MaxRecordBytes,
		DeleteOnTombstone: c.DeleteOnTombstone,
		PrimaryKey:        primaryKey,
		KeyFormat:         decode.Format(c.KeyFormat),
		ValueFormat:       decode.Format(c.ValueFormat),
		Registry:          registry,
		ValuePrimaryKey:   c.PrimaryKey,
		Envelope:          decode.Envelope(c.Envelope),
		Truncate:          c.Truncate,
	}
}

// NewRegistry is the schema registry client of SCHEMA_REGISTRY_URL: nil,
// nil when no format reads from a registry. Validate first.
func (c Config) NewRegistry() (*decode.Registry, error) {
	if !decode.Format(c.KeyFormat).UsesRegistry() && !decode.Format(c.ValueFormat).UsesRegistry() {
		return nil, nil
	}
	tlsConfig, err := c.registryTLS()
	if err != nil {
		return nil, fmt.Errorf("SCHEMA_REGISTRY_TLS_CA_FILE: %w", err)
	}
	return decode.NewRegistry(decode.RegistryConfig{
		URL: c.Registry.URL, Username: c.Registry.Username, Password: c.Registry.Password, TLS: tlsConfig})
}

// EnsureTables creates the tables c names, if missing
// (postgres.EnsureTables).
func EnsureTables(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, c Config) error {
	return postgres.EnsureTables(ctx, db, c.Postgres())
}

// ApplicationName is the application_name of the worker's connections,
// sinkworker/<group>/<member>, cut to PostgreSQL's 63 bytes.
func ApplicationName(group, member string) string {
	name := "sinkworker/" + group + "/" + member
	if len(name) > postgres.MaxIdentLen {
		name = name[:postgres.MaxIdentLen]
	}
	return name
}
