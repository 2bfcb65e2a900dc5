package format

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// assertLandsInPostgres creates a table (named after prefix, dropped at
// the end) from shape's columns, inserts out through jsonb_populate_record
// as the columns mapping reads it, and compares every column, read back as
// text in UTC, with want (a column want leaves out must be NULL). It needs
// the real PostgreSQL (DATABASE_URL) and fails without it.
func assertLandsInPostgres(t *testing.T, prefix string, shape *Shape, out []byte, want map[string]string) {
	t.Helper()
	require.NotNil(t, shape)
	conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	// t.Context is done by the time cleanups run.
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "SET TIME ZONE 'UTC'")
	require.NoError(t, err)

	table := pgx.Identifier{prefix + "_" + testenv.Suffix()}.Sanitize()
	cols := make([]string, len(shape.Columns))
	defs := make([]string, len(shape.Columns))
	texts := make([]string, len(shape.Columns))
	for i, c := range shape.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
		defs[i] = cols[i] + " " + c.Type
		if !c.Nullable {
			defs[i] += " NOT NULL"
		}
		texts[i] = cols[i] + "::text"
	}
	_, err = conn.Exec(t.Context(), fmt.Sprintf("CREATE TABLE %s (%s)", table, strings.Join(defs, ", ")))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP TABLE "+table)
		assert.NoError(t, err)
	})
	_, err = conn.Exec(t.Context(), fmt.Sprintf(
		"INSERT INTO %[1]s SELECT * FROM jsonb_populate_record(NULL::%[1]s, $1::jsonb)", table), string(out))
	require.NoError(t, err)

	row := make([]*string, len(cols))
	dsts := make([]any, len(cols))
	for i := range row {
		dsts[i] = &row[i]
	}
	require.NoError(t, conn.QueryRow(t.Context(), fmt.Sprintf("SELECT %s FROM %s", strings.Join(texts, ", "), table)).Scan(dsts...))
	for i, c := range shape.Columns {
		w, ok := want[c.Name]
		if !ok {
			assert.Nil(t, row[i], "column %s", c.Name)
			continue
		}
		if assert.NotNil(t, row[i], "column %s", c.Name) {
			assert.Equal(t, w, *row[i], "column %s (%s)", c.Name, c.Type)
		}
	}
}
