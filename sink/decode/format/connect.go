package format

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kafka Connect's JsonConverter with schemas.enable=true writes every
// value as {"schema": S, "payload": P}, the schema in the record. The
// decoder compiles each distinct S once (cached by its text) and converts
// P by it in one pass over the bytes.

// Connect's logical type names (the schema's "name").
const (
	connectDecimal   = "org.apache.kafka.connect.data.Decimal"
	connectDate      = "org.apache.kafka.connect.data.Date"
	connectTime      = "org.apache.kafka.connect.data.Time"
	connectTimestamp = "org.apache.kafka.connect.data.Timestamp"
)

// connectCacheSize bounds the compiled schemas a decoder keeps; the cache
// is cleared when full (a topic has few schemas; many means churn).
const connectCacheSize = 1024

type connectType uint8

const (
	ctInt8 connectType = iota + 1
	ctInt16
	ctInt32
	ctInt64
	ctFloat32
	ctFloat64
	ctBoolean
	ctString
	ctBytes
	ctArray
	ctMap
	ctStruct
)

var connectTypes = map[string]connectType{
	"int8": ctInt8, "int16": ctInt16, "int32": ctInt32, "int64": ctInt64,
	"float": ctFloat32, "float32": ctFloat32, "double": ctFloat64, "float64": ctFloat64,
	"boolean": ctBoolean, "string": ctString, "bytes": ctBytes,
	"array": ctArray, "map": ctMap, "struct": ctStruct,
}

type connectLogical uint8

const (
	lgNone connectLogical = iota
	lgDecimal
	lgDate
	lgTime
	lgTimestamp
)

// connectSchema is one compiled Connect schema node.
type connectSchema struct {
	typ       connectType
	logical   connectLogical
	scale     int // Decimal's scale
	precision int // Decimal's connect.decimal.precision, 0 when not given
	optional  bool
	def       []byte // the default as output JSON; nil when none
	fields    []connectField
	index     map[string]int // field name -> position in fields
	items     *connectSchema
	keys      *connectSchema
	values    *connectSchema
}

type connectField struct {
	name   string
	key    []byte // `"name":`
	schema *connectSchema
}

// rawConnectSchema is a schema as JsonConverter writes it.
type rawConnectSchema struct {
	Type       string                     `json:"type"`
	Optional   bool                       `json:"optional"`
	Default    json.RawMessage            `json:"default"`
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Fields     []rawConnectSchema         `json:"fields"`
	Field      string                     `json:"field"`
	Items      *rawConnectSchema          `json:"items"`
	Keys       *rawConnectSchema          `json:"keys"`
	Values     *rawConnectSchema          `json:"values"`
}

type compiledConnect struct {
	schema *connectSchema
	shape  *Shape
}

type connectJSON struct {
	mu    sync.RWMutex
	cache map[string]*compiledConnect // by the schema's JSON text
}

// NewConnectJSON returns a Decoder of Kafka Connect's JSON envelope
// (JsonConverter with schemas.enable=true); body is the whole record
// value. The payload is converted by its schema: structs and maps become
// objects, logical types their PostgreSQL text, bytes bytea hex; a
// payload of null is the JSON null. An envelope that is not a JSON object
// with "schema" and "payload" is ErrCorrupt; a payload its schema does not
// describe, or a schema that does not compile, is ErrSchema. Records with
// one schema text share one *Shape. Safe for concurrent use.
func NewConnectJSON() Decoder {
	return &connectJSON{cache: map[string]*compiledConnect{}}
}

// AppendJSON implements Decoder.
func (d *connectJSON) AppendJSON(dst, body []byte) ([]byte, *Shape, error) {
	if !utf8.Valid(body) {
		return dst, nil, Corrupt("Connect envelope is not valid UTF-8")
	}
	rawSchema, payload, err := splitEnvelope(body)
	if err != nil {
		return dst, nil, err
	}
	if !json.Valid(payload) {
		return dst, nil, Corrupt("Connect payload is not JSON")
	}
	c, err := d.compiled(rawSchema)
	if err != nil {
		return dst, nil, err
	}
	if string(payload) == "null" {
		return append(dst, "null"...), c.shape, nil
	}
	sc := cjScanner{b: payload}
	out, err := c.schema.appendValue(dst, &sc)
	if err != nil {
		return dst, nil, cjPayloadError(err)
	}
	return out, c.shape, nil
}

