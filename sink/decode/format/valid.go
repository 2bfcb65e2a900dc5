package format

import (
	"bytes"
	"encoding/json"

	"github.com/valyala/fastjson"
)

// fastJSONBrackets bounds the brackets a value may hold for fastjson's
// validator, which recurses once per nesting level without a limit: a
// record of millions of '[' would grow a goroutine's stack by gigabytes.
const fastJSONBrackets = 512

// ValidJSON is json.Valid's verdict, from fastjson's validator where it is
// exact: 2-3x faster on records like the bench's, and JSON validation was
// the largest cost of decoding (CPU profile of a 64-partition drain).
// encoding/json's scanner decides for a value with a backslash (fastjson
// v1.6.10 misses a control character before an escape in a string:
// FuzzValidJSON found it), with more brackets than fastJSONBrackets, or
// that fastjson refuses (its error path allocates; encoding/json's verdict
// stands).
func ValidJSON(v []byte) bool {
	if bytes.IndexByte(v, '\\') >= 0 ||
		len(v) > fastJSONBrackets && bytes.Count(v, []byte{'['})+bytes.Count(v, []byte{'{'}) > fastJSONBrackets {
		return json.Valid(v)
	}
	return fastjson.ValidateBytes(v) == nil || json.Valid(v)
}
