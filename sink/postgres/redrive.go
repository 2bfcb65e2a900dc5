package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// Redrive's statements. They differ from the writer's in one way: a
// redriven letter comes after, in time, records of higher offsets, so each
// statement leaves alone a row that may be newer. "Newer" is decided by the
// row's coordinates: a row is older only when it was written from an
// earlier offset of the letter's partition.

// olderRow is the condition, on a row t and a candidate EXCLUDED (or s),
// that t was written from an earlier offset of the same partition.
const olderRow = `t.kafka_partition = %[1]s.kafka_partition AND t.kafka_offset < %[1]s.kafka_offset`

// Redriver applies dead letters back to their tables, one statement each,
// never over a row that may be newer (see olderRow). It belongs to one
// goroutine.
type Redriver struct {
	cfg    Config
	log    *slog.Logger
	warned map[string]bool // tables whose rows cannot be ordered, once warned about
}

// NewRedriver returns a Redriver for the tables of c; it logs one warning
// per table whose rows it cannot order.
func NewRedriver(c Config, log *slog.Logger) *Redriver {
	return &Redriver{cfg: c, log: log, warned: map[string]bool{}}
}

// Conn is what Apply needs of a connection: *pgxpool.Conn and *pgx.Conn
// have it.
type Conn interface {
	Querier
	Execer
}

// Apply writes row, a redriven record decoded under its source coordinates,
// and reports whether it changed a row; cols is its topic's table in
// SINK_MAPPING=columns, else nil. A rejection of the record by the database
// is returned as bad; any other error as err.
func (d *Redriver) Apply(ctx context.Context, conn Conn, cols *Columns, row decode.Row) (landed bool, bad *decode.Rejection, err error) {
	if row.Op == decode.OpSkip || row.Op == decode.OpTruncate {
		// The worker skips such records too; a truncate is never replayed
		// from a dead-letter topic over rows written since.
		return false, nil, nil
	}
	src := row.Record
	var tag pgconn.CommandTag
	if cols == nil {
		sql, args := d.jsonbStatement(row)
		tag, err = conn.Exec(ctx, sql, args...)
	} else {
		tag, err = d.columnsExec(ctx, conn, cols, row)
	}
	if err != nil {
		if Classify(err) == Permanent {
			b := Rejected(src, err)
			return false, &b, nil
		}
		return false, nil, fmt.Errorf("redrive %s[%d] offset %d: %w", src.Topic, src.Partition, src.Offset, err)
	}
	return tag.RowsAffected() > 0, nil, nil
}

// jsonbStatement is the SINK_MAPPING=jsonb statement for row, decoded
// as the worker decodes it (its key and value in their formats).
func (d *Redriver) jsonbStatement(row decode.Row) (string, []any) {
	src := row.Record
	table := d.cfg.Table(src.Topic).Sanitize()
	value := "::text::" + d.cfg.valueType()
	switch {
	case d.cfg.Mode == decode.ModeInsert:
		return `INSERT INTO ` + table + ` (kafka_topic, kafka_partition, kafka_offset, key, value, kafka_timestamp)
SELECT $1::text, $2::int, $3::int8, $4::text, $5` + value + `, $6::timestamptz
WHERE NOT EXISTS (SELECT FROM ` + table + ` WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = $3)`,
			[]any{src.Topic, src.Partition, src.Offset, nullText(row.KeyText), nullText(row.Value), src.Timestamp}
	case row.Op == decode.OpDelete:
		return `DELETE FROM ` + table + ` AS t WHERE t.key = $1 AND t.kafka_partition = $2 AND t.kafka_offset < $3`,
			[]any{string(row.KeyText), src.Partition, src.Offset}
	}
	set := "EXCLUDED.value"
	if len(row.Keep) > 0 { // Debezium's TOAST placeholders: the stored fields stay
		set = "t.value || EXCLUDED.value"
	}
	return `INSERT INTO ` + table + ` AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
VALUES ($1, $2` + value + `, $3, $4, $5, now())
ON CONFLICT (key) DO UPDATE SET value = ` + set + `, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at
WHERE ` + fmt.Sprintf(olderRow, "EXCLUDED"),
		[]any{string(row.KeyText), string(row.Value), src.Partition, src.Offset, src.Timestamp}
}