// cjErrNotJSON is made once: splitEnvelope runs for every record.
var cjErrNotJSON = Corrupt("Connect envelope is not JSON")

// splitEnvelope finds the schema and payload values in body. It checks the
// envelope's own syntax and every other value; the payload and the schema
// are left to the caller, so that a cached schema is not checked again.
func splitEnvelope(body []byte) (schema, payload []byte, err error) {
	sc := cjScanner{b: body}
	sc.ws()
	if sc.peek() != '{' {
		return nil, nil, Corrupt("Connect envelope is not a JSON object")
	}
	sc.i++
	sc.ws()
	if sc.peek() == '}' {
		sc.i++
	} else {
		for {
			keyStart := sc.i
			key, esc, ok := sc.str()
			if !ok || !json.Valid(body[keyStart:sc.i]) {
				return nil, nil, cjErrNotJSON
			}
			name := string(key)
			if esc {
				name = cjUnquote(key)
			}
			sc.ws()
			if sc.peek() != ':' {
				return nil, nil, cjErrNotJSON
			}
			sc.i++
			sc.ws()
			start := sc.i
			if !sc.skip() {
				return nil, nil, cjErrNotJSON
			}
			v := body[start:sc.i]
			var slot *[]byte
			switch name {
			case "schema":
				slot = &schema
			case "payload":
				slot = &payload
			}
			switch {
			case slot == nil:
				if !json.Valid(v) {
					return nil, nil, cjErrNotJSON
				}
			case *slot != nil && !json.Valid(*slot):
				return nil, nil, cjErrNotJSON // the last one wins: check the one it hides
			default:
				*slot = v
			}
			sc.ws()
			if sc.peek() == ',' {
				sc.i++
				sc.ws()
				continue
			}
			if sc.peek() != '}' {
				return nil, nil, cjErrNotJSON
			}
			sc.i++
			break
		}
	}
	sc.ws()
	if sc.i != len(body) {
		return nil, nil, cjErrNotJSON
	}
	if payload == nil {
		return nil, nil, Corrupt("Connect envelope has no payload")
	}
	if schema == nil || string(schema) == "null" {
		return nil, nil, Corrupt("Connect envelope has no schema (schemas.enable=true expects one)")
	}
	return schema, payload, nil
}

// compiled returns the compiled schema for raw, from the cache when it
// has it.
func (d *connectJSON) compiled(raw []byte) (*compiledConnect, error) {
	d.mu.RLock()
	c, ok := d.cache[string(raw)]
	d.mu.RUnlock()
	if ok {
		return c, nil
	}
	if !json.Valid(raw) {
		return nil, Corrupt("Connect envelope is not JSON")
	}
	var r rawConnectSchema
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, Invalid("Connect schema is not a schema object")
	}
	s, err := compileConnect(&r, "")
	if err != nil {
		return nil, err
	}
	c = &compiledConnect{schema: s, shape: connectShape(s)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if prev, ok := d.cache[string(raw)]; ok {
		return prev, nil // another goroutine won: share its Shape
	}
	if len(d.cache) >= connectCacheSize {
		clear(d.cache)
	}
	d.cache[string(raw)] = c
	return c, nil
}

// compileConnect compiles r; at names its place for errors.
func compileConnect(r *rawConnectSchema, at string) (*connectSchema, error) {
	typ, ok := connectTypes[r.Type]
	if !ok {
		return nil, Invalid("Connect schema%s: unknown type %q", cjWhere(at), r.Type)
	}
	s := &connectSchema{typ: typ, optional: r.Optional}
	var err error
	switch typ {
	case ctStruct:
		s.index = make(map[string]int, len(r.Fields))
		for i := range r.Fields {
			f := &r.Fields[i]
			if _, dup := s.index[f.Field]; dup {
				return nil, Invalid("Connect schema%s: field %q twice", cjWhere(at), f.Field)
			}
			fs, err := compileConnect(f, at+"/"+f.Field)
			if err != nil {
				return nil, err
			}
			key, _ := AppendString(nil, f.Field)
			s.index[f.Field] = i
			s.fields = append(s.fields, connectField{name: f.Field, key: append(key, ':'), schema: fs})
		}
	case ctArray:
		if r.Items == nil {
			return nil, Invalid("Connect schema%s: array without items", cjWhere(at))
		}
		if s.items, err = compileConnect(r.Items, at+"/[]"); err != nil {
			return nil, err
		}
	case ctMap:
		if r.Keys == nil || r.Values == nil {
			return nil, Invalid("Connect schema%s: map without keys or values", cjWhere(at))
		}
		if s.keys, err = compileConnect(r.Keys, at+"/{key}"); err != nil {
			return nil, err
		}
		if s.values, err = compileConnect(r.Values, at+"/{}"); err != nil {
			return nil, err
		}
	}
	if err := s.setLogical(r, at); err != nil {
		return nil, err
	}
	if len(r.Default) > 0 && string(r.Default) != "null" {
		def, err := s.appendValue(nil, &cjScanner{b: r.Default})
		if err != nil {
			return nil, Invalid("Connect schema%s: default does not match its type", cjWhere(at))
		}
		s.def = def
	}
	return s, nil
}

