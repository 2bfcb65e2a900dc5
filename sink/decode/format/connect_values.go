package format

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Connect payloads: each value converted by its compiled schema while
// the JSON text is scanned once, without building a tree.

// appendValue converts the value at sc by s and appends it.
func (s *connectSchema) appendValue(dst []byte, sc *cjScanner) ([]byte, error) {
	sc.ws()
	c := sc.peek()
	if c == 'n' {
		sc.i += len("null")
		return s.appendNull(dst)
	}
	switch s.logical {
	case lgDecimal:
		return s.appendDecimal(dst, sc)
	case lgDate, lgTime, lgTimestamp:
		return s.appendTemporal(dst, sc)
	case lgDebezium:
		return s.appendDebezium(dst, sc)
	}
	switch s.typ {
	case ctInt8, ctInt16, ctInt32, ctInt64:
		v, err := s.integer(sc)
		return AppendInt(dst, v), err
	case ctFloat32, ctFloat64:
		return s.appendFloat(dst, sc)
	case ctBoolean:
		switch c {
		case 't':
			sc.i += len("true")
			return append(dst, "true"...), nil
		case 'f':
			sc.i += len("false")
			return append(dst, "false"...), nil
		}
		return dst, cjMismatchf("want a boolean")
	case ctString:
		raw, esc, ok := sc.str()
		if !ok {
			return dst, cjMismatchf("want a string")
		}
		if esc {
			return AppendString(dst, cjUnquote(raw))
		}
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"'), nil
	case ctBytes:
		b, err := sc.base64(nil)
		return AppendBytes(dst, b), err
	case ctArray:
		return s.appendArray(dst, sc)
	case ctMap:
		if c == '[' {
			return s.appendPairs(dst, sc)
		}
		return s.appendMap(dst, sc)
	}
	return s.appendStruct(dst, sc)
}

// appendNull appends the value of a null or absent field: its default,
// else null when it is optional.
func (s *connectSchema) appendNull(dst []byte) ([]byte, error) {
	switch {
	case s.def != nil:
		return append(dst, s.def...), nil
	case s.optional:
		return append(dst, "null"...), nil
	}
	return dst, cjMismatchf("null for a required value")
}

var cjIntBits = [...]uint{ctInt8: 8, ctInt16: 16, ctInt32: 32, ctInt64: 64}

// integer reads an integer literal in the range of s's type.
func (s *connectSchema) integer(sc *cjScanner) (int64, error) {
	lit := sc.number()
	if lit == nil {
		return 0, cjMismatchf("want an integer")
	}
	bits := cjIntBits[s.typ]
	v, ok := cjParseInt(lit)
	if !ok || bits < 64 && (v < -1<<(bits-1) || v >= 1<<(bits-1)) {
		return 0, cjMismatchf("not an int%d", bits)
	}
	return v, nil
}

// cjParseInt parses a JSON integer literal without allocating.
func cjParseInt(lit []byte) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) == 0 || len(lit) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

func (s *connectSchema) appendFloat(dst []byte, sc *cjScanner) ([]byte, error) {
	bits := 64
	if s.typ == ctFloat32 {
		bits = 32
	}
	if sc.peek() == '"' { // Jackson quotes the non-finite values
		raw, _, _ := sc.str()
		switch string(raw) {
		case "NaN":
			return AppendFloat(dst, math.NaN(), bits), nil
		case "Infinity":
			return AppendFloat(dst, math.Inf(1), bits), nil
		case "-Infinity":
			return AppendFloat(dst, math.Inf(-1), bits), nil
		}
		return dst, cjMismatchf("want a number")
	}
	lit := sc.number()
	if lit == nil {
		return dst, cjMismatchf("want a number")
	}
	f, err := strconv.ParseFloat(string(lit), bits)
	if err != nil {
		return dst, cjMismatchf("not a float%d", bits)
	}
	return AppendFloat(dst, f, bits), nil
}

// appendDecimal takes base64 of the unscaled two's-complement integer, or
// a JSON number (decimal.format=NUMERIC), kept as written.
func (s *connectSchema) appendDecimal(dst []byte, sc *cjScanner) ([]byte, error) {
	if lit := sc.number(); lit != nil {
		return append(dst, lit...), nil
	}
	var buf [32]byte
	b, err := sc.base64(buf[:0])
	if err != nil {
		return dst, err
	}
	return AppendUnscaled(dst, b, s.scale), nil
}

// cjMillisPerDay bounds a Time value.
const cjMillisPerDay = 86_400_000

func (s *connectSchema) appendTemporal(dst []byte, sc *cjScanner) ([]byte, error) {
	v, err := s.integer(sc)
	if err != nil {
		return dst, err
	}
	switch s.logical {
	case lgDate:
		return AppendDate(dst, v), nil
	case lgTime:
		if v < 0 || v >= cjMillisPerDay {
			return dst, cjMismatchf("Time outside one day")
		}
		return AppendTimeOfDay(dst, v*1000), nil
	}
	t := time.UnixMilli(v).UTC()
	if y := t.Year(); y < 1 || y > 9999 { // RFC 3339 has four-digit years
		return dst, cjMismatchf("Timestamp outside years 1-9999")
	}
	return AppendTimestamp(dst, t), nil
}

