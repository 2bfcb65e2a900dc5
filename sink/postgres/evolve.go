package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// ddlLockTimeout bounds how long a CREATE TABLE or ALTER TABLE waits for
// the table's lock behind other transactions (a Transient error after it,
// retried): while it waits, every writer of the table queues behind it.
const ddlLockTimeout = "10s"

// Ensure makes the table ready for rows before their batch transaction:
// a table missing at start-up (a typed SINK_VALUE_FORMAT) is created from
// the first value schema (Shape) of rows, and under
// SINK_SCHEMA_EVOLUTION=add-columns every field of a schema that no column
// takes becomes a nullable column. The DDL runs in its own short
// transaction under a per-table advisory lock, so workers and partitions
// adding the same column do not race, and the catalog is read again. It
// never drops, renames or retypes a column: a field whose type changed is
// for the database to reject, row by row. Each Shape is looked at once.
// It returns the columns it added.
func (t *Columns) Ensure(ctx context.Context, db Beginner, rows []decode.Row) (added []string, err error) {
	t.mu.Lock()
	absent := t.absent
	var fresh []*format.Shape
	var key *format.Shape
	for i := range rows {
		if s := rows[i].Shape; s != nil && !t.seen[s] && !slices.Contains(fresh, s) {
			fresh = append(fresh, s)
			if key == nil {
				key = rows[i].KeyShape
			}
		}
	}
	t.mu.Unlock()
	if !absent && (len(fresh) == 0 || !t.evolve) {
		t.markSeen(fresh)
		return nil, nil
	}
	if absent && len(fresh) == 0 {
		if !writesValues(rows) {
			// Nothing to create the table from and nothing to write: every
			// record was rejected, or only tombstones came (Writer.apply
			// counts them as skipped while the table does not exist).
			return nil, nil
		}
		return nil, fmt.Errorf("%w: table %s does not exist and no record of this batch carries a value schema to create it from",
			ErrNoTable, t.id.Sanitize())
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, fmt.Errorf("evolve %s: %w", t.id.Sanitize(), err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
		return nil, fmt.Errorf("evolve %s: %w", t.id.Sanitize(), err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", ddlLockKey, t.id.Sanitize()); err != nil {
		return nil, fmt.Errorf("evolve %s: %w", t.id.Sanitize(), err)
	}
	if absent {
		// The first schema makes the table; with add-columns, the fields
		// of the batch's other schemas are added below.
		if _, err := tx.Exec(ctx, t.createSQL(fresh[0], key)); err != nil {
			return nil, fmt.Errorf("create table %s from the record schema: %w", t.id.Sanitize(), err)
		}
	}
	if t.evolve {
		if err := t.load(ctx, tx); err != nil { // under the lock: what others added counts
			return nil, err
		}
		cols, _, _ := t.snapshot()
		for _, s := range fresh {
			for _, c := range s.Columns {
				if cols[c.Name] || slices.Contains(added, c.Name) {
					continue
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
					t.id.Sanitize(), pgx.Identifier{c.Name}.Sanitize(), c.Type)); err != nil {
					return nil, fmt.Errorf("add column %q to %s: %w", c.Name, t.id.Sanitize(), err)
				}
				added = append(added, c.Name)
			}
		}
	}
	if err := t.load(ctx, tx); err != nil { // the table as the batch will find it
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		t.invalidate()
		return nil, fmt.Errorf("evolve %s: %w", t.id.Sanitize(), err)
	}
	t.mu.Lock()
	t.absent = false
	t.mu.Unlock()
	t.markSeen(fresh)
	return added, nil
}

// writesValues reports whether a row of rows writes a value.
func writesValues(rows []decode.Row) bool {
	for i := range rows {
		if rows[i].Op == decode.OpWrite && rows[i].Value != nil {
			return true
		}
	}
	return false
}

func (t *Columns) markSeen(shapes []*format.Shape) {
	if len(shapes) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[*format.Shape]bool{}
	}
	for _, s := range shapes {
		t.seen[s] = true
	}
}

// createSQL creates the table of a value schema: its fields as nullable
// columns (a later version of the schema may make a field optional), the
// record's coordinates, and the primary key: in insert mode the
// coordinates; in upsert mode SINK_PRIMARY_KEY's fields, else the key
// schema's fields, else one column "key" of text for a key that is not a
// record.
func (t *Columns) createSQL(value, key *format.Shape) string {
	var defs []string
	have := map[string]bool{}
	add := func(name, typ string) {
		if !have[name] {
			have[name] = true
			defs = append(defs, pgx.Identifier{name}.Sanitize()+" "+typ)
		}
	}
	var pk []string
	if !t.keyless {
		switch {
		case len(t.valueKey) > 0:
			pk = t.valueKey
		case key != nil:
			for _, c := range key.Columns {
				pk = append(pk, c.Name)
				add(c.Name, c.Type)
			}
		default:
			pk = []string{"key"}
			if c, ok := value.Column("key"); ok {
				add(c.Name, c.Type)
			} else {
				add("key", "text")
			}
		}
	}
	for _, c := range value.Columns {
		add(c.Name, c.Type)
	}
	for _, m := range [][2]string{{"kafka_topic", "text"}, {"kafka_partition", "integer"}, {"kafka_offset", "bigint"}, {"kafka_timestamp", "timestamptz"}} {
		add(m[0], m[1])
	}
	if t.keyless {
		pk = []string{"kafka_topic", "kafka_partition", "kafka_offset"}
	}
	quoted := make([]string, len(pk))
	for i, c := range pk {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n\t%s,\n\tPRIMARY KEY (%s))",
		t.id.Sanitize(), strings.Join(defs, ",\n\t"), strings.Join(quoted, ", "))
}