func (s *connectSchema) setLogical(r *rawConnectSchema, at string) error {
	want := ctInt32
	switch r.Name {
	case connectDecimal:
		s.logical, want = lgDecimal, ctBytes
		scale, ok := cjIntParam(r.Parameters["scale"])
		if !ok {
			return Invalid("Connect schema%s: Decimal without an integer scale", cjWhere(at))
		}
		s.scale = scale
		s.precision, _ = cjIntParam(r.Parameters["connect.decimal.precision"])
	case connectDate:
		s.logical = lgDate
	case connectTime:
		s.logical = lgTime
	case connectTimestamp:
		s.logical, want = lgTimestamp, ctInt64
	default:
		return nil
	}
	if s.typ != want {
		return Invalid("Connect schema%s: %s on type %q", cjWhere(at), r.Name, r.Type)
	}
	return nil
}

// cjIntParam reads a Connect parameter (a string; a number is taken too).
func cjIntParam(raw json.RawMessage) (int, bool) {
	var v json.Number
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		v = json.Number(s)
	} else {
		v = json.Number(raw)
	}
	n, err := strconv.Atoi(string(v))
	return n, err == nil && n > math.MinInt32 && n < math.MaxInt32
}

func cjWhere(at string) string {
	if at == "" {
		return ""
	}
	return " at " + at
}

// connectShape is the table of a struct schema, nil for others.
func connectShape(s *connectSchema) *Shape {
	if s.typ != ctStruct {
		return nil
	}
	shape := &Shape{Columns: make([]Column, 0, len(s.fields))}
	for _, f := range s.fields {
		shape.Columns = append(shape.Columns, Column{Name: f.name, Type: connectColumnType(f.schema), Nullable: f.schema.optional})
	}
	return shape
}

func connectColumnType(s *connectSchema) string {
	switch s.logical {
	case lgDecimal:
		if s.precision >= 1 && s.precision <= 1000 && s.scale >= 0 && s.scale <= s.precision {
			return fmt.Sprintf("numeric(%d,%d)", s.precision, s.scale)
		}
		return "numeric"
	case lgDate:
		return "date"
	case lgTime:
		return "time"
	case lgTimestamp:
		return "timestamptz"
	}
	switch s.typ {
	case ctInt8, ctInt16:
		return "smallint"
	case ctInt32:
		return "integer"
	case ctInt64:
		return "bigint"
	case ctFloat32:
		return "real"
	case ctFloat64:
		return "double precision"
	case ctBoolean:
		return "boolean"
	case ctString:
		return "text"
	case ctBytes:
		return "bytea"
	case ctArray:
		if it := s.items.typ; it != ctArray && it != ctMap && it != ctStruct {
			return connectColumnType(s.items) + "[]"
		}
	}
	return "jsonb"
}

// cjMismatch is a payload its schema does not describe; path grows as the
// error unwinds (innermost first) and names schema fields only, never
// data.
type cjMismatch struct {
	path []string
	msg  string
}

func (m *cjMismatch) Error() string { return m.msg }

func cjMismatchf(format string, args ...any) error {
	return &cjMismatch{msg: fmt.Sprintf(format, args...)}
}

func cjWithin(err error, step string) error {
	if m, ok := err.(*cjMismatch); ok {
		m.path = append(m.path, step)
	}
	return err
}

func cjPayloadError(err error) error {
	m, ok := err.(*cjMismatch)
	if !ok {
		return err
	}
	var b strings.Builder
	for i := len(m.path) - 1; i >= 0; i-- {
		b.WriteString("/")
		b.WriteString(m.path[i])
	}
	if b.Len() == 0 {
		b.WriteString("/")
	}
	return Invalid("Connect payload at %s: %s", jsShorten(b.String()), m.msg)
}

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