// appendDebezium converts a value of a Debezium semantic type; the text
// ones other than Json are written as their strings are.
func (s *connectSchema) appendDebezium(dst []byte, sc *cjScanner) ([]byte, error) {
	var err error
	switch k := s.dbz; {
	case k.isInt():
		var v int64
		if v, err = s.integer(sc); err == nil {
			dst, err = appendDebeziumInt(dst, k, v)
		}
	case k == dbzJSON:
		raw, esc, ok := sc.str()
		if !ok {
			return dst, cjMismatchf("want a string")
		}
		if esc {
			raw = []byte(cjUnquote(raw))
		}
		dst, err = appendJSONText(dst, raw)
	case k == dbzBits:
		var buf [32]byte
		var b []byte
		if b, err = sc.base64(buf[:0]); err == nil {
			dst, err = appendBits(dst, b, s.bits)
		}
	case k == dbzVarScaleDecimal:
		return s.appendVarScaleDecimal(dst, sc)
	default:
		s := connectSchema{typ: ctString}
		return s.appendValue(dst, sc)
	}
	if err != nil {
		if _, ok := err.(*cjMismatch); !ok {
			err = cjMismatchf("%v", err)
		}
	}
	return dst, err
}

// appendVarScaleDecimal converts a VariableScaleDecimal struct
// ({"scale": 2, "value": base64}) to its exact number.
func (s *connectSchema) appendVarScaleDecimal(dst []byte, sc *cjScanner) ([]byte, error) {
	if sc.peek() != '{' {
		return dst, cjMismatchf("want an object (struct)")
	}
	sc.i++
	var buf [32]byte
	var value []byte
	scale, seen := int64(0), 0
	for {
		sc.ws()
		if sc.peek() == '}' {
			sc.i++
			break
		}
		key, esc, ok := sc.str()
		if !ok {
			return dst, cjMismatchf("want an object (struct)")
		}
		sc.ws()
		sc.i++ // ':'
		sc.ws()
		name := string(key)
		if esc {
			name = cjUnquote(key)
		}
		var err error
		switch {
		case name == "scale" && sc.peek() != 'n':
			scale, err = s.fields[s.index["scale"]].schema.integer(sc)
			seen |= 1
		case name == "value" && sc.peek() != 'n':
			value, err = sc.base64(buf[:0])
			seen |= 2
		default:
			if !sc.skip() {
				return dst, cjMismatchf("want an object (struct)")
			}
		}
		if err != nil {
			return dst, cjWithin(err, name)
		}
		if !sc.next() {
			return dst, cjMismatchf("want an object (struct)")
		}
	}
	if seen != 3 {
		return dst, cjMismatchf("VariableScaleDecimal without scale or value")
	}
	dst, err := appendVarScaleDecimal(dst, value, scale)
	if err != nil {
		return dst, cjMismatchf("%v", err)
	}
	return dst, nil
}

