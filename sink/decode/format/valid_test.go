package format

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidJSON: ValidJSON (fastjson first) and json.Valid agree on every
// input, including the deeply nested values ValidJSON leaves to
// encoding/json (the seeds run with every go test;
// go test -run '^$' -fuzz FuzzValidJSON ./sink/decode/format/ explores).
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"a": 1}`, `[1, 2.5e-3, -0, true, false, null, "x\u00e9\n"]`, `{"a":{"b":[{}]}}`, ` 1 `, `"\ud800"`,
		`01`, `1.`, `.5`, `1e`, `-`, `+1`, `NaN`, `Infinity`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `'x'`,
		"\"\x01\"", "\"\t\"", "[1]\x0c", "\x0c[1]", `"\x"`, `"\u12"`, `"\u12g4"`, `[1] [2]`, ``, ` `, `{"a":1}}`,
		"\xff", `"` + "\xc3\x28" + `"`, strings.Repeat("[", 600) + strings.Repeat("]", 600),
		strings.Repeat("[", 600) + strings.Repeat("]", 599), strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := ValidJSON(b), json.Valid(b); got != want {
			t.Fatalf("ValidJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
