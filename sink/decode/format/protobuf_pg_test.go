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

// TestProtobufLandsInPostgres proves the JSON of a Protobuf message lands
// exactly in a table made from its Shape, through jsonb_populate_record
// as the columns mapping reads it.
func TestProtobufLandsInPostgres(t *testing.T) {
	d := compilePbTest(t)
	m := pbNew(t, d, "All")
	pbFillAll(t, m)
	out, shape, err := d.AppendJSON(nil, pbBody(t, m, 0))
	require.NoError(t, err)

	conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t))
	require.NoError(t, err)
	// t.Context is done by the time cleanups run.
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "SET TIME ZONE 'UTC'")
	require.NoError(t, err)

	const table = "protobuf_pg_lands"
	cols := make([]string, len(shape.Columns))
	defs := make([]string, len(shape.Columns))
	for i, c := range shape.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
		defs[i] = cols[i] + " " + c.Type
		if !c.Nullable {
			defs[i] += " NOT NULL"
		}
	}
	_, err = conn.Exec(t.Context(), "DROP TABLE IF EXISTS "+table)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), fmt.Sprintf("CREATE TABLE %s (%s)", table, strings.Join(defs, ", ")))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP TABLE "+table)
		assert.NoError(t, err)
	})
	_, err = conn.Exec(t.Context(), fmt.Sprintf(
		"INSERT INTO %[1]s SELECT * FROM jsonb_populate_record(NULL::%[1]s, $1::jsonb)", table), string(out))
	require.NoError(t, err)

	texts := make([]string, len(cols))
	for i, c := range cols {
		texts[i] = c + "::text"
	}
	row := make([]*string, len(cols))
	dsts := make([]any, len(cols))
	for i := range row {
		dsts[i] = &row[i]
	}
	require.NoError(t, conn.QueryRow(t.Context(),
		fmt.Sprintf("SELECT %s FROM %s", strings.Join(texts, ", "), table)).Scan(dsts...))

	want := map[string]string{
		"i32": "-2147483648", "s32": "-7", "sf32": "2147483647",
		"i64": "-9223372036854775808", "s64": "-9007199254740993", "sf64": "9223372036854775807",
		"u32": "4294967295", "f32": "7",
		"u64": "18446744073709551615", "f64": "9223372036854775808",
		"fl": "1.1", "db": "0.1", "b": "true",
		"s":     "a \"q\"\n\x01é",
		"by":    `\x00abff`,
		"color": "GREEN",
		"ts":    "2023-11-14 22:13:20.123457+00", // timestamptz keeps microseconds
		"dur":   "25:01:01.5",
		"note":  "hi", "count": "0", "opt": "0",
		"tags":   `{x,"y,z"}`,
		"nums":   "{-1}",
		"inners": `[{"at": null, "name": "n1", "color": "COLOR_UNSPECIFIED"}]`,
		"counts": `{"3": "v", "-2": "v", "10": "v"}`,
		"inner":  `{"at": "0001-01-01T00:00:00Z", "name": "", "color": "RED"}`,
		"text":   "chosen",
		"price":  `{"units": "12.50", "currency": "EUR"}`,
		"colors": "{RED,9}",
		"big":    "18446744073709551615",
		"blob":   `\x01`,
	}
	for i, c := range shape.Columns {
		w, ok := want[c.Name]
		if !ok {
			assert.Nil(t, row[i], c.Name)
			continue
		}
		if assert.NotNil(t, row[i], c.Name) {
			assert.Equal(t, w, *row[i], c.Name)
		}
	}
}