func (s *connectSchema) appendArray(dst []byte, sc *cjScanner) ([]byte, error) {
	if sc.peek() != '[' {
		return dst, cjMismatchf("want an array")
	}
	sc.i++
	dst = append(dst, '[')
	for n := 0; ; n++ {
		sc.ws()
		if sc.peek() == ']' {
			sc.i++
			return append(dst, ']'), nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = s.items.appendValue(dst, sc); err != nil {
			return dst, cjWithin(err, strconv.Itoa(n))
		}
		if !sc.next() {
			return dst, cjMismatchf("want an array")
		}
	}
}

// appendMap converts a map written as an object (string keys).
func (s *connectSchema) appendMap(dst []byte, sc *cjScanner) ([]byte, error) {
	if sc.peek() != '{' {
		return dst, cjMismatchf("want an object or [key, value] pairs (map)")
	}
	sc.i++
	dst = append(dst, '{')
	for n := 0; ; n++ {
		sc.ws()
		if sc.peek() == '}' {
			sc.i++
			return append(dst, '}'), nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		key, esc, ok := sc.str()
		if !ok {
			return dst, cjMismatchf("want an object (map)")
		}
		if esc {
			dst, _ = AppendString(dst, cjUnquote(key))
		} else {
			dst = append(append(append(dst, '"'), key...), '"')
		}
		dst = append(dst, ':')
		sc.ws()
		sc.i++ // ':'
		var err error
		if dst, err = s.values.appendValue(dst, sc); err != nil {
			return dst, cjWithin(err, "{}")
		}
		if !sc.next() {
			return dst, cjMismatchf("want an object (map)")
		}
	}
}

// appendPairs converts a map written as [[key, value], ...] (JsonConverter
// does so for non-string keys) to an object keyed by each key's JSON text.
func (s *connectSchema) appendPairs(dst []byte, sc *cjScanner) ([]byte, error) {
	sc.i++ // '['
	dst = append(dst, '{')
	var key []byte
	for n := 0; ; n++ {
		sc.ws()
		if sc.peek() == ']' {
			sc.i++
			return append(dst, '}'), nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		sc.ws()
		if sc.peek() != '[' {
			return dst, cjMismatchf("want [key, value] pairs (map)")
		}
		sc.i++
		var err error
		if key, err = s.keys.appendValue(key[:0], sc); err != nil {
			return dst, cjWithin(err, "{key}")
		}
		if key[0] == '"' {
			dst = append(dst, key...)
		} else if dst, err = AppendString(dst, string(key)); err != nil {
			return dst, err
		}
		dst = append(dst, ':')
		sc.ws()
		if sc.peek() != ',' {
			return dst, cjMismatchf("want [key, value] pairs (map)")
		}
		sc.i++
		if dst, err = s.values.appendValue(dst, sc); err != nil {
			return dst, cjWithin(err, "{}")
		}
		sc.ws()
		if sc.peek() != ']' {
			return dst, cjMismatchf("want [key, value] pairs (map)")
		}
		sc.i++
		if !sc.next() {
			return dst, cjMismatchf("want [key, value] pairs (map)")
		}
	}
}

// appendStruct finds each field's value in one pass, then writes them in
// schema order; fields the schema lacks are ignored, as JsonConverter
// does.
func (s *connectSchema) appendStruct(dst []byte, sc *cjScanner) ([]byte, error) {
	if sc.peek() != '{' {
		return dst, cjMismatchf("want an object (struct)")
	}
	sc.i++
	var buf [32]int
	starts := buf[:0]
	if len(s.fields) > len(buf) {
		starts = make([]int, len(s.fields))
	} else {
		starts = buf[:len(s.fields)]
	}
	for {
		sc.ws()
		if sc.peek() == '}' {
			sc.i++
			break
		}
		key, esc, ok := sc.str()
		if !ok {
			return dst, cjMismatchf("want an object (struct)")
		}
		sc.ws()
		sc.i++ // ':'
		sc.ws()
		name := key
		if esc {
			name = []byte(cjUnquote(key))
		}
		if i, ok := s.index[string(name)]; ok {
			starts[i] = sc.i // > 0: the object's '{' comes first
		}
		if !sc.skip() || !sc.next() {
			return dst, cjMismatchf("want an object (struct)")
		}
	}
	end := sc.i
	dst = append(dst, '{')
	for i, f := range s.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		var err error
		if starts[i] == 0 {
			dst, err = f.schema.appendNull(dst)
		} else {
			sc.i = starts[i]
			dst, err = f.schema.appendValue(dst, sc)
		}
		if err != nil {
			return dst, cjWithin(err, f.name)
		}
	}
	sc.i = end
	return append(dst, '}'), nil
}

// cjScanner walks JSON text that json.Valid accepted. Its methods still
// check bounds, so a broken input ends in an error, not a panic or a loop.
type cjScanner struct {
	b []byte
	i int
}

func (sc *cjScanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *cjScanner) peek() byte {
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

// next passes the ',' after a member or element, if there is one; false
// at the end of the input.
func (sc *cjScanner) next() bool {
	sc.ws()
	switch sc.peek() {
	case ',':
		sc.i++
		return true
	case '}', ']':
		return true
	}
	return false
}

// str reads a string: its raw contents between the quotes, and whether
// they hold escapes.
func (sc *cjScanner) str() (raw []byte, esc, ok bool) {
	if sc.peek() != '"' {
		return nil, false, false
	}
	start := sc.i + 1
	for j := start; j < len(sc.b); j++ {
		switch sc.b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			sc.i = j + 1
			return sc.b[start:j], esc, true
		}
	}
	return nil, false, false
}

// number reads a number literal, or returns nil (and stays) when the
// value is not a number.
func (sc *cjScanner) number() []byte {
	start := sc.i
	if c := sc.peek(); c != '-' && (c < '0' || c > '9') {
		return nil
	}
	for sc.i < len(sc.b) {
		switch c := sc.b[sc.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			sc.i++
			continue
		}
		break
	}
	return sc.b[start:sc.i]
}

// skip passes one value.
func (sc *cjScanner) skip() bool {
	switch c := sc.peek(); c {
	case '"':
		_, _, ok := sc.str()
		return ok
	case '{', '[':
		depth := 0
		for sc.i < len(sc.b) {
			switch sc.b[sc.i] {
			case '"':
				if _, _, ok := sc.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					sc.i++
					return true
				}
			}
			sc.i++
		}
		return false
	}
	start := sc.i
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return sc.i > start
		}
		sc.i++
	}
	return sc.i > start
}

// base64 reads a string of standard base64 (Jackson's binary form) and
// appends its bytes to buf.
func (sc *cjScanner) base64(buf []byte) ([]byte, error) {
	raw, esc, ok := sc.str()
	if !ok {
		return buf, cjMismatchf("want base64 text")
	}
	if esc {
		raw = []byte(cjUnquote(raw))
	}
	b, err := base64.StdEncoding.AppendDecode(buf, raw)
	if err != nil {
		return buf, cjMismatchf("not base64")
	}
	return b, nil
}

// cjUnquote decodes a JSON string's raw contents (with escapes).
func cjUnquote(raw []byte) string {
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	_ = json.Unmarshal(q, &s) // raw came from valid JSON
	return s
}
