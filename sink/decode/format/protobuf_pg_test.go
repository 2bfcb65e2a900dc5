package format

import (
	"testing"

	"github.com/stretchr/testify/require"
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
	assertLandsInPostgres(t, "protobuf_pg_lands", shape, out, want)
}
