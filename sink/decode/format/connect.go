package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	lgDebezium // a Debezium semantic type: see dbz
)

// connectSchema is one compiled Connect schema node.
type connectSchema struct {
	typ       connectType
	logical   connectLogical
	scale     int // Decimal's scale
	precision int // Decimal's connect.decimal.precision, 0 when not given
	dbz       debeziumType
	bits      int    // Bits' length parameter
	srcType   string // the column type Debezium's source column type gives, "" for none
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
	raw    string // the schema's JSON text
}

type connectJSON struct {
	mu    sync.RWMutex
	cache map[string]*compiledConnect // by the schema's JSON text
	// recent are the last schemas read the general way, for sameAsLast:
	// a few, as one decoder serves every topic's keys and values.
	recent [connectRecent]atomic.Pointer[compiledConnect]
	slot   atomic.Uint32 // the next of recent to replace
}

// connectRecent is how many schemas sameAsLast compares a body with.
const connectRecent = 4

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
	c, payload := d.sameAsLast(body)
	if c == nil {
		rawSchema, p, err := splitEnvelope(body)
		if err != nil {
			return dst, nil, err
		}
		if !ValidJSON(p) {
			return dst, nil, Corrupt("Connect payload is not JSON")
		}
		if c, err = d.compiled(rawSchema); err != nil {
			return dst, nil, err
		}
		d.remember(c)
		payload = p
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

// JsonConverter writes every envelope as {"schema":S,"payload":P}, no
// spaces, S the same text record after record.
const (
	cjSchemaKey  = `{"schema":`
	cjPayloadKey = `,"payload":`
)

// sameAsLast reads body without a scan of its schema when it is exactly
// what JsonConverter writes around the schema text of a recent envelope
// (comparing a schema's bytes is far cheaper than walking them: the walk
// was a third of an envelope's decoding). It returns nil when body is
// anything else, for the general path to read.
func (d *connectJSON) sameAsLast(body []byte) (*compiledConnect, []byte) {
	rest, ok := bytes.CutPrefix(body, []byte(cjSchemaKey))
	if !ok {
		return nil, nil
	}
	for i := range d.recent {
		c := d.recent[i].Load()
		if c == nil || len(rest) < len(c.raw) || string(rest[:len(c.raw)]) != c.raw {
			continue
		}
		after, ok := bytes.CutPrefix(rest[len(c.raw):], []byte(cjPayloadKey))
		if !ok {
			return nil, nil
		}
		// The schema text is a whole JSON value and ",\"payload\":" follows
		// it, so it is all of the schema; the payload runs to the closing
		// brace and must be one JSON value (else another member follows it).
		payload, ok := bytes.CutSuffix(bytes.TrimRight(after, " \t\n\r"), []byte("}"))
		payload = bytes.TrimRight(payload, " \t\n\r")
		if !ok || !ValidJSON(payload) {
			return nil, nil
		}
		return c, payload
	}
	return nil, nil
}

// remember makes c one of the recent schemas, unless it is one already.
func (d *connectJSON) remember(c *compiledConnect) {
	for i := range d.recent {
		if d.recent[i].Load() == c {
			return
		}
	}
	d.recent[d.slot.Add(1)%connectRecent].Store(c)
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
	c = &compiledConnect{schema: s, shape: connectShape(s), raw: string(raw)}
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
	if src, ok := sourceParams(func(name string) string { return cjStringParam(r.Parameters[name]) }); ok {
		defer func() { s.srcType = src.columnType(connectColumnType(s)) }()
	}
	if k, ok := debeziumTypes[r.Name]; ok {
		return s.setDebezium(r, k, at)
	}
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

// setDebezium sets the Debezium semantic type k, which must be on its
// Connect type.
func (s *connectSchema) setDebezium(r *rawConnectSchema, k debeziumType, at string) error {
	if s.typ != dbzBase[k] {
		return Invalid("Connect schema%s: %s on type %q", cjWhere(at), r.Name, r.Type)
	}
	if k == dbzVarScaleDecimal {
		i, iok := s.index["scale"]
		v, vok := s.index["value"]
		if !iok || !vok || len(s.fields) != 2 || s.fields[i].schema.typ != ctInt32 || s.fields[v].schema.typ != ctBytes {
			return Invalid("Connect schema%s: %s is not a struct of scale (int32) and value (bytes)", cjWhere(at), r.Name)
		}
	}
	if k == dbzBits {
		s.bits, _ = cjIntParam(r.Parameters["length"])
	}
	s.logical, s.dbz = lgDebezium, k
	return nil
}

// cjStringParam reads a Connect parameter's text, "" when absent.
func cjStringParam(raw json.RawMessage) string {
	var v string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &v) == nil {
		return v
	}
	return ""
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

// connectShape is the table of a struct schema, nil for others; a struct
// field's column carries its own (a Debezium event's after image).
func connectShape(s *connectSchema) *Shape {
	if s.typ != ctStruct || s.logical != lgNone {
		return nil
	}
	shape := &Shape{Columns: make([]Column, 0, len(s.fields))}
	for _, f := range s.fields {
		shape.Columns = append(shape.Columns, Column{Name: f.name, Type: connectColumnType(f.schema), Nullable: f.schema.optional,
			Record: connectShape(f.schema)})
	}
	return shape
}

func connectColumnType(s *connectSchema) string {
	if s.srcType != "" {
		return s.srcType
	}
	switch s.logical {
	case lgDebezium:
		return s.dbz.pgType()
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