// columnsExec runs the SINK_MAPPING=columns statement for src. A table
// without the coordinates that order rows gets the safe statement (insert
// an absent key; never delete) and one warning.
func (d *Redriver) columnsExec(ctx context.Context, conn Conn, cols *Columns, row decode.Row) (pgconn.CommandTag, error) {
	src := row.Record
	rows, err := cols.prepare(ctx, conn, []decode.Row{row})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	have, pk, _ := cols.snapshot()
	var sql string
	if d.cfg.Mode == decode.ModeInsert {
		placed := have["kafka_topic"] && have["kafka_partition"] && have["kafka_offset"]
		if !placed {
			d.warnOnce(cols, "redrive cannot tell whether a letter already landed in this table: it has no "+
				"kafka_topic, kafka_partition and kafka_offset columns, so a second run inserts the letters again "+
				"unless a unique key refuses them")
		}
		sql = redriveInsertSQL(cols, rows.used, placed)
	} else {
		ordered := have["kafka_partition"] && have["kafka_offset"]
		if !ordered {
			d.warnOnce(cols, "redrive cannot tell a newer row in this table: it has no kafka_partition and "+
				"kafka_offset columns, so letters only insert keys that are absent and never delete (counted as skipped)")
		}
		switch {
		case src.Value == nil && !ordered:
			return pgconn.CommandTag{}, nil
		case src.Value == nil:
			sql = redriveDeleteSQL(cols, pk)
		default:
			sql = redriveUpsertSQL(cols, rows.used, pk, ordered)
		}
	}
	return conn.Exec(ctx, sql, src.Topic, src.Partition, rows.values, rows.keys, rows.offsets, rows.timestamps)
}

func (d *Redriver) warnOnce(cols *Columns, msg string) {
	table := cols.id.Sanitize()
	if !d.warned[table] {
		d.warned[table] = true
		d.log.Warn(msg, "table", table)
	}
}

// redriveInsertSQL inserts the rows of Columns.rowsSQL into the used
// columns; placed: unless a row with the same coordinates is there.
func redriveInsertSQL(t *Columns, used []string, placed bool) string {
	list, sel := columnLists(used)
	sql := `INSERT INTO ` + t.id.Sanitize() + ` (` + list + `)
SELECT ` + sel + ` FROM (` + t.rowsSQL() + `) AS s`
	if placed {
		sql += `
WHERE NOT EXISTS (SELECT FROM ` + t.id.Sanitize() + ` AS t WHERE t.kafka_topic = s.kafka_topic
	AND t.kafka_partition = s.kafka_partition AND t.kafka_offset = s.kafka_offset)`
	}
	return sql
}

// redriveUpsertSQL upserts by primary key; ordered: only over an older
// row, else never over an existing one.
func redriveUpsertSQL(t *Columns, used, pk []string, ordered bool) string {
	list, sel := columnLists(used)
	var conflict, set []string
	for _, c := range pk {
		conflict = append(conflict, pgx.Identifier{c}.Sanitize())
	}
	for _, c := range used {
		if !slices.Contains(pk, c) {
			q := pgx.Identifier{c}.Sanitize()
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	sql := `INSERT INTO ` + t.id.Sanitize() + ` AS t (` + list + `)
SELECT ` + sel + ` FROM (` + t.rowsSQL() + `) AS s
ON CONFLICT (` + strings.Join(conflict, ", ") + `) `
	if !ordered || len(set) == 0 {
		return sql + "DO NOTHING"
	}
	return sql + "DO UPDATE SET " + strings.Join(set, ", ") + "\nWHERE " + fmt.Sprintf(olderRow, "EXCLUDED")
}

// redriveDeleteSQL deletes the row of the key object when it is older.
func redriveDeleteSQL(t *Columns, pk []string) string {
	on := []string{fmt.Sprintf(olderRow, "s")}
	for _, c := range pk {
		q := pgx.Identifier{c}.Sanitize()
		on = append(on, "t."+q+" = s."+q)
	}
	return `DELETE FROM ` + t.id.Sanitize() + ` AS t USING (` + t.rowsSQL() + `) AS s WHERE ` + strings.Join(on, " AND ")
}

// columnLists are the quoted column list and the matching select list of
// the rows s of Columns.rowsSQL.
func columnLists(used []string) (list, sel string) {
	l, s := make([]string, len(used)), make([]string, len(used))
	for i, c := range used {
		q := pgx.Identifier{c}.Sanitize()
		l[i], s[i] = q, "s."+q
	}
	return strings.Join(l, ", "), strings.Join(s, ", ")
}

// nullText is b as a text parameter, SQL NULL for nil.
func nullText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
